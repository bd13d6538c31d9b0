"""A request's JSON body, read so that every way it can be unreadable is a 4xx JSON error
(`admin.errors` turns the HTTP exceptions raised here into one), never a 500.

The app reads bodies as they were sent (`READ_AS_SENT`, given to aiohttp in `admin.app`) and
decodes a Content-Encoding here: aiohttp's own decoding answers some broken bodies (a
truncated deflate, br without the Brotli module, any zstd) itself, in plain text, before a
handler runs. Only gzip and deflate are decoded (the standard library's zlib, on every
install alike); any other coding is a 415, not JSON read by luck. The decoded body is
bounded by `ADMIN_MAX_BODY_BYTES` as the sent one is (413), so a small bomb stays small.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from aiohttp import hdrs, web

from admin.appkeys import settings_key

READ_AS_SENT = {"auto_decompress": False}
# zlib's window bits: 16 + 15 is the gzip format, 15 the zlib format that RFC 9110 calls
# deflate, -15 the raw deflate that some clients send under that name (aiohttp takes it too).
_GZIP, _ZLIB, _RAW_DEFLATE = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS
_IDENTITY = ("", "identity")


async def read_json(request: web.Request) -> Any:
    coding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower()
    if coding not in ("gzip", "x-gzip", "deflate", *_IDENTITY):
        raise web.HTTPUnsupportedMediaType(
            text=f"Content-Encoding {coding!r} is not supported: send gzip, deflate or none"
        )
    raw = await request.read()
    if coding not in _IDENTITY:
        raw = _decoded(raw, coding, request.app[settings_key].max_body_bytes)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"malformed JSON: {exc}") from None


def _decoded(raw: bytes, coding: str, limit: int) -> bytes:
    """`raw` decoded, whole and at most `limit` bytes long."""
    if coding != "deflate":
        wbits = _GZIP
    else:  # a zlib stream's first byte says method 8 (deflate) in its low 4 bits
        wbits = _ZLIB if raw[:1] and raw[0] & 0x0F == 8 else _RAW_DEFLATE
    broken = f"the body is not valid {coding}"
    inflater = zlib.decompressobj(wbits)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise web.HTTPBadRequest(text=broken) from None
    if len(body) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    if not inflater.eof or inflater.unused_data:  # cut short, or followed by more
        raise web.HTTPBadRequest(text=broken)
    return body
