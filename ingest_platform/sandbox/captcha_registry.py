"""What Google / hCaptcha would know, for the offline sandbox: issued tokens and image answers.

``CaptchaRegistry`` is shared in-process by the sandbox site and the Anti-Captcha stand-in
(``SandboxStack`` wires one into both): the solving service issues response tokens
(``issue_token``), the site redeems them when a scraper submits its captcha form
(``redeem_token``: single use, bound to a captcha kind and site key). The site draws numeric
image captchas (``new_image``) and the service's "workers" read them back (``image_answer``).

No aiohttp and no other sandbox imports, so both sides can use it without import cycles.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import struct
import threading
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Literal

__all__ = ["CaptchaRegistry", "TokenKind", "fraction", "render_digits_png"]

TokenKind = Literal["recaptcha", "hcaptcha"]


def fraction(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts``: the same seed gives the same run."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# A 3x5 bitmap font for digits: enough to draw a readable numeric captcha without Pillow.
_FONT = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "001", "001", "001"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def render_digits_png(text: str, *, noise_seed: str, scale: int = 4) -> bytes:
    """A grey-scale PNG showing ``text`` (digits) over deterministic noise.

    The answer is drawn, not stored in the file (no tEXt chunk): only something that reads the
    picture, or the registry that drew it, knows it.
    """
    glyph_w, glyph_h, gap, margin = 3 * scale, 5 * scale, scale, 2 * scale
    width = margin * 2 + len(text) * glyph_w + max(0, len(text) - 1) * gap
    height = margin * 2 + glyph_h
    noise = hashlib.shake_256(noise_seed.encode()).digest(width * height)
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # PNG filter type 0 (None) for every scanline
        for x in range(width):
            row.append(200 + noise[y * width + x] % 56)  # light speckled background
        rows.append(row)
    for index, char in enumerate(text):
        glyph = _FONT[char]
        left = margin + index * (glyph_w + gap)
        for gy, line in enumerate(glyph):
            for gx, bit in enumerate(line):
                if bit != "1":
                    continue
                for dy in range(scale):
                    for dx in range(scale):
                        y, x = margin + gy * scale + dy, left + gx * scale + dx
                        rows[y][1 + x] = 20 + noise[(y * width + x) % len(noise)] % 60
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey-scale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"".join(bytes(r) for r in rows), 9))
        + _png_chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------ registry ---
@dataclass
class _Token:
    kind: TokenKind
    sitekey: str
    valid: bool
    task_id: int | None
    website_url: str
    redeemed: bool = False


class CaptchaRegistry:
    """What Google/hCaptcha would know: issued tokens and image answers. Thread-safe.

    The solving service issues tokens (``issue_token``); the site redeems them
    (``redeem_token``, single use, must match kind and site key). The site draws image captchas
    (``new_image``); the service reads them back (``image_answer``).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._images: dict[str, str] = {}  # sha256(png) -> answer
        self._sequence = itertools.count(1)
        self.counters: Counter[str] = Counter()

    def new_image(self, label: str) -> tuple[bytes, str]:
        """Draw a fresh numeric image captcha for ``label`` (e.g. client + attempt); returns (png, answer)."""
        with self._lock:
            n = next(self._sequence)
        material = f"{self.seed}|image|{label}|{n}"
        answer = f"{int(fraction(material, 'answer') * 100_000):05d}"
        png = render_digits_png(answer, noise_seed=material)
        with self._lock:
            self._images[hashlib.sha256(png).hexdigest()] = answer
            self.counters["images_issued"] += 1
        return png, answer

    def image_answer(self, image: bytes) -> str | None:
        """The text of an image this registry drew, else None (a worker could not read it)."""
        with self._lock:
            return self._images.get(hashlib.sha256(image).hexdigest())

    def issue_token(
        self,
        kind: TokenKind,
        sitekey: str,
        *,
        valid: bool = True,
        website_url: str = "",
        task_id: int | None = None,
    ) -> str:
        """A response token as a solving service returns it. ``valid=False`` looks the same but is
        rejected by ``redeem_token`` (a worker's wrong solution)."""
        with self._lock:
            n = next(self._sequence)
        raw = hashlib.shake_256(f"{self.seed}|token|{kind}|{sitekey}|{n}|{valid}".encode()).digest(150)
        body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        token = ("03AFcWeA" if kind == "recaptcha" else "P1_eyJ0eXAiOiJKV1Qi") + body
        with self._lock:
            self._tokens[token] = _Token(kind, sitekey, valid, task_id, website_url)
            self.counters["tokens_issued"] += 1
            self.counters["tokens_issued_valid" if valid else "tokens_issued_invalid"] += 1
        return token

    def redeem_token(self, token: str, *, kind: TokenKind, sitekey: str) -> bool:
        """The site's check of a submitted token: known, valid, right kind and key, not used yet."""
        with self._lock:
            issued = self._tokens.get(token or "")
            if issued is None:
                reason = "unknown"
            elif not issued.valid:
                reason = "invalid"
            elif issued.redeemed:
                reason = "reused"
            elif issued.kind != kind:
                reason = "wrong_kind"
            elif issued.sitekey != sitekey:
                reason = "wrong_sitekey"
            else:
                issued.redeemed = True
                self.counters["tokens_redeemed"] += 1
                return True
            self.counters[f"tokens_rejected_{reason}"] += 1
            self.counters["tokens_rejected"] += 1
            return False

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counters)
