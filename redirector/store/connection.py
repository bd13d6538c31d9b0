"""The one Redis client factory of both apps, and the settings base both apps read the same way.

Settings are pydantic-settings models that read nothing when constructed: `Settings(...)` in
code and tests takes only its arguments, so a developer's exported REDIS_URL cannot leak into a
test. Only `from_env(env)` reads variables, from the mapping it is given (`os.environ`, in each
`__main__`). A blank value means unset everywhere: the default applies, or a required variable
is "not set". Validation errors become one `SettingsError` line that names each variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self
from urllib.parse import urlsplit

from pydantic import AliasGenerator, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from redis.asyncio import Redis


def connect(url: str, *, timeout: float) -> Redis:
    """A client for `url` whose commands (and connects) give up after `timeout` seconds."""
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


class SettingsError(ValueError):
    """A setting in the environment is missing or has a bad value; the message names it."""


class StoreSettings(BaseSettings):
    """What both apps share: REDIS_URL, and reading and checking the environment."""

    # A field's variable is its name in upper case (exactly that case) unless it names its own.
    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        alias_generator=AliasGenerator(validation_alias=str.upper),
        validate_by_name=True,
        validate_by_alias=True,
    )

    redis_url: str = "redis://127.0.0.1:6379/0"

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"redis", "rediss", "unix"} or not (parts.hostname or parts.path):
            raise ValueError(f"must be a redis://, rediss:// or unix:// URL: {value!r}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Constructor arguments only: `from_env` alone reads variables (see the docstring).
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        try:
            return cls(**_GivenEnv(cls, env)())
        except ValidationError as exc:
            fields = _variables(cls)
            raise SettingsError("; ".join(_message(fields, e) for e in exc.errors())) from None


def _variables(settings_cls: type[BaseSettings]) -> dict[str, FieldInfo]:
    """Each field under its variable's name."""
    return {str(field.validation_alias): field for field in settings_cls.model_fields.values()}


class _GivenEnv(EnvSettingsSource):
    """The model's variables in `env`, trimmed; blank ones are left out, so they count as unset.
    (Only those exact names: pydantic-settings would also match a field's own name.)"""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        names = _variables(settings_cls).keys()
        self._given = {name: env[name].strip() for name in names if env.get(name, "").strip()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._given


def _message(fields: Mapping[str, FieldInfo], error: ErrorDetails) -> str:
    """One error as a sentence about its variable (`from_env` validates by variable name)."""
    name = str(error["loc"][0])
    field, given = fields[name], error["input"]
    match error["type"]:
        case "missing":
            return f"{name} is not set" + (f": {field.description}" if field.description else "")
        case "int_parsing" | "int_from_float":
            return f"{name} must be a whole number, got {given!r}"
        case "float_parsing":
            return f"{name} must be a number, got {given!r}"
        case "bool_parsing":
            return f"{name} must be true or false, got {given!r}"
        case "greater_than_equal" | "less_than_equal" | "greater_than" | "less_than":
            return f"{name} must be {_bounds(field)}, got {given}"
        case "value_error":
            return f"{name} {error.get('ctx', {}).get('error')}"
    return f"{name}: {error['msg']}"


_BOUND_WORDS = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}


def _bounds(field: FieldInfo) -> str:
    """The field's range in words, from whichever bounds it has: 'between 1 and 64',
    'at least 1', 'more than 0 and at most 10'."""
    found = {
        bound: value
        for bound in _BOUND_WORDS
        for rule in field.metadata
        if (value := getattr(rule, bound, None)) is not None
    }
    if found.keys() == {"ge", "le"}:
        return f"between {found['ge']} and {found['le']}"
    return " and ".join(f"{_BOUND_WORDS[bound]} {value}" for bound, value in found.items())
