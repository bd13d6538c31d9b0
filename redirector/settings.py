"""Redirector settings, read once in `__main__` and passed to `create_app(settings)`; how every
setting is read and checked is `StoreSettings` in `redirector.store.connection`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from redirector.store.connection import Durability, StoreSettings


class Settings(StoreSettings):
    host: Annotated[str, Field(validation_alias="REDIRECTOR_HOST")] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535, validation_alias="REDIRECTOR_PORT")] = 8080
    workers: Annotated[int, Field(ge=1, le=64, validation_alias="REDIRECTOR_WORKERS")] = 1
    # /metrics on a listener of its own (same host), so that the public port need not expose
    # it; None: /metrics on the public port, as before.
    metrics_port: Annotated[int | None, Field(ge=1, le=65535, validation_alias="METRICS_PORT")] = (
        None
    )
    # What one visitor may hold (redirector/connections.py): seconds to send a request's
    # header once its first byte (or the connection) arrived, and open connections per process.
    header_timeout: Annotated[
        float, Field(ge=0.1, le=3600.0, validation_alias="REDIRECTOR_HEADER_TIMEOUT")
    ] = 10.0
    max_connections: Annotated[
        int, Field(ge=1, le=1_000_000, validation_alias="REDIRECTOR_MAX_CONNECTIONS")
    ] = 10_000
    # Unknown codes one client address may ask for per minute before it gets 429 for every
    # code until the minute is over (redirector/misslimit.py); 0: no limit.
    miss_limit: Annotated[
        int, Field(ge=0, le=1_000_000, validation_alias="REDIRECTOR_MISS_LIMIT")
    ] = 100
    # In-process cache: how many links, how long a found link and a miss stay cached, and how
    # many unknown codes (kept apart, so that they never evict a link). The admin publishes
    # every change, so the TTL only bounds staleness if an invalidation is lost.
    cache_size: Annotated[int, Field(ge=0, le=100_000_000)] = 100_000
    cache_ttl: Annotated[float, Field(ge=0.0, le=86_400.0)] = 300.0
    cache_miss_ttl: Annotated[float, Field(ge=0.0, le=3600.0)] = 5.0
    cache_miss_size: Annotated[int, Field(ge=0, le=100_000_000)] = 10_000
    # Every Redis command gives up after this long, so a request never hangs on Redis.
    redis_timeout: Annotated[float, Field(ge=0.01, le=60.0)] = 0.5
    access_log: bool = False
    # Click recording (see redirector/clicks.py): flushed every interval or every flush_size
    # hits; up to buffer_max hits are kept while Redis is away, then new ones are dropped.
    # The click workers look at idle queues every interval too.
    click_tracking: bool = True
    click_flush_interval: Annotated[float, Field(ge=0.001, le=10.0)] = 0.1
    click_flush_size: Annotated[int, Field(ge=1, le=1_000)] = 1_000
    click_buffer_max: Annotated[int, Field(ge=1, le=100_000_000)] = 100_000
    click_stream_maxlen: Annotated[int, Field(ge=1_000, le=10**10)] = 1_000_000
    click_drain_timeout: Annotated[float, Field(ge=0.0, le=600.0)] = 5.0
    click_salt: str | None = None
    # Click worker processes `python -m redirector` runs and restarts (0: none; then run
    # `python -m redirector.clickworker` elsewhere), and how long a chunk of raw hits a worker
    # claimed stays its own: after a worker died, its chunk waits that long for another.
    click_workers: Annotated[int, Field(ge=0, le=16)] = 1
    click_worker_lease: Annotated[float, Field(ge=0.1, le=3600.0)] = 10.0
    # Take the client address from X-Forwarded-For (only behind a proxy that sets it).
    trust_forwarded_for: bool = False
    # Where worker processes share their metrics (prometheus-client's multiprocess mode);
    # set by the supervisor when REDIRECTOR_WORKERS > 1.
    metrics_dir: Annotated[str | None, Field(validation_alias="PROMETHEUS_MULTIPROC_DIR")] = None

    @property
    def flush_durability(self) -> Durability:
        """How the redirect process's click flushes (queue pushes) are made durable: as a
        link write, within its REDIS_TIMEOUT (a push not confirmed in time is sent again,
        and queued once)."""
        return self.durability.within(self.redis_timeout)
