"""Code -> Link: the in-process cache first, then Redis, with concurrent misses coalesced.

Under load many requests miss the cache in the same event-loop tick. Sending one HGET each
costs a round trip and the client's per-command overhead every time; instead the misses of
one tick are collected and sent as a single pipeline, and concurrent requests for the same
code share one lookup.
"""

from __future__ import annotations

import asyncio
import re
import time

from redirector import metrics
from redirector.cache import ABSENT, LinkCache
from redirector.store.connection import Store
from redirector.store.keys import CODE_PATTERN, link_key
from redirector.store.record import Link, decode

# Anything that could never be a code is answered 404 without touching Redis or the cache,
# so a scan of junk paths neither loads Redis nor evicts real links.
_CODE = re.compile(CODE_PATTERN)


class LinkResolver:
    def __init__(self, redis: Store, cache: LinkCache) -> None:
        self._redis = redis
        self._cache = cache
        self._pending: dict[str, asyncio.Future[Link | None]] = {}

    async def find(self, code: str) -> Link | None:
        hit = self._cache.get(code, time.monotonic())
        if hit is not None:
            metrics.CACHE_HIT.inc()
            return None if hit is ABSENT else hit  # type: ignore[return-value]
        metrics.CACHE_MISS.inc()
        if _CODE.fullmatch(code) is None:
            return None
        future = self._pending.get(code)
        if future is None:
            loop = asyncio.get_running_loop()
            if not self._pending:
                loop.call_soon(self._flush)
            future = self._pending[code] = loop.create_future()
        # shield: one caller going away (client disconnect) must not cancel the shared lookup.
        return await asyncio.shield(future)

    def _flush(self) -> None:
        batch, self._pending = self._pending, {}
        task = asyncio.ensure_future(self._lookup(batch))
        task.add_done_callback(_consume)

    async def _lookup(self, batch: dict[str, asyncio.Future[Link | None]]) -> None:
        try:
            await self._resolve(batch)
        except BaseException as exc:
            # Whatever went wrong (Redis away, a corrupt record, shutdown), no request may be
            # left waiting on a future nobody will resolve.
            for future in batch.values():
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def _resolve(self, batch: dict[str, asyncio.Future[Link | None]]) -> None:
        cache = self._cache
        generation = cache.generation
        now = time.monotonic()
        async with self._redis.pipeline(transaction=False) as pipe:
            for code in batch:
                pipe.hget(link_key(code), code)
            raws = await pipe.execute()
        # An invalidation that arrived while Redis answered may concern these very records:
        # caching the answers could then pin old versions, so only cache when none did.
        keep = cache.generation == generation
        for (code, future), raw in zip(batch.items(), raws, strict=True):
            link = decode(raw) if raw is not None else None
            if keep:
                cache.put(code, link, now)
            if not future.done():
                future.set_result(link)


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
