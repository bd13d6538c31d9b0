"""A per-recipient link's click counters: one field of its campaign's `s:r:{C}` hash (keys.py),
`[created, {stats field: n}, {breakdown field: n}]` as JSON; the fields are those a link's s:l
and b:l hashes hold, under the same rules. The click worker makes a link's first value
(`encode`), and adds later hits to the value held (`merged`), which FLUSH_CLICKS writes if
the value is still the one the worker read (flush.py); the admin reads it (`decode`). Pure:
no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from redirector.store.keys import (
    BOTS,
    BREAKDOWN_OTHER,
    BREAKDOWN_VALUES_MAX,
    CLICKS,
    RECIPIENT_COUNTERS_MAX,
)


class CountersError(ValueError):
    """A stored value is not a link's counters (corrupt data, or a newer format)."""


@dataclass(frozen=True, slots=True)
class LinkCounters:
    created: int  # unix s: the creation time of the link counted (see FLUSH_CLICKS)
    stats: dict[str, int] = field(default_factory=dict)
    breakdowns: dict[str, int] = field(default_factory=dict)


def encode(created: int, stats: Mapping[str, int], breakdowns: Mapping[str, int]) -> bytes:
    """A link's first value; its breakdowns capped as `merged` caps them (a batch may hold
    one link's hits from more than BREAKDOWN_VALUES_MAX referers, or long ones), so that the
    value stays within about RECIPIENT_COUNTERS_MAX bytes. (Its stats are not: a chunk's
    hits span seconds, or the hours of an outage of Redis, never a visitor's choice.)"""
    value = orjson.dumps([created, stats, breakdowns])
    if len(breakdowns) > BREAKDOWN_VALUES_MAX or len(value) > RECIPIENT_COUNTERS_MAX:
        budget = RECIPIENT_COUNTERS_MAX - len(orjson.dumps([created, stats, {}]))
        value = orjson.dumps([created, stats, capped(breakdowns, budget)])
    return value


# What a field adds to a value besides its name's characters: quotes, colon, count, comma.
_FIELD_BYTES = 8


def _breakdown_of(name: str) -> tuple[str, str]:
    """A breakdown field's breakdown (its prefix up to ':') and that breakdown's
    BREAKDOWN_OTHER field."""
    breakdown = name[: name.find(":") + 1]
    return breakdown, breakdown + BREAKDOWN_OTHER


def capped(breakdowns: Mapping[str, int], budget: int) -> dict[str, int]:
    """At most BREAKDOWN_VALUES_MAX values per breakdown (a field's prefix up to ':'), taken in
    the order given while they fit in about `budget` bytes of JSON; the others' counts go to
    the breakdown's BREAKDOWN_OTHER."""
    out: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for name, count in breakdowns.items():
        breakdown, other = _breakdown_of(name)
        if name != other:
            size, cost = sizes.get(breakdown, 0), len(name) + _FIELD_BYTES
            if size >= BREAKDOWN_VALUES_MAX or cost > budget:
                name = other
            else:
                sizes[breakdown], budget = size + 1, budget - cost
        if name not in out and name == other:
            budget -= len(name) + _FIELD_BYTES
        out[name] = out.get(name, 0) + count
    return out


def merged(
    held: bytes | None, created: int, stats: Mapping[str, int], breakdowns: Mapping[str, int]
) -> bytes | None:
    """The value a link's counters take when a batch's counts of it (its link's creation time
    `created`) are added to `held` (None: no value yet); None when there is nothing to write.
    The newest link of a code owns its counters (see FLUSH_CLICKS): hits of an older one count
    for the campaign only (None), a newer one's start afresh, as does a value that is not
    counters (nothing of ours writes one). A value takes no new field that would bring it
    past RECIPIENT_COUNTERS_MAX bytes (each flush decodes it whole: its size bounds the work):
    its totals and the fields it holds keep counting, a new breakdown value counts as its
    breakdown's BREAKDOWN_OTHER, and new hours and days count for the campaign only."""
    old = None if held is None else _strict(held)
    if old is None or old.created < created:
        return encode(created, stats, breakdowns)
    if old.created > created:
        return None
    assert held is not None
    size = _add_stats(old.stats, stats, len(held))
    _add_breakdowns(old.breakdowns, breakdowns, size)
    return orjson.dumps([old.created, old.stats, old.breakdowns])


def _add_stats(held: dict[str, int], stats: Mapping[str, int], size: int) -> int:
    """`stats` added to `held`, a value of `size` bytes, but for new fields past the bound (the
    all-time totals always count); the size it grows to."""
    for name, count in stats.items():
        if name not in held and name != CLICKS and name != BOTS:
            cost = len(name) + _FIELD_BYTES
            if size + cost > RECIPIENT_COUNTERS_MAX:
                continue
            size += cost
        held[name] = held.get(name, 0) + count
    return size


def _add_breakdowns(held: dict[str, int], breakdowns: Mapping[str, int], size: int) -> None:
    """`breakdowns` added to `held`, a value of `size` bytes: a new value past the bound, or
    past BREAKDOWN_VALUES_MAX of its breakdown, counts as the breakdown's BREAKDOWN_OTHER."""
    sizes: dict[str, int] | None = None  # values per breakdown, counted for a new value only
    for name, count in breakdowns.items():
        if name not in held:
            breakdown, other = _breakdown_of(name)
            if name != other:
                if sizes is None:
                    sizes = _value_counts(held)
                cost, values = len(name) + _FIELD_BYTES, sizes.get(breakdown, 0)
                if size + cost > RECIPIENT_COUNTERS_MAX or values >= BREAKDOWN_VALUES_MAX:
                    name = other
                else:
                    sizes[breakdown], size = values + 1, size + cost
        held[name] = held.get(name, 0) + count


def _value_counts(breakdowns: Mapping[str, int]) -> dict[str, int]:
    """How many values each breakdown holds (its BREAKDOWN_OTHER is none of them)."""
    sizes: dict[str, int] = {}
    for name in breakdowns:
        breakdown, other = _breakdown_of(name)
        if name != other:
            sizes[breakdown] = sizes.get(breakdown, 0) + 1
    return sizes


# The counts and times a value may hold: whole numbers JSON and Lua keep exactly.
_NUMBER_MAX = 2**53


def _strict(raw: bytes | str) -> LinkCounters | None:
    """`raw` as counters if it is what `encode` and `merged` write (whole numbers from 0 to
    _NUMBER_MAX for counts and time, each breakdown field named `breakdown:value`), else
    None."""
    try:
        value: Any = orjson.loads(raw)
        created, stats, breakdowns = value
    except (TypeError, ValueError):  # orjson.JSONDecodeError is a ValueError
        return None
    if not (isinstance(stats, dict) and isinstance(breakdowns, dict)):
        return None
    numbers = (created, *stats.values(), *breakdowns.values())
    if not all(type(number) is int and 0 <= number < _NUMBER_MAX for number in numbers):
        return None
    if not all(":" in name for name in breakdowns):
        return None
    return LinkCounters(created, stats, breakdowns)


def decode(raw: bytes | str) -> LinkCounters:
    """Raises CountersError for a value that is not counters (`merged` counts such a field
    afresh; until then the stats leave it out)."""
    counters = _strict(raw)
    if counters is None:
        raise CountersError(f"not a link's counters: {raw[:32]!r}")
    return counters
