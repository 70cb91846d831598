"""Block detection on saved HTML snippets, URLs and list payloads (no browser)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest_platform.scraping.blocking import (
    BlockKind,
    CaptchaKind,
    classify_item_list,
    classify_page,
    detect_captcha,
    detect_waf,
    is_login_redirect,
    scan_markup,
)
from ingest_platform.scraping.tiktok_page import parse_page
from ingest_platform_tests.conftest import real_fixtures_dir

URL = "https://www.tiktok.com/@someone"
NOW = datetime(2026, 11, 1, tzinfo=UTC)

RECAPTCHA = """<html><body><form id="verify" method="post" action="/captcha/verify">
<div class="g-recaptcha" data-sitekey="6LeSANDBOX-site-key" data-callback="onCaptcha"></div>
<textarea id="g-recaptcha-response" name="g-recaptcha-response" style="display:none"></textarea>
<button type="submit">Continue</button></form>
<script src="https://www.google.com/recaptcha/api.js" async defer></script></body></html>"""

RECAPTCHA_IFRAME_ONLY = """<div><iframe title="reCAPTCHA"
src="https://www.google.com/recaptcha/api2/anchor?ar=1&k=6LeIFRAME-key&co=aHR0cHM6&hl=en&v=x&size=normal">
</iframe></div>"""

HCAPTCHA = """<form action="/verify">
<div class="h-captcha" data-sitekey="10000000-ffff-ffff-ffff-000000000001"></div>
<input type="submit" value="Go"></form>"""

IMAGE = """<form id="captcha-form" action="/captcha/image" method="post">
<img id="captcha-image" alt="captcha" src="data:image/png;base64,iVBORw0KGgo=">
<input type="text" name="captcha_answer" autocomplete="off"><button type="submit">Verify</button></form>"""

SLIDERS = [
    '<div class="captcha-verify-container"><img id="captcha-verify-image" src="/bg.jpg"></div>',
    '<div><img class="captcha_verify_img_slide react-draggable" src="/piece.png"></div>',
    '<div id="secsdk-captcha-drag-wrapper"><div class="secsdk-captcha-drag-icon"></div></div>',
]

WAF = """<!DOCTYPE html><html><head><title>Please wait...</title></head><body>
<div id="cs" data-v="1"></div><div id="wci" class="_wafchallengeid" data-c="ab12"></div>
<script>/* sha256 proof of work, then document.cookie = "_wafchallengeid=..."; location.reload() */</script>
</body></html>"""


def test_recaptcha_widget_gives_kind_site_key_callback_and_form() -> None:
    found = detect_captcha(RECAPTCHA)
    assert found is not None and found.kind is CaptchaKind.RECAPTCHA_V2
    assert found.site_key == "6LeSANDBOX-site-key"
    assert found.callback == "onCaptcha"
    assert found.form_selector == '[id="verify"]'
    assert found.submit_selector == "button"
    assert found.kind.solvable


def test_recaptcha_site_key_from_the_anchor_iframe() -> None:
    found = detect_captcha(RECAPTCHA_IFRAME_ONLY)
    assert found is not None and found.kind is CaptchaKind.RECAPTCHA_V2 and found.site_key == "6LeIFRAME-key"


def test_hcaptcha_widget() -> None:
    found = detect_captcha(HCAPTCHA)
    assert found is not None and found.kind is CaptchaKind.HCAPTCHA
    assert found.site_key == "10000000-ffff-ffff-ffff-000000000001"
    assert found.input_selector == 'textarea[name="h-captcha-response"]'


def test_image_captcha_finds_image_and_answer_field() -> None:
    found = detect_captcha(IMAGE)
    assert found is not None and found.kind is CaptchaKind.IMAGE
    assert found.image_selector == '[id="captcha-image"]'
    assert found.input_selector == 'input[name="captcha_answer"]'


@pytest.mark.parametrize("html", SLIDERS)
def test_tiktok_slider_is_detected_and_unsolvable(html: str) -> None:
    found = detect_captcha(html)
    assert found is not None and found.kind is CaptchaKind.TIKTOK_SLIDER
    assert not found.kind.solvable


def test_waf_page_detected_and_classified_before_anything_else() -> None:
    assert detect_waf(WAF)
    signal = classify_page(http_status=200, requested_url=URL, final_url=URL, html=WAF)
    assert signal is not None and signal.kind is BlockKind.WAF_CHALLENGE
    assert not detect_waf(RECAPTCHA)


def test_http_refusals_come_first() -> None:
    cases = ((403, BlockKind.HTTP_403), (429, BlockKind.HTTP_429), (407, BlockKind.CONNECTION_ERROR))
    for status, kind in (*cases, (502, BlockKind.CONNECTION_ERROR), (503, BlockKind.CONNECTION_ERROR)):
        signal = classify_page(http_status=status, requested_url=URL, final_url=URL, html=RECAPTCHA)
        assert signal is not None and signal.kind is kind


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        ("https://www.tiktok.com/login?redirect_url=%2F%40someone", True),
        ("https://www.tiktok.com/login/phone-or-email", True),
        ("http://127.0.0.1:8000/login/", True),
        ("https://www.tiktok.com/@someone", False),
        ("https://www.tiktok.com/@login_tips", False),
    ],
)
def test_login_redirects(final: str, expected: bool) -> None:
    assert is_login_redirect(final, URL) is expected


def test_login_page_asked_for_is_not_a_redirect() -> None:
    assert not is_login_redirect("https://www.tiktok.com/login", "https://www.tiktok.com/login")
    signal = classify_page(
        http_status=200, requested_url=URL, final_url="https://www.tiktok.com/login", html="<html></html>"
    )
    assert signal is not None and signal.kind is BlockKind.LOGIN_REDIRECT


def _state_page(detail_key: str, detail: dict) -> str:
    state = json.dumps({"__DEFAULT_SCOPE__": {"webapp.app-context": {}, detail_key: detail}})
    return (
        '<html><body><script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">'
        f"{state}</script></body></html>"
    )


def test_status_10204_and_empty_shell_from_the_page_state() -> None:
    banned = _state_page("webapp.user-detail", {"statusCode": 10204, "statusMsg": ""})
    parsed = parse_page(banned, source_url=URL, scraped_at=NOW)
    signal = classify_page(http_status=200, requested_url=URL, final_url=URL, html=banned, page=parsed)
    assert signal is not None and signal.kind is BlockKind.STATUS_10204

    shell = _state_page("seo.abtest", {"canonical": URL})
    parsed = parse_page(shell, source_url=URL, scraped_at=NOW)
    signal = classify_page(http_status=200, requested_url=URL, final_url=URL, html=shell, page=parsed)
    assert signal is not None and signal.kind is BlockKind.EMPTY_200


def test_real_captured_pages() -> None:
    tiktok = real_fixtures_dir() / "tiktok"
    video = tiktok / "video-ahormozi-7336007528070958382.html"
    shell = tiktok / "tag-saas-empty-shell.tail.html"
    if not video.exists() or not shell.exists():
        pytest.fail(
            "real TikTok fixtures missing from ingest_platform_tests/data/real"
        )
    html = video.read_text(encoding="utf-8")
    url = "https://www.tiktok.com/@ahormozi/video/7336007528070958382"
    parsed = parse_page(html, source_url=url, scraped_at=NOW)
    # A real 400 KB page full of scripts and i18n strings is not mistaken for a block.
    assert classify_page(http_status=200, requested_url=url, final_url=url, html=html, page=parsed) is None
    assert detect_captcha(html) is None and not detect_waf(html)
    tail = Path(shell).read_text(encoding="utf-8")
    tag_url = "https://www.tiktok.com/tag/saas"
    parsed = parse_page(tail, source_url=tag_url, scraped_at=NOW)
    signal = classify_page(http_status=200, requested_url=tag_url, final_url=tag_url, html=tail, page=parsed)
    assert signal is not None and signal.kind is BlockKind.EMPTY_200


def test_item_list_payloads() -> None:
    verify = {"code": "10000", "type": "verify", "subtype": "slide", "detail": "x"}
    signal = classify_item_list(200, verify, items_expected=True)
    assert signal is not None and signal.kind is BlockKind.CAPTCHA
    assert signal.captcha is not None and signal.captcha.kind is CaptchaKind.TIKTOK_SLIDER

    banned = {"statusCode": 10204, "itemList": [], "hasMore": False}
    assert classify_item_list(200, banned, items_expected=True).kind is BlockKind.STATUS_10204

    empty = {"statusCode": 0, "itemList": [], "hasMore": False, "cursor": "0"}
    assert classify_item_list(200, empty, items_expected=True).kind is BlockKind.EMPTY_200
    assert classify_item_list(200, empty, items_expected=False) is None  # an account with no videos

    full = {"statusCode": 0, "itemList": [{"id": "1"}], "hasMore": False}
    assert classify_item_list(200, full, items_expected=True) is None
    assert classify_item_list(429, None, items_expected=True).kind is BlockKind.HTTP_429
    assert classify_item_list(403, {"statusCode": 0}, items_expected=True).kind is BlockKind.HTTP_403


def test_scan_ignores_script_bodies_and_survives_garbage() -> None:
    # An id inside a script string must not count as an element.
    html = "<script>var x = '<div id=\"captcha-verify-image\">';</script><p>fine</p>"
    assert detect_captcha(html) is None
    scan = scan_markup("<div id=cs><<<>>></div><p>Please wait")
    assert scan.has_id("cs")
    assert detect_captcha("\x00\x01 not html at all") is None
