"""Code -> Link: the in-process cache first, then Redis, with concurrent misses coalesced.

Under load many requests miss the cache in the same event-loop tick. Sending one HGET each
costs a round trip and the client's per-command overhead every time; instead the misses of
one tick are collected and sent as a single pipeline, and concurrent requests for the same
code share one lookup. A record names its campaign's destination by id; destinations are
cached in process too, so a miss costs one round trip unless the destination is cold.
"""

from __future__ import annotations

import asyncio
import re
import time

from redirector import metrics
from redirector.cache import ABSENT, LinkCache
from redirector.store.connection import Store
from redirector.store.keys import CODE_PATTERN, destinations_key, link_key
from redirector.store.record import (
    Destination,
    Link,
    Record,
    RecordError,
    decode,
    decode_destination,
)

# Anything that could never be a code is answered 404 without touching Redis or the cache,
# so a scan of junk paths neither loads Redis nor evicts real links.
_CODE = re.compile(CODE_PATTERN)


class LinkResolver:
    def __init__(self, redis: Store, cache: LinkCache) -> None:
        self._redis = redis
        self._cache = cache
        self._destinations = cache.destinations
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
        # A tombstone or an alias is no link: its code answers 404 like an unknown one.
        records = [None if raw is None else decode(raw) for raw in raws]
        records = [r if r is not None and r.live else None for r in records]
        lost = await self._load_destinations(records)
        # An invalidation that arrived while Redis answered may concern these very records:
        # caching the answers could then pin old versions, so only cache when none did.
        keep = cache.generation == generation
        for (code, future), record in zip(batch.items(), records, strict=True):
            error = None if record is None else lost.get((record.campaign_id, record.destination))
            if error is not None:
                # Only the codes whose destination is gone fail; the rest of the tick resolves.
                if not future.done():
                    future.set_exception(error)
                continue
            link = None if record is None else record.link(self._destination(record))
            if keep:
                cache.put(code, link, now)
            if not future.done():
                future.set_result(link)

    def _destination(self, record: Record) -> Destination | None:
        target = record.destination
        if isinstance(target, Destination) or record.campaign_id is None:
            return None
        return self._destinations.get(record.campaign_id, target)

    async def _load_destinations(
        self, records: list[Record | None]
    ) -> dict[tuple[int | None, Destination | str], RecordError]:
        """Reads the destinations the records refer to that are not cached yet; returns an
        error for each one Redis does not hold."""
        missing = {
            (r.campaign_id, r.destination)
            for r in records
            if r is not None and isinstance(r.destination, str) and r.campaign_id is not None
            and self._destinations.get(r.campaign_id, r.destination) is None
        }  # fmt: skip
        if not missing:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for campaign_id, destination_id in missing:
                pipe.hget(destinations_key(campaign_id), destination_id)
            raws = await pipe.execute()
        lost: dict[tuple[int | None, Destination | str], RecordError] = {}
        for (campaign_id, destination_id), raw in zip(missing, raws, strict=True):
            if raw is None:
                text = f"campaign {campaign_id} has no destination {destination_id}"
                lost[campaign_id, destination_id] = RecordError(text)
            else:
                self._destinations.put(campaign_id, destination_id, decode_destination(raw))
        return lost


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
