"""Links: create them (a plan of `admin.service.plan`, checked, then written by
`admin.service.store`), get, update and delete them, each in its workspace: a campaign's
link is its campaign's workspace's; a link without campaign says its own in its record
(`Record.workspace`, None for `default`). Another workspace's link is LinkNotFound, as a
missing one; codes are one namespace across workspaces, so a custom code another workspace
holds is still CodeTaken."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from pydantic import MISSING

from admin.exceptions import (
    CampaignNotFound,
    CodeTaken,
    Contention,
    FieldError,
    LinkNotFound,
    ValidationFailed,
)
from admin.models import BatchItem, LinkPatch
from admin.service import as_text
from admin.service.campaigns import CODE_LENGTH, Campaign, CampaignService
from admin.service.plan import (
    Chain,
    Plan,
    PlannedLink,
    derive_codes,
    expiry,
    plan_batch,
    tagged_destination,
    with_recipient,
)
from admin.service.store import MAX_ATTEMPTS, LinkStore, check_chain
from admin.settings import AdminSettings
from admin.tagging import utm_params
from redirector.store.attribution import AttributionScripts
from redirector.store.connection import Store
from redirector.store.keys import (
    CODE_KEY,
    DEFAULT_WORKSPACE,
    DESTINATION_HASH_PREFIX,
    active_campaigns_key,
    campaign_key,
    destinations_key,
    link_key,
)
from redirector.store.record import (
    Destination,
    Link,
    Record,
    decode,
    encode,
    encode_destination,
    encode_text,
    encoder,
)
from redirector.store.scripts import MakeDestinationsScript, SingleKeyWrites, SwapLinkScript
from redirector.store.secret import SharedSecret

# The length of the codes derived for recipients of links without a campaign: fixed, since
# a change of CODE_LENGTH would move every such recipient's chain (and give them a second link).
NO_CAMPAIGN_CODE_LENGTH = 7
# Seconds between re-reads of the code key: one lost in a failover is written back, and one
# made again by another process meanwhile is refused, never used silently (store/secret.py).
CODE_KEY_RECHECK = 1.0


class Created(Protocol):
    """A link as a create answers it: a new one (its `PlannedLink`, written), or the link
    that the item turned out to be already, returned as it is (`Existing`)."""

    @property
    def code(self) -> str: ...
    @property
    def shared(self) -> Link: ...  # the link but for its recipient: alike links share one
    @property
    def recipient(self) -> str | None: ...
    @property
    def created(self) -> bool: ...
    @property
    def link(self) -> Link: ...


@dataclass(frozen=True, slots=True)
class Existing:
    """The link an item already was: its recipient's, or this very custom link."""

    code: str
    shared: Link
    recipient: str | None
    created: bool = False

    @property
    def link(self) -> Link:
        return with_recipient(self.shared, self.recipient)


class LinkService:
    def __init__(self, redis: Store, campaigns: CampaignService, settings: AdminSettings) -> None:
        self._redis = redis
        self._campaigns = campaigns
        self._settings = settings
        # Writes are acknowledged once `durability` says they would survive losing the master.
        durability = settings.durability
        self.store = LinkStore(redis, durability)
        self._make_destinations = MakeDestinationsScript(redis, durability)
        self._swap = SwapLinkScript(redis, durability)
        self._writes = SingleKeyWrites(redis, durability)
        self._attribution = AttributionScripts(redis, durability)
        self.code_key = SharedSecret(redis, CODE_KEY, 32, durability, recheck=CODE_KEY_RECHECK)

    async def create_links(
        self,
        workspace: str,
        campaign_id: int | None,
        items: Sequence[BatchItem | str],
        *,
        url: str | None = None,
        tagged: bool = True,
        batch: bool = True,
    ) -> list[Created]:
        """Create links in request order (`url` for the items without one). A recipient who
        already has a link in this campaign gets that link back unchanged (`created=False`),
        and so does a custom code that holds this very link. Every conflict is found before
        anything is written; see `admin.service.store` for what a failed write leaves. A
        campaign of another workspace is a 422, as a missing one."""
        try:
            return await self._create(workspace, campaign_id, items, url, tagged)
        except CodeTaken as taken:
            if batch:
                raise
            raise CodeTaken(taken.taken_code) from None  # one link: no batch item to name

    async def _create(
        self,
        workspace: str,
        campaign_id: int | None,
        items: Sequence[BatchItem | str],
        url: str | None,
        tagged: bool,
    ) -> list[Created]:
        campaign = None
        if campaign_id is not None:
            campaign = await self._campaign_field(campaign_id, workspace)
        length = await self._code_length(campaign)
        now = int(time.time())
        plan = plan_batch(
            items,
            url=url,
            campaign_id=campaign_id,
            params=self._utm(campaign) if tagged else (),
            tagged=tagged,
            now=now,
            code_length=length,
        )
        # Only recipients' codes are derived: without any, the key is neither needed nor made.
        personal = any(p.recipient is not None for p in plan.links)
        if personal:
            chain = await self.chain(campaign, workspace)
        else:
            chain = Chain(b"", length, _unmarked(campaign, workspace))
        derive_codes(plan, chain)
        if personal and campaign_id is not None:
            await self._sending(workspace, campaign_id, now)
        found = await self._find_destinations(campaign_id, plan.destinations)
        done, aliases = await self._checked(campaign_id, plan, found, chain)
        ids = await self._destination_ids(campaign_id, plan.destinations, found)
        writes = [p for p in plan.links if p.index not in done] if done else plan.links
        _encode_records(writes, ids, chain.workspace)
        # An alias that finds its recipient's link (given since the check) answers its custom
        # link as that one, unwritten: in the same call on one Redis. On a cluster the aliases
        # go first; one written without its link (a failure between) is passed over.
        if self.store.by_slot:
            await self.store.write(campaign_id, aliases, chain)
            _answered_by_aliases(writes, aliases)
            await self.store.write(campaign_id, [w for w in writes if not w.existing], chain)
        else:
            await self.store.write(campaign_id, writes + aliases, chain)
        if personal and campaign_id is not None:
            await self._sent(campaign_id, plan)
        return await self._results(plan, done)

    async def _sending(self, workspace: str, campaign_id: int, now: int) -> None:
        """Before a campaign's per-recipient links are written: conversions look for implied
        sends in the campaigns that made such links lately (admin/service/conversions.py)."""
        await self._writes.command(active_campaigns_key(workspace), "ZADD", "GT", now, campaign_id)

    async def _sent(self, campaign_id: int, plan: Plan) -> None:
        """Once they are written: the implied send of each recipient that had a send of the
        campaign reported already is replaced (admin/service/sends.py says why both sides
        look). Those found written already too, so that a retried batch catches up."""
        recipients = [p.recipient for p in plan.links if p.recipient is not None and p.counted]
        await self._attribution.mark_replaced(campaign_id, recipients)

    async def chain(self, campaign: Campaign | None, workspace: str = DEFAULT_WORKSPACE) -> Chain:
        """How the campaign's per-recipient codes are derived, or without a campaign those of
        `workspace`; the key is made on first use."""
        code_key = await self.code_key.value()
        if campaign is None:
            return Chain(code_key, NO_CAMPAIGN_CODE_LENGTH, _unmarked(campaign, workspace))
        return Chain(code_key, await self._code_length(campaign))

    async def _code_length(self, campaign: Campaign | None) -> int:
        """The length of the campaign's codes (today's CODE_LENGTH without campaign)."""
        if campaign is None:
            return self._settings.code_length
        if campaign.code_length is not None:
            return campaign.code_length
        # A campaign made before lengths were kept gets today's, stored once (the first admin
        # to ask wins): a later CODE_LENGTH must not move its recipients' chains.
        key = campaign_key(campaign.id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(key, CODE_LENGTH, self._settings.code_length)
            pipe.hget(key, CODE_LENGTH)
            _, stored = await pipe.execute()
        return int(stored)

    async def get_link(self, code: str, workspace: str) -> Link:
        return (await self._read(code, workspace))[2]

    async def update_link(self, code: str, patch: LinkPatch, workspace: str) -> Link:
        for attempt in range(MAX_ATTEMPTS):
            raw, record, link = await self._read(code, workspace)
            changed, target = await self._patched(record, link, patch)
            if await self._swap(code, raw, encode(changed), record.campaign_id, 0):
                return changed.link(target)
            await _pause(attempt)
        raise Contention(f"link {code!r} kept changing; try again")

    async def delete_link(self, code: str, workspace: str) -> None:
        """Leaves a tombstone: the code never serves again, and no recipient's chain of codes
        gets a hole (a hole would give a recipient a second link). A custom code's tombstone
        may be taken by a new link with that custom code."""
        for attempt in range(MAX_ATTEMPTS):
            raw, record, _ = await self._read(code, workspace)
            if record.custom:
                await _second_over(record.created_at)
            tombstone = Record(
                record.created_at,
                "",
                campaign_id=record.campaign_id,
                recipient=record.recipient,
                custom=record.custom,
                deleted=True,
                workspace=record.workspace,
            )
            if await self._swap(code, raw, encode(tombstone), record.campaign_id, -1):
                return
            await _pause(attempt)
        raise Contention(f"link {code!r} kept changing; try again")

    async def _read(self, code: str, workspace: str) -> tuple[bytes, Record, Link]:
        """The record as stored, decoded, and as a link; a tombstone or alias is no link, and
        neither is another workspace's link."""
        raw: bytes | None = await self._redis.hget(link_key(code), code)  # type: ignore[assignment]
        record = None if raw is None else decode(raw)
        if raw is None or record is None or not record.live:
            raise LinkNotFound(code)
        if await self.workspace_of(record) != workspace:
            raise LinkNotFound(code)
        [link] = await self.store.links([record])
        return raw, record, link

    async def workspace_of(self, record: Record) -> str:
        """The workspace of a link: its campaign's, or the one its record says."""
        if record.campaign_id is not None:
            return await self._campaigns.workspace_of(record.campaign_id)
        return record.workspace or DEFAULT_WORKSPACE

    async def _find_destinations(
        self, campaign_id: int | None, destinations: list[Destination]
    ) -> list[str | None]:
        """The ids the campaign's destinations already have (a read: nothing is made)."""
        if campaign_id is None:
            return [None] * len(destinations)
        fields = [destination_finder(d) for d in destinations]
        ids = await self._redis.hmget(destinations_key(campaign_id), fields)
        return [None if i is None else as_text(i) for i in ids]

    async def _destination_ids(
        self, campaign_id: int | None, destinations: list[Destination], found: list[str | None]
    ) -> list[Destination | str]:
        """Each destination as a record refers to it: its id in the campaign, made if new;
        itself, for links without a campaign and once the campaign shares as many as it may
        (SHARED_DESTINATIONS_MAX)."""
        if campaign_id is None:
            return list(destinations)
        if all(found):
            return [str(i) for i in found]
        pairs = [(destination_finder(d), encode_destination(d)) for d in destinations]
        ids = await self._make_destinations(campaign_id, pairs)
        if ids is None:
            raise _no_campaign(campaign_id)
        return [d if i is None else i for i, d in zip(ids, destinations, strict=True)]

    async def _checked(
        self,
        campaign_id: int | None,
        plan: Plan,
        found: list[str | None],
        chain: Chain,
    ) -> tuple[dict[int, str], list[PlannedLink]]:
        """Before anything is written: a 409 if a custom code is held by another link.
        Returns the items that need no write (item -> the code of the link they already
        are), and the aliases to write: the chain positions of new custom links with a
        recipient, so that the recipient is found to have that link."""
        custom = [p for p in plan.links if p.kind == "custom"]
        by_recipient = {p.recipient: p for p in custom if p.recipient is not None}
        walked = await self.store.recipient_links(campaign_id, by_recipient, chain)
        done: dict[int, str] = {}
        aliases: list[PlannedLink] = []
        for recipient, (code, position) in walked.items():
            planned = by_recipient[recipient]
            if code is not None:
                done[planned.index] = code  # the recipient has a link: returned unchanged
            else:
                check_chain(recipient, position)
                code_at = chain.code(campaign_id, recipient, position)
                aliases.append(_alias(planned, code_at, chain.workspace))
        held = await self.store.records(p.code for p in custom if p.index not in done)
        for planned in custom:
            holder = held.get(planned.code)
            if holder is None or planned.index in done:
                continue
            place = planned.destination
            mine = _record(planned, found[place] or plan.destinations[place], chain.workspace)
            if replace(holder, created_at=0) == replace(mine, created_at=0):
                done[planned.index] = planned.code  # this very link, written before
            elif not (holder.deleted and holder.custom):
                raise CodeTaken(planned.code, planned.index)
        return done, aliases

    async def _results(self, plan: Plan, done: dict[int, str]) -> list[Created]:
        # item -> the code of the link it already is
        old_of = {p.index: p.existing for p in plan.links if p.existing} | done
        codes = [c for c in old_of.values() if c]
        read = await self.store.records(codes)
        records = {code: r for code, r in read.items() if r is not None and r.live}
        if len(records) < len(read):
            # Deleted between the write and this read: the caller may simply try again.
            raise Contention("a recipient's link was deleted meanwhile; try again")
        links = dict(zip(records, await self.store.links(list(records.values())), strict=True))
        # A new link answers as it was planned: no object made per link.
        created: list[Created] = [
            Existing(old, links[old], links[old].recipient)
            if old_of and (old := old_of.get(p.index))
            else p
            for p in plan.links
        ]
        if not plan.repeats:
            return created  # plan.links is in request order
        results = {p.index: result for p, result in zip(plan.links, created, strict=True)}
        for index, first in plan.repeats.items():
            # The first item of a recipient comes before its repeats, so it is filled in.
            made = results[first]
            results[index] = Existing(made.code, made.shared, made.recipient)
        return [results[i] for i in sorted(results)]

    async def _campaign_field(self, campaign_id: int, workspace: str) -> Campaign:
        try:
            return await self._campaigns.get_campaign(campaign_id, workspace, count_links=False)
        except CampaignNotFound:
            raise _no_campaign(campaign_id) from None

    def _utm(self, campaign: Campaign | None) -> tuple[tuple[str, str], ...]:
        source, medium = self._settings.utm_source, self._settings.utm_medium
        if campaign is None:
            return utm_params(source=source, medium=medium, campaign=None)
        return utm_params(
            source=source,
            medium=medium,
            campaign=campaign.name,
            campaign_source=campaign.utm_source,
            campaign_medium=campaign.utm_medium,
        )

    async def _patched(
        self, record: Record, link: Link, patch: LinkPatch
    ) -> tuple[Record, Destination]:
        """The record with the patch applied, and its destination."""
        target = link.target
        if patch.url is not MISSING:
            params: tuple[tuple[str, str], ...] = ()
            if target.tagged:
                campaign = None
                if record.campaign_id is not None:
                    campaign = await self._campaigns.get_campaign(
                        record.campaign_id, None, count_links=False
                    )
                params = self._utm(campaign)
            tagged = tagged_destination(patch.url, params)
            target = Destination(*tagged, target.tagged)
            [ref] = await self._destination_ids(record.campaign_id, [target], [None])
            record = replace(record, destination=ref)
        if "expires_at" in patch.model_fields_set:
            record = replace(record, expires_at=expiry(patch.expires_at))
        if patch.disabled is not MISSING:
            record = replace(record, disabled=patch.disabled)
        return record, target


def destination_finder(destination: Destination) -> str:
    """The field of a campaign's destinations hash that finds this destination's id."""
    return DESTINATION_HASH_PREFIX + _sha1(encode_destination(destination))


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _unmarked(campaign: Campaign | None, workspace: str) -> str | None:
    """The workspace that the records of new links carry: only a link without campaign
    outside `default` says its own (`Record.workspace`)."""
    return None if campaign is not None or workspace == DEFAULT_WORKSPACE else workspace


def _record(planned: PlannedLink, destination: Destination | str, workspace: str | None) -> Record:
    link = planned.shared
    return Record(
        link.created_at,
        destination,
        link.expires_at,
        link.campaign_id,
        planned.recipient,
        custom=planned.kind == "custom",
        workspace=workspace,
    )


def _encode_records(
    planned: list[PlannedLink], ids: list[Destination | str], workspace: str | None
) -> None:
    """Gives the planned links their records; those alike but for their recipient (the
    links of a batch, mostly) share one encoder."""
    encoders: dict[tuple[int, bool], Callable[[str | None], str]] = {}
    for p in planned:
        alike = (id(p.shared), p.kind == "custom")  # p.shared: by destination and expiry
        encode = encoders.get(alike)
        if encode is None:
            encode = encoders[alike] = encoder(_record(p, ids[p.destination], workspace))
        p.record = encode(p.recipient)


def _alias(planned: PlannedLink, chain_code: tuple[int, str], workspace: str | None) -> PlannedLink:
    """A recipient's chain position that points at the recipient's custom link."""
    position, code = chain_code
    link, recipient = planned.shared, planned.recipient
    record = Record(
        link.created_at,
        "",
        None,
        link.campaign_id,
        recipient,
        alias_of=planned.code,
        workspace=workspace,
    )
    return PlannedLink(
        planned.index,
        code,
        "chain",
        link,
        recipient,
        planned.destination,
        position,
        encode_text(record),
        counted=False,
    )


def _answered_by_aliases(writes: list[PlannedLink], aliases: list[PlannedLink]) -> None:
    """The custom links whose alias found their recipient's link: each is that link."""
    custom = {w.index: w for w in writes}
    for alias in aliases:
        item = custom.get(alias.index)
        if item is not None and alias.existing not in (None, item.code):
            item.existing = alias.existing


async def _second_over(created_at: int) -> None:
    """Returns once the second `created_at` is over: the clicks of two links given one custom
    code are told apart by their creation times (redirector/store/flush.py)."""
    left = created_at + 1 - time.time()
    if left > 0:
        await asyncio.sleep(left)


async def _pause(attempt: int) -> None:
    # Another write changed the record between our read and our swap: read again, after a
    # short random pause so that writers racing for one link spread out.
    await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))


def _no_campaign(campaign_id: int | None) -> ValidationFailed:
    return ValidationFailed([FieldError("campaign_id", f"no campaign with id {campaign_id}")])
