"""Click recording that costs the redirect nothing and loses nothing.

The redirect handler only appends a tuple to `ClickBuffer` (no I/O, no parsing). A
`ClickFlusher` task writes the buffer to Redis every `interval` seconds, or as soon as
`flush_size` hits are waiting, in one MULTI/EXEC round trip per batch: an XADD per hit to the
campaign's click stream, and the counters pre-aggregated in Python (one HINCRBY per distinct
key and field, one PFADD per HyperLogLog, one ZADD NX per campaign's clickers).

If Redis is unreachable, hits stay buffered, up to `max_buffered`; beyond that new hits are
dropped and counted (`dropped`). On shutdown the buffer is flushed before the process exits.
MULTI/EXEC makes a batch all-or-nothing, so a failed flush is retried whole without double
counting (unless Redis applied it and only the reply was lost, which is reported as an error
and retried: the one case that can count a batch twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections import Counter, defaultdict
from typing import NamedTuple
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from redirector import metrics
from redirector.links import (
    BOTS,
    BREAKDOWNS,
    CLICK_SALT_KEY,
    CLICKS,
    DAY,
    HOUR,
    campaign_stats_key,
    campaign_uniques_key,
    click_stream_key,
    clickers_key,
    day_field,
    hour_field,
    link_stats_key,
    link_uniques_key,
)
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
        redis: Redis,
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
        self.flushed = 0
        self.bot_hits = 0
        self.errors = 0

    async def run(self) -> None:
        """Flush until cancelled; on a Redis error keep the hits and try again later."""
        buffer = self._buffer
        while True:
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
        batch = _Batch(await self._salt_bytes())
        for hit in hits:
            batch.add(hit)
        async with self._redis.pipeline(transaction=True) as pipe:
            batch.queue(pipe, self._stream_maxlen)
            await pipe.execute()
        self.bot_hits += batch.bots
        metrics.BOT_HITS.inc(batch.bots)


class _Batch:
    """One flush: stream events as they come, counters summed per key and field."""

    def __init__(self, salt: bytes) -> None:
        self._salt = salt
        self.bots = 0
        self._events: list[tuple[str, dict[FieldT, EncodableT]]] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._uniques: defaultdict[str, set[str]] = defaultdict(set)
        self._clickers: defaultdict[int, dict[str, int]] = defaultdict(dict)

    def add(self, hit: Hit) -> None:
        agent = classify(hit.user_agent)
        bot = hit.head or agent.bot
        self.bots += bot
        ref = referer_host(hit.referer)
        person = f"{hit.ip}\0{hit.user_agent}".encode()
        digest = hashlib.blake2b(person, key=self._salt, digest_size=8).hexdigest()
        at_ms = int(hit.at * 1000)
        event: dict[FieldT, EncodableT] = {
            "code": hit.code,
            "r": hit.recipient or "",
            "t": at_ms,
            "ua": hit.user_agent[:512],
            "ref": ref,
            "h": digest,
            "bot": "1" if bot else "0",
        }
        self._events.append((click_stream_key(hit.campaign_id), event))
        at = int(hit.at)
        fields = [
            BOTS if bot else CLICKS,
            hour_field(at // HOUR, bot=bot),
            day_field(at // DAY, bot=bot),
        ]
        if not bot:
            fields += (
                BREAKDOWNS["device"] + agent.device,
                BREAKDOWNS["os"] + agent.os,
                BREAKDOWNS["browser"] + agent.browser,
            )
            if ref:
                fields.append(BREAKDOWNS["referer"] + ref)
            self._count_unique(hit, digest, at_ms)
        keys = [link_stats_key(hit.code)]
        if hit.campaign_id is not None:
            keys.append(campaign_stats_key(hit.campaign_id))
        for key in keys:
            for field in fields:
                self._counts[key, field] += 1

    def _count_unique(self, hit: Hit, digest: str, at_ms: int) -> None:
        """Per recipient when the link has one (exact: a link's clicks > 0, a campaign's
        clickers set), else per salted IP+UA hash in a HyperLogLog."""
        if hit.recipient is not None:
            if hit.campaign_id is not None:
                self._clickers[hit.campaign_id].setdefault(hit.recipient, at_ms)
            return
        self._uniques[link_uniques_key(hit.code)].add(digest)
        if hit.campaign_id is not None:
            self._uniques[campaign_uniques_key(hit.campaign_id)].add(digest)

    def queue(self, pipe: Pipeline, stream_maxlen: int) -> None:
        for stream, event in self._events:
            pipe.xadd(stream, event, maxlen=stream_maxlen, approximate=True)
        for (key, field), n in self._counts.items():
            pipe.hincrby(key, field, n)
        for key, members in self._uniques.items():
            pipe.pfadd(key, *members)
        for campaign_id, first_clicks in self._clickers.items():
            # NX: a recipient's first click stays their first click.
            pipe.zadd(clickers_key(campaign_id), dict(first_clicks), nx=True)
