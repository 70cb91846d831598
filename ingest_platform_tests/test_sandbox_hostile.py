"""The sandbox site's anti-bot behaviours: each one on its own, over plain HTTP, deterministically;
the WAF, HeadlessChrome and navigator.webdriver checks also against a real Chromium."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest

from ingest_platform.sandbox.captcha_registry import CaptchaRegistry
from ingest_platform.sandbox.content import SandboxContent
from ingest_platform.sandbox.server import SandboxServer
from ingest_platform.sandbox.tiktok_site import (
    CAPTCHA_PASS_COOKIE,
    HOSTILE_COUNTERS,
    VERIFY_SLIDE_RESPONSE,
    WAF_COOKIE,
    SiteScenario,
)
from ingest_platform.scraping.browser import resolve_browser_executable
from ingest_platform_tests.conftest import BARE_CHROMIUM_ARGS

# The sandbox is tested with a bare browser (no stealth), wherever INGEST_BROWSER_PATH points.
_CHROMIUM = resolve_browser_executable()
_REHYDRATION = re.compile(
    r'<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">(.*?)</script>', re.S
)
_UA_PREFIX = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
_HEADLESS_UA = _UA_PREFIX + "HeadlessChrome/131.0.0.0 Safari/537.36"
_CHROME_UA = _UA_PREFIX + "Chrome/131.0.0.0 Safari/537.36"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # surface 302s to the test instead of following them


_OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(
    url: str,
    *,
    ip: str | None = None,
    ua: str = "sandbox-tests/1.0",
    cookies: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> tuple[int, Message, str]:
    """One request as a client with identity (``ip`` via X-Forwarded-For, ``ua``)."""
    headers = {"User-Agent": ua}
    if ip:
        headers["X-Forwarded-For"] = ip
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def scope_of(page: str) -> dict[str, Any]:
    match = _REHYDRATION.search(page)
    assert match, page[:500]
    return json.loads(match.group(1))["__DEFAULT_SCOPE__"]


def set_cookies(headers: Message) -> dict[str, str]:
    jar: dict[str, str] = {}
    for header in headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        jar[name.strip()] = rest.split(";", 1)[0]
    return jar


def client_record(site: SandboxServer, ip: str) -> dict[str, Any]:
    (record,) = site.clients.by_ip(ip)
    return record


@pytest.fixture(scope="module")
def content() -> SandboxContent:
    return SandboxContent.generate()


@pytest.fixture
def hostile(content: SandboxContent) -> Iterator[tuple[SandboxServer, SiteScenario]]:
    """A fresh site whose scenario each test configures (it is read per request)."""
    scenario = SiteScenario()
    with SandboxServer(content=content, scenario=scenario) as site:
        yield site, scenario


def profile_path(content: SandboxContent, index: int = 0) -> str:
    return f"/@{content.profiles[index].unique_id}"


def list_path(content: SandboxContent, index: int = 0, extra: str = "") -> str:
    return f"/api/post/item_list/?secUid={content.profiles[index].sec_uid}&count=30&cursor=0{extra}"


# --------------------------------------------------------------------------- baseline ---
def test_default_scenario_is_harmless_and_identity_is_forwarded_ip_plus_ua(
    hostile: tuple[SandboxServer, SiteScenario], content: SandboxContent
) -> None:
    site, scenario = hostile
    assert not scenario.hostile
    for i in range(40):
        status, _, _ = fetch(site.url(profile_path(content, i % 3)), ip="203.0.113.9")
        assert status == 200
    fetch(site.url(list_path(content)), ip="203.0.113.9", ua="other-agent")
    fetch(site.url(list_path(content)), ip="10.0.0.1, 203.0.113.10")  # the last hop decides
    stats = site.stats()
    by_identity = {(c["ip"], c["userAgent"]): c for c in stats["clients"]}
    assert by_identity["203.0.113.9", "sandbox-tests/1.0"]["pageRequests"] == 40
    assert by_identity["203.0.113.9", "other-agent"]["apiRequests"] == 1
    assert ("203.0.113.10", "sandbox-tests/1.0") in by_identity
    assert set(stats["totals"]) >= set(HOSTILE_COUNTERS) and not any(
        stats["totals"][n] for n in HOSTILE_COUNTERS
    )
    # The HTTP endpoint serves the same counters as the Python API.
    status, _, body = fetch(site.url("/__sandbox__/clients"))
    assert status == 200 and json.loads(body) == site.stats()


# ---------------------------------------------------------------------------- 429s ---
def test_rate_limit_answers_429_with_retry_after_per_client(
    hostile: tuple[SandboxServer, SiteScenario], content: SandboxContent
) -> None:
    site, scenario = hostile
    scenario.rate_limit_per_minute = 5
    statuses = [fetch(site.url(profile_path(content)), ip="198.51.100.1")[0] for _ in range(5)]
    assert statuses == [200] * 5
    status, headers, _ = fetch(site.url(list_path(content)), ip="198.51.100.1")
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60
    assert fetch(site.url(profile_path(content)), ip="198.51.100.2")[0] == 200  # others unaffected
    assert client_record(site, "198.51.100.1")["counters"] == {"rate_limited": 1}
    # A window that has passed frees the client again (a short window keeps the test fast).
    scenario.rate_limit_window_s = 0.05
    time.sleep(0.06)
    assert fetch(site.url(profile_path(content)), ip="198.51.100.1")[0] == 200


def _burst_statuses(content: SandboxContent, seed: int) -> list[int]:
    scenario = SiteScenario(seed=seed, burst_429_rate=0.15)
    with SandboxServer(content=content, scenario=scenario) as site:
        return [fetch(site.url(list_path(content)), ip="198.51.100.7")[0] for _ in range(80)]


def test_429_bursts_last_one_to_three_requests_and_replay_exactly(content: SandboxContent) -> None:
    first = _burst_statuses(content, seed=3)
    assert first == _burst_statuses(content, seed=3)  # same seed, same answers
    assert first != _burst_statuses(content, seed=4)
    assert set(first) == {200, 429}
    runs = [len(m.group(0)) for m in re.finditer("x+", "".join("x" if s == 429 else "." for s in first))]
    # A burst is 1-3 refusals; at least one request passes before the next burst can start.
    assert len(runs) >= 3 and all(1 <= n <= 3 for n in runs) and max(runs) > 1


# ---------------------------------------------------------------------------- bans ---
def test_ban_http_403_is_permanent_and_per_client(
    hostile: tuple[SandboxServer, SiteScenario], content: SandboxContent
) -> None:
    site, scenario = hostile
    scenario.ban_after_requests = 4
    statuses = [fetch(site.url(profile_path(content)), ip="192.0.2.1")[0] for _ in range(4)]
    assert statuses == [200] * 4
    for path in (profile_path(content), list_path(content), "/"):
        status, _, body = fetch(site.url(path), ip="192.0.2.1")
        assert status == 403 and 'id="access-denied"' in body
    assert fetch(site.url(profile_path(content)), ip="192.0.2.2")[0] == 200
    assert fetch(site.url("/login"), ip="192.0.2.1")[0] == 200  # not a watched route
    record = client_record(site, "192.0.2.1")
    assert record["banned"] and record["banReason"] == "request_budget"
    assert record["counters"] == {"ban_imposed": 1, "banned": 3}
    scenario.ban_after_requests = None  # bans are for good: relaxing the rule does not lift them
    assert fetch(site.url(profile_path(content)), ip="192.0.2.1")[0] == 403


def test_ban_status_10204_answers_200_with_the_ip_blocked_status(
    hostile: tuple[SandboxServer, SiteScenario], content: SandboxContent
) -> None:
    site, scenario = hostile
    scenario.ban_after_requests = 1
    scenario.ban_mode = "status_10204"
    video_id = content.profiles[0].post_ids[0]
    assert fetch(site.url(profile_path(content)), ip="192.0.2.5")[0] == 200
    status, _, page = fetch(site.url(profile_path(content)), ip="192.0.2.5")
    assert status == 200 and scope_of(page)["webapp.user-detail"]["statusCode"] == 10204
    status, _, page = fetch(site.url(f"{profile_path(content)}/video/{video_id}"), ip="192.0.2.5")
    assert scope_of(page)["webapp.video-detail"]["statusCode"] == 10204
    status, _, page = fetch(site.url(f"/tag/{content.hashtags[0].title}"), ip="192.0.2.5")
    assert scope_of(page)["webapp.challenge-detail"]["statusCode"] == 10204
    status, _, body = fetch(site.url(list_path(content)), ip="192.0.2.5")
    assert status == 200
    assert json.loads(body) == {
        "statusCode": 10204,
        "statusMsg": "",
        "itemList": [],
        "hasMore": False,
        "cursor": "0",
    }
    status, _, body = fetch(
        site.url(f"/api/user/detail/?uniqueId={content.profiles[0].unique_id}"), ip="192.0.2.5"
    )
    assert json.loads(body)["statusCode"] == 10204


# ------------------------------------------------------------------------- captchas ---
def test_recaptcha_page_verify_and_pass_cookie(content: SandboxContent) -> None:
    registry = CaptchaRegistry()
    scenario = SiteScenario(captcha_rate=1.0, captcha_pass_pages=2)
    with SandboxServer(content=content, scenario=scenario, registry=registry) as site:
        path = profile_path(content)
        status, _, page = fetch(site.url(path), ip="192.0.2.20")
        assert status == 200 and "__UNIVERSAL_DATA_FOR_REHYDRATION__" not in page
        assert f'<div class="g-recaptcha" data-sitekey="{scenario.recaptcha_sitekey}">' in page
        assert '<textarea id="g-recaptcha-response" name="g-recaptcha-response"' in page
        assert 'action="/__captcha/verify"' in page and f'name="return_to" value="{path}"' in page
        # The challenge is owed: reloading shows it again; APIs are not challenged for reCAPTCHA.
        assert 'class="g-recaptcha"' in fetch(site.url(path), ip="192.0.2.20")[2]
        assert json.loads(fetch(site.url(list_path(content)), ip="192.0.2.20")[2])["statusCode"] == 0

        def submit(token: str) -> tuple[int, Message, str]:
            form = {"return_to": path, "g-recaptcha-response": token}
            return fetch(site.url("/__captcha/verify"), ip="192.0.2.20", form=form)

        status, _, page = submit("03AFcWeA-made-up")
        assert status == 200 and 'id="captcha-error"' in page and 'class="g-recaptcha"' in page
        assert submit(registry.issue_token("recaptcha", "another-sites-key"))[0] == 200  # wrong key
        assert submit(registry.issue_token("hcaptcha", scenario.recaptcha_sitekey))[0] == 200  # wrong kind
        assert submit(registry.issue_token("recaptcha", scenario.recaptcha_sitekey, valid=False))[0] == 200
        token = registry.issue_token("recaptcha", scenario.recaptcha_sitekey)
        status, headers, _ = submit(token)
        assert status == 302 and headers["Location"] == path
        cookies = set_cookies(headers)
        assert CAPTCHA_PASS_COOKIE in cookies
        assert submit(token)[0] == 302  # nothing owed any more: the form just sends you back

        # K=2 page loads pass with the cookie; without it, or after K, the captcha is back.
        assert 'class="g-recaptcha"' in fetch(site.url(path), ip="192.0.2.20")[2]
        record = client_record(site, "192.0.2.20")
        assert record["counters"]["captcha_solved"] == 1 and record["counters"]["captcha_failed"] == 4
        assert submit(token)[0] == 200  # tokens are single use
        token = registry.issue_token("recaptcha", scenario.recaptcha_sitekey)
        cookies = set_cookies(submit(token)[1])
        for _ in range(2):
            assert "__UNIVERSAL_DATA" in fetch(site.url(path), ip="192.0.2.20", cookies=cookies)[2]
        assert 'class="g-recaptcha"' in fetch(site.url(path), ip="192.0.2.20", cookies=cookies)[2]
        # A pass is bound to its client: another identity with the same cookie gets no pass.
        assert 'class="g-recaptcha"' in fetch(site.url(path), ip="192.0.2.21", cookies=cookies)[2]
        assert registry.stats()["tokens_redeemed"] == 2


def test_hcaptcha_and_image_captchas(content: SandboxContent) -> None:
    registry = CaptchaRegistry()
    scenario = SiteScenario(captcha_rate=1.0, captcha_kind="hcaptcha")
    with SandboxServer(content=content, scenario=scenario, registry=registry) as site:
        path = profile_path(content, 1)
        page = fetch(site.url(path), ip="192.0.2.30")[2]
        assert f'<div class="h-captcha" data-sitekey="{scenario.hcaptcha_sitekey}">' in page
        assert 'name="h-captcha-response"' in page and "g-recaptcha" not in page
        token = registry.issue_token("hcaptcha", scenario.hcaptcha_sitekey)
        form = {"return_to": path, "h-captcha-response": token}
        assert fetch(site.url("/__captcha/verify"), ip="192.0.2.30", form=form)[0] == 302

        scenario.captcha_kind = "image"
        page = fetch(site.url(path), ip="192.0.2.31")[2]
        assert '<input id="captcha-text" name="captcha_text"' in page
        png = base64.b64decode(
            re.search(r'id="captcha-image" alt="captcha" src="data:image/png;base64,([^"]+)"', page)[1]
        )
        assert png.startswith(b"\x89PNG") and b"tEXt" not in png  # the answer is drawn, not embedded
        answer = registry.image_answer(png)
        assert answer is not None and answer.isdigit() and len(answer) == 5
        wrong = {"return_to": path, "captcha_text": "nope"}
        status, _, page = fetch(site.url("/__captcha/verify"), ip="192.0.2.31", form=wrong)
        assert status == 200 and 'id="captcha-error"' in page
        fresh = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page)[1])
        assert fresh != png and registry.image_answer(fresh) != answer  # a new picture after a miss
        form = {"return_to": path, "captcha_text": registry.image_answer(fresh) or ""}
        assert fetch(site.url("/__captcha/verify"), ip="192.0.2.31", form=form)[0] == 302
        assert site.stats()["totals"]["captcha_solved"] == 2


def test_slider_captcha_blocks_apis_and_cannot_be_solved_with_a_token(
    hostile: tuple[SandboxServer, SiteScenario], content: SandboxContent
) -> None:
    site, scenario = hostile
    scenario.captcha_rate = 1.0
    scenario.captcha_slider_fraction = 1.0
    page = fetch(site.url(profile_path(content)), ip="192.0.2.40")[2]
    for marker in (
        'id="captcha-verify-image"',
        'class="captcha_verify_img_slide"',
        'id="secsdk-captcha-drag-wrapper"',
    ):
        assert marker in page
    assert "g-recaptcha" not in page and "<form" not in page
    assert json.loads(fetch(site.url(list_path(content)), ip="192.0.2.40")[2]) == VERIFY_SLIDE_RESPONSE
    token = site.registry.issue_token("recaptcha", scenario.recaptcha_sitekey)
    form = {"return_to": "/", "g-recaptcha-response": token}
    assert fetch(site.url("/__captcha/verify"), ip="192.0.2.40", form=form)[0] == 200
    scenario.captcha_rate = 0.0  # owed challenges stay owed
    assert 'id="captcha-verify-image"' in fetch(site.url("/"), ip="192.0.2.40")[2]
    record = client_record(site, "192.0.2.40")
    assert record["challenge"] == "slider"
    assert record["counters"] == {
        "captcha_challenged": 1,
        "captcha_slider": 1,
        "captcha_shown": 3,
        "captcha_failed": 1,
        "captcha_api_verify": 1,
    }


def _first_captcha(content: SandboxContent, seed: int) -> list[tuple[int, str]]:
    """Per client: the request number of its first captcha and its kind."""
    scenario = SiteScenario(seed=seed, captcha_rate=0.2, captcha_slider_fraction=0.5)
    found = []
    with SandboxServer(content=content, scenario=scenario) as site:
        for client in range(6):
            for n in range(1, 41):
                page = fetch(site.url(profile_path(content)), ip=f"192.0.2.{100 + client}")[2]
                if 'id="captcha-container"' in page:
                    found.append((n, re.search(r'data-captcha-kind="(\w+)"', page)[1]))
                    break
    return found


def test_captcha_decisions_replay_exactly_from_the_seed(content: SandboxContent) -> None:
    first = _first_captcha(content, seed=11)
    assert first == _first_captcha(content, seed=11)
    assert len(first) >= 4 and {kind for _, kind in first} <= {"recaptcha", "slider"}
    assert first != _first_captcha(content, seed=12)


# ------------------------------------------------------------------------------ WAF ---
def solve_waf(page: str) -> str:
    """What the WAF page's JavaScript does, in Python: only to prove the server's check."""
    encoded = re.search(r'<p id="cs"[^>]*>([^<]+)</p>', page)[1]
    challenge = json.loads(base64.b64decode(encoded))["v"]
    assert challenge["a"] == "SHA-256"
    prefix = "0" * challenge["d"]
    for nonce in range(16 ** challenge["d"] * 64):
        if hashlib.sha256(f"{challenge['c']}{nonce}".encode()).hexdigest().startswith(prefix):
            return f"{challenge['c']}.{nonce}"
    raise AssertionError("no proof of work found")


def test_waf_page_refuses_clients_that_run_no_javascript(
    hostile: tuple[SandboxServer, SiteScenario], content: SandboxContent
) -> None:
    site, scenario = hostile
    scenario.waf_rate = 1.0
    path = profile_path(content)
    for _ in range(3):
        status, _, page = fetch(site.url(path), ip="192.0.2.50")
        assert status == 200 and "<title>Please wait...</title>" in page
        assert (
            '<p id="cs"' in page and f'<p id="wci" class="{WAF_COOKIE}"' in page and "crypto.subtle" in page
        )
        assert "__UNIVERSAL_DATA_FOR_REHYDRATION__" not in page
    assert (
        json.loads(fetch(site.url(list_path(content)), ip="192.0.2.50")[2])["statusCode"] == 0
    )  # pages only
    forged = {WAF_COOKIE: "abc.def.1"}
    assert "Please wait" in fetch(site.url(path), ip="192.0.2.50", cookies=forged)[2]
    solved = {WAF_COOKIE: solve_waf(page)}
    assert "Please wait" in fetch(site.url(path), ip="192.0.2.51", cookies=solved)[2]  # bound to its client
    assert (
        scope_of(fetch(site.url(path), ip="192.0.2.50", cookies=solved)[2])["webapp.user-detail"][
            "statusCode"
        ]
        == 0
    )
    record = client_record(site, "192.0.2.50")
    assert record["counters"] == {"waf_challenged": 4, "waf_bad_cookie": 1, "waf_passed": 1}


# -------------------------------------------------------------- login wall, soft blocks ---
def test_login_redirect(hostile: tuple[SandboxServer, SiteScenario], content: SandboxContent) -> None:
    site, scenario = hostile
    scenario.login_redirect_rate = 1.0
    path = profile_path(content)
    status, headers, _ = fetch(site.url(path), ip="192.0.2.60")
    assert status == 302
    location = urllib.parse.urlsplit(headers["Location"])
    assert location.path == "/login"
    assert urllib.parse.parse_qs(location.query)["redirect_url"] == [site.url(path)]
    assert fetch(site.url("/login"), ip="192.0.2.60")[0] == 200
    assert json.loads(fetch(site.url(list_path(content)), ip="192.0.2.60")[2])["statusCode"] == 0
    scenario.login_redirect_rate = 0.5
    statuses = [fetch(site.url(path), ip="192.0.2.61")[0] for _ in range(30)]
    assert {200, 302} == set(statuses)
    assert client_record(site, "192.0.2.61")["counters"]["login_redirect"] == statuses.count(302)


def test_empty_item_lists(hostile: tuple[SandboxServer, SiteScenario], content: SandboxContent) -> None:
    site, scenario = hostile
    scenario.empty_list_rate = 1.0
    status, _, body = fetch(site.url(list_path(content)), ip="192.0.2.70")
    assert status == 200
    assert json.loads(body) == {"statusCode": 0, "itemList": [], "hasMore": False, "cursor": "0"}
    detail = fetch(site.url(f"/api/user/detail/?uniqueId={content.profiles[0].unique_id}"), ip="192.0.2.70")[
        2
    ]
    assert json.loads(detail)["userInfo"]  # only item lists are emptied
    assert (
        scope_of(fetch(site.url(profile_path(content)), ip="192.0.2.70")[2])["webapp.user-detail"][
            "statusCode"
        ]
        == 0
    )
    assert client_record(site, "192.0.2.70")["counters"] == {"empty_list": 1}


# ------------------------------------------------------------------- bot detection ---
def test_headless_user_agent_is_refused(
    hostile: tuple[SandboxServer, SiteScenario], content: SandboxContent
) -> None:
    site, scenario = hostile
    scenario.detect_headless_ua = True
    assert fetch(site.url(profile_path(content)), ip="192.0.2.80", ua=_HEADLESS_UA)[0] == 403
    assert fetch(site.url(profile_path(content)), ip="192.0.2.80", ua=_CHROME_UA)[0] == 200
    scenario.ban_mode = "status_10204"
    body = fetch(site.url(list_path(content)), ip="192.0.2.80", ua=_HEADLESS_UA)[2]
    assert json.loads(body)["statusCode"] == 10204
    headless = next(c for c in site.stats()["clients"] if "HeadlessChrome" in c["userAgent"])
    assert headless["counters"] == {"headless_blocked": 2}


def test_webdriver_reports_ban_the_client(
    hostile: tuple[SandboxServer, SiteScenario], content: SandboxContent
) -> None:
    site, scenario = hostile
    scenario.detect_webdriver = True
    page = fetch(site.url(profile_path(content)), ip="192.0.2.90")[2]
    assert 'navigator.sendBeacon("/__bd/report"' in page and 'params.set("wd"' in page
    assert (
        json.loads(fetch(site.url(list_path(content, extra="&wd=0")), ip="192.0.2.90")[2])["statusCode"] == 0
    )
    body = fetch(site.url(list_path(content, extra="&wd=1")), ip="192.0.2.90")[2]
    assert json.loads(body)["statusCode"] == 10204
    assert json.loads(fetch(site.url(list_path(content)), ip="192.0.2.90")[2])["statusCode"] == 10204
    assert fetch(site.url(profile_path(content)), ip="192.0.2.90")[0] == 403  # pages follow ban_mode
    record = client_record(site, "192.0.2.90")
    assert record["banned"] and record["banReason"] == "webdriver" and record["webdriver"] is True
    # The beacon the pages send bans as well.
    request = urllib.request.Request(
        site.url("/__bd/report"),
        data=b'{"webdriver":true}',
        headers={"X-Forwarded-For": "192.0.2.91", "Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
    assert client_record(site, "192.0.2.91")["banned"]


# ------------------------------------------------------------------- real Chromium ---
def test_chromium_solves_the_waf_and_is_caught_by_ua_and_webdriver_checks(content: SandboxContent) -> None:
    from playwright.sync_api import sync_playwright

    scenario = SiteScenario(waf_rate=1.0, waf_difficulty=3)
    path = profile_path(content, 2)
    with SandboxServer(content=content, scenario=scenario) as site, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=_CHROMIUM,
            args=[*BARE_CHROMIUM_ARGS, "--disable-blink-features=AutomationControlled"],
        )
        try:
            context = browser.new_context(user_agent=_CHROME_UA)
            page = context.new_page()
            page.goto(site.url(path), wait_until="domcontentloaded")
            page.wait_for_selector("#__UNIVERSAL_DATA_FOR_REHYDRATION__", state="attached", timeout=20_000)
            page.wait_for_function(
                "window.__sandboxState && window.__sandboxState.pages === 1", timeout=10_000
            )
            assert page.locator('[data-e2e="user-post-item"]').count() == 30
            assert any(c["name"] == WAF_COOKIE for c in context.cookies())
            # First the proof-of-work page, then (after the page's own reload) the real one.
            totals = site.stats()["totals"]
            assert (
                totals["waf_challenged"] == 1 and totals["waf_passed"] >= 1 and totals["page_requests"] == 2
            )
            context.close()

            # Headless Chromium's own user agent says HeadlessChrome.
            scenario.waf_rate = 0.0
            scenario.detect_headless_ua = True
            page = browser.new_page()
            assert "HeadlessChrome" in page.evaluate("navigator.userAgent")
            assert page.goto(site.url(path)).status == 403
            page.close()

            # With AutomationControlled disabled navigator.webdriver is false: not caught.
            scenario.detect_headless_ua = False
            scenario.detect_webdriver = True
            context = browser.new_context(user_agent=_CHROME_UA)
            page = context.new_page()
            page.goto(site.url(path))
            page.wait_for_function(
                "window.__sandboxState && window.__sandboxState.pages === 1", timeout=10_000
            )
            context.close()
        finally:
            browser.close()
        # Without the flag Chromium reports navigator.webdriver = true: banned, lists get 10204.
        browser = playwright.chromium.launch(executable_path=_CHROMIUM, args=BARE_CHROMIUM_ARGS)
        try:
            page = browser.new_context(user_agent=_CHROME_UA + " wd").new_page()
            assert page.evaluate("navigator.webdriver") is True
            page.goto(site.url(path))
            page.wait_for_function(
                "window.__sandboxState && window.__sandboxState.error !== null", timeout=10_000
            )
            assert "10204" in page.evaluate("window.__sandboxState.error")
        finally:
            browser.close()
        clients = {c["userAgent"]: c for c in site.stats()["clients"]}
        assert clients[_CHROME_UA + " wd"]["banReason"] == "webdriver"
        assert not clients[_CHROME_UA]["banned"]


# ------------------------------------------------------------ presets, stack, CLI ---
def test_every_preset_builds_fresh_and_adversarial_matches_the_benchmark() -> None:
    from ingest_platform.sandbox.scenarios import SCENARIO_NAMES, get_scenario

    assert {"calm", "adversarial", "heavy_blocking", "waf", "ban_403", "ban_10204"} <= set(SCENARIO_NAMES)
    for name in SCENARIO_NAMES:
        preset = get_scenario(name, seed=1)
        assert preset.name == name and preset.description and preset.site.seed == 1
        assert (name == "calm") != preset.site.hostile
    adversarial = get_scenario("adversarial")
    assert adversarial.proxies == 10 and len(adversarial.dead) == 3 and adversarial.anticaptcha is not None
    site = adversarial.site
    assert site.ban_after_requests == 20 and site.captcha_rate == 0.1 and site.captcha_slider_fraction == 0.2
    assert site.burst_429_rate > 0
    assert get_scenario("adversarial").site is not site  # fresh objects: tweaking one is safe
    with pytest.raises(ValueError, match="unknown sandbox scenario"):
        get_scenario("nope")


def test_adversarial_stack_bans_each_proxy_identity_separately(content: SandboxContent) -> None:
    from ingest_platform.sandbox.stack import SandboxStack

    with SandboxStack(content, "adversarial", seed=2) as stack:
        env = stack.env()
        assert env["TIKTOK_BASE_URL"] == stack.base_url and env["PROXY_LIST"] == stack.proxy_list
        assert len(stack.proxy_urls) == 10 and env["ANTICAPTCHA_HOST"].startswith("http://127.0.0.1:")
        path = list_path(content)
        alive = [i for i in range(10) if i not in stack.preset.dead]
        for index in alive[:2]:
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({"http": stack.proxy_urls[index]})
            )
            answers = []
            for _ in range(24):  # bounded: the budget is 20
                try:
                    with opener.open(stack.url(path), timeout=10) as response:
                        answers.append(json.loads(response.read()).get("statusCode"))
                except urllib.error.HTTPError as error:
                    answers.append(error.code)
            assert answers[20:] == [10204] * 4  # banned for good after 20 requests
        with pytest.raises(urllib.error.URLError):
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": stack.proxy_urls[1]}))
            opener.open(stack.url("/"), timeout=5)
        stats = stack.stats()
        assert stats["scenario"] == "adversarial" and stats["site"]["totals"]["banned_clients"] == 2
        assert {c["ip"] for c in stats["site"]["clients"]} == {
            f"203.0.113.{alive[0] + 1}",
            f"203.0.113.{alive[1] + 1}",
        }
        assert stats["proxies"]["totals"]["requests"] == 48 and stats["anticaptcha"]["balance"] == 10.0
    assert not stack.running


def test_serve_forever_runs_a_named_scenario_until_sigterm() -> None:
    import os
    import signal
    import subprocess
    import sys
    import threading

    process = subprocess.Popen(
        [sys.executable, "-m", "ingest_platform.sandbox.server", "--port", "0", "--scenario", "waf"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    # A reader thread: a blocking readline must never hang the test if the server says nothing.
    reader = threading.Thread(
        target=lambda: lines.extend(line.strip() for line in process.stdout), daemon=True
    )  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(line.startswith("export PROXY_LIST") for line in lines):
            time.sleep(0.05)
        base_url = next(line.split()[4] for line in lines if line.startswith("TikTok sandbox serving at"))
        assert "Please wait" in fetch(f"{base_url}/", ip="192.0.2.200")[2]
        assert any(line.startswith("export TIKTOK_BASE_URL=") for line in lines)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=15) == 0


def test_a_busy_port_is_an_oserror(content: SandboxContent) -> None:
    with SandboxServer(content=content) as site, pytest.raises(OSError):
        SandboxServer(content=content, port=site.port).start()
