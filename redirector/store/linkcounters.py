"""A per-recipient link's click counters: one field of its campaign's `s:r:{C}` hash (keys.py),
`[created, {stats field: n}, {breakdown field: n}]` as JSON; the fields are those a link's s:l
and b:l hashes hold, under the same rules. The click worker makes a link's first value
(`encode`), FLUSH_CLICKS adds later hits to the value held (flush.py), the admin reads it
(`decode`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from redirector.store.keys import (
    BREAKDOWN_OTHER,
    BREAKDOWN_VALUES_MAX,
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
    """A link's first value; its breakdowns capped as FLUSH_CLICKS caps them (a batch may hold
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


def capped(breakdowns: Mapping[str, int], budget: int) -> dict[str, int]:
    """At most BREAKDOWN_VALUES_MAX values per breakdown (a field's prefix up to ':'), taken in
    the order given while they fit in about `budget` bytes of JSON; the others' counts go to
    the breakdown's BREAKDOWN_OTHER."""
    out: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for name, count in breakdowns.items():
        breakdown = name[: name.find(":") + 1]
        other = breakdown + BREAKDOWN_OTHER
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


def decode(raw: bytes | str) -> LinkCounters:
    """Raises CountersError for a value that is not counters (FLUSH_CLICKS counts such a
    field afresh)."""
    try:
        value: Any = orjson.loads(raw)
        created, stats, breakdowns = value
        if not (isinstance(stats, dict) and isinstance(breakdowns, dict)):
            raise TypeError("not two objects")
        return LinkCounters(
            int(created),
            {str(k): int(v) for k, v in stats.items()},
            {str(k): int(v) for k, v in breakdowns.items()},
        )
    except (TypeError, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise CountersError(f"not a link's counters: {raw[:32]!r}") from exc
