"""Redirector settings, and the small environment reader both entry points use.

Settings are read once, in `__main__`, and passed to `create_app(settings)`; nothing else
reads the environment. A bad value stops start-up with a message naming the variable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A setting in the environment is missing or has a bad value; the message names it."""


class EnvReader:
    """Typed, validated reads of environment variables, each failing with the variable's name."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str, default: str) -> str:
        value = self._env.get(name, default).strip()
        if not value:
            raise SettingsError(f"{name} must not be empty")
        return value

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        return self._ranged(name, default, int, "a whole number", low, high)

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        return self._ranged(name, default, float, "a number", low, high)

    def flag(self, name: str, default: bool) -> bool:
        raw = self._given(name)
        if raw is None:
            return default
        value = raw.lower()
        if value in {"1", "true", "yes", "on"}:
            return True
        if value in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")

    def _given(self, name: str) -> str | None:
        """The variable's trimmed value; None when unset or blank (the default applies)."""
        raw = self._env.get(name, "").strip()
        return raw or None

    def _ranged(
        self, name: str, default: N, parse: Callable[[str], N], kind: str, low: N, high: N
    ) -> N:
        raw = self._given(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def redis_url(self, name: str = "REDIS_URL", default: str = "redis://127.0.0.1:6379/0") -> str:
        value = self.text(name, default)
        parts = urlsplit(value)
        if parts.scheme not in {"redis", "rediss", "unix"} or not (parts.hostname or parts.path):
            raise SettingsError(f"{name} must be a redis://, rediss:// or unix:// URL: {value!r}")
        return value


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    # In-process cache: how many links, how long a found link and a miss stay cached. The admin
    # publishes every change, so the TTL only bounds staleness if an invalidation is lost.
    cache_size: int = 100_000
    cache_ttl: float = 300.0
    cache_miss_ttl: float = 5.0
    # Every Redis command gives up after this long, so a request never hangs on Redis.
    redis_timeout: float = 0.5
    access_log: bool = False
    # Click recording (see redirector/clicks.py): flushed every interval or every flush_size
    # hits; up to buffer_max hits are kept while Redis is away, then new ones are dropped.
    click_tracking: bool = True
    click_flush_interval: float = 0.1
    click_flush_size: int = 1_000
    click_buffer_max: int = 100_000
    click_stream_maxlen: int = 1_000_000
    click_drain_timeout: float = 5.0
    click_salt: str | None = None
    # Take the client address from X-Forwarded-For (only behind a proxy that sets it).
    trust_forwarded_for: bool = False
    # Where worker processes share their metrics (prometheus-client's multiprocess mode);
    # set by the supervisor when REDIRECTOR_WORKERS > 1.
    metrics_dir: str | None = None

    def validate(self) -> None:
        """Checks of values that may come from elsewhere than the environment (flags)."""
        if not 1 <= self.workers <= 64:
            raise SettingsError(f"workers must be between 1 and 64, got {self.workers}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        read = EnvReader(env)
        return cls(
            redis_url=read.redis_url(),
            host=read.text("REDIRECTOR_HOST", cls.host),
            port=read.integer("REDIRECTOR_PORT", cls.port, low=1, high=65535),
            workers=read.integer("REDIRECTOR_WORKERS", cls.workers, low=1, high=64),
            cache_size=read.integer("CACHE_SIZE", cls.cache_size, low=0, high=100_000_000),
            cache_ttl=read.number("CACHE_TTL", cls.cache_ttl, low=0.0, high=86_400.0),
            cache_miss_ttl=read.number("CACHE_MISS_TTL", cls.cache_miss_ttl, low=0.0, high=3600.0),
            redis_timeout=read.number("REDIS_TIMEOUT", cls.redis_timeout, low=0.01, high=60.0),
            access_log=read.flag("ACCESS_LOG", cls.access_log),
            click_tracking=read.flag("CLICK_TRACKING", cls.click_tracking),
            click_flush_interval=read.number(
                "CLICK_FLUSH_INTERVAL", cls.click_flush_interval, low=0.001, high=10.0
            ),
            click_flush_size=read.integer(
                "CLICK_FLUSH_SIZE", cls.click_flush_size, low=1, high=1_000
            ),
            click_buffer_max=read.integer(
                "CLICK_BUFFER_MAX", cls.click_buffer_max, low=1, high=100_000_000
            ),
            click_stream_maxlen=read.integer(
                "CLICK_STREAM_MAXLEN", cls.click_stream_maxlen, low=1_000, high=10**10
            ),
            click_drain_timeout=read.number(
                "CLICK_DRAIN_TIMEOUT", cls.click_drain_timeout, low=0.0, high=600.0
            ),
            click_salt=env.get("CLICK_SALT") or None,
            trust_forwarded_for=read.flag("TRUST_FORWARDED_FOR", cls.trust_forwarded_for),
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        )
