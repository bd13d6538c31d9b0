"""Planning a batch of new links, apart from writing it: pure, no Redis.

`plan_batch` turns a request's items into the links to write, in request order: each
distinct URL tagged once, a code drawn for each item without one (unique within the
request), a custom code given twice refused, and a recipient given twice planned once (its
later items get the first item's link). `redraw` draws again the codes Redis found taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from admin import codes
from admin.exceptions import CodeTaken
from admin.models import BatchItem
from admin.tagging import Tagged, tag
from redirector.store.keys import recipient_field
from redirector.store.record import Link


@dataclass(slots=True)
class PlannedLink:
    index: int  # the item's position in the request
    code: str
    custom: bool  # the code came with the request rather than being drawn
    link: Link
    recipient_field: str  # "" when the link has no recipient


@dataclass(frozen=True, slots=True)
class Plan:
    links: list[PlannedLink]  # in request order, one per recipient
    repeats: dict[int, int]  # a later item of a recipient -> the index of its first item


def plan_batch(
    items: Sequence[BatchItem],
    *,
    campaign_id: int | None,
    params: Sequence[tuple[str, str]],
    tagged: bool,
    now: int,
    code_length: int,
) -> Plan:
    """`params` are the UTM parameters (`admin.tagging.utm_params`), () when not tagging."""
    destinations: dict[str, Tagged] = {}
    planned: list[PlannedLink] = []
    first_of: dict[str, int] = {}
    repeats: dict[int, int] = {}
    custom_codes: set[str] = set()
    for index, item in enumerate(items):
        field = ""
        if item.recipient is not None:
            field = recipient_field(campaign_id, item.recipient)
            if field in first_of:
                repeats[index] = first_of[field]
                continue
            first_of[field] = index
        if item.code is not None:
            if item.code in custom_codes:
                raise CodeTaken(item.code, index)
            custom_codes.add(item.code)
        destination = destinations.get(item.url)
        if destination is None:
            destination = destinations[item.url] = tagged_destination(item.url, params)
        link = Link(
            destination.destination,
            now,
            expires_at=expiry(item.expires_at),
            campaign_id=campaign_id,
            recipient=item.recipient,
            tagged=tagged,
            insert_at=destination.insert_at,
            inserted=destination.inserted,
        )
        planned.append(PlannedLink(index, item.code or "", item.code is not None, link, field))
    redraw(planned, [n for n, p in enumerate(planned) if not p.custom], code_length)
    return Plan(planned, repeats)


def redraw(planned: list[PlannedLink], which: Sequence[int], code_length: int) -> None:
    """Give `planned[index]`, for each index in `which`, a drawn code no other link has."""
    used = {p.code for p in planned}
    drawn = iter(codes.draw(len(which), code_length))
    for index in which:
        code = next(drawn)
        while code in used:
            code = codes.draw(1, code_length)[0]
        used.add(code)
        planned[index].code = code


def tagged_destination(url: str, params: Sequence[tuple[str, str]]) -> Tagged:
    """`url` was validated and normalised when the request was parsed (admin.models)."""
    return tag(url, params) if params else Tagged(url, len(url), 0)


def expiry(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp())
