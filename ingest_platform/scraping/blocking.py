"""Recognise anti-bot answers: what kind of block a page or list response is, if any.

Pure functions over what a scraper has after a load (HTTP status, requested and final URL, the
page's HTML, the parsed page state, an item-list JSON payload), so every rule is testable on saved
HTML without a browser. The kinds (:class:`BlockKind`) are the names counted in the run metrics
(``blocks_<kind>``) and fed to the proxy pool's scoring:

========================  ===================================================================
``http_403``              HTTP 403 (page or list request)
``http_429``              HTTP 429: rate limited
``status_10204``          TikTok's "IP blocked" statusCode in the page state or a list response
``login_redirect``        the page ended on ``/login`` (TikTok's login wall)
``waf_challenge``         a "Please wait…" proof-of-work page (``id="cs"``, ``id="wci"`` naming
                          the ``_wafchallengeid`` cookie) the page's own JS should clear
``captcha``               reCAPTCHA (``.g-recaptcha``), hCaptcha (``.h-captcha``), an image
                          captcha, TikTok's slider (``#captcha-verify-image``,
                          ``.captcha_verify_img_slide``, ``#secsdk-captcha-drag-wrapper``) or a
                          list answer ``{"type": "verify", "subtype": "slide"}``
``empty_200``             HTTP 200 without content: no detail scope in the page state, or an empty
                          item list where the page's own header says there are items
``connection_error``      no usable answer: the proxy is dead, refused or timed out, the proxy
                          refused our credentials (407), or a 5xx from the proxy or upstream
========================  ===================================================================

:func:`scan_markup` reads the page with a small tokenizer of its own, linear in the page size on
any input (``html.parser`` in CPython before 3.11.13 is quadratic on unclosed constructs); it
reads at most 100,000 tags and keeps at most 5,000 elements, 4,000 characters of text and 1,000
of title, and never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from html import unescape as html_unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ingest_platform.scraping.tiktok_page import PageResult, PageStatus

__all__ = [
    "WAF_COOKIE",
    "BlockKind",
    "BlockSignal",
    "CaptchaChallenge",
    "CaptchaKind",
    "MarkupScan",
    "classify_item_list",
    "classify_page",
    "detect_captcha",
    "detect_waf",
    "is_login_redirect",
    "scan_markup",
]


# The cookie TikTok's WAF page names in its id="wci" element and sets once its proof of work is done.
WAF_COOKIE = "_wafchallengeid"


class BlockKind(StrEnum):
    HTTP_403 = "http_403"
    HTTP_429 = "http_429"
    STATUS_10204 = "status_10204"
    LOGIN_REDIRECT = "login_redirect"
    WAF_CHALLENGE = "waf_challenge"
    CAPTCHA = "captcha"
    EMPTY_200 = "empty_200"
    CONNECTION_ERROR = "connection_error"


class CaptchaKind(StrEnum):
    RECAPTCHA_V2 = "recaptcha_v2"
    HCAPTCHA = "hcaptcha"
    IMAGE = "image"
    TIKTOK_SLIDER = "tiktok_slider"

    @property
    def solvable(self) -> bool:
        """Anti-Captcha has a task type for it (TikTok's slider has none: rotate instead)."""
        return self is not CaptchaKind.TIKTOK_SLIDER


@dataclass(frozen=True)
class CaptchaChallenge:
    """A captcha found in a page, with what a solver needs to answer it.

    Selectors are CSS selectors into the page (``None`` when the markup has no such element).
    """

    kind: CaptchaKind
    site_key: str | None = None
    callback: str | None = None  # data-callback of the widget: the page's own success handler
    image_selector: str | None = None
    input_selector: str | None = None
    submit_selector: str | None = None
    form_selector: str | None = None


@dataclass(frozen=True)
class BlockSignal:
    """A block: its kind, a short human detail, and the captcha when the kind is ``captcha``."""

    kind: BlockKind
    detail: str
    captcha: CaptchaChallenge | None = None


# ---------------------------------------------------------------------------------- markup scan ---
@dataclass
class _Element:
    tag: str
    attrs: dict[str, str]

    @property
    def id(self) -> str:
        return self.attrs.get("id", "")

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


@dataclass
class MarkupScan:
    """The elements of a page that matter for block detection (one pass of ``html.parser``)."""

    elements: list[_Element] = field(default_factory=list)
    title: str = ""
    text: str = ""  # visible-ish text, truncated: enough for "Please wait" style checks

    def by_id(self, element_id: str) -> _Element | None:
        return next((e for e in self.elements if e.id == element_id), None)

    def with_class(self, name: str) -> list[_Element]:
        return [e for e in self.elements if name in e.classes]

    def has_id(self, *ids: str) -> bool:
        return any(self.by_id(i) is not None for i in ids)

    def has_class(self, *names: str) -> bool:
        return any(self.with_class(n) for n in names)


_INTERESTING_TAGS = frozenset(
    {"div", "img", "input", "textarea", "form", "button", "iframe", "script", "span", "canvas", "main"}
)
_TEXT_LIMIT = 4000
_TITLE_LIMIT = 1000
# Block pages are small; a page with more elements than this is not one, and keeping them all would
# let a hostile page grow the scan without bound.
_MAX_ELEMENTS = 5000
# Tags read before the scan stops: a real TikTok page has a few thousand outside its scripts, block
# pages far fewer. Past this the page is junk, and the state parser decides what it is.
_MAX_TAGS = 100_000

# The markup scan is a small tokenizer of its own rather than ``html.parser``: CPython's parser (3.11
# before 3.11.13) is quadratic on unclosed constructs (``<a `` repeated: 175 s for 80 KB) and a page
# is hostile input. Every pattern below either matches a fixed literal or scans a stretch that the
# next match starts after, so a scan is linear in the page size:
# - a tag runs from ``<name`` to the first ``>`` and may not contain ``<`` (possessive: no
#   backtracking), so tag texts are disjoint;
# - comments, ``<!…>``/``<?…>``, and script/style/title bodies are jumped over with one forward
#   search each; an unclosed one runs to the end of the page, as in a browser.
_MARKUP_RE = re.compile(r"<(?:(!--)|([!?])|(/?)([A-Za-z][^\s/<>\x00]*+)([^<>]*+)>)")
_ATTR_RE = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
_RAW_TEXT_END = {
    tag: re.compile(rf"</{tag}\s*>", re.IGNORECASE) for tag in ("script", "style", "title", "textarea")
}


# Attributes block detection reads (id, class, src, data-sitekey…) are short: past this, a tag's
# text is not read further.
_MAX_ATTR_CHARS = 16384


def _attributes(text: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for match in _ATTR_RE.finditer(text, 0, _MAX_ATTR_CHARS):
        name = match.group(1).lower()
        value = next((g for g in match.groups()[1:] if g is not None), "")
        attrs.setdefault(name, html_unescape(value))
    return attrs


def scan_markup(html: str) -> MarkupScan:
    """Parse the elements block detection looks at. Never raises; linear in ``len(html)``."""
    scan = MarkupScan()
    texts: list[str] = []
    text_len = 0
    position = 0
    length = len(html)
    tags = 0
    while position < length and tags < _MAX_TAGS:
        tags += 1
        match = _MARKUP_RE.search(html, position)
        stop = match.start() if match is not None else length
        if text_len < _TEXT_LIMIT and stop > position:
            chunk = html_unescape(html[position : min(stop, position + _TEXT_LIMIT)]).strip()
            if chunk:
                texts.append(chunk)
                text_len += len(chunk) + 1
        if match is None:
            break
        position = match.end()
        if match.group(1):  # <!-- ... -->
            end = html.find("-->", position)
            position = end + 3 if end >= 0 else length
            continue
        if match.group(2):  # <!doctype ...>, <![CDATA[ ...]]>, <?xml ...?>
            end = html.find(">", position)
            position = end + 1 if end >= 0 else length
            continue
        tag = match.group(4).lower()
        if match.group(3):  # an end tag: nothing to record
            continue
        attrs = _attributes(match.group(5))
        if len(scan.elements) < _MAX_ELEMENTS and (
            tag in _INTERESTING_TAGS or "id" in attrs or "data-sitekey" in attrs
        ):
            scan.elements.append(_Element(tag, attrs))
        end_pattern = _RAW_TEXT_END.get(tag)
        if end_pattern is not None and not match.group(5).rstrip().endswith("/"):
            # Raw text up to the matching end tag: script/style bodies are skipped, a title kept.
            end = end_pattern.search(html, position)
            body_end = end.start() if end is not None else length
            if tag == "title" and not scan.title:
                scan.title = html_unescape(html[position : min(body_end, position + _TITLE_LIMIT)]).strip()
            position = end.end() if end is not None else length
    scan.text = " ".join(texts)[:_TEXT_LIMIT]
    return scan


def _as_scan(html_or_scan: str | MarkupScan) -> MarkupScan:
    return html_or_scan if isinstance(html_or_scan, MarkupScan) else scan_markup(html_or_scan)


# -------------------------------------------------------------------------------------- captcha ---
_SLIDER_IDS = ("captcha-verify-image", "secsdk-captcha-drag-wrapper", "captcha_container")
_SLIDER_CLASSES = ("captcha_verify_img_slide", "captcha-verify-container", "secsdk-captcha-drag-icon")
_CAPTCHA_WORD = re.compile(r"captcha", re.IGNORECASE)
_RECAPTCHA_SRC = re.compile(r"(?:google\.com|recaptcha\.net)/recaptcha/", re.IGNORECASE)
_HCAPTCHA_SRC = re.compile(r"hcaptcha\.com", re.IGNORECASE)


def _selector_for(element: _Element) -> str:
    """A CSS selector that finds ``element`` again in the live page."""
    if element.id:
        return f'[id="{element.id}"]'
    name = element.attrs.get("name")
    if name:
        return f'{element.tag}[name="{name}"]'
    classes = sorted(element.classes)
    if classes:
        return element.tag + "".join(f".{c}" for c in classes if re.fullmatch(r"[\w-]+", c))
    return element.tag


def _first_attr(elements: Iterable[_Element], name: str) -> str | None:
    return next((e.attrs[name] for e in elements if e.attrs.get(name)), None)


def _site_key_from_iframes(scan: MarkupScan, pattern: re.Pattern[str], param: str) -> str | None:
    for element in scan.elements:
        src = element.attrs.get("src", "") if element.tag == "iframe" else ""
        if src and pattern.search(src):
            values = parse_qs(urlsplit(src).query).get(param)
            if values:
                return values[0]
    return None


def _submit_and_form(scan: MarkupScan) -> tuple[str | None, str | None]:
    form = next((e for e in scan.elements if e.tag == "form"), None)
    submit = next(
        (
            e
            for e in scan.elements
            if (e.tag == "button" and e.attrs.get("type", "submit") == "submit")
            or (e.tag == "input" and e.attrs.get("type") == "submit")
        ),
        None,
    )
    return (_selector_for(submit) if submit else None), (_selector_for(form) if form else None)


def detect_captcha(html: str | MarkupScan) -> CaptchaChallenge | None:
    """The captcha a page shows, if any. TikTok's slider wins over everything (it is unsolvable
    here, and its image would otherwise look like an image captcha)."""
    scan = _as_scan(html)
    if scan.has_id(*_SLIDER_IDS) or scan.has_class(*_SLIDER_CLASSES):
        return CaptchaChallenge(kind=CaptchaKind.TIKTOK_SLIDER)
    submit, form = _submit_and_form(scan)

    widgets = scan.with_class("g-recaptcha")
    iframe_key = _site_key_from_iframes(scan, _RECAPTCHA_SRC, "k")
    if widgets or iframe_key:
        return CaptchaChallenge(
            kind=CaptchaKind.RECAPTCHA_V2,
            site_key=_first_attr(widgets, "data-sitekey") or iframe_key,
            callback=_first_attr(widgets, "data-callback"),
            input_selector="#g-recaptcha-response",
            submit_selector=submit,
            form_selector=form,
        )

    widgets = scan.with_class("h-captcha")
    iframe_key = _site_key_from_iframes(scan, _HCAPTCHA_SRC, "sitekey")
    if widgets or iframe_key:
        return CaptchaChallenge(
            kind=CaptchaKind.HCAPTCHA,
            site_key=_first_attr(widgets, "data-sitekey") or iframe_key,
            callback=_first_attr(widgets, "data-callback"),
            input_selector='textarea[name="h-captcha-response"]',
            submit_selector=submit,
            form_selector=form,
        )

    image = next(
        (
            e
            for e in scan.elements
            if e.tag in ("img", "canvas")
            and any(_CAPTCHA_WORD.search(e.attrs.get(a, "")) for a in ("id", "class", "alt", "name", "src"))
        ),
        None,
    )
    if image is not None:
        answer = next(
            (
                e
                for e in scan.elements
                if e.tag == "input"
                and e.attrs.get("type", "text") in ("text", "")
                and any(_CAPTCHA_WORD.search(e.attrs.get(a, "")) for a in ("id", "class", "name"))
            ),
            None,
        ) or next((e for e in scan.elements if e.tag == "input" and e.attrs.get("type") == "text"), None)
        return CaptchaChallenge(
            kind=CaptchaKind.IMAGE,
            image_selector=_selector_for(image),
            input_selector=_selector_for(answer) if answer else None,
            submit_selector=submit,
            form_selector=form,
        )
    return None


# ------------------------------------------------------------------------------------------ WAF ---
def detect_waf(html: str | MarkupScan) -> bool:
    """A proof-of-work "Please wait…" page: TikTok's carries ``id="cs"`` and ``id="wci"``."""
    scan = _as_scan(html)
    if scan.has_id("cs") and scan.has_id("wci"):
        return True
    if scan.has_id("wci") or any("_wafchallengeid" in e.attrs.get("class", "") for e in scan.elements):
        return True
    return "_wafchallengeid" in scan.text and "please wait" in (scan.title + " " + scan.text).lower()


# --------------------------------------------------------------------------------------- routing ---
def is_login_redirect(final_url: str, requested_url: str | None = None) -> bool:
    """The load ended on a login page the scraper did not ask for."""
    path = urlsplit(final_url).path.rstrip("/").lower()
    # /login, /login/phone-or-email, /en/login ...: TikTok's login wall lives under a "login" segment.
    if "login" not in path.split("/"):
        return False
    if requested_url is not None:
        wanted = urlsplit(requested_url).path.rstrip("/").lower()
        return wanted != path
    return True


# ------------------------------------------------------------------------------------ classifiers ---
def classify_page(
    *,
    http_status: int,
    requested_url: str,
    final_url: str,
    html: str,
    page: PageResult | None = None,
) -> BlockSignal | None:
    """The block a loaded page represents, or ``None`` if it is a real answer.

    ``page`` is the parsed state (``tiktok_page.parse_page``) when the caller has it; it decides
    10204 and empty-200. Order matters: an HTTP refusal first, then where the page ended, then
    interstitials (WAF, captcha), then what the state says.
    """
    if http_status == 403:
        return BlockSignal(BlockKind.HTTP_403, "HTTP 403")
    if http_status == 429:
        return BlockSignal(BlockKind.HTTP_429, "HTTP 429")
    if http_status == 407 or http_status >= 500:
        return BlockSignal(BlockKind.CONNECTION_ERROR, f"HTTP {http_status} from the proxy or upstream")
    if is_login_redirect(final_url, requested_url):
        return BlockSignal(BlockKind.LOGIN_REDIRECT, f"redirected to {urlsplit(final_url).path}")
    scan = scan_markup(html)
    if detect_waf(scan):
        return BlockSignal(BlockKind.WAF_CHALLENGE, "WAF proof-of-work page")
    captcha = detect_captcha(scan)
    if captcha is not None:
        return BlockSignal(BlockKind.CAPTCHA, f"{captcha.kind.value} captcha", captcha)
    if page is not None:
        if page.status is PageStatus.IP_BLOCKED:
            return BlockSignal(BlockKind.STATUS_10204, "statusCode 10204 (IP blocked)")
        if page.status is PageStatus.EMPTY_SHELL:
            return BlockSignal(BlockKind.EMPTY_200, page.error or "HTTP 200 without content")
    return None


def classify_item_list(
    http_status: int, payload: Any, *, items_expected: bool, has_items: bool | None = None
) -> BlockSignal | None:
    """The block an item-list response represents, or ``None`` if it is a real list page.

    ``items_expected``: the page's header says the profile/hashtag has videos (or the list is not
    on its first page), so an empty list is a soft block rather than an empty account.
    ``has_items`` overrides the item count read from ``payload`` (e.g. items that were rejected).
    """
    if http_status == 403:
        return BlockSignal(BlockKind.HTTP_403, "item list HTTP 403")
    if http_status == 429:
        return BlockSignal(BlockKind.HTTP_429, "item list HTTP 429")
    if not isinstance(payload, Mapping):
        return None
    if str(payload.get("type", "")).lower() == "verify":
        # TikTok's verify answers (slide, whirl, 3d) are all its own puzzles: none is solvable here.
        subtype = str(payload.get("subtype", "")).lower()
        return BlockSignal(
            BlockKind.CAPTCHA,
            f"item list verify/{subtype or '?'}",
            CaptchaChallenge(kind=CaptchaKind.TIKTOK_SLIDER),
        )
    code = payload.get("statusCode", payload.get("status_code"))
    try:
        code_value = int(code) if code is not None else None
    except (TypeError, ValueError):
        code_value = None
    if code_value == 10204:
        return BlockSignal(BlockKind.STATUS_10204, "item list statusCode 10204")
    items = payload.get("itemList")
    count = len(items) if isinstance(items, list) else 0
    present = has_items if has_items is not None else count > 0
    if (code_value in (0, None)) and not present and items_expected:
        return BlockSignal(BlockKind.EMPTY_200, "item list HTTP 200 with no items where items are expected")
    return None
