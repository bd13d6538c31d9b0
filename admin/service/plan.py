"""Planning a batch of new links, apart from writing it: pure, no Redis.

`plan_batch` turns a request's items into the links to write, in request order: each
distinct URL tagged once into a `Destination`, a code for each item (the custom one given,
a recipient's derived one, or a drawn one, unique within the request), a custom code given
twice refused, and a recipient given twice planned once (its later items get the first
item's link). `derive_codes` gives recipients' links their codes; `redraw` draws again the codes
Redis found taken; `next_position` moves a recipient's code along its chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from admin import codes
from admin.exceptions import CodeTaken, FieldError, ValidationFailed
from admin.models import BatchItem
from admin.tagging import Tagged, tag
from redirector.store.record import Destination, Link
from redirector.store.scripts import Kind


@dataclass(slots=True)
class PlannedLink:
    """One record to write (a `NewLink` of the store's script): a new link, whose code may
    still change, or an alias; and, once written, what it turned out to be."""

    index: int  # the item's position in the request
    code: str
    kind: Kind  # "custom" (given), "chain" (a recipient's, derived) or "random" (drawn)
    shared: Link  # the link but for its recipient: one object for the alike links of a batch
    recipient: str | None
    destination: int  # index into the plan's destinations
    position: int = 0  # where `code` is on its recipient's chain, for kind "chain"
    record: str = ""  # encoded, once the destination's id is known
    counted: bool = True  # an alias is no link: not counted in its campaign
    existing: str | None = None  # the code of the link this item turned out to be already

    @property
    def link(self) -> Link:
        return with_recipient(self.shared, self.recipient)

    @property
    def created(self) -> bool:
        """Written as a new link: so a create answers it (`admin.service.links.Created`)."""
        return self.existing is None


def with_recipient(shared: Link, recipient: str | None) -> Link:
    return shared if shared.recipient == recipient else shared._replace(recipient=recipient)


@dataclass(frozen=True, slots=True)
class Plan:
    links: list[PlannedLink]  # in request order, one per recipient
    repeats: dict[int, int]  # a later item of a recipient -> the index of its first item
    destinations: list[Destination]  # distinct, in order of first use


@dataclass(frozen=True, slots=True)
class Chain:
    """How a recipient's codes are derived: the key (`cfg:code_key`) and the code length;
    and for links without campaign, their workspace when it is not `default` (their records
    carry it too: `Record.workspace`)."""

    key: bytes
    code_length: int
    workspace: str | None = None

    def owner(self, campaign_id: int | None) -> int | str | None:
        """Whose chain (`codes.owner_text`): the campaign, or the links without one of a
        workspace."""
        if campaign_id is not None or self.workspace is None:
            return campaign_id
        return "-" + self.workspace

    def code(self, campaign_id: int | None, recipient: str, position: int) -> tuple[int, str]:
        """The first position from `position` on with an allowed code, and that code."""
        owner = self.owner(campaign_id)
        return codes.derive(self.key, owner, recipient, position, self.code_length)

    def first_codes(self, campaign_id: int | None, recipients: list[str]) -> list[tuple[int, str]]:
        """`code(campaign_id, recipient, 0)` of each recipient."""
        return codes.first_codes(self.key, self.owner(campaign_id), recipients, self.code_length)


def plan_batch(
    items: Sequence[BatchItem | str],
    *,
    url: str | None = None,
    campaign_id: int | None,
    params: Sequence[tuple[str, str]],
    tagged: bool,
    now: int,
    code_length: int,
) -> Plan:
    """`url` is the batch's own, for items without one; `params` are the UTM parameters
    (`admin.tagging.utm_params`), () when not tagging. A recipient's link gets its code
    from `derive_codes`, once the plan is known to be valid."""
    places: dict[str, int] = {}
    destinations: list[Destination] = []
    shared: dict[tuple[int, int | None], Link] = {}  # by destination and expiry
    planned: list[PlannedLink] = []
    first_of: dict[str, int] = {}
    repeats: dict[int, int] = {}
    custom_codes: set[str] = set()
    no_url: list[FieldError] = []
    for index, item in enumerate(items):
        if not isinstance(item, str):
            recipient, code, given, expires = _fields(item, url)
        else:  # only a recipient: most items of a campaign's send, made without a call
            recipient, code, given, expires = item, None, url, None
        if recipient is not None:
            if recipient in first_of:
                repeats[index] = first_of[recipient]
                continue
            first_of[recipient] = index
        if given is None:
            no_url.append(FieldError(f"links[{index}].url", "required: the batch has none", index))
            continue
        if code is not None:
            _claim(custom_codes, code, index)
        place = places.get(given)
        if place is None:
            place = places[given] = len(destinations)
            destinations.append(_destination(tagged_destination(given, params), tagged))
        alike = (place, expires)
        link = shared.get(alike)
        if link is None:
            target = destinations[place]
            link = shared[alike] = Link(
                target.destination,
                now,
                alike[1],
                campaign_id,
                None,
                False,
                tagged,
                target.insert_at,
                target.inserted,
            )
        kind: Kind = "custom" if code is not None else "random" if recipient is None else "chain"
        planned.append(PlannedLink(index, code or "", kind, link, recipient, place))
    if no_url:
        raise ValidationFailed(no_url)
    redraw(planned, [n for n, p in enumerate(planned) if p.kind == "random"], code_length)
    return Plan(planned, repeats, destinations)


def _claim(custom_codes: set[str], code: str, index: int) -> None:
    """A custom code given twice in one request is taken by its first item."""
    if code in custom_codes:
        raise CodeTaken(code, index)
    custom_codes.add(code)


def _fields(
    item: BatchItem, url: str | None
) -> tuple[str | None, str | None, str | None, int | None]:
    """An item's recipient, custom code, URL and expiry."""
    return item.recipient, item.code, item.url or url, expiry(item.expires_at)


def derive_codes(plan: Plan, chain: Chain) -> None:
    """Give each recipient's link the first code of its chain."""
    chained = [p for p in plan.links if p.kind == "chain"]
    recipients = [p.recipient for p in chained if p.recipient is not None]
    if not chained:
        return
    campaign_id = chained[0].shared.campaign_id  # the same for every link of a plan
    found = chain.first_codes(campaign_id, recipients)
    for planned, (position, code) in zip(chained, found, strict=True):
        planned.position, planned.code = position, code


def redraw(planned: list[PlannedLink], which: Sequence[int], code_length: int) -> None:
    """Give `planned[index]`, for each index in `which`, a drawn code no other link has."""
    if not which:
        return  # a campaign's send: no set of its 10,000 codes to build
    used = {p.code for p in planned}
    drawn = iter(codes.draw(len(which), code_length))
    for index in which:
        code = next(drawn)
        while code in used:
            code = codes.draw(1, code_length)[0]
        used.add(code)
        planned[index].code = code


def next_position(planned: PlannedLink, chain: Chain) -> None:
    """Move a recipient's link to the next position of its chain (the code it had is held by
    another link, or by a tombstone)."""
    recipient = planned.recipient
    assert recipient is not None  # only a recipient's links are on a chain
    planned.position, planned.code = chain.code(
        planned.shared.campaign_id, recipient, planned.position + 1
    )


def tagged_destination(url: str, params: Sequence[tuple[str, str]]) -> Tagged:
    """`url` was validated and normalised when the request was parsed (admin.models)."""
    return tag(url, params) if params else Tagged(url, len(url), 0)


def _destination(tagged: Tagged, tagging: bool) -> Destination:
    return Destination(tagged.destination, tagged.insert_at, tagged.inserted, tagging)


def expiry(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp())
