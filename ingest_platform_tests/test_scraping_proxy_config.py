"""Tests for ``ingest_platform.scraping.proxy_config``: PROXY_LIST parsing that never leaks a password."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ingest_platform.scraping.proxy_config import (
    ProxyConfigError,
    ProxyEndpoint,
    load_proxy_list_from_env,
    parse_proxy_list,
    redact_secrets,
)

SECRET = "S3cr3t-pa55"


@pytest.mark.parametrize(
    ("entry", "scheme", "host", "port", "username", "password"),
    [
        (f"http://alice:{SECRET}@gw.example.net:8000", "http", "gw.example.net", 8000, "alice", SECRET),
        (f"https://alice:{SECRET}@gw.example.net:8443", "https", "gw.example.net", 8443, "alice", SECRET),
        (f"socks5://bob:{SECRET}@10.1.2.3:1080", "socks5", "10.1.2.3", 1080, "bob", SECRET),
        (f"HTTP://alice:{SECRET}@gw.example.net:8000/", "http", "gw.example.net", 8000, "alice", SECRET),
        (
            "http://user-country-us-session-abc:p%40ss%3Aword@gw.example.net:7000",
            "http", "gw.example.net", 7000, "user-country-us-session-abc", "p@ss:word",
        ),
        (f"gw.example.net:8000:carol:{SECRET}", "http", "gw.example.net", 8000, "carol", SECRET),
        ("gw.example.net:8000:carol:pa:ss", "http", "gw.example.net", 8000, "carol", "pa:ss"),
        (f"carol:{SECRET}:gw.example.net:8000", "http", "gw.example.net", 8000, "carol", SECRET),
        ("carol:1234:gw.example.net:8000", "http", "gw.example.net", 8000, "carol", "1234"),
        (f"dave:{SECRET}@gw.example.net:9000", "http", "gw.example.net", 9000, "dave", SECRET),
        ("203.0.113.7:3128", "http", "203.0.113.7", 3128, None, None),
        ("http://[2001:db8::1]:8080", "http", "2001:db8::1", 8080, None, None),
        ("http://eve@gw.example.net:8000", "http", "gw.example.net", 8000, "eve", None),
    ],
)  # fmt: skip
def test_entry_forms(
    entry: str, scheme: str, host: str, port: int, username: str | None, password: str | None
) -> None:
    [proxy] = parse_proxy_list(entry)
    assert (proxy.scheme, proxy.host, proxy.port, proxy.username) == (scheme, host, port, username)
    if password is None:
        assert proxy.password is None
    else:
        assert proxy.password is not None and proxy.password.get_secret_value() == password


def test_list_separators_comments_and_dedupe() -> None:
    value = f"""
        # residential pool
        http://alice:{SECRET}@gw.example.net:8000, gw.example.net:8001:bob:{SECRET}
        203.0.113.7:3128   # datacenter fallback
        http://alice:{SECRET}@gw.example.net:8000
    """
    proxies = parse_proxy_list(value)
    assert [(p.host, p.port, p.username) for p in proxies] == [
        ("gw.example.net", 8000, "alice"),
        ("gw.example.net", 8001, "bob"),
        ("203.0.113.7", 3128, None),
    ]


def test_file_with_one_entry_per_line(tmp_path: Path) -> None:
    path = tmp_path / "proxies.txt"
    path.write_text(
        f"# provider export\ngw.example.net:8000:u1:{SECRET}\n\ngw.example.net:8000:u2:{SECRET}\n"
    )
    proxies = parse_proxy_list(str(path))
    assert [p.username for p in proxies] == ["u1", "u2"]


def test_empty_value_means_no_proxies(tmp_path: Path) -> None:
    assert parse_proxy_list("") == []
    assert parse_proxy_list("   ") == []
    assert parse_proxy_list(None) == []
    assert load_proxy_list_from_env({}) == []
    assert len(load_proxy_list_from_env({"PROXY_LIST": "203.0.113.7:3128"})) == 1


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "proxies.txt"
    path.write_text("# nothing yet\n")
    with pytest.raises(ProxyConfigError, match=r"PROXY_LIST: proxy file .* has no entries"):
        parse_proxy_list(str(path))


def test_missing_file_is_an_error() -> None:
    with pytest.raises(ProxyConfigError, match="no such file"):
        parse_proxy_list("/nonexistent/dir/proxies.txt")


def test_proxy_id_is_stable_and_not_secret() -> None:
    [a] = parse_proxy_list(f"http://alice:{SECRET}@gw.example.net:8000")
    [b] = parse_proxy_list("gw.example.net:8000:alice:another-password")
    assert a.proxy_id == b.proxy_id == "p-" + hashlib.sha256(b"gw.example.net:8000:alice").hexdigest()[:10]
    [c] = parse_proxy_list(f"http://bob:{SECRET}@gw.example.net:8000")
    assert c.proxy_id != a.proxy_id
    assert SECRET not in a.proxy_id


def test_playwright_proxy_and_urls() -> None:
    [proxy] = parse_proxy_list(f"socks5://bob:{SECRET}@10.1.2.3:1080")
    assert proxy.playwright_proxy() == {
        "server": "socks5://10.1.2.3:1080",
        "username": "bob",
        "password": SECRET,
    }
    assert proxy.server == "socks5://10.1.2.3:1080"
    assert proxy.redacted_url == "socks5://bob:***@10.1.2.3:1080"
    assert proxy.url_with_credentials() == f"socks5://bob:{SECRET}@10.1.2.3:1080"
    [open_proxy] = parse_proxy_list("203.0.113.7:3128")
    assert open_proxy.playwright_proxy() == {"server": "http://203.0.113.7:3128"}
    assert open_proxy.redacted_url == "http://203.0.113.7:3128"


def test_encoded_credentials_round_trip() -> None:
    [proxy] = parse_proxy_list("http://u%40x:p%40ss%2Fw@gw.example.net:8000")
    assert proxy.username == "u@x"
    assert proxy.password is not None and proxy.password.get_secret_value() == "p@ss/w"
    assert proxy.url_with_credentials() == "http://u%40x:p%40ss%2Fw@gw.example.net:8000"


def test_no_rendering_shows_the_password() -> None:
    [proxy] = parse_proxy_list(f"http://alice:{SECRET}@gw.example.net:8000")
    rendered = [
        repr(proxy),
        str(proxy),
        f"{proxy}",
        proxy.redacted_url,
        proxy.proxy_id,
        repr([proxy]),
        proxy.model_dump_json(),
        str(proxy.model_dump()),
    ]
    for text in rendered:
        assert SECRET not in text, text
    assert "alice" in str(proxy) and "gw.example.net:8000" in str(proxy)


def test_endpoint_is_frozen_and_hashable() -> None:
    [proxy] = parse_proxy_list(f"http://alice:{SECRET}@gw.example.net:8000")
    with pytest.raises(ValueError):
        proxy.port = 1  # type: ignore[misc]
    assert len({proxy, parse_proxy_list(f"http://alice:{SECRET}@gw.example.net:8000")[0]}) == 1


@pytest.mark.parametrize(
    ("entry", "number", "fragment", "shown"),
    [
        (f"http://alice:{SECRET}@gw.example.net:99999", 2, "port '99999'", "http://alice:***@gw.example.net:99999"),
        (f"ftp://alice:{SECRET}@gw.example.net:21", 2, "unsupported scheme 'ftp'", "ftp://alice:***@gw.example.net:21"),
        (f"http://alice:{SECRET}@gw.example.net", 2, "missing port", "http://alice:***@gw.example.net"),
        (f"http://alice:{SECRET}@bad_host!:80", 2, "invalid host", "http://alice:***@bad_host!:80"),
        (f"http://:{SECRET}@gw.example.net:80", 2, "password given without a username", "http://:***@gw.example.net:80"),
        (f"gw.example.net:port:alice:{SECRET}", 2, "expected host:port:user:pass", "gw.example.net:***:*"),
        (f"alice:{SECRET}:gw.example.net", 2, "expected scheme://user:pass@host:port", "alice:***:***"),
        (f"http://alice:{SECRET} x@gw.example.net:80", 2, "whitespace", "http://alice:***@gw.example.net:80"),
    ],
)  # fmt: skip
def test_errors_name_setting_entry_and_redacted_entry_never_the_password(
    entry: str, number: int, fragment: str, shown: str
) -> None:
    with pytest.raises(ProxyConfigError) as excinfo:
        parse_proxy_list(f"203.0.113.7:3128\n{entry}\n203.0.113.8:3128")
    message = str(excinfo.value)
    assert SECRET not in message
    assert SECRET not in repr(excinfo.value)
    assert message.startswith(f"PROXY_LIST entry {number} ")
    assert fragment in message
    assert shown in message
    assert isinstance(excinfo.value, ValueError)
    # Raised "from None": a traceback never prints an inner error that might hold the raw entry.
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__context__ is None or excinfo.value.__suppress_context__


def test_error_from_a_file_names_the_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "proxies.txt"
    path.write_text(f"gw.example.net:8000:u1:{SECRET}\n# comment\nhttp://u2:{SECRET}@gw.example.net:0\n")
    with pytest.raises(ProxyConfigError) as excinfo:
        parse_proxy_list(str(path))
    message = str(excinfo.value)
    assert message.startswith("PROXY_LIST entry 2 (file ")
    assert str(path) in message
    assert SECRET not in message


def test_custom_setting_name() -> None:
    with pytest.raises(ProxyConfigError, match=r"^BACKUP_PROXIES entry 1 "):
        parse_proxy_list("nonsense", setting="BACKUP_PROXIES")


def test_direct_construction_validates_without_echoing_the_password() -> None:
    with pytest.raises(ValueError) as excinfo:
        ProxyEndpoint(scheme="gopher", host="gw.example.net", port=1, username="a", password=SECRET)
    assert SECRET not in str(excinfo.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"net::ERR_PROXY_CONNECTION_FAILED at http://alice:{SECRET}@gw.example.net:8000/x",
            "net::ERR_PROXY_CONNECTION_FAILED at http://alice:***@gw.example.net:8000/x",
        ),
        (f"socks5://bob:{SECRET}@10.1.2.3:1080 refused", "socks5://bob:***@10.1.2.3:1080 refused"),
        (f"a http://u:p@ss{SECRET}@h.example:1 b", "a http://u:***@h.example:1 b"),
        (f"curl -x alice:{SECRET}@gw.example.net:8000 url", "curl -x alice:***@gw.example.net:8000 url"),
        (
            f"two: http://a:{SECRET}@h1.example:1, https://b:{SECRET}@h2.example:2",
            "two: http://a:***@h1.example:1, https://b:***@h2.example:2",
        ),
    ],
)  # fmt: skip
def test_redact_secrets(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "see https://www.tiktok.com/@name/video/1, or mail me@example.com",
        "http://gw.example.net:8000/@x",
        "no urls here: a:b c@d",
    ],
)
def test_redact_secrets_leaves_text_without_credentials_alone(text: str) -> None:
    # Profile URLs and e-mail addresses contain '@' but no credentials.
    assert redact_secrets(text) == text


def test_redact_secrets_masks_known_literals() -> None:
    assert redact_secrets(f"password is {SECRET}!", secrets=[SECRET, ""]) == "password is ***!"


@pytest.mark.parametrize("token", ["x" * 300, "/tmp/" + "y" * 300])
def test_a_token_too_long_for_a_file_name_is_a_config_error_not_an_os_error(token: str) -> None:
    # Path.is_file() raises ENAMETOOLONG on such names; the parser must still answer with its own error.
    with pytest.raises(ProxyConfigError):
        parse_proxy_list(token)
