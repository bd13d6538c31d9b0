"""The click worker: raw hits from the queues to the click counters, exactly once.

`python -m redirector` runs one (CLICK_WORKERS) beside its redirect workers and restarts it
if it dies; `python -m redirector.clickworker` runs one on its own (with CLICK_WORKERS=0 on
the redirectors). Any number may run, on one Redis or a cluster: a worker claims a chunk of
a queue (redirector/store/hitqueue.py says how that makes every hit count once), turns its
hits into FLUSH_CLICKS batches per campaign, in parts of at most 25 links and 250 hits
(redirector/clickbatch.py), applies them, and trims the chunk off the queue. It looks at
every queue each round, one chunk from each that has hits, and waits `interval` when none
had. A worker that dies holding a chunk holds it
until its lease expires; another worker then applies it again, and what was applied before
is skipped. On SIGTERM it finishes its round and drains the queues before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence

from redis.exceptions import RedisError

from redirector import metrics
from redirector.clickbatch import batches, part_flusher, part_number
from redirector.orphaned import stop_when_orphaned
from redirector.settings import Settings
from redirector.store.connection import NO_WAIT, Durability, SettingsError, Store, connect
from redirector.store.flush import FlushClicksScript
from redirector.store.flushbatch import ClickBatch
from redirector.store.hitqueue import Chunk, HitQueue, queue_lengths
from redirector.store.keys import CLICK_SALT_KEY, HIT_QUEUES
from redirector.store.scripts import call_each
from redirector.store.secret import SharedSecret

log = logging.getLogger(__name__)

# A chunk is the head of a queue up to this many bytes (about 5,000 hits), applied in parts
# (clickbatch.py): claiming and trimming are amortised over the chunk.
CHUNK_BYTES = 1_000_000
CHUNK_ELEMENTS = 256
# No request waits on a worker, and a chunk's script calls take a while: a short timeout
# would only make it apply them again.
WORKER_REDIS_TIMEOUT = 5.0


class ClickWorker:
    def __init__(
        self,
        redis: Store,
        *,
        stream_maxlen: int,
        durability: Durability = NO_WAIT,
        salt: bytes | None = None,
        interval: float = 0.1,
        lease: float = 10.0,
        queues: Sequence[int] = range(HIT_QUEUES),
    ) -> None:
        self._redis = redis
        self._queue = HitQueue(redis, durability)
        self._flush = FlushClicksScript(redis, durability, metrics.CLICK_CALLS_SENT_BACK.inc)
        self._stream_maxlen = stream_maxlen
        self._salt = salt
        # One salt for every process, so that the same person hashes the same in all of them
        # (and no raw IP is ever stored); made by the first to ask, unless given.
        self._shared_salt = SharedSecret(redis, CLICK_SALT_KEY, 16, durability)
        self._interval = interval
        self._lease_ms = max(1, int(lease * 1000))
        self._queues = list(queues)
        self.id = secrets.token_hex(8)
        self.recorded = 0
        self.bot_hits = 0
        self.errors = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set (or cancelled); on a Redis error wait and go on."""
        while not stop.is_set():
            try:
                done = await self.work_once()
            except (RedisError, OSError) as exc:
                self._failed(exc)
                done = 0
                await asyncio.sleep(min(1.0, self._interval * 5))
            if not done:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await stop.wait()

    async def drain(self, within: float) -> None:
        """Work until no queue has hits left for this worker, or `within` seconds passed."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    if not await self.work_once():
                        return
            except (RedisError, OSError, TimeoutError) as exc:
                self._failed(exc)
                await asyncio.sleep(0.2)
        log.error("click worker stopping with hits left in the queues")

    async def work_once(self) -> int:
        """One chunk from every queue that has hits; returns how many chunks were done.
        Raises the first error once the other queues' chunks went through."""
        lengths = await queue_lengths(self._redis, self._queues)
        waiting = [queue for queue, length in zip(self._queues, lengths, strict=True) if length]
        results = await call_each(self._one_chunk(queue) for queue in waiting)
        errors = [result for result in results if isinstance(result, Exception)]
        if errors:
            raise errors[0]
        return sum(1 for result in results if result)

    async def _one_chunk(self, queue: int) -> bool:
        """Claim, apply and trim one chunk of `queue`; False if there was none for us."""
        chunk = await self._queue.claim(
            queue,
            self.id,
            lease_ms=self._lease_ms,
            budget=CHUNK_BYTES,
            most=CHUNK_ELEMENTS,
            epoch=self.id,
        )
        if chunk is None:
            return False
        await self._apply(chunk)
        await self._queue.ack(chunk, self.id)
        return True

    async def _apply(self, chunk: Chunk) -> None:
        found = batches(chunk.elements, await self._salt_bytes())
        results = await call_each(self._parts(chunk, parts) for parts in found.by_campaign.values())
        for result in results:
            if isinstance(result, Exception):
                raise result  # the chunk stays claimed: applied again, what went through skipped
        self.recorded += found.hits
        self.bot_hits += found.bots
        metrics.CLICKS_RECORDED.inc(found.hits)
        metrics.BOT_HITS.inc(found.bots)

    async def _parts(self, chunk: Chunk, parts: list[ClickBatch]) -> None:
        """A campaign's parts of `chunk`, one call each, in order: a part is applied only
        once the parts before it were (its number is higher, and FLUSH_CLICKS skips a number
        not above the last one applied)."""
        flusher = part_flusher(chunk.flusher)
        for index, part in enumerate(parts):
            number = part_number(chunk.number, index)
            await self._flush(part, self._stream_maxlen, flusher, number)

    async def _salt_bytes(self) -> bytes:
        if self._salt is None:
            self._salt = await self._shared_salt.value()
        return self._salt

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        metrics.REDIS_ERRORS_CLICK_WORKER.inc()
        log.warning("click worker: %s; trying again", exc)


def worker_for(redis: Store, settings: Settings) -> ClickWorker:
    """A worker as the settings describe it, on `redis` connected with WORKER_REDIS_TIMEOUT
    (its writes wait for replicas as a link write, within that timeout)."""
    return ClickWorker(
        redis,
        stream_maxlen=settings.click_stream_maxlen,
        durability=settings.durability.within(WORKER_REDIS_TIMEOUT),
        salt=settings.click_salt.encode() if settings.click_salt else None,
        interval=settings.click_flush_interval,
        lease=settings.click_worker_lease,
    )


async def work(settings: Settings) -> None:
    """Run one worker until SIGTERM or SIGINT (or, under the supervisor, until the supervisor
    is gone), then drain."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            loop.add_signal_handler(signum, stop.set)
    stop_when_orphaned(stop)
    redis = connect(
        settings.redis_url, timeout=WORKER_REDIS_TIMEOUT, cluster=settings.redis_cluster
    )
    try:
        worker = worker_for(redis, settings)
        await worker.run(stop)
        await worker.drain(within=settings.click_drain_timeout)
        log.info("click worker %s stopped: %d hits recorded", worker.id, worker.recorded)
    finally:
        await redis.aclose()


# Under the supervisor, a click worker shares the machine with the redirect workers: it
# yields the CPU to them (counting can wait, a redirect cannot) and catches up when idle.
SUPERVISED_NICENESS = 10


def serve_clicks(settings: Settings, *, supervised: bool = False) -> None:
    """A worker process. Under the supervisor it runs at a lower priority and ignores SIGINT
    (a Ctrl-C reaches every process of the terminal): it is stopped with SIGTERM once the
    redirect workers have flushed, so that it records their last hits."""
    if supervised:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.nice(SUPERVISED_NICENESS)
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(work(settings))


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main() -> None:
    """`python -m redirector.clickworker`: the only place here that reads the environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        sys.exit(f"click worker: {exc}")
    print("click worker started", flush=True)
    serve_clicks(settings)


if __name__ == "__main__":
    main()
