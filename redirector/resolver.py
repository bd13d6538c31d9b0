"""Code -> Link: the in-process cache first, then Redis, with concurrent misses read together.

Under load many requests miss the cache at once. A miss while no read is in flight starts a
reader task; it runs once the handlers of the tick have run, takes every code they asked for
and reads their records in one round trip (`LinkReader.records`: one script call). One read
is in flight at a time: the misses that arrive meanwhile wait for it to answer and go
together into the next, so under load reads get larger and fewer (measured on the miss path:
31 codes a call instead of 11, ~10% less CPU per request, and less work for Redis), and
without load a miss is read at once. Each waiting request has a future of its own, so a
request that goes away (a cancelled task) cancels only its own. A record names its campaign's
destination by id; destinations are cached in process too, so a miss costs one round trip
unless the destination is cold.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from typing import cast

from redirector.cache import ABSENT, LinkCache
from redirector.metrics import COUNTS
from redirector.store.connection import Store
from redirector.store.keys import CODE_PATTERN
from redirector.store.lookup import LinkReader
from redirector.store.record import Destination, Link, Record, RecordError, decode_links
from redirector.store.record import decode_destination as decode_target

# Anything that could never be a code is answered 404 without touching Redis or the cache,
# so a scan of junk paths neither loads Redis nor evicts real links.
_CODE = re.compile(CODE_PATTERN)
# Codes per read at most: Redis runs a script call to its end before anything else (~2.5 µs a
# code), and a read that waited long (Redis slow to answer) may have gathered many misses.
READ_BATCH = 1_000

Waiters = dict[str, list[asyncio.Future[Link | None]]]
_Lost = dict[tuple[int, str], RecordError]


class LinkResolver:
    def __init__(self, redis: Store, cache: LinkCache) -> None:
        self._reader = LinkReader(redis)
        self._cache = cache
        self._destinations = cache.destinations
        self._pending: Waiters = {}
        self._reading: asyncio.Task[None] | None = None

    async def find(self, code: str) -> Link | None:
        """The link of `code`, or None: from the cache, else from Redis with the other waiting
        misses. Raises RedisError, or RecordError for a record or destination that cannot be
        read."""
        hit = self._cache.get(code, time.monotonic())
        if hit is not None:
            COUNTS.cache_hits += 1
            return None if hit is ABSENT else hit  # type: ignore[return-value]
        COUNTS.cache_misses += 1
        if _CODE.fullmatch(code) is None:
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Link | None] = loop.create_future()
        waiting = self._pending.get(code)
        if waiting is not None:
            waiting.append(future)
        else:
            self._pending[code] = [future]
            if self._reading is None:
                self._reading = loop.create_task(self._read())
        return await future

    async def _read(self) -> None:
        """Read the waiting codes, READ_BATCH at a time, until none is left."""
        batch: Waiters = {}
        try:
            while self._pending:
                batch = self._take()
                try:
                    await self._resolve(batch)
                except Exception as exc:
                    # Redis away, a corrupt record: no request may be left waiting on a future
                    # nobody will resolve.
                    _fail(batch, exc)
        except BaseException as exc:  # cancelled (shutdown): nobody reads the rest either
            pending, self._pending = self._pending, {}
            _fail(batch | pending, exc)
            raise
        finally:
            self._reading = None

    def _take(self) -> Waiters:
        """The oldest READ_BATCH waiting codes (all of them, usually), no longer waiting."""
        pending = self._pending
        if len(pending) <= READ_BATCH:
            self._pending = {}
            return pending
        return {code: pending.pop(code) for code in list(pending)[:READ_BATCH]}

    async def _resolve(self, batch: Waiters) -> None:
        cache = self._cache
        generation = cache.generation
        now = time.monotonic()
        codes = list(batch)
        read = decode_links(await self._reader.records(codes), self._destinations.get)
        links, errors = cast(list[Link | None], read), cast(dict[str, RecordError], {})
        if Record in map(type, read):  # not all plain links with their destination cached
            links, errors = await self._complete(codes, read)
        # An invalidation that arrived while Redis answered may concern these very records:
        # caching the answers could then pin old versions, so only cache when none did.
        if cache.generation == generation:
            answered: Iterable[tuple[str, Link | None]] = zip(codes, links, strict=True)
            if errors:  # only the codes whose destination is gone fail; the rest resolves
                answered = ((code, link) for code, link in answered if code not in errors)
            cache.put_all(answered, now)
        for code, futures, link in zip(codes, batch.values(), links, strict=True):
            error = errors.get(code) if errors else None
            for future in futures:
                if future.done():  # its request went away
                    continue
                if error is None:
                    future.set_result(link)
                else:
                    future.set_exception(error)

    async def _complete(
        self, codes: list[str], read: list[Link | Record | None]
    ) -> tuple[list[Link | None], dict[str, RecordError]]:
        """The links of `codes` as read, each `Record` made a link with its destination (read
        if not cached yet); a tombstone or an alias is no link (None: 404 like an unknown
        code). And the error of each code whose destination Redis does not hold."""
        records = {index: r for index, r in enumerate(read) if isinstance(r, Record) and r.live}
        lost = await self._load_destinations(list(records.values()))
        links = [None if isinstance(link, Record) else link for link in read]
        errors: dict[str, RecordError] = {}
        for index, record in records.items():
            error = lost.get((record.campaign_id, record.destination))  # type: ignore[arg-type]
            if error is None:
                links[index] = record.link(self._destination(record))
            else:
                errors[codes[index]] = error
        return links, errors

    def _destination(self, record: Record) -> Destination | None:
        target = record.destination
        if isinstance(target, Destination) or record.campaign_id is None:
            return None
        return self._destinations.get(record.campaign_id, target)

    async def _load_destinations(self, records: list[Record]) -> _Lost:
        """Reads the destinations the records refer to that are not cached yet; returns an
        error for each one Redis does not hold."""
        missing = list({
            (r.campaign_id, r.destination)
            for r in records
            if isinstance(r.destination, str) and r.campaign_id is not None
            and self._destinations.get(r.campaign_id, r.destination) is None
        })  # fmt: skip
        if not missing:
            return {}
        lost: _Lost = {}
        for (campaign_id, destination_id), raw in zip(
            missing, await self._reader.destinations(missing), strict=True
        ):
            if raw is None:
                text = f"campaign {campaign_id} has no destination {destination_id}"
                lost[campaign_id, destination_id] = RecordError(text)
            else:
                self._destinations.put(campaign_id, destination_id, decode_target(raw))
        return lost


def _fail(batch: Waiters, error: BaseException) -> None:
    for futures in batch.values():
        for future in futures:
            if not future.done():
                future.set_exception(error)
