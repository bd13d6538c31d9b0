"""Click recording in the redirect process: an append per hit, one Redis command per flush.

The redirect handler only appends a `Hit` to `ClickBuffer` (no I/O, no parsing). A
`ClickFlusher` task ships the buffer every `interval` seconds, or as soon as `flush_size`
hits are waiting: the oldest hits (up to `max_batch`) packed as one JSON array by orjson
(~0.2 µs a hit) and pushed as one element to this process's raw-hit queue
(redirector/store/hitqueue.py). Nothing else happens here: the click worker
(redirector/clickworker.py) classifies user agents, hashes visitors and updates the
counters, in another process.

If Redis is unreachable, hits stay buffered, up to `max_buffered`; beyond that new hits are
dropped and counted (`dropped`). On shutdown the buffer is flushed before the process exits.
A flush stays in the buffer until Redis took it; a flush that failed is sent again, the same
hits under the same number, and the queue takes a number once: so a flush whose reply was
lost is not queued twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
from redis.exceptions import RedisError

from redirector import metrics
from redirector.store.hitqueue import HitQueue
from redirector.store.keys import HIT_QUEUES

log = logging.getLogger(__name__)


# What a hit keeps of what the visitor sent, in characters: the redirect handler cuts the
# headers (aiohttp takes up to 8 KB each) and the client address to these before queueing,
# and the click worker parses no longer a User-Agent (redirector/useragents.py).
USER_AGENT_MAX, REFERER_MAX, ADDRESS_MAX = 512, 1024, 64


class Hit(NamedTuple):
    """One redirect to record. Its fields, in this order, are the raw-hit queue's format.
    The redirect handler appends them as plain tuples (`RawHit`): made in half the time,
    packed without a conversion, and out of the garbage collector's sight once it has seen
    them (CPython stops tracking an exact tuple of strings and numbers, never a subclass's)."""

    code: str
    campaign_id: int | None
    recipient: str | None
    # Of the link tapped: tells it from another link given the same (custom) code since.
    link_created_at: int
    at: float  # unix time
    head: bool
    user_agent: str
    referer: str
    ip: str


# A `Hit` as the redirect handler appends it: the same fields, a plain tuple.
RawHit = tuple[str, int | None, str | None, int, float, bool, str, str, str]


class ClickBuffer:
    """What the hot path touches: a list append and a length check."""

    def __init__(self, max_buffered: int, flush_size: int) -> None:
        self.max_buffered = max_buffered
        self.flush_size = flush_size
        self.hits: list[RawHit] = []
        self.dropped = 0
        self.ready = asyncio.Event()

    def add(self, hit: RawHit) -> None:
        hits = self.hits
        if len(hits) >= self.max_buffered:
            self.dropped += 1
            metrics.CLICKS_DROPPED.inc()
            return
        hits.append(hit)
        if len(hits) == self.flush_size:
            self.ready.set()


def pack_hits(hits: Sequence[RawHit]) -> bytes:
    """The queue's element for `hits`: a JSON array of their fields (orjson, in C; a `Hit`
    goes through `default`, which makes it a plain tuple)."""
    try:
        return orjson.dumps(hits, default=tuple)
    except orjson.JSONEncodeError:
        # A header with bytes that are not UTF-8 reaches us as lone surrogates, which JSON
        # cannot carry: those become U+FFFD (rare, so the common case pays nothing).
        return orjson.dumps([tuple(_utf8(field) for field in hit) for hit in hits])


def _utf8(field: Any) -> Any:
    if isinstance(field, str):
        return field.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return field


class ClickFlusher:
    def __init__(
        self,
        queue: HitQueue,
        buffer: ClickBuffer,
        *,
        interval: float,
        max_batch: int = 5_000,
        queue_index: int | None = None,
    ) -> None:
        self._queue = queue
        self._buffer = buffer
        self._interval = interval
        self._max_batch = max_batch
        # One queue per process, so that its flushes are taken in the order they were sent;
        # processes pick theirs at random, which spreads them over a cluster's nodes.
        self.queue_index = random.randrange(HIT_QUEUES) if queue_index is None else queue_index
        self._id = secrets.token_hex(8)
        self._number = 0
        # The flush being sent, kept until Redis took it: (number, hits, packed hits).
        self._sending: tuple[int, int, bytes] | None = None
        self.flushed = 0
        self.errors = 0

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Flush until cancelled or `stop` is set; on a Redis error keep the hits and try
        again later. (What is left at the end is for `drain`.)"""
        buffer = self._buffer
        stop = stop or asyncio.Event()
        while not stop.is_set():
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that lands as its timeout fires, and then shutdown would wait
            # on this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await buffer.ready.wait()
            buffer.ready.clear()
            try:
                while await self.flush_once() >= self._buffer.flush_size:
                    pass  # more than one batch waiting: keep going without sleeping
            except (RedisError, OSError) as exc:
                self.errors += 1
                metrics.REDIS_ERRORS_CLICKS.inc()
                log.warning("click flush failed (%s); %d hits kept", exc, len(buffer.hits))
                await asyncio.sleep(min(1.0, self._interval * 5))
            finally:
                metrics.CLICKS_BUFFERED.set(len(buffer.hits))

    async def drain(self, within: float) -> None:
        """Flush everything buffered (used at shutdown), giving up after `within` seconds."""
        deadline = time.monotonic() + within
        while self._buffer.hits and time.monotonic() < deadline:
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    await self.flush_once()
            except (RedisError, OSError, TimeoutError) as exc:
                self.errors += 1
                log.warning("click flush at shutdown failed (%s); retrying", exc)
                await asyncio.sleep(0.2)
        if self._buffer.hits:
            log.error("shutting down with %d clicks not recorded", len(self._buffer.hits))

    async def flush_once(self) -> int:
        """Push the oldest hits as one element; returns how many. On an error (or a
        cancellation) they stay first in the buffer and are sent again as they were."""
        hits = self._buffer.hits
        if self._sending is None:
            if not hits:
                return 0
            count = min(len(hits), self._max_batch)
            self._number += 1
            self._sending = (self._number, count, pack_hits(hits[:count]))
        number, count, packed = self._sending
        await self._queue.push(self.queue_index, self._id, number, packed)
        # Only now, after Redis took them: hits appended meanwhile stay.
        del hits[:count]
        self._sending = None
        self.flushed += count
        metrics.CLICKS_FLUSHED.inc(count)
        return count
