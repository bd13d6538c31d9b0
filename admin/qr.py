"""QR codes of short links, drawn by segno: the one place that does, for the dashboard's link
page and the API's QR routes alike, so that both hand out the same image for a link.

A short URL is short, so the code stays small (version 2 or 3 for 30 characters) and scans
from a phone at arm's length; error correction M (15% of the code may be lost) survives a
printed code's smudge without growing it much.
"""

from __future__ import annotations

import io
from typing import Literal

import segno

QrFormat = Literal["svg", "png"]
QR_FORMATS: tuple[QrFormat, ...] = ("svg", "png")
MEDIA_TYPES: dict[QrFormat, str] = {"svg": "image/svg+xml", "png": "image/png"}
ERROR_CORRECTION = "m"
# The quiet zone around the code, in modules: the standard's minimum, which scanners need.
BORDER = 4
# Pixels (PNG) or user units (SVG) per module: a 29-module code is 296 px wide in PNG.
SCALE = 8


def qr_code(url: str, fmt: QrFormat, scale: int = SCALE) -> bytes:
    """The QR code of `url`, as an SVG document or a PNG image."""
    code = segno.make(url, error=ERROR_CORRECTION, micro=False)
    out = io.BytesIO()
    if fmt == "svg":
        # A title for screen readers; no XML declaration, so the SVG can also be inlined.
        code.save(out, kind="svg", scale=scale, border=BORDER, title=url, xmldecl=False)
    else:
        code.save(out, kind="png", scale=scale, border=BORDER)
    return out.getvalue()
