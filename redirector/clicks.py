"""Click recording that costs the redirect nothing and loses nothing.

The redirect handler only appends a tuple to `ClickBuffer` (no I/O, no parsing). A
`ClickFlusher` task writes the buffer to Redis every `interval` seconds, or as soon as
`flush_size` hits are waiting: one call per campaign of a Lua script
(redirector/store/flush.py) that appends each hit to its campaign's click stream and adds
the counters (summed per key and field), HyperLogLogs and first clicks. The calls of one
flush go out together; each touches the keys of one campaign (one slot on a cluster).

If Redis is unreachable, hits stay buffered, up to `max_buffered`; beyond that new hits are
dropped and counted (`dropped`). On shutdown the buffer is flushed before the process exits.
A campaign's batch that fails stays buffered and is sent again with its number, and the
script skips a number it has applied: so a batch whose reply was lost is not counted twice,
and one failing campaign neither loses nor recounts the others' hits.
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
from redirector.store.connection import NO_WAIT, Durability, Store
from redirector.store.flush import ClickBatch, FlushClicksScript
from redirector.store.keys import CLICK_SALT_KEY
from redirector.store.scripts import call_each
from redirector.store.secret import SharedSecret
from redirector.useragents import classify

log = logging.getLogger(__name__)


class Hit(NamedTuple):
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
        durability: Durability = NO_WAIT,
    ) -> None:
        self._buffer = buffer
        self._interval = interval
        self._stream_maxlen = stream_maxlen
        self._salt = salt
        # One salt for every process, so that the same person hashes the same in all of them
        # (and no raw IP is ever stored); made by the first to ask, unless given.
        self._shared_salt = SharedSecret(redis, CLICK_SALT_KEY, 16, durability)
        self._max_batch = max_batch
        self._flush = FlushClicksScript(redis, durability)
        # The flush records (f:{C}) keep, per flusher id, the last batch number applied.
        self._id = secrets.token_hex(8)
        self._number = 0
        # Campaign -> (number, hits) of its batch that failed, sent again as it was.
        self._failed: dict[int | None, tuple[int, int]] = {}
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
        """Send the oldest hits, one batch per campaign; returns how many were written.
        Raises the first error after the others went through; the failed hits stay."""
        if not self._buffer.hits:
            return 0
        salt = await self._salt_bytes()
        hits = self._buffer.hits  # only appended to while the scripts run
        groups, scanned = self._groups(hits)
        # Each batch counts as unconfirmed until its reply is in: if this flush is cancelled
        # (shutdown, drain's timeout) after some scripts ran, the next one sends the same hits
        # under the same numbers, and `f:{C}` skips the batches already applied.
        for campaign, (number, group) in groups.items():
            self._failed[campaign] = (number, len(group))
        results = await call_each(
            self._write(campaign, number, [hits[i] for i in group], salt)
            for campaign, (number, group) in groups.items()
        )
        written = [False] * scanned
        failure: Exception | None = None
        for (campaign, (_, group)), result in zip(groups.items(), results, strict=True):
            if isinstance(result, Exception):
                failure = failure or result
                continue
            self._failed.pop(campaign, None)
            for i in group:
                written[i] = True
        # Only now, after Redis took them: hits appended meanwhile stay at the end.
        hits[:scanned] = [h for h, done in zip(hits[:scanned], written, strict=True) if not done]
        count = sum(written)
        self.flushed += count
        metrics.CLICKS_FLUSHED.inc(count)
        if failure is not None:
            raise failure
        return count

    def _groups(self, hits: list[Hit]) -> tuple[dict[int | None, tuple[int, list[int]]], int]:
        """Campaign -> (batch number, indices of its hits), and how many hits were looked at.
        A campaign whose last batch failed sends that batch again, its oldest hits under the
        same number, and nothing newer, so that its numbers are applied in order. The others
        share `max_batch` new hits, looked for past the held-back ones: a failing campaign
        never holds the others back. The scan stops once both are found."""
        groups: dict[int | None, tuple[int, list[int]]] = {}
        retry_left = {campaign: size for campaign, (_, size) in self._failed.items()}
        retries_missing, new_left, scanned = sum(retry_left.values()), self._max_batch, 0
        for scanned, hit in enumerate(hits, 1):
            campaign = hit.campaign_id
            left = retry_left.get(campaign)
            if left is None and new_left:
                new_left -= 1
            elif left:
                retry_left[campaign], retries_missing = left - 1, retries_missing - 1
            else:
                continue  # a held-back hit, or no room left for new ones
            if campaign not in groups:
                retry = self._failed.get(campaign)
                groups[campaign] = (retry[0] if retry else self._next_number()), []
            groups[campaign][1].append(scanned - 1)
            if not new_left and not retries_missing:
                break
        return groups, scanned

    def _next_number(self) -> int:
        self._number += 1
        return self._number

    async def _salt_bytes(self) -> bytes:
        if self._salt is None:
            self._salt = await self._shared_salt.value()
        return self._salt

    async def _write(
        self, campaign_id: int | None, number: int, hits: list[Hit], salt: bytes
    ) -> None:
        batch, bots = _batch(campaign_id, hits, salt)
        await self._flush(batch, self._stream_maxlen, self._id, number)
        self.bot_hits += bots
        metrics.BOT_HITS.inc(bots)


def _batch(campaign_id: int | None, hits: list[Hit], salt: bytes) -> tuple[ClickBatch, int]:
    """The script's input for one campaign's hits (redirector/store/flush.py), and how many
    of them are bots."""
    batch = ClickBatch(campaign_id)
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
                    hit.recipient or "",
                    str(int(hit.at * 1000)),
                    "1" if bot else "0",
                    _one_line(hit.user_agent[:512]),
                    referer_host(hit.referer),
                    digest,
                    agent.device,
                    _one_line(agent.os),
                    _one_line(agent.browser),
                    str(hit.link_created_at),
                )
            )
        )
    return batch, bots


def _one_line(text: str) -> str:
    # Header values may hold a tab; the script splits on tabs and newlines.
    return text.replace("\t", " ").replace("\n", " ") if "\t" in text or "\n" in text else text
