"""A `BatchIn` body, parsed with a fast path for a campaign's send: 10,000 items that each
give only a recipient are checked here, not as 10,000 `BatchItem` models (`admin.models`
stays the one statement of the shape, and judges every other body)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from admin.models import MAX_BATCH, TEXT_MAX, BatchIn, BatchItem, UrlRules, parse
from admin.tagging import CONTROL_CHARACTERS


@dataclass(frozen=True, slots=True)
class Batch:
    campaign_id: int | None
    url: str | None
    tag: bool
    links: Sequence[BatchItem | str]  # a str: an item that gives only that recipient


# The rules of `Text` (length, no control character), for `_recipients`; not blank is
# checked apart, with the same str.strip as `_not_blank`.
_TEXT = re.compile(f"[^{CONTROL_CHARACTERS}]{{1,{TEXT_MAX}}}")


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
    """The recipients of the batch, if each of its items is a valid {"recipient": ...}."""
    items = data.get("links") if isinstance(data, dict) else None
    if type(items) is not list or not 1 <= len(items) <= MAX_BATCH:
        return None
    recipients = []
    for item in items:
        if type(item) is not dict or len(item) != 1:
            return None
        recipient = item.get("recipient")
        if type(recipient) is not str or not _TEXT.fullmatch(recipient) or not recipient.strip():
            return None
        recipients.append(recipient)
    return recipients
