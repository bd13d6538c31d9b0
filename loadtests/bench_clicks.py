"""Click accounting for the benchmark: did the redirector record every 302 wrk got?

The redirector buffers hits and flushes them every 100 ms, so the counters are read only once
they have stopped changing: right before the measured run (the warm-up's hits flushed) and
after it. The increase of the campaign's `clicks` + `bots` counters over the run is compared
with wrk's count of 302s (see `bench_report.ClickCount`).

    Recorded                 the campaign's click and bot-hit counters at one moment
    read_recorded(...)       -> Recorded, from the campaign stats hash
    settle(read, ...)        read until the value stops changing -> (value, settled)
    counted_run_seconds(...) how long a measured run must last to exceed N requests
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import NamedTuple, TypeVar

from redis.asyncio import Redis

from redirector.store.keys import BOTS, CLICKS, campaign_stats_key

T = TypeVar("T")

# The flusher writes every 100 ms (CLICK_FLUSH_INTERVAL) and retries a failed flush after
# 0.5 s: counters unchanged for a whole second have nothing left to flush.
POLL_SECONDS = 0.1
QUIET_POLLS = 10
# Give up after about 10 s of polling; the row then reports that the counts had not settled.
MAX_POLLS = 100
# A counted run lasts long enough for this many times the requests it needs at the warm-up's
# rate (throughput varies a little from run to run), but never longer than the bound.
RUN_MARGIN = 1.25
MAX_COUNTED_SECONDS = 60.0


class Recorded(NamedTuple):
    clicks: int
    bots: int


async def read_recorded(redis: Redis, campaign_id: int) -> Recorded:
    clicks, bots = await redis.hmget(campaign_stats_key(campaign_id), [CLICKS, BOTS])
    return Recorded(int(clicks or 0), int(bots or 0))


async def settle(
    read: Callable[[], Awaitable[T]],
    *,
    poll_seconds: float = POLL_SECONDS,
    quiet_polls: int = QUIET_POLLS,
    max_polls: int = MAX_POLLS,
) -> tuple[T, bool]:
    """Read every `poll_seconds` until `quiet_polls` reads in a row have found the same value;
    return it and True, or after `max_polls` reads the last value and False."""
    value = await read()
    unchanged = 0
    for _ in range(max_polls):
        if unchanged >= quiet_polls:
            return value, True
        await asyncio.sleep(poll_seconds)
        latest = await read()
        unchanged = unchanged + 1 if latest == value else 0
        value = latest
    return value, unchanged >= quiet_polls


def counted_run_seconds(
    duration: float,
    warmup_rate: float | None,
    min_requests: int,
    *,
    margin: float = RUN_MARGIN,
    bound: float = MAX_COUNTED_SECONDS,
) -> float:
    """Seconds of a measured run expected to exceed `min_requests` at `warmup_rate` req/s (with
    `margin`): never shorter than `duration`, never longer than `bound`. Without a rate (no
    warm-up) or a minimum (--quick), just `duration`."""
    if min_requests <= 0 or not warmup_rate:
        return duration
    needed = float(math.ceil(min_requests * margin / warmup_rate))
    return max(duration, min(bound, needed))
