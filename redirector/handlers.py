"""The redirector's HTTP answers, given by aiohttp's low-level server (`web.Server`, built by
`redirector.server.RedirectorRunner`): one handler that tells its three paths apart itself.

aiohttp's router and `web.Application` request handling cost more per request than the whole
redirect (a cached lookup, a hit appended, a 302), so `Handler` matches the paths as the
router would (`/healthz`, `/metrics`, `/{code}`: GET and HEAD, else 405; any other path 404)
and holds what it needs from the app, bound once. With METRICS_PORT set, `/metrics` is served
there (redirector/metrics_listener.py) and is a code like any other here. The 302 itself is
written as prebuilt bytes (redirector/redirect.py), not through aiohttp's response machinery.
"""

from __future__ import annotations

import math
import time

from aiohttp import hdrs, web
from redis.exceptions import RedisError

from redirector import metrics
from redirector.appkeys import clicks_key, redis_key, resolver_key, settings_key
from redirector.clicks import ADDRESS_MAX, REFERER_MAX, USER_AGENT_MAX
from redirector.metrics import COUNTS
from redirector.misslimit import MissLimiter
from redirector.redirect import Heads, Redirect
from redirector.store.probe import HEALTH_TIMEOUT, answers

# The redirect is personal to the recipient's tap: browsers and proxies must not cache it,
# so that disabling or retargeting a link takes effect on the next tap.
NO_CACHE = "private, max-age=0"
_PLAIN = "text/plain"
_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})


def _text(status: int, text: str) -> web.Response:
    return web.Response(
        status=status, text=text, content_type=_PLAIN, headers={hdrs.CACHE_CONTROL: NO_CACHE}
    )


class Handler:
    """Every request of the redirector. Built once the app's resources are set up."""

    def __init__(self, app: web.Application) -> None:
        self._resolver = app[resolver_key]
        self._redis = app[redis_key]
        self._clicks = app.get(clicks_key)  # None: click recording is off
        settings = app[settings_key]
        self._forwarded_for = settings.trust_forwarded_for
        self._multiprocess = settings.metrics_dir is not None
        self._metrics_here = settings.metrics_port is None
        self._misses = MissLimiter(settings.miss_limit) if settings.miss_limit else None
        # Addresses over their limit; looked at on every request only while not empty.
        self._blocked = self._misses.blocked if self._misses is not None else {}
        self._heads = Heads(NO_CACHE)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        # What the router matches: the path decoded but for %2F and %25 (yarl's path_safe),
        # which is the target itself when it has nothing to decode and no query.
        path = request.raw_path
        if "%" in path or "?" in path or "#" in path or path[:1] != "/":
            path = request.rel_url.path_safe
        code = path[1:]
        fixed = path == "/healthz" or (path == "/metrics" and self._metrics_here)
        if not fixed and (not code or "/" in code or "{" in code or "}" in code):
            raise web.HTTPNotFound()
        if request.method not in _METHODS:
            raise web.HTTPMethodNotAllowed(request.method, _METHODS)
        if not fixed:
            return await self.redirect(request, code)
        return await (self.health() if path == "/healthz" else self.metrics_text())

    async def redirect(self, request: web.BaseRequest, code: str) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await self._answer(request, code)
        finally:
            COUNTS.observe(time.perf_counter() - started)

    async def _answer(self, request: web.BaseRequest, code: str) -> web.StreamResponse:
        if self._blocked:
            refused = self._limited(request)
            if refused is not None:
                return refused
        try:
            link = await self._resolver.find(code)
        except RedisError:
            COUNTS.unavailable += 1
            metrics.REDIS_ERRORS_LOOKUP.inc()
            return _text(503, "Service temporarily unavailable, please try again.\n")
        if link is None:
            COUNTS.not_found += 1
            if self._misses is not None:
                self._misses.miss(self._client_ip(request), time.monotonic())
            return _text(404, "This link does not exist.\n")
        now = time.time()
        if link.gone(now):
            COUNTS.gone += 1
            return _text(410, "This link has expired or been disabled.\n")
        # Before anything is counted: a destination that cannot be a header is a 500.
        head = self._heads(link.destination)
        clicks = self._clicks
        if clicks is not None:
            # Only an append of what the request already holds: classification and storage
            # happen when the buffer is flushed.
            headers = request.headers
            # Bounded here, so that neither the buffer nor the click worker's parsing grows
            # with what a visitor sends (aiohttp takes headers of up to 8 KB).
            clicks.add(
                (  # a Hit's fields, as a plain tuple (clicks.RawHit)
                    code,
                    link.campaign_id,
                    link.recipient,
                    link.created_at,
                    now,
                    request.method == hdrs.METH_HEAD,
                    headers.get(hdrs.USER_AGENT, "")[:USER_AGENT_MAX],
                    headers.get(hdrs.REFERER, "")[:REFERER_MAX],
                    self._client_ip(request),
                )
            )
        COUNTS.found += 1
        # The destination is stored pure ASCII and ready to serve: it goes out byte for byte,
        # never through a URL class that could re-encode it.
        return Redirect(head, now)

    def _limited(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """429 if the client's address asked for too many unknown codes this minute."""
        assert self._misses is not None  # something is blocked
        wait = self._misses.wait(self._client_ip(request), time.monotonic())
        if not wait:
            return None
        COUNTS.limited += 1
        response = _text(429, "Too many unknown links asked for; please try again later.\n")
        response.headers[hdrs.RETRY_AFTER] = str(max(1, math.ceil(wait)))
        return response

    def _client_ip(self, request: web.BaseRequest) -> str:
        if self._forwarded_for:
            forwarded = request.headers.get(hdrs.X_FORWARDED_FOR)
            if forwarded:
                return forwarded[:ADDRESS_MAX].split(",", 1)[0].strip()
        return request.remote or ""

    async def metrics_text(self) -> web.StreamResponse:
        body, content_type = metrics.exposition(self._multiprocess)
        return web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})

    async def health(self) -> web.StreamResponse:
        """Open to anyone, so it says ok or unavailable and nothing about hosts or errors; on a
        cluster every master must answer."""
        if not await answers(self._redis, HEALTH_TIMEOUT):
            return web.json_response({"status": "unavailable"}, status=503)
        return web.json_response({"status": "ok"})
