# Two commands do everything on a fresh Debian/Ubuntu machine with Python 3.11+:
#   make demo   — venv, install, Chromium if missing, sandbox, every asset into DuckDB, summary
#   make test   — venv, install with test extras, Chromium and PostgreSQL if missing, lint, pytest
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch: a plain `torch` requirement resolves to a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo dev sandbox test lint chromium postgresql bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[embeddings,test]"
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium: `playwright install` needs the internet, so it is never relied on.
chromium:
	@if [ -n "$$INGEST_BROWSER_PATH" ] && [ -x "$$INGEST_BROWSER_PATH" ]; then \
		echo "browser: $$INGEST_BROWSER_PATH"; \
	elif command -v chromium >/dev/null 2>&1; then \
		echo "browser: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian chromium…"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "Chromium is missing. Either: sudo apt-get install chromium"; \
		echo "  or set INGEST_BROWSER_PATH to a Chromium/Chrome binary"; \
		echo "  or (with internet) $(BIN)/playwright install chromium"; \
		exit 1; \
	fi

# Debian's PostgreSQL server: the daemon test (test_orders_daemon.py) keeps the Dagster instance on
# it, as production does. CI starts from a clean machine, so install it by name when it is missing.
postgresql:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "postgresql: $$(ls -d /usr/lib/postgresql/*/bin | tail -1)"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian postgresql…"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "PostgreSQL server binaries are missing. Either: sudo apt-get install postgresql"; \
		echo "  or run as root so make installs it"; \
		exit 1; \
	fi

demo: install chromium
	$(BIN)/ingest-platform demo

dev: install chromium
	$(BIN)/ingest-platform dev

sandbox: install
	$(BIN)/ingest-platform sandbox

lint: install
	$(BIN)/ruff check .

# pytest exits 5 when it collects no tests: that fails this target, as it should.
test: install chromium postgresql lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf .dagster_home .pytest_cache .ruff_cache
