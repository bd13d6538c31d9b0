"""HTTP handlers of the redirector: resolve a code, and health."""

from __future__ import annotations

import time

from aiohttp import web
from redis.exceptions import RedisError

from redirector import metrics
from redirector.appkeys import clicks_key, redis_key, resolver_key, settings_key
from redirector.clicks import Hit

# The redirect is personal to the recipient's tap: browsers and proxies must not cache it,
# so that disabling or retargeting a link takes effect on the next tap.
NO_CACHE = "private, max-age=0"
_PLAIN = "text/plain"


def _text(status: int, text: str) -> web.Response:
    return web.Response(
        status=status, text=text, content_type=_PLAIN, headers={"Cache-Control": NO_CACHE}
    )


async def resolve(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        return await _answer(request)
    finally:
        metrics.LATENCY.observe(time.perf_counter() - started)


async def _answer(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    try:
        link = await request.app[resolver_key].find(code)
    except RedisError:
        metrics.UNAVAILABLE.inc()
        metrics.REDIS_ERRORS_LOOKUP.inc()
        return _text(503, "Service temporarily unavailable, please try again.\n")
    if link is None:
        metrics.NOT_FOUND.inc()
        return _text(404, "This link does not exist.\n")
    now = time.time()
    if link.gone(now):
        metrics.GONE.inc()
        return _text(410, "This link has expired or been disabled.\n")
    clicks = request.app.get(clicks_key)
    if clicks is not None:
        # Only an append: classification and storage happen when the buffer is flushed.
        headers = request.headers
        clicks.add(
            Hit(
                code,
                link.campaign_id,
                link.recipient,
                link.created_at,
                now,
                request.method == "HEAD",
                headers.get("User-Agent", ""),
                headers.get("Referer", ""),
                _client_ip(request),
            )
        )
    metrics.FOUND.inc()
    # The destination is stored pure ASCII and ready to serve: it goes out byte for byte,
    # never through a URL class that could re-encode it.
    return web.Response(
        status=302, headers={"Location": link.destination, "Cache-Control": NO_CACHE}
    )


def _client_ip(request: web.Request) -> str:
    if request.app[settings_key].trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded:
            return forwarded.split(",", 1)[0].strip()
    return request.remote or ""


async def metrics_text(request: web.Request) -> web.StreamResponse:
    body, content_type = metrics.exposition(request.app[settings_key].metrics_dir is not None)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def health(request: web.Request) -> web.StreamResponse:
    """Open to anyone, so it says ok or unavailable and nothing about hosts or errors."""
    try:
        await request.app[redis_key].ping()
    except RedisError:
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ok"})
