"""Prometheus metrics of the redirector (prometheus-client).

With several worker processes each one writes its values to files under
PROMETHEUS_MULTIPROC_DIR (set up by the supervisor in `__main__`), and whichever worker
answers a scrape adds them all up: totals stay correct whatever process serves /metrics.
The hot path only increments pre-bound children (no label lookups per request).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

REDIRECTS = Counter("smslinks_redirects", "Answers to GET/HEAD /{code}, by HTTP status", ["status"])
FOUND = REDIRECTS.labels("302")
NOT_FOUND = REDIRECTS.labels("404")
GONE = REDIRECTS.labels("410")
UNAVAILABLE = REDIRECTS.labels("503")

CACHE = Counter("smslinks_cache_lookups", "In-process cache lookups", ["result"])
CACHE_HIT = CACHE.labels("hit")
CACHE_MISS = CACHE.labels("miss")

LATENCY = Histogram(
    "smslinks_redirect_seconds",
    "Time spent answering GET/HEAD /{code}, inside the handler",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
)

CLICKS_BUFFERED = Gauge(
    "smslinks_clicks_buffered", "Hits waiting to be written to Redis", multiprocess_mode="livesum"
)
CLICKS_FLUSHED = Counter("smslinks_clicks_flushed", "Hits (clicks and bot hits) written to Redis")
CLICKS_DROPPED = Counter("smslinks_clicks_dropped", "Hits dropped because the buffer was full")
# Counted by the click workers (redirector/clickworker.py), summed in with the redirectors'.
CLICKS_RECORDED = Counter("smslinks_clicks_recorded", "Hits added to the counters")
BOT_HITS = Counter("smslinks_bot_hits", "Hits by bots, link previews and HEAD requests")
REDIS_ERRORS = Counter("smslinks_redis_errors", "Redis commands that failed", ["where"])
REDIS_ERRORS_LOOKUP = REDIS_ERRORS.labels("lookup")
REDIS_ERRORS_CLICKS = REDIS_ERRORS.labels("clicks")
REDIS_ERRORS_FEED = REDIS_ERRORS.labels("invalidation")
REDIS_ERRORS_CLICK_WORKER = REDIS_ERRORS.labels("clickworker")


def exposition(multiprocess: bool) -> tuple[bytes, str]:
    """The text format of every metric, summed over worker processes when there are several
    (`multiprocess`: PROMETHEUS_MULTIPROC_DIR is set, see Settings.metrics_dir)."""
    if multiprocess:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
