"""Request bodies of the admin API, validated by pydantic, every bad field reported at once.

URLs are validated and normalised here too (`admin.tagging.normalize_url`); the rules that
depend on settings come in through the validation context (`UrlRules`), so `url` in a parsed
body is already the pure-ASCII form that gets tagged and stored.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
)

from admin.exceptions import FieldError, ValidationFailed
from admin.tagging import normalize_url
from redirector.links import RESERVED_CODES

MAX_BATCH = 10_000

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CODE = re.compile(r"[A-Za-z0-9_-]{3,64}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _custom_code(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise ValueError("must be 3 to 64 characters from A-Z, a-z, 0-9, '_' and '-'")
    if value.lower() in RESERVED_CODES:
        raise ValueError(f"{value!r} is reserved")
    return value


def _rfc3339(value: Any) -> Any:
    """Only an RFC 3339 string with an offset is a time here; pydantic alone would also take
    numbers and naive times, which are ambiguous in an API."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 time with an offset, e.g. 2026-12-31T23:59:59Z")
    return datetime.fromisoformat(value.replace("z", "Z")).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class UrlRules:
    max_length: int
    own_host: str | None


def _url(value: str, info: ValidationInfo) -> str:
    rules = info.context.get("url_rules") if isinstance(info.context, dict) else None
    if not isinstance(rules, UrlRules):
        raise TypeError("parse() needs url_rules in the validation context")
    return normalize_url(value, max_length=rules.max_length, own_host=rules.own_host)


def _in_future(value: datetime | None) -> datetime | None:
    if value is not None and value.timestamp() <= time.time():
        raise ValueError("must be in the future")
    return value


Name = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_no_control)]
Text = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_no_control)]
Code = Annotated[str, AfterValidator(_custom_code)]
Time = Annotated[datetime | None, BeforeValidator(_rfc3339)]
FutureTime = Annotated[datetime | None, BeforeValidator(_rfc3339), AfterValidator(_in_future)]
URL = Annotated[str, AfterValidator(_url)]
Id = Annotated[int, Field(ge=1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


M = TypeVar("M", bound=_Body)


class CampaignIn(_Body):
    name: Name
    kind: Literal["campaign", "automation"] = "campaign"
    utm_source: Text | None = None
    utm_medium: Text | None = None


class BatchItem(_Body):
    url: URL
    recipient: Text | None = None
    code: Code | None = None
    expires_at: FutureTime = None


class LinkIn(BatchItem):
    campaign_id: Id | None = None
    tag: bool = True


class BatchIn(_Body):
    campaign_id: Id | None = None
    tag: bool = True
    links: Annotated[list[BatchItem], Field(min_length=1, max_length=MAX_BATCH)]


class LinkPatch(_Body):
    """A past `expires_at` is allowed here: it is how a link is made to expire now."""

    url: URL | None = None
    expires_at: Time = None
    disabled: bool | None = None


def field_name(loc: tuple[int | str, ...]) -> str:
    """('links', 3, 'url') -> 'links[3].url'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "body"


def parse(model: type[M], data: Any, rules: UrlRules) -> M:
    try:
        return model.model_validate(data, context={"url_rules": rules})
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            index = (
                loc[1] if len(loc) > 1 and loc[0] == "links" and isinstance(loc[1], int) else None
            )
            message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            errors.append(FieldError(field_name(loc), message.removeprefix("Value error, "), index))
        raise ValidationFailed(errors) from None
