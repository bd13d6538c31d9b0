"""The link store as the admin uses it: records and destinations read, recipients' chains
walked, and new links written in groups. No HTTP and no request models here.

On one Redis a batch is one group, one CREATE_LINKS call: all or nothing. On a cluster a
script may only touch one slot, so a batch is written in one group per link tag; each group
is all or nothing. A batch that meets a conflict (a 409) after some groups were written
takes those links back (UNDO_LINKS), so it wrote nothing. One that fails on Redis after
some groups were written answered an error (503) and may have written them. Retrying it is
safe: a recipient's code is derived (admin/codes.py), so the retry finds the
links it wrote; a custom code holding this very link is that link; and every link is counted
in its campaign in the same step as it is written. Links with neither recipient nor custom
code that such an attempt wrote are left without anybody knowing their code (counted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from admin.exceptions import CodeTaken, Contention
from admin.service.plan import Chain, PlannedLink, next_position, redraw
from redirector.store.connection import NO_WAIT, Durability, Store
from redirector.store.keys import destinations_key, link_key, link_tag
from redirector.store.record import (
    Destination,
    Link,
    Record,
    RecordError,
    decode,
    decode_destination,
)
from redirector.store.scripts import (
    CodesCollided,
    CreateLinksScript,
    CreateOutcome,
    CustomCodeTaken,
    UndoLinksScript,
    Written,
    call_each,
    spans_slots,
)

# How many rounds a batch's write may take (codes drawn again, moved along their chains)
# and how far a recipient's chain is followed, before giving up with a 409.
MAX_ATTEMPTS = 20
MAX_CHAIN = 16


class LinkStore:
    def __init__(self, redis: Store, durability: Durability = NO_WAIT) -> None:
        self._redis = redis
        self._create_links = CreateLinksScript(redis, durability)
        self._undo_links = UndoLinksScript(redis, durability)
        # Whether a batch is written in one group per link tag: on a cluster it must be;
        # tests set it on one Redis to see a failure between two groups.
        self.by_slot = spans_slots(redis)

    async def records(self, codes: Iterable[str]) -> dict[str, Record | None]:
        wanted = list(dict.fromkeys(codes))
        if not wanted:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for code in wanted:
                pipe.hget(link_key(code), code)
            raws = await pipe.execute()
        return {
            code: None if raw is None else decode(raw)
            for code, raw in zip(wanted, raws, strict=True)
        }

    async def links(self, records: Sequence[Record]) -> list[Link]:
        """The records with their destinations (one read for those they refer to)."""
        wanted = {
            (r.campaign_id, r.destination)
            for r in records
            if isinstance(r.destination, str) and r.campaign_id is not None
        }
        found = await self.destinations(wanted)
        return [r.link(found.get((r.campaign_id or 0, str(r.destination)))) for r in records]

    async def destinations(
        self, wanted: Iterable[tuple[int, str]]
    ) -> dict[tuple[int, str], Destination]:
        pairs = list(wanted)
        if not pairs:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for campaign_id, destination_id in pairs:
                pipe.hget(destinations_key(campaign_id), destination_id)
            raws = await pipe.execute()
        if any(raw is None for raw in raws):
            raise RecordError(f"a destination of {pairs} is missing")
        return {pair: decode_destination(raw) for pair, raw in zip(pairs, raws, strict=True)}

    async def recipient_links(
        self, campaign_id: int | None, recipients: Iterable[str], chain: Chain
    ) -> dict[str, tuple[str | None, int]]:
        """Each recipient's link: its code (None when it has none), and the first position of
        its chain that no record holds (where its link would go; MAX_CHAIN when all are)."""
        at = {r: chain.code(campaign_id, r, 0) for r in recipients}
        owner = _owner(campaign_id, chain)
        found: dict[str, tuple[str | None, int]] = {}
        for _ in range(MAX_CHAIN):
            if not at:
                return found
            records = await self.records(code for _, code in at.values())
            targets = await self.records(
                r.alias_of for r in records.values() if r is not None and r.alias_of
            )
            later = {}
            for recipient, (position, code) in at.items():
                record = records[code]
                target = targets.get(record.alias_of or "") if record else None
                if record is None:
                    found[recipient] = (None, position)
                elif _of(record, owner, recipient):
                    found[recipient] = (code, position)
                elif _owned(record, owner, recipient) and _of(target, owner, recipient):
                    found[recipient] = (record.alias_of or "", position)
                else:
                    later[recipient] = chain.code(campaign_id, recipient, position + 1)
            at = later
        return found | {recipient: (None, MAX_CHAIN) for recipient in at}

    async def write(self, campaign_id: int | None, writes: list[PlannedLink], chain: Chain) -> None:
        """Write every item, in rounds: an item whose code turned out to be held by another
        link gets another code (drawn again, or the next on its recipient's chain) and goes
        to the next round. Sets `existing` on the items that were already written."""
        written: list[PlannedLink] = []  # by this call, in the rounds so far
        try:
            await self._rounds(campaign_id, writes, chain, written)
        except (CodeTaken, Contention):
            # A conflict found in a later round: what the earlier ones wrote is taken back,
            # so that the request that answers 409 wrote nothing.
            for group in self._groups(written):
                await self._undo_links(campaign_id, group)
            raise

    async def _rounds(
        self,
        campaign_id: int | None,
        writes: list[PlannedLink],
        chain: Chain,
        written: list[PlannedLink],
    ) -> None:
        pending = writes
        for _ in range(MAX_ATTEMPTS):
            if not pending:
                return
            now, pending = _one_per_code(pending)
            groups = self._groups(now)
            outcomes = await call_each(self.write_group(campaign_id, group) for group in groups)
            retry, taken, failure = [], None, None
            for group, outcome in zip(groups, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    failure = failure or outcome
                elif isinstance(outcome, CustomCodeTaken):
                    taken = taken or group[outcome.item]
                elif isinstance(outcome, CodesCollided):
                    for index in outcome.items:
                        _move(group[index], group, chain)
                    retry += group
                else:
                    written += [item for at, item in enumerate(group) if at not in outcome.existing]
                    retry += await self._stale_aliases(campaign_id, group, outcome, chain)
            if failure is not None:
                raise failure
            if taken is not None:
                raise CodeTaken(taken.code, taken.index)
            pending = retry + pending
        raise Contention("could not find free codes; try again")

    async def write_group(self, campaign_id: int | None, group: list[PlannedLink]) -> CreateOutcome:
        """One CREATE_LINKS call: the items of one tag on a cluster."""
        return await self._create_links(campaign_id, group)

    def _groups(self, writes: list[PlannedLink]) -> list[list[PlannedLink]]:
        if not self.by_slot:
            return [writes]
        groups: dict[str, list[PlannedLink]] = {}
        for item in writes:
            groups.setdefault(link_tag(item.code), []).append(item)
        return list(groups.values())

    async def _stale_aliases(
        self, campaign_id: int | None, group: list[PlannedLink], written: Written, chain: Chain
    ) -> list[PlannedLink]:
        """Records which items were already written; returns those whose chain position is an
        alias of a custom code that is no longer the recipient's link (deleted, or taken by
        another since), moved to the next position."""
        aliased = {}
        for index, code in written.existing.items():
            item = group[index]
            item.existing = code
            # A custom link answered as its recipient's link is never moved along a chain.
            if code != item.code and item.counted and item.kind == "chain":
                aliased[code] = item
        targets = await self.records(aliased)
        stale = []
        owner = _owner(campaign_id, chain)
        for code, item in aliased.items():
            if not _of(targets[code], owner, item.recipient):
                item.existing = None
                next_position(item, chain)
                check_chain(item.recipient, item.position)
                stale.append(item)
        return stale


Owner = tuple[int | None, str | None]


def _owner(campaign_id: int | None, chain: Chain) -> Owner:
    """Whose links a chain walks: a campaign's, or a workspace's without campaign (None for
    `default`), as records say (`Record.campaign_id`, `Record.workspace`)."""
    return campaign_id, chain.workspace if campaign_id is None else None


def _owned(record: Record | None, owner: Owner, recipient: str | None) -> bool:
    """Whether `record` is a link or an alias of that owner and recipient (no tombstone)."""
    return (
        record is not None
        and not record.deleted
        and (record.campaign_id, record.workspace, record.recipient) == (*owner, recipient)
    )


def _of(record: Record | None, owner: Owner, recipient: str | None) -> bool:
    """Whether `record` is a link (no alias) of that owner and recipient."""
    return record is not None and record.live and _owned(record, owner, recipient)


def _one_per_code(
    writes: list[PlannedLink],
) -> tuple[list[PlannedLink], list[PlannedLink]]:
    """The items to write now, and those whose code another item of this round has: they
    wait for the next round, where that item's record is in Redis to be compared with. A
    custom code goes first: it cannot move, while a drawn or derived code that finds it taken
    moves on (else the custom item would be a 409 after the others were written)."""
    if len({item.code for item in writes}) == len(writes):
        return writes, []  # a batch's codes are all distinct: no loop over them
    custom = {item.code for item in writes if item.kind == "custom"}
    claimed: set[str] = set()
    now: list[PlannedLink] = []
    later: list[PlannedLink] = []
    for item in writes:
        code = item.code
        wait = code in claimed or (item.kind != "custom" and code in custom)
        (later if wait else now).append(item)
        if not wait:
            claimed.add(code)
    return now, later


def _move(item: PlannedLink, group: list[PlannedLink], chain: Chain) -> None:
    if item.kind == "random":
        redraw(group, [group.index(item)], len(item.code))  # the length it was drawn at
    else:
        next_position(item, chain)
    check_chain(item.recipient, item.position)


def check_chain(recipient: str | None, position: int) -> None:
    """A 409 once a recipient's chain is used up: every deleted link of theirs keeps its code."""
    if position >= MAX_CHAIN:
        raise Contention(
            f"recipient {recipient!r} has used up the limit of {MAX_CHAIN} codes per campaign"
            " (each deleted link keeps one); no more links can be made for them"
        )
