"""`/metrics` on a listener of its own (METRICS_PORT), so that the public port need not serve
it: nothing else answers there, and the public port then takes `/metrics` for a code.

With several workers, each one listens on METRICS_PORT too (SO_REUSEPORT, as on the public
port) and answers a scrape with the sum of all workers (redirector/metrics.py), so whichever
worker the kernel hands a scrape to gives the same totals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import hdrs, web

from redirector import metrics
from redirector.appkeys import settings_key

_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})


def metrics_handler(multiprocess: bool) -> Callable[[web.BaseRequest], Awaitable[web.Response]]:
    async def answer(request: web.BaseRequest) -> web.Response:
        if request.path != "/metrics":
            raise web.HTTPNotFound()
        if request.method not in _METHODS:
            raise web.HTTPMethodNotAllowed(request.method, _METHODS)
        body, content_type = metrics.exposition(multiprocess)
        return web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})

    return answer


async def metrics_listener_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    assert settings.metrics_port is not None  # only set up when it is set
    server = web.Server(metrics_handler(settings.metrics_dir is not None))
    runner = web.ServerRunner(server)
    await runner.setup()
    try:
        reuse_port = settings.workers > 1
        site = web.TCPSite(runner, settings.host, settings.metrics_port, reuse_port=reuse_port)
        await site.start()
        yield
    finally:
        await runner.cleanup()
