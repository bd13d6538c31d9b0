"""Admin settings, read once in `admin.__main__` (see the README's configuration table)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from redirector.settings import EnvReader, SettingsError

# Bearer keys shorter than this are refused: they would be guessable.
MIN_API_KEY_LENGTH = 16


@dataclass(frozen=True)
class AdminSettings:
    api_keys: tuple[str, ...]
    redis_url: str = "redis://127.0.0.1:6379/0"
    host: str = "127.0.0.1"
    port: int = 8081
    public_base_url: str = "http://127.0.0.1:8080"
    utm_source: str = "instasent"
    utm_medium: str = "sms"
    code_length: int = 7
    max_url_length: int = 4096
    # A full batch (10,000 links of MAX_URL_LENGTH bytes) fits; anything larger is refused
    # with 413 before it is parsed.
    max_body_bytes: int = 64 * 1024 * 1024
    redis_timeout: float = 5.0

    @property
    def own_host(self) -> str:
        """The redirector's public host: links must not point back at it (redirect loops)."""
        return (urlsplit(self.public_base_url).hostname or "").lower()

    def short_url(self, code: str) -> str:
        return f"{self.public_base_url}/{code}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AdminSettings:
        read = EnvReader(env)
        return cls(
            api_keys=_api_keys(env.get("ADMIN_API_KEYS", "")),
            redis_url=read.redis_url(),
            host=read.text("ADMIN_HOST", cls.host),
            port=read.integer("ADMIN_PORT", cls.port, low=1, high=65535),
            public_base_url=_base_url(read.text("PUBLIC_BASE_URL", cls.public_base_url)),
            utm_source=read.text("UTM_SOURCE", cls.utm_source),
            utm_medium=read.text("UTM_MEDIUM", cls.utm_medium),
            code_length=read.integer("CODE_LENGTH", cls.code_length, low=5, high=32),
            max_url_length=read.integer("MAX_URL_LENGTH", cls.max_url_length, low=64, high=16384),
            max_body_bytes=read.integer(
                "ADMIN_MAX_BODY_BYTES", cls.max_body_bytes, low=1024, high=1 << 30
            ),
            redis_timeout=read.number("REDIS_TIMEOUT", cls.redis_timeout, low=0.01, high=300.0),
        )


def _api_keys(raw: str) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    if not keys:
        raise SettingsError(
            "ADMIN_API_KEYS is not set: give one or more comma-separated bearer keys "
            '(e.g. ADMIN_API_KEYS="$(openssl rand -hex 24)")'
        )
    short = [key for key in keys if len(key) < MIN_API_KEY_LENGTH]
    if short:
        raise SettingsError(f"ADMIN_API_KEYS: every key needs {MIN_API_KEY_LENGTH}+ characters")
    return keys


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingsError(f"PUBLIC_BASE_URL must be an http(s) URL with a host: {value!r}")
    return value.rstrip("/")
