"""Prometheus metrics of the redirector (prometheus-client).

What every redirect counts (answers by status, cache lookups, the handler's time) is kept as
plain integers in `COUNTS`: an attribute increment per request, where a prometheus-client
metric takes a lock (and, with several workers, writes a shared file). A scrape reads them:
`RedirectCollector` turns them into the same metric families at collection time.

With several worker processes each one writes its metrics to files under
PROMETHEUS_MULTIPROC_DIR (set up by the supervisor, `redirector.server`), and whichever worker
answers a scrape adds them all up. There each worker folds its integers into those files
(`fold`) every FOLD_INTERVAL seconds, when it stops and before it answers a scrape: the totals
stay correct whatever process serves /metrics, the other workers' at most that much behind.
The rarer events (clicks flushed or dropped, Redis errors) use prometheus-client directly.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

REDIRECTS = ("smslinks_redirects", "Answers to GET/HEAD /{code}, by HTTP status")
CACHE = ("smslinks_cache_lookups", "In-process cache lookups")
LATENCY = ("smslinks_redirect_seconds", "Time spent answering GET/HEAD /{code}, inside the handler")
# Finer around 1-5 ms, where the redirect's latency targets are (README, Performance).
LATENCY_BUCKETS = (
    *(0.0001, 0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005),
    *(0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
)
# FOLD_INTERVAL bounds how far behind a multi-worker scrape sees the other workers.
FOLD_INTERVAL = 1.0


class RedirectCounts:
    """The redirect path's counters, as plain integers of this process."""

    __slots__ = (
        "cache_hits",
        "cache_misses",
        "found",
        "gone",
        "latency_buckets",
        "latency_sum",
        "limited",
        "not_found",
        "unavailable",
    )

    def __init__(self) -> None:
        self.found = self.not_found = self.gone = self.unavailable = self.limited = 0
        self.cache_hits = self.cache_misses = 0
        # Answers per latency bucket (not cumulative), the last one past every bound.
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    def observe(self, seconds: float) -> None:
        self.latency_buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def statuses(self) -> dict[str, int]:
        return {
            "302": self.found,
            "404": self.not_found,
            "410": self.gone,
            "429": self.limited,
            "503": self.unavailable,
        }

    def lookups(self) -> dict[str, int]:
        return {"hit": self.cache_hits, "miss": self.cache_misses}


COUNTS = RedirectCounts()
# The buckets' `le` labels, as prometheus-client's Histogram writes them.
_LE = [floatToGoString(bound) for bound in (*LATENCY_BUCKETS, float("inf"))]  # type: ignore[no-untyped-call]
_STARTED = time.time()  # the counters' creation time (the `_created` samples)


class RedirectCollector:
    """`counts` as metric families, read at each scrape (one process)."""

    def __init__(self, counts: RedirectCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self._counts
        redirects = CounterMetricFamily(*REDIRECTS, labels=["status"])
        for status, value in counts.statuses().items():
            redirects.add_metric([status], value, created=_STARTED)
        yield redirects
        lookups = CounterMetricFamily(*CACHE, labels=["result"])
        for result, value in counts.lookups().items():
            lookups.add_metric([result], value, created=_STARTED)
        yield lookups
        cumulative, buckets = 0, []
        for bound, count in zip(_LE, counts.latency_buckets, strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        latency = HistogramMetricFamily(*LATENCY, buckets=buckets, sum_value=counts.latency_sum)
        latency.samples.append(Sample(LATENCY[0] + "_created", {}, _STARTED))
        yield latency


REGISTRY.register(RedirectCollector(COUNTS))


class _Adds(Protocol):
    def inc(self, amount: float) -> None: ...


class _Folded:
    """The multiprocess metrics `COUNTS` is folded into, and the values folded so far. Not
    registered: with one process the collector above reads `COUNTS` itself."""

    def __init__(self) -> None:
        redirects = Counter(*REDIRECTS, ["status"], registry=None)
        lookups = Counter(*CACHE, ["result"], registry=None)
        latency = Histogram(*LATENCY, buckets=LATENCY_BUCKETS, registry=None)
        # In the order of `_values`. prometheus-client has no call that adds counts to a
        # histogram's buckets: its values are its `_buckets` (not cumulative, as ours) and `_sum`.
        self.targets: list[_Adds] = [
            *(redirects.labels(status) for status in COUNTS.statuses()),
            *(lookups.labels(result) for result in COUNTS.lookups()),
            *latency._buckets,
            latency._sum,
        ]
        self.folded = [0.0] * len(self.targets)

    def fold(self) -> None:
        values = _values(COUNTS)
        for target, value, folded in zip(self.targets, values, self.folded, strict=True):
            if value != folded:
                target.inc(value - folded)
        self.folded = values


def _values(counts: RedirectCounts) -> list[float]:
    return [
        *counts.statuses().values(),
        *counts.lookups().values(),
        *counts.latency_buckets,
        counts.latency_sum,
    ]


_folded: _Folded | None = None


def fold() -> None:
    """Add what `COUNTS` gained since the last fold to the shared multiprocess files."""
    global _folded
    if _folded is None:
        _folded = _Folded()
    _folded.fold()


CLICKS_BUFFERED = Gauge(
    "smslinks_clicks_buffered", "Hits waiting to be written to Redis", multiprocess_mode="livesum"
)
CLICKS_FLUSHED = Counter("smslinks_clicks_flushed", "Hits (clicks and bot hits) written to Redis")
CLICKS_DROPPED = Counter("smslinks_clicks_dropped", "Hits dropped because the buffer was full")
# Counted by the click workers (redirector/clickworker.py), summed in with the redirectors'.
CLICKS_RECORDED = Counter("smslinks_clicks_recorded", "Hits added to the counters")
BOT_HITS = Counter("smslinks_bot_hits", "Hits by bots, link previews and HEAD requests")
CLICK_CALLS_SENT_BACK = Counter(
    "smslinks_click_calls_sent_back",
    "FLUSH_CLICKS calls that found per-recipient values other than taken, and went again",
)
# redirector/connections.py: connections closed at once (the process was full), or because
# their request's header was not complete in time.
CONNECTIONS_REFUSED = Counter(
    "smslinks_connections_refused", "Connections closed on arrival: REDIRECTOR_MAX_CONNECTIONS"
)
IDLE_CONNECTIONS_CLOSED = Counter(
    "smslinks_idle_connections_closed",
    "Idle keep-alive connections closed at REDIRECTOR_MAX_CONNECTIONS, for a new one",
)
HEADER_TIMEOUTS = Counter(
    "smslinks_header_timeouts", "Connections closed: a header late (REDIRECTOR_HEADER_TIMEOUT)"
)
REDIS_ERRORS = Counter("smslinks_redis_errors", "Redis commands that failed", ["where"])
REDIS_ERRORS_LOOKUP = REDIS_ERRORS.labels("lookup")
REDIS_ERRORS_CLICKS = REDIS_ERRORS.labels("clicks")
REDIS_ERRORS_FEED = REDIS_ERRORS.labels("invalidation")
REDIS_ERRORS_CLICK_WORKER = REDIS_ERRORS.labels("clickworker")


def exposition(multiprocess: bool) -> tuple[bytes, str]:
    """The text format of every metric, summed over worker processes when there are several
    (`multiprocess`: PROMETHEUS_MULTIPROC_DIR is set, see Settings.metrics_dir)."""
    if multiprocess:
        fold()  # this worker's own counts exactly, the others' as of their last fold
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
