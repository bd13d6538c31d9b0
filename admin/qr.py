"""QR codes of short links (segno), for the API (/api/links/{code}/qr.svg and .png) and the
dashboard. Pure: no I/O beyond the bytes it returns."""

from __future__ import annotations

import io
from typing import Literal

import segno

QrFormat = Literal["svg", "png"]
QR_MEDIA_TYPES: dict[QrFormat, str] = {"svg": "image/svg+xml", "png": "image/png"}
# Pixels per module: a short URL is a 25x25 QR code (version 2), so 8 gives a 264-pixel PNG
# (with the 4-module quiet zone phone cameras need); SVG scales without loss anyway.
PNG_SCALE = 8
SVG_SCALE = 4


def qr_code(text: str, kind: QrFormat) -> bytes:
    """`text` (a short URL) as a QR code image. Error correction M at least (segno raises it
    while the version stays the same); never a Micro QR code, which phone cameras do not read."""
    code = segno.make(text, error="m", micro=False)
    out = io.BytesIO()
    code.save(out, kind=kind, scale=PNG_SCALE if kind == "png" else SVG_SCALE, border=4)
    return out.getvalue()
