"""The range picker of a campaign's page: `from` and `to` as dates (both days included) and the
granularity, checked by the API's own rules (`StatsQuery`, `stats_window`); and the previous
period of the same length, which the chart overlays."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import urlencode

from admin.exceptions import FieldError, ValidationFailed
from admin.models import StatsQuery, Window, parse_query, stats_window

# The chart draws at most this many buckets (a month of hours, years of days); the API's
# bound of 10,000 would make a chart nobody can read, and slow to draw.
MAX_CHART_BUCKETS = 1_000
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class Range:
    window: Window
    previous: Window | None  # None when it would start before 1970
    picked: dict[str, str]  # the picker's values as given (empty: the default range)

    @property
    def query(self) -> str:
        """The query string that picks this range again (for the chart's address)."""
        return urlencode(self.picked)


def picked_range(query: Mapping[str, str], now: float) -> Range:
    picked = {name: query[name] for name in ("from", "to", "granularity") if query.get(name)}
    api_query: dict[str, str] = {}
    if "granularity" in picked:
        api_query["granularity"] = picked["granularity"]
    for name, days_after in (("from", 0), ("to", 1)):
        if name in picked:
            day = _day(name, picked[name]) + timedelta(days=days_after)
            api_query[name] = f"{day.isoformat()}T00:00:00Z"
    window = stats_window(parse_query(StatsQuery, api_query), now)
    buckets = len(window.buckets())
    if buckets > MAX_CHART_BUCKETS:
        message = (
            f"the range has {buckets} {window.granularity}s; the chart shows at most "
            f"{MAX_CHART_BUCKETS} (pick a shorter range, or days)"
        )
        raise ValidationFailed([FieldError("from", message)])
    span = window.end - window.start
    previous = None
    if window.start - span >= 0:
        previous = Window(window.start - span, window.start, window.granularity)
    return Range(window, previous, picked)


def _day(name: str, raw: str) -> date:
    try:
        day = date.fromisoformat(raw) if _DATE.fullmatch(raw) else None
    except ValueError:  # 2026-02-30
        day = None
    if day is not None and day < date.max:  # the last day has no next day to end it
        return day
    raise ValidationFailed([FieldError(name, "must be a date, e.g. 2026-03-01")])
