"""Proxy pool: health scoring, exponential quarantine, healthiest-first leasing, exhaustion."""

from __future__ import annotations

import pytest

from ingest_platform.scraping.proxy_config import parse_proxy_list
from ingest_platform.scraping.proxy_pool import (
    DIRECT_ID,
    PoolSettings,
    ProxyPool,
    ProxyPoolExhausted,
)

SECRET = "s3cr3t-pa55"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _proxies(n: int) -> list:
    return parse_proxy_list(",".join(f"http://user{i}:{SECRET}@10.0.0.{i + 1}:8000" for i in range(n)))


def _pool(n: int = 3, **settings: float) -> tuple[ProxyPool, FakeClock, list]:
    clock = FakeClock()
    proxies = _proxies(n)
    base = {"quarantine_base_s": 30.0, "quarantine_max_s": 1800.0}
    return ProxyPool(proxies, PoolSettings(**(base | settings)), clock=clock), clock, proxies


def test_cool_down_doubles_and_is_capped() -> None:
    settings = PoolSettings(quarantine_base_s=30, quarantine_max_s=1800)
    assert [settings.cool_down_s(k) for k in range(1, 9)] == [30, 60, 120, 240, 480, 960, 1800, 1800]
    assert settings.cool_down_s(0) == 0
    assert settings.cool_down_s(10_000) == 1800  # no overflow for absurd strike counts


def test_errors_raise_score_and_success_decays_it() -> None:
    pool, _, proxies = _pool(1, max_error_score=100)
    pid = proxies[0].proxy_id
    assert pool.mark_failure(pid, "empty_200") == 0  # not a quarantine kind
    assert pool.score(pid) == 1.0
    pool.mark_failure(pid, "login_redirect")
    assert pool.score(pid) == 2.5
    pool.mark_success(pid)
    assert pool.score(pid) == 1.25
    pool.mark_success(pid)
    assert pool.score(pid) == 0.625


def test_quarantine_kinds_quarantine_exponentially_and_success_resets_strikes() -> None:
    pool, clock, proxies = _pool(1)
    pid = proxies[0].proxy_id
    assert pool.mark_failure(pid, "http_429") == 30
    assert pool.is_quarantined(pid)
    clock.advance(29.9)
    assert pool.is_quarantined(pid)
    clock.advance(0.2)
    assert not pool.is_quarantined(pid)
    assert pool.mark_failure(pid, "http_403") == 60  # second strike in a row: doubled
    clock.advance(61)
    assert pool.mark_failure(pid, "connection_error") == 120
    clock.advance(121)
    pool.mark_success(pid)
    assert pool.mark_failure(pid, "captcha") == 30  # a success forgave the strikes


@pytest.mark.parametrize("kind", ["http_403", "http_429", "captcha", "connection_error", "status_10204"])
def test_each_hard_block_kind_quarantines(kind: str) -> None:
    pool, _, proxies = _pool(1)
    assert pool.mark_failure(proxies[0].proxy_id, kind) == 30
    assert pool.is_quarantined(proxies[0].proxy_id)


def test_accumulated_soft_failures_quarantine_at_max_score() -> None:
    pool, _, proxies = _pool(1, max_error_score=3)
    pid = proxies[0].proxy_id
    assert pool.mark_failure(pid, "empty_200") == 0
    assert pool.mark_failure(pid, "empty_200") == 0
    assert pool.mark_failure(pid, "empty_200") == 30  # score 3 reaches the limit
    assert pool.is_quarantined(pid)


def test_acquire_prefers_healthiest_then_unused_then_least_leased() -> None:
    pool, _, proxies = _pool(3, max_error_score=100)
    a, b, c = (p.proxy_id for p in proxies)
    pool.mark_failure(a, "empty_200")  # a: 1.0
    pool.mark_failure(b, "waf_challenge")
    pool.mark_failure(b, "empty_200")  # b: 2.0, c: 0.0
    first = pool.acquire()
    assert first.proxy_id == c
    second = pool.acquire()  # c is in use: the next healthiest unused one
    assert second.proxy_id == a
    third = pool.acquire()
    assert third.proxy_id == b
    fourth = pool.acquire()  # everything in use: share the healthiest
    assert fourth.proxy_id == c
    pool.release(first)
    pool.release(first)  # idempotent
    pool.release(fourth)
    assert pool.acquire().proxy_id == c


def test_acquire_avoids_the_proxy_a_page_just_failed_on_when_possible() -> None:
    pool, _, proxies = _pool(2)
    a, b = (p.proxy_id for p in proxies)
    assert pool.acquire(avoid={a}).proxy_id == b
    only, _, single = _pool(1)
    assert only.acquire(avoid={single[0].proxy_id}).proxy_id == single[0].proxy_id


def test_quarantined_proxies_are_skipped_and_exhaustion_says_when_one_returns() -> None:
    pool, clock, proxies = _pool(2)
    a, b = (p.proxy_id for p in proxies)
    pool.mark_failure(a, "http_403")
    assert pool.acquire().proxy_id == b
    clock.advance(5)
    pool.mark_failure(b, "http_429")
    pool.mark_failure(b, "http_429")  # b: second strike, 60 s from now
    with pytest.raises(ProxyPoolExhausted) as caught:
        pool.acquire()
    assert caught.value.retry_after_s == pytest.approx(25)  # a returns first
    assert caught.value.pool_size == 2
    assert "all 2 proxies are quarantined" in str(caught.value)
    assert SECRET not in str(caught.value)
    clock.advance(25)
    assert pool.acquire().proxy_id == a


def test_zero_proxies_means_one_direct_slot_with_the_same_back_off() -> None:
    pool = ProxyPool([], PoolSettings(quarantine_base_s=1, quarantine_max_s=4), clock=(clock := FakeClock()))
    assert pool.direct and len(pool) == 1
    lease = pool.acquire()
    assert lease.direct and lease.proxy is None and lease.proxy_id == DIRECT_ID
    pool.mark_failure(DIRECT_ID, "http_429")
    with pytest.raises(ProxyPoolExhausted, match="direct connection is quarantined"):
        pool.acquire()
    clock.advance(1)
    assert pool.acquire().direct


def test_snapshots_and_reprs_never_carry_credentials() -> None:
    pool, _, proxies = _pool(2)
    lease = pool.acquire()
    pool.mark_failure(lease.proxy_id, "http_403")
    text = repr(pool.snapshot()) + repr(lease) + str(lease)
    assert SECRET not in text
    assert proxies[0].proxy_id in text
    assert "user0:***@10.0.0.1:8000" in text
    assert pool.secrets == [SECRET, SECRET]


def test_duplicate_endpoints_collapse_and_settings_are_validated() -> None:
    proxies = _proxies(2)
    assert len(ProxyPool(proxies + proxies)) == 2
    with pytest.raises(ValueError):
        PoolSettings(quarantine_base_s=10, quarantine_max_s=5)
    with pytest.raises(ValueError):
        PoolSettings(success_decay=1.5)
