"""The redirector's application: its typed state (`appkeys`) and one setup/teardown per resource
(`cleanup_ctx`). It has no routes: `redirector.server.RedirectorRunner` runs these contexts as
aiohttp's AppRunner does, and serves `handlers.Handler` through aiohttp's low-level server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from redirector import metrics
from redirector.appkeys import (
    cache_key,
    clicks_key,
    flusher_key,
    invalidation_ready_key,
    redis_key,
    resolver_key,
    settings_key,
)
from redirector.cache import LinkCache
from redirector.clicks import ClickBuffer, ClickFlusher
from redirector.invalidation import listen
from redirector.metrics_listener import metrics_listener_ctx
from redirector.resolver import LinkResolver
from redirector.settings import Settings
from redirector.store.connection import connect
from redirector.store.hitqueue import HitQueue


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    app[redis_key] = redis = connect(
        settings.redis_url, timeout=settings.redis_timeout, cluster=settings.redis_cluster
    )
    app[resolver_key] = LinkResolver(redis, app[cache_key])
    yield
    await redis.aclose()


async def invalidation_ctx(app: web.Application) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        listen(app[redis_key], app[cache_key], app[invalidation_ready_key], stop)
    )
    yield
    await _stop(task, stop)


async def _stop(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Cancel a background loop and wait for it. The event is the backstop: the loops check
    it on every turn, so they end even if the cancellation is lost in the Redis client."""
    stop.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def clicks_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    queue = HitQueue(app[redis_key], settings.flush_durability)
    flusher = ClickFlusher(queue, app[clicks_key], interval=settings.click_flush_interval)
    app[flusher_key] = flusher
    stop = asyncio.Event()
    task = asyncio.create_task(flusher.run(stop))
    yield
    await _stop(task, stop)
    # Runs on SIGTERM too (aiohttp's graceful exit): what was tapped gets queued.
    await flusher.drain(within=settings.click_drain_timeout)


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """With several workers: this worker's counts folded into the shared files every second,
    and at the end, so that they outlive it (see redirector/metrics.py)."""
    stop = asyncio.Event()
    task = asyncio.create_task(_fold_until(stop))
    yield
    await _stop(task, stop)
    metrics.fold()


async def _fold_until(stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(metrics.FOLD_INTERVAL):
                await stop.wait()
        metrics.fold()


def create_app(settings: Settings) -> web.Application:
    """Serve it with `RedirectorRunner` (web.run_app and AppRunner would find no route)."""
    app = web.Application()
    app[settings_key] = settings
    app[cache_key] = LinkCache(
        settings.cache_size, settings.cache_ttl, settings.cache_miss_ttl, settings.cache_miss_size
    )
    app[invalidation_ready_key] = asyncio.Event()
    app.cleanup_ctx.append(redis_ctx)
    app.cleanup_ctx.append(invalidation_ctx)
    if settings.click_tracking:
        app[clicks_key] = ClickBuffer(settings.click_buffer_max, settings.click_flush_size)
        app.cleanup_ctx.append(clicks_ctx)
    if settings.metrics_dir is not None:
        app.cleanup_ctx.append(metrics_ctx)
    if settings.metrics_port is not None:
        app.cleanup_ctx.append(metrics_listener_ctx)
    return app
