"""Admin settings, read once in `admin.__main__` (see the README's configuration table); how
every setting is read and checked is `StoreSettings` in `redirector.store.connection`."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import NoDecode

from admin.attribution import Windows
from admin.codes import MAX_LENGTH, MIN_LENGTH
from redirector.store.connection import StoreSettings

# Bearer keys shorter than this are refused: they would be guessable.
MIN_API_KEY_LENGTH = 16


class AdminSettings(StoreSettings):
    # NoDecode: the variable is a comma-separated list, not JSON.
    api_keys: Annotated[
        tuple[str, ...],
        NoDecode,
        Field(
            validation_alias="ADMIN_API_KEYS",
            description="give one or more comma-separated bearer keys "
            '(e.g. ADMIN_API_KEYS="$(openssl rand -hex 24)")',
        ),
    ]
    host: Annotated[str, Field(validation_alias="ADMIN_HOST")] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535, validation_alias="ADMIN_PORT")] = 8081
    workers: Annotated[int, Field(ge=1, le=64, validation_alias="ADMIN_WORKERS")] = 1
    public_base_url: str = "http://127.0.0.1:8080"
    utm_source: str = "instasent"
    utm_medium: str = "sms"
    code_length: Annotated[int, Field(ge=MIN_LENGTH, le=MAX_LENGTH)] = 7
    max_url_length: Annotated[int, Field(ge=64, le=16384)] = 4096
    # A full batch (10,000 links of MAX_URL_LENGTH bytes) fits; anything larger is refused
    # with 413 before it is parsed.
    max_body_bytes: Annotated[
        int, Field(ge=1024, le=1 << 30, validation_alias="ADMIN_MAX_BODY_BYTES")
    ] = 64 * 1024 * 1024
    redis_timeout: Annotated[float, Field(ge=0.01, le=300.0)] = 5.0
    # Seconds a dashboard session lasts from signing in (admin/dashboard); its key's
    # revocation or expiry ends it sooner.
    dashboard_session_ttl: Annotated[int, Field(ge=60, le=30 * 86400)] = 8 * 3600
    # Requests per API key per RATE_WINDOW (60 s), across every admin process; 0: no limit.
    rate_limit: Annotated[
        int, Field(ge=0, le=1_000_000_000, validation_alias="ADMIN_RATE_LIMIT")
    ] = 600
    # Attribution (admin/attribution.py), in seconds; 0 turns that model off.
    attribution_click_window: Annotated[int, Field(ge=0, le=365 * 86400)] = 259_200
    attribution_view_window: Annotated[int, Field(ge=0, le=365 * 86400)] = 86_400
    # Where worker processes share their metrics (prometheus-client's multiprocess mode);
    # set by the supervisor (admin/server.py) when ADMIN_WORKERS > 1.
    metrics_dir: Annotated[str | None, Field(validation_alias="PROMETHEUS_MULTIPROC_DIR")] = None

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(key.strip() for key in value.split(",") if key.strip())
        if not value:  # only commas and blanks: as good as unset
            raise PydanticCustomError("missing", "no key given")
        return value

    @field_validator("api_keys")
    @classmethod
    def _long_keys(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(key) < MIN_API_KEY_LENGTH for key in keys):
            raise ValueError(f"needs {MIN_API_KEY_LENGTH}+ characters in every key")
        return keys

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"must be an http(s) URL with a host: {value!r}")
        return value.rstrip("/")

    @property
    def windows(self) -> Windows:
        return Windows(self.attribution_click_window * 1000, self.attribution_view_window * 1000)

    @property
    def own_host(self) -> str:
        """The redirector's public host: links must not point back at it (redirect loops)."""
        return (urlsplit(self.public_base_url).hostname or "").lower()

    def short_url(self, code: str) -> str:
        return f"{self.public_base_url}/{code}"
