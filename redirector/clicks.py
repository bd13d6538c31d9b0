"""Click recording that costs the redirect nothing and loses nothing.

The redirect handler only appends a tuple to `ClickBuffer` (no I/O, no parsing). A
`ClickFlusher` task writes the buffer to Redis every `interval` seconds, or as soon as
`flush_size` hits are waiting, in one round trip per batch: a Lua script
(redirector/store/scripts.py) that appends each hit to its campaign's click stream and adds
the counters (summed per key and field), HyperLogLogs and first clicks.

If Redis is unreachable, hits stay buffered, up to `max_buffered`; beyond that new hits are
dropped and counted (`dropped`). On shutdown the buffer is flushed before the process exits.
A flush that fails before Redis runs the script is retried whole, without double counting;
the one case that can count a batch twice is Redis applying it and the reply being lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from typing import NamedTuple
from urllib.parse import urlsplit

from redis.exceptions import RedisError

from redirector import metrics
from redirector.store.connection import Store
from redirector.store.keys import CLICK_SALT_KEY
from redirector.store.scripts import ClickBatch, FlushClicksScript
from redirector.useragents import classify

log = logging.getLogger(__name__)


class Hit(NamedTuple):
    code: str
    campaign_id: int | None
    recipient: str | None
    at: float  # unix time
    head: bool
    user_agent: str
    referer: str
    ip: str


class ClickBuffer:
    """What the hot path touches: a list append and a length check."""

    def __init__(self, max_buffered: int, flush_size: int) -> None:
        self.max_buffered = max_buffered
        self.flush_size = flush_size
        self.hits: list[Hit] = []
        self.dropped = 0
        self.ready = asyncio.Event()

    def add(self, hit: Hit) -> None:
        hits = self.hits
        if len(hits) >= self.max_buffered:
            self.dropped += 1
            metrics.CLICKS_DROPPED.inc()
            return
        hits.append(hit)
        if len(hits) == self.flush_size:
            self.ready.set()


def referer_host(referer: str) -> str:
    if not referer:
        return ""
    try:
        host = urlsplit(referer).hostname or ""
    except ValueError:
        return ""
    return host[:253]


class ClickFlusher:
    def __init__(
        self,
        redis: Store,
        buffer: ClickBuffer,
        *,
        interval: float,
        stream_maxlen: int,
        salt: bytes | None = None,
        max_batch: int = 5_000,
    ) -> None:
        self._redis = redis
        self._buffer = buffer
        self._interval = interval
        self._stream_maxlen = stream_maxlen
        self._salt = salt
        self._max_batch = max_batch
        self._flush = FlushClicksScript(redis)
        self.flushed = 0
        self.bot_hits = 0
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
        hits = self._buffer.hits[: self._max_batch]
        if not hits:
            return 0
        await self._write(hits)
        # Only now, after Redis took them: hits appended meanwhile stay at the end.
        del self._buffer.hits[: len(hits)]
        self.flushed += len(hits)
        metrics.CLICKS_FLUSHED.inc(len(hits))
        return len(hits)

    async def _salt_bytes(self) -> bytes:
        if self._salt is None:
            # One salt for every process, made by whichever asks first, so that the same
            # person hashes the same in all of them (and no raw IP is ever stored).
            await self._redis.set(CLICK_SALT_KEY, secrets.token_hex(16), nx=True)
            stored = await self._redis.get(CLICK_SALT_KEY)
            if stored is None:
                raise RedisError("click salt vanished")
            self._salt = stored if isinstance(stored, bytes) else stored.encode()
        return self._salt

    async def _write(self, hits: list[Hit]) -> None:
        salt = await self._salt_bytes()
        batch, bots = _batch(hits, salt)
        await self._flush(batch, self._stream_maxlen)
        self.bot_hits += bots
        metrics.BOT_HITS.inc(bots)


def _batch(hits: list[Hit], salt: bytes) -> tuple[ClickBatch, int]:
    """The script's input (see redirector/store/scripts.py) and how many hits are bots."""
    batch = ClickBatch()
    out = batch.hit_lines
    bots = 0
    blake2b = hashlib.blake2b
    for hit in hits:
        agent = classify(hit.user_agent)
        bot = hit.head or agent.bot
        bots += bot
        person = f"{hit.ip}\0{hit.user_agent}".encode()
        digest = blake2b(person, key=salt, digest_size=8).hexdigest()
        out.append(
            "\t".join(
                (
                    hit.code,
                    batch.link(hit.code),
                    batch.campaign(hit.campaign_id),
                    hit.recipient or "",
                    str(int(hit.at * 1000)),
                    "1" if bot else "0",
                    _one_line(hit.user_agent[:512]),
                    referer_host(hit.referer),
                    digest,
                    agent.device,
                    _one_line(agent.os),
                    _one_line(agent.browser),
                )
            )
        )
    return batch, bots


def _one_line(text: str) -> str:
    # Header values may hold a tab; the script splits on tabs and newlines.
    return text.replace("\t", " ").replace("\n", " ") if "\t" in text or "\n" in text else text
