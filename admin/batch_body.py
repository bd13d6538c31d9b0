"""A `BatchIn` body, parsed with a fast path for a campaign's send: 10,000 items that each
give only a recipient are checked here, not as 10,000 `BatchItem` models (`admin.models`
stays the one statement of the shape, and judges every other body)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from admin.models import MAX_BATCH, TEXT_MAX, BatchIn, BatchItem, UrlRules, parse
from admin.tagging import CONTROL_CHARACTERS


@dataclass(frozen=True, slots=True)
class Batch:
    campaign_id: int | None
    url: str | None
    tag: bool
    links: Sequence[BatchItem | str]  # a str: an item that gives only that recipient


# A control character, of those `Text` refuses.
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


def parse_batch(data: Any, rules: UrlRules) -> Batch:
    """A `BatchIn` body. Items that all give only a recipient are planned as their recipient
    alone (20 times faster); should any be refused, the whole body goes through the model,
    so that the errors are the model's own."""
    recipients = _recipients(data)
    if recipients is None:
        body = parse(BatchIn, data, rules)
        return Batch(body.campaign_id, body.url, body.tag, body.links)
    # The rest of the body is the model's to check: with one empty item in place of the links.
    body = parse(BatchIn, {**data, "links": [{}]}, rules)
    return Batch(body.campaign_id, body.url, body.tag, recipients)


def _recipients(data: Any) -> list[str] | None:
    """The recipients of the batch, if each of its items is a valid {"recipient": ...}. Each
    rule is checked over all the items in one pass of C (map, join), not a loop of Python
    (10,000 items: 2.6 -> 1.6 ms)."""
    items = data.get("links") if isinstance(data, dict) else None
    if type(items) is not list or not 1 <= len(items) <= MAX_BATCH:
        return None
    if set(map(type, items)) != {dict} or set(map(len, items)) != {1}:
        return None
    recipients: list[Any] = list(map(dict.get, items, repeat("recipient")))  # None: not given
    if set(map(type, recipients)) != {str}:
        return None
    # The rules of `Text`: 1 to TEXT_MAX characters, no control character (in ASCII, exactly
    # the unprintable ones), not blank (of 1+ characters, all spaces: nothing left by strip).
    lengths = list(map(len, recipients))
    if min(lengths) < 1 or max(lengths) > TEXT_MAX or any(map(str.isspace, recipients)):
        return None
    joined = "".join(recipients)
    if not joined.isprintable() if joined.isascii() else _CONTROL.search(joined):
        return None
    return recipients
