"""Request bodies of the admin API, validated by pydantic, every bad field reported at once.

URLs are validated and normalised here too (`admin.tagging.normalize_url`); the rules that
depend on settings come in through the validation context (`UrlRules`), so `url` in a parsed
body is already the pure-ASCII form that gets tagged and stored.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
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
from redirector.store.keys import DAY, HOUR, RESERVED_CODES

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


# -- query parameters of the stats routes ---------------------------------------------------

Granularity = Literal["hour", "day"]
BotFilter = Literal["include", "exclude", "only"]

MAX_BUCKETS = 10_000
# The window when `from` is not given: a week of hours, or a month of days.
DEFAULT_SPAN: dict[Granularity, int] = {"hour": 7 * DAY, "day": 30 * DAY}
# No click predates 1970, and the end of the last bucket must still be a datetime.
_EARLIEST, _LATEST = 0, int(datetime(9999, 12, 30, tzinfo=UTC).timestamp())
_GRANULARITIES: dict[str, Granularity] = {"hour": "hour", "day": "day"}
_BOT_FILTERS: dict[str, BotFilter] = {"include": "include", "exclude": "exclude", "only": "only"}
# An unencoded '+' in a query string arrives as a space: "...T10:00:00 01:00".
_SPACED_OFFSET = re.compile(r" (\d{2}:\d{2})$")


@dataclass(frozen=True, slots=True)
class Window:
    """The stats window [start, end), unix seconds on UTC bucket boundaries."""

    start: int
    end: int
    granularity: Granularity

    @property
    def step(self) -> int:
        return HOUR if self.granularity == "hour" else DAY

    def buckets(self) -> range:
        """Bucket numbers (unix time // step), oldest first."""
        return range(self.start // self.step, self.end // self.step)


@dataclass(frozen=True, slots=True)
class ClickFilter:
    """Which events of a campaign's click stream to export: [start_ms, end_ms) by the time
    they were recorded (the stream id), and whether bot hits are included, left out or alone."""

    start_ms: int | None = None
    end_ms: int | None = None
    bots: BotFilter = "include"

    def wants(self, bot: bool) -> bool:
        return self.bots == "include" or (self.bots == "only") == bot


def _query_time(query: Mapping[str, str], name: str, errors: list[FieldError]) -> float | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        when: datetime = _rfc3339(_SPACED_OFFSET.sub(r"+\1", raw))
    except ValueError as exc:
        errors.append(FieldError(name, str(exc)))
        return None
    if not _EARLIEST <= when.timestamp() <= _LATEST:
        errors.append(FieldError(name, "must be between 1970-01-01 and 9999-12-30"))
        return None
    return when.timestamp()


def _range(query: Mapping[str, str], errors: list[FieldError]) -> tuple[float | None, float | None]:
    start, end = _query_time(query, "from", errors), _query_time(query, "to", errors)
    if start is not None and end is not None and end <= start:
        errors.append(FieldError("to", "must be after from"))
    return start, end


def stats_window(query: Mapping[str, str], now: float) -> Window:
    """`from`, `to` (RFC 3339 with an offset; default: `DEFAULT_SPAN` up to now) and
    `granularity` (hour, the default, or day); the range is widened to whole buckets."""
    errors: list[FieldError] = []
    granularity = _GRANULARITIES.get(query.get("granularity", "hour"))
    if granularity is None:
        errors.append(FieldError("granularity", "must be hour or day"))
    start, end = _range(query, errors)
    if start is not None and end is None and start >= now:
        errors.append(FieldError("from", "must be in the past when to is not given"))
    if errors or granularity is None:
        raise ValidationFailed(errors)
    end = now if end is None else end
    start = max(_EARLIEST, end - DEFAULT_SPAN[granularity]) if start is None else start
    step = HOUR if granularity == "hour" else DAY
    first, last = int(start // step), -int(-end // step)  # floor, ceil
    if last - first > MAX_BUCKETS:
        message = (
            f"the range spans {last - first} {granularity}s; at most {MAX_BUCKETS} buckets "
            "are returned (move from closer to to, or use granularity=day)"
        )
        raise ValidationFailed([FieldError("from", message)])
    return Window(first * step, last * step, granularity)


def click_filter(query: Mapping[str, str]) -> ClickFilter:
    """`from`/`to` as in `stats_window` (both optional, `to` exclusive) and
    `bots` = include (the default), exclude or only."""
    errors: list[FieldError] = []
    bots = _BOT_FILTERS.get(query.get("bots", "include"))
    if bots is None:
        errors.append(FieldError("bots", "must be include, exclude or only"))
    start, end = _range(query, errors)
    if errors or bots is None:
        raise ValidationFailed(errors)
    return ClickFilter(
        None if start is None else round(start * 1000),
        None if end is None else round(end * 1000),
        bots,
    )
