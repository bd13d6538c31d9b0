"""Redirector settings, read once in `__main__` and passed to `create_app(settings)`; how every
setting is read and checked is `StoreSettings` in `redirector.store.connection`."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from pydantic import Field

from redirector.store.connection import Durability, StoreSettings


class Settings(StoreSettings):
    host: Annotated[str, Field(validation_alias="REDIRECTOR_HOST")] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535, validation_alias="REDIRECTOR_PORT")] = 8080
    workers: Annotated[int, Field(ge=1, le=64, validation_alias="REDIRECTOR_WORKERS")] = 1
    # In-process cache: how many links, how long a found link and a miss stay cached. The admin
    # publishes every change, so the TTL only bounds staleness if an invalidation is lost.
    cache_size: Annotated[int, Field(ge=0, le=100_000_000)] = 100_000
    cache_ttl: Annotated[float, Field(ge=0.0, le=86_400.0)] = 300.0
    cache_miss_ttl: Annotated[float, Field(ge=0.0, le=3600.0)] = 5.0
    # Every Redis command gives up after this long, so a request never hangs on Redis.
    redis_timeout: Annotated[float, Field(ge=0.01, le=60.0)] = 0.5
    access_log: bool = False
    # Click recording (see redirector/clicks.py): flushed every interval or every flush_size
    # hits; up to buffer_max hits are kept while Redis is away, then new ones are dropped.
    click_tracking: bool = True
    click_flush_interval: Annotated[float, Field(ge=0.001, le=10.0)] = 0.1
    click_flush_size: Annotated[int, Field(ge=1, le=1_000)] = 1_000
    click_buffer_max: Annotated[int, Field(ge=1, le=100_000_000)] = 100_000
    click_stream_maxlen: Annotated[int, Field(ge=1_000, le=10**10)] = 1_000_000
    click_drain_timeout: Annotated[float, Field(ge=0.0, le=600.0)] = 5.0
    click_salt: str | None = None
    # Take the client address from X-Forwarded-For (only behind a proxy that sets it).
    trust_forwarded_for: bool = False
    # Where worker processes share their metrics (prometheus-client's multiprocess mode);
    # set by the supervisor when REDIRECTOR_WORKERS > 1.
    metrics_dir: Annotated[str | None, Field(validation_alias="PROMETHEUS_MULTIPROC_DIR")] = None

    @property
    def durability(self) -> Durability:
        """As the admin's, but a click flush waits for its replicas at most half of
        `redis_timeout`: a longer WAIT would end as a timeout error, which drops the
        connections that the redirects share."""
        asked = super().durability
        return replace(asked, timeout_ms=min(asked.timeout_ms, int(self.redis_timeout * 500)))
