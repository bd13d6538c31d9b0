"""Request bodies and query parameters of the admin API, validated by pydantic, every bad field
reported at once. The OpenAPI document is generated from these (`admin.openapi`), so a rule
that can be a constraint (pattern, length, range) is one, and shows in the schema.

URLs are validated and normalised here too (`admin.tagging.normalize_url`); the rules that
depend on settings come in through the validation context (`UrlRules`), so `url` in a parsed
body is already the pure-ASCII form that gets tagged and stored.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    MISSING,
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import CoreSchema, ErrorDetails, core_schema

from admin.access import SCOPES, Scope
from admin.codes import MAX_LENGTH, MIN_LENGTH
from admin.exceptions import FieldError, InvalidURL, ValidationFailed
from admin.money import CURRENCY_PATTERN, minor_units, to_minor_units
from admin.tagging import CONTROL_CHARACTERS, normalize_url
from redirector.store.keys import CODE_PATTERN, DAY, HOUR, RESERVED_CODES

# A stream entry id, as the audit log's pages are told apart by (`AuditQuery.before`).
AUDIT_ENTRY_ID = "^[0-9]{1,20}-[0-9]{1,20}$"

MAX_BATCH = 10_000
# The list fields of batch bodies: an error inside one names the item's index.
BATCHES = ("links", "sends", "conversions")

NO_CONTROL = f"^[^{CONTROL_CHARACTERS}]*$"
# Said in words: pydantic's own message would quote the regex.
_PATTERN_MESSAGES = {
    CODE_PATTERN: "must be 3 to 64 characters from A-Z, a-z, 0-9, '_' and '-'",
    CURRENCY_PATTERN: "must be an ISO 4217 currency code with minor units, e.g. EUR",
    NO_CONTROL: "must not contain control characters",
    AUDIT_ENTRY_ID: "must be the next of an earlier page",
}
# ASCII digits only: `\d` would also take fullwidth or Arabic-Indic digits, as RFC 3339 does not.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_RFC3339_RULE = "must be an RFC 3339 time with an offset, e.g. 2026-12-31T23:59:59Z"
_IN_CALENDAR = "must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z once in UTC"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _not_reserved(value: str) -> str:
    if value.lower() in RESERVED_CODES:
        raise ValueError(f"{value!r} is reserved")
    return value


def _rfc3339(value: Any) -> Any:
    """Only an RFC 3339 string with an offset is a time here; pydantic alone would also take
    numbers and naive times, which are ambiguous in an API."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(_RFC3339_RULE)
    try:
        given = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:  # matches the pattern but is no date: 2026-02-30, hour 24, offset 24:00
        raise ValueError(_RFC3339_RULE) from None
    try:
        return given.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC, which has no datetime
        raise ValueError(_IN_CALENDAR) from None


@dataclass(frozen=True, slots=True)
class UrlRules:
    max_length: int
    own_host: str | None


def _url(value: str, info: ValidationInfo) -> str:
    context = info.context if isinstance(info.context, dict) else {}
    rules = context.get("url_rules")
    if not isinstance(rules, UrlRules):
        raise TypeError("parse() needs url_rules in the validation context")
    # A batch repeats its URLs: each distinct one is checked once per request, the rest of
    # its items cost one dict lookup. A refused URL is remembered by its message.
    seen: dict[str, tuple[str, bool]] = context.setdefault("urls", {})
    known = seen.get(value)
    if known is None:
        try:
            url = normalize_url(value, max_length=rules.max_length, own_host=rules.own_host)
            known = seen[value] = (url, True)
        except InvalidURL as exc:
            known = seen[value] = (str(exc), False)
    if not known[1]:
        raise InvalidURL(known[0])
    return known[0]


def _since_1970(value: datetime | None) -> datetime | None:
    """A link's expiry is stored as unsigned unix seconds (`redirector.store.record`)."""
    if value is not None and value.timestamp() < 0:
        raise ValueError("must be from 1970-01-01T00:00:00Z on")
    return value


def _in_future(value: datetime | None) -> datetime | None:
    if value is not None and value.timestamp() <= time.time():
        raise ValueError("must be in the future")
    return value


Name = Annotated[
    str, Field(min_length=1, max_length=256, pattern=NO_CONTROL), AfterValidator(_not_blank)
]
TEXT_MAX = 128  # also the batch fast path's bound (admin.batch_body)
Text = Annotated[
    str, Field(min_length=1, max_length=TEXT_MAX, pattern=NO_CONTROL), AfterValidator(_not_blank)
]
Code = Annotated[str, Field(pattern=CODE_PATTERN), AfterValidator(_not_reserved)]
Time = Annotated[datetime | None, BeforeValidator(_rfc3339)]
FutureTime = Annotated[Time, AfterValidator(_in_future)]
Expiry = Annotated[Time, AfterValidator(_since_1970)]
URL = Annotated[str, AfterValidator(_url)]
Id = Annotated[int, Field(ge=1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


M = TypeVar("M", bound=BaseModel)


class CampaignIn(_Body):
    name: Name = Field(description="Also the links' `utm_campaign` value.")
    kind: Literal["campaign", "automation"] = "campaign"
    utm_source: Text | None = Field(None, description="Overrides `UTM_SOURCE`.")
    utm_medium: Text | None = Field(None, description="Overrides `UTM_MEDIUM`.")
    code_length: int | None = Field(
        None,
        ge=MIN_LENGTH,
        le=MAX_LENGTH,
        description="Characters of the campaign's generated codes, random and per recipient; "
        "`CODE_LENGTH` unless given. Fixed at creation. Longer codes are harder to guess: worth "
        "it for per-recipient links that lead to personal pages.",
    )


URL_RULE = "Absolute http(s), at most MAX_URL_LENGTH bytes."


class BatchItem(_Body):
    url: URL | None = Field(
        None, description=f"{URL_RULE} Required unless the batch gives `url` for all its items."
    )
    recipient: Text | None = Field(
        None,
        description="Who the link is for (e.g. a phone number). A recipient has at most one "
        "link per campaign: asking again returns the existing link unchanged.",
    )
    code: Code | None = Field(
        None,
        description="A custom short code instead of a random one; the words "
        f"{', '.join(sorted(RESERVED_CODES))} (in any case) are reserved. 409 if it is taken.",
    )
    expires_at: FutureTime = Field(None, description="From then on the short link answers 410.")


class LinkIn(BatchItem):
    url: URL = Field(description=URL_RULE)
    campaign_id: Id | None = Field(
        None,
        description="The campaign the link belongs to; it must exist (422 otherwise). Null or "
        "absent: no campaign, and the service's default UTM source and medium.",
    )
    tag: bool = Field(True, description="Add the UTM parameters to the destination.")


class BatchIn(_Body):
    campaign_id: Id | None = Field(None, description="As in `LinkIn`, for every link.")
    url: URL | None = Field(None, description="The URL of every item that gives none.")
    tag: bool = Field(True, description="As in `LinkIn`, for every link.")
    links: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)


class LinkPatch(_Body):
    """Only the fields given change; `url` and `disabled` are never null."""

    url: URL | MISSING = Field(MISSING, description="The new URL to shorten.")
    expires_at: Expiry = Field(
        None,
        description="Null removes the expiry; a past time (from 1970 on) expires the link now.",
    )
    disabled: bool | MISSING = Field(MISSING, description="A disabled link answers 410.")

    @field_validator("url", "disabled", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:  # said in words: pydantic's message would ask for a string
            raise ValueError("must not be null")
        return value


class WorkspaceIn(_Body):
    name: Name


# -- sends and conversions (attribution) -----------------------------------------------------

# How far ahead of the admin's clock an event's time may be (clocks drift): a later one would
# be decided against sends and clicks that are not recorded yet.
CLOCK_SKEW = 300
_EVENT_TIME_RULE = f"must not be more than {CLOCK_SKEW} s ahead of the server's clock"


@lru_cache(maxsize=4096)
def _event_datetime(value: str) -> datetime:
    """Cached: the sends of a batch, reported by a gateway to the second, share their times."""
    when: datetime = _rfc3339(value)
    if when.timestamp() < 0:
        raise ValueError("must not be before 1970")
    return when


def _event_time(value: Any) -> datetime:
    """An RFC 3339 time (as `Time`), from 1970 and not ahead of the clock by more than
    CLOCK_SKEW."""
    if not isinstance(value, str):
        raise ValueError(_RFC3339_RULE)
    when = _event_datetime(value)
    if when.timestamp() > time.time() + CLOCK_SKEW:
        raise ValueError(_EVENT_TIME_RULE)
    return when


EventTime = Annotated[datetime, PlainValidator(_event_time, json_schema_input_type=str)]
SendStatus = Literal["sent", "delivered", "failed"]


def _delivered_after_sent(value: datetime | None, info: ValidationInfo) -> datetime | None:
    sent = info.data.get("sent_at")  # absent when it was refused
    if value is not None and sent is not None and value < sent:
        raise ValueError("must not be before sent_at")
    return value


def _status(value: SendStatus | None, info: ValidationInfo) -> SendStatus:
    """The default (delivered when delivered_at is given, else sent), or the status given,
    which must agree with delivered_at."""
    delivered = info.data.get("delivered_at")
    if value is None:
        return "delivered" if delivered is not None else "sent"
    if (value == "delivered") != (delivered is not None) and "delivered_at" in info.data:
        raise ValueError(
            "delivered needs delivered_at"
            if value == "delivered"
            else f"{value} goes without delivered_at (a send with delivered_at was delivered)"
        )
    return value


class SendIn(_Body):
    campaign_id: Id = Field(
        description="The campaign or automation sent; 422 if not one of the key's workspace."
    )
    recipient: Text = Field(description="As the links' `recipient`: compared byte for byte.")
    sent_at: EventTime = Field(description="When the message was sent.")
    delivered_at: Annotated[EventTime | None, AfterValidator(_delivered_after_sent)] = Field(
        None, description="When the delivery report says it was received."
    )
    status: Annotated[SendStatus | None, AfterValidator(_status)] = Field(
        None,
        validate_default=True,
        description="Default: delivered when `delivered_at` is given, else sent. Delivered "
        "needs `delivered_at`; sent and failed go without it.",
    )


class SendBatchIn(_Body):
    sends: list[SendIn] = Field(min_length=1, max_length=MAX_BATCH)


def _amount(value: Any) -> Any:
    """A decimal string (digits, an optional point and decimals) or a JSON number, as a Decimal;
    a number is taken as its shortest decimal form (80.1, not the binary float's digits)."""
    if isinstance(value, str):
        if not _AMOUNT.fullmatch(value):
            raise ValueError('must be a decimal string such as "80.00" or a number')
        return Decimal(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))
    raise ValueError('must be a decimal string such as "80.00" or a number')


def _currency(value: str) -> str:
    if minor_units(value) is None:
        raise ValueError("must be an ISO 4217 currency code with minor units, e.g. EUR")
    return value


def _in_minor_units(value: Decimal, info: ValidationInfo) -> int:
    currency = info.data.get("currency")
    if currency is None:  # refused itself: nothing to check the amount against
        return 0
    return to_minor_units(value, currency)


_AMOUNT = re.compile(r"[0-9]{1,20}(\.[0-9]{1,20})?")


class ConversionIn(_Body):
    order_id: Text = Field(
        description="The order's id: a conversion is stored once per order "
        "id in the workspace (a repeat is a duplicate; the first one wins)."
    )
    recipient: Text = Field(description="Who bought, as the sends' `recipient`.")
    currency: Annotated[str, Field(pattern=CURRENCY_PATTERN), AfterValidator(_currency)] = Field(
        description="ISO 4217, e.g. EUR."
    )
    amount: Annotated[
        int,
        PlainValidator(_amount, json_schema_input_type=str | float),
        AfterValidator(_in_minor_units),
    ] = Field(
        description="A decimal string or a number, >= 0, with at most the currency's "
        "minor-unit digits (EUR 2, JPY 0, BHD 3). Stored in minor units."
    )
    occurred_at: EventTime = Field(description="When the order was placed.")


class ConversionBatchIn(_Body):
    conversions: list[ConversionIn] = Field(min_length=1, max_length=MAX_BATCH)


def _distinct(scopes: list[Scope]) -> list[Scope]:
    return list(dict.fromkeys(scopes))


class KeyIn(_Body):
    name: Name = Field(description="Says whose or what for, e.g. `shop backend`.")
    scopes: Annotated[
        list[Scope], Field(min_length=1, max_length=len(SCOPES)), AfterValidator(_distinct)
    ] = Field(
        description="What the key may do in its workspace: campaigns:read, campaigns:write, "
        "links:read, links:write, stats:read (click statistics, clickers, CSV), events:write "
        "(sends and conversions), keys:admin (its workspace's keys and audit log)."
    )
    expires_at: FutureTime = Field(
        None, description="From then on the key is refused (401). Absent or null: never."
    )


def field_name(loc: tuple[int | str, ...]) -> str:
    """('links', 3, 'url') -> 'links[3].url'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "body"


def _message(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "string_pattern_mismatch":
        return _PATTERN_MESSAGES[error.get("ctx", {})["pattern"]]
    return error["msg"].removeprefix("Value error, ")


def parse(model: type[M], data: Any, rules: UrlRules) -> M:
    """A request body as `model`; its URLs are checked against `rules`, once each."""
    return _validated(model, data, {"url_rules": rules, "urls": {}})


def _validated(model: type[M], data: Any, context: dict[str, Any] | None) -> M:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            index = (
                loc[1] if len(loc) > 1 and loc[0] in BATCHES and isinstance(loc[1], int) else None
            )
            errors.append(FieldError(field_name(loc), _message(err), index))
        raise ValidationFailed(errors) from None


# -- query parameters -----------------------------------------------------------------------

Granularity = Literal["hour", "day"]
BotFilter = Literal["include", "exclude", "only"]

MAX_BUCKETS = 10_000
# The window when `from` is not given: a week of hours, or a month of days.
DEFAULT_SPAN: dict[Granularity, int] = {"hour": 7 * DAY, "day": 30 * DAY}
# No click predates 1970, and the end of the last bucket must still be a datetime.
_EARLIEST, _LATEST = 0, int(datetime(9999, 12, 30, tzinfo=UTC).timestamp())
# An unencoded '+' in a query string arrives as a space: "...T10:00:00 01:00".
_SPACED_OFFSET = re.compile(r" (\d{2}:\d{2})$")
_TIME_FORMAT = (
    " RFC 3339 with an offset (`Z` or `±hh:mm`; encode `+` as `%2B`, though a `+` that "
    "arrives as a space is understood)."
)


@dataclass(frozen=True, slots=True)
class WholeNumber:
    """An int query parameter from `low` to `high`, of digits only (int() would also take
    ' 5', '+5' and '1_000'); the bounds show in the schema, and any bad value gets one message."""

    low: int
    high: int

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> CoreSchema:
        bounded = core_schema.int_schema(ge=self.low, le=self.high)
        return core_schema.no_info_before_validator_function(self._parse, bounded)

    def _parse(self, raw: Any) -> int:
        digits = isinstance(raw, str) and raw.isascii() and raw.isdigit()
        if digits and self.low <= int(raw) <= self.high:
            return int(raw)
        raise ValueError(f"must be a whole number from {self.low} to {self.high}")


def _one_of(choices: Any) -> BeforeValidator:
    """Refuses a value outside the Literal `choices` in words: "must be hour or day"."""
    allowed: tuple[str, ...] = get_args(choices)
    words = f"{', '.join(allowed[:-1])} or {allowed[-1]}"

    def check(raw: Any) -> Any:
        if raw not in allowed:
            raise ValueError(f"must be {words}")
        return raw

    return BeforeValidator(check)


def _query_time(raw: Any) -> Any:
    when: datetime = _rfc3339(_SPACED_OFFSET.sub(r"+\1", raw) if isinstance(raw, str) else raw)
    if not _EARLIEST <= when.timestamp() <= _LATEST:
        raise ValueError("must be between 1970-01-01 and 9999-12-30")
    return when


def _after_start(end: datetime | None, info: ValidationInfo) -> datetime | None:
    # `start` is validated first (declared first); absent from info.data if it was refused.
    start = info.data.get("start")
    if end is not None and start is not None and end <= start:
        raise ValueError("must be after from")
    return end


QueryTime = Annotated[datetime | None, BeforeValidator(_query_time)]
QueryEnd = Annotated[datetime | None, BeforeValidator(_query_time), AfterValidator(_after_start)]


class _Query(BaseModel):
    """Query strings: unknown parameters are ignored, and every value arrives as a string."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


Q = TypeVar("Q", bound=_Query)


def parse_query(model: type[Q], query: Mapping[str, str]) -> Q:
    """A query string as `model` (query models hold no URLs, so no `UrlRules`)."""
    return _validated(model, dict(query), None)


class Paging(_Query):
    offset: Annotated[int, WholeNumber(0, 2**31)] = Field(0, description="How many to skip.")
    limit: Annotated[int, WholeNumber(1, 1000)] = Field(
        100, description="How many to return at most."
    )


def _stream_id(raw: str | None) -> str | None:
    """A stream entry id is two 64-bit numbers: Redis refuses a larger one (it was a 503)."""
    if raw is not None and any(int(part) >= 2**64 for part in raw.split("-")):
        raise ValueError(_PATTERN_MESSAGES[AUDIT_ENTRY_ID])
    return raw


AuditEntryId = Annotated[str | None, Field(pattern=AUDIT_ENTRY_ID), AfterValidator(_stream_id)]


class AuditQuery(_Query):
    before: AuditEntryId = Field(
        None,
        description="The `next` of the previous page: entries older than that one. Absent: "
        "from the newest.",
    )
    limit: Annotated[int, WholeNumber(1, 1000)] = Field(
        100, description="How many to return at most."
    )


class StatsQuery(_Query):
    start: QueryTime = Field(
        None,
        alias="from",
        description="Start of `series`, rounded down to its bucket. Default: `to` minus 7 days "
        "(granularity hour) or 30 days (day)." + _TIME_FORMAT,
    )
    end: QueryEnd = Field(
        None,
        alias="to",
        description="End of `series` (exclusive), rounded up to a bucket. Default: now."
        + _TIME_FORMAT,
    )
    granularity: Annotated[Granularity, _one_of(Granularity)] = Field(
        "hour",
        description=f"Bucket size of `series` (UTC hours or days); at most {MAX_BUCKETS} "
        "buckets per request, else 422 on `from`.",
    )


class ExportQuery(_Query):
    start: QueryTime = Field(None, alias="from", description="Only events recorded from then.")
    end: QueryEnd = Field(None, alias="to", description="Only events recorded before then.")
    bots: Annotated[BotFilter, _one_of(BotFilter)] = Field(
        "include", description="Whether bot hits are included, left out, or all there is."
    )


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


def _seconds(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def stats_window(query: StatsQuery, now: float) -> Window:
    """The window of `query`, widened to whole buckets (see `StatsQuery` for the defaults)."""
    start, end = _seconds(query.start), _seconds(query.end)
    if start is not None and end is None and start >= now:
        raise ValidationFailed([FieldError("from", "must be in the past when to is not given")])
    granularity = query.granularity
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


def click_filter(query: ExportQuery) -> ClickFilter:
    start, end = _seconds(query.start), _seconds(query.end)
    return ClickFilter(
        None if start is None else round(start * 1000),
        None if end is None else round(end * 1000),
        query.bots,
    )
