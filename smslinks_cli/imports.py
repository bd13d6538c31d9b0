"""`smslinks sends import` and `smslinks conversions import`: the rows of a CSV file, whose
header names the API's fields, sent to POST /api/sends or /api/conversions 10,000 at a time.
Both are safe to run again: a send repeated is counted once, an order id stored once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from smslinks_cli.client import Api
from smslinks_cli.csvfiles import Row
from smslinks_cli.errors import ApiError, at_line
from smslinks_cli.send import MAX_BATCH


@dataclass(frozen=True, slots=True)
class Events:
    """What an import sends: the API's path, its list field, and the fields that are numbers."""

    path: str
    field: str
    integers: frozenset[str]


SENDS = Events("/api/sends", "sends", frozenset({"campaign_id"}))
CONVERSIONS = Events("/api/conversions", "conversions", frozenset())


async def import_rows(
    api: Api,
    events: Events,
    rows: Sequence[Row],
    source: str,
    advance: Callable[[int], None],
    batch_size: int = MAX_BATCH,
) -> list[Any]:
    """The API's answer to each batch, in order; the first error stops the import."""
    answers = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        body = {events.field: [row.fields for row in batch]}
        try:
            answers.append(await api.call("POST", events.path, json=body))
        except ApiError as exc:
            raise at_line(exc, events.field, source, [row.line for row in batch]) from None
        advance(len(batch))
    return answers
