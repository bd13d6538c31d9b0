"""Moving a store of layout 1 (the releases before the tagged key schema, described in
redirector/store/legacy.py) into the schema of keys.py; `python -m admin migrate` runs it.

Each phase reads one kind of old key with SCAN, a chunk at a time (memory is bounded by a
chunk), and writes what it read in a few calls (admin/service/legacy_store.py). Every write
is one that changes nothing when made again: records are written only where their code holds
nothing, campaign fields with HSETNX, aliases by the admin's own chain writes, and click keys
are moved (renamed, or merged and removed in one step). So a run stopped anywhere is finished
by running it again, and a link is served from its old key until its new record is written.
The phases, in the order they depend on each other:

1. campaigns   each c:<id> -> c:{<id>}, without its link count (counted per link tag now)
2. links       each record of an l: bucket -> its code's field of the new l: hashes, counted
               in its campaign; a campaign's destinations stored once, in its d:{<id>}
3. recipients  each entry of the r: index -> an alias at the first free position of the
               recipient's chain, pointing at the old code, so asking for the recipient's
               link again answers that code (as for a recipient's custom link)
4. clicks      each click key moved to its tagged name; the counters of a link that layout 1
               deleted (it kept no tombstone) get a tombstone for their code, so that the code
               is never handed out again, and count no link (a custom code made again: none)
5. check       each campaign's link count compared with the one layout 1 kept

With `delete_old`, the old entries of links and recipients are deleted once they are in the
new layout, and the old campaign hashes last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from redis.asyncio import Redis, RedisCluster

from admin.exceptions import CampaignNotFound, Contention
from admin.service import as_text
from admin.service.campaigns import CampaignService
from admin.service.legacy_store import (
    CHUNK,
    SCAN_COUNT,
    Field,
    LegacyStore,
    migrated_record,
    tombstone,
)
from admin.service.links import LinkService
from admin.service.plan import Chain, PlannedLink
from admin.settings import AdminSettings
from redirector.store import legacy
from redirector.store.connection import Store
from redirector.store.keys import LINK_TAGS, campaign_key, link_count_key
from redirector.store.record import (
    Destination,
    Link,
    Record,
    RecordError,
    decode,
    encode_text,
)

# Problems kept word for word for the summary (all are counted).
PROBLEMS_SHOWN = 20


@dataclass
class Tally:
    """What a run found and did; `problems` are what it could not migrate (left in place)."""

    campaigns: int = 0
    campaigns_written: int = 0
    links: int = 0
    links_written: int = 0
    links_already: int = 0  # in the new layout already, as a run before wrote them
    links_changed: int = 0  # changed in the new layout since a run before wrote them
    recipients: int = 0
    aliases_written: int = 0
    aliases_already: int = 0  # the chain answers the old code already
    recipients_relinked: int = 0  # the recipient has another link in the new layout
    recipients_dangling: int = 0  # the old index named no live link of theirs
    click_keys_moved: int = 0
    tombstones: int = 0
    old_deleted: int = 0  # old link records, index entries and campaign hashes
    count_differences: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < PROBLEMS_SHOWN:
            self.problems.append(text)


# Called after each chunk with the phase's name, and with done=True when the phase ends.
Progress = Callable[[str, Tally, bool], None]


def _quiet(phase: str, tally: Tally, done: bool) -> None:
    pass


@dataclass(frozen=True, slots=True)
class _OldLink:
    old: Field  # its field of an l: bucket
    code: str
    record: Record


@dataclass(frozen=True, slots=True)
class _Entry:
    """An entry of the old recipient index whose link is in the new layout."""

    old: Field  # its field of an r: bucket
    recipient: str
    code: str
    target: Record  # the link's new record


async def refusal(redis: Store) -> str | None:
    """Why this store cannot be migrated, or None: layout 1 ran on one Redis only, and the
    migration's steps touch keys of many slots."""
    if isinstance(redis, RedisCluster):
        return "the store is a Redis Cluster (REDIS_CLUSTER=true)"
    info = await redis.info("cluster")
    if info.get("cluster_enabled"):
        return "the server runs in cluster mode"
    return None


class Migration:
    def __init__(
        self,
        redis: Redis,
        settings: AdminSettings,
        *,
        delete_old: bool = False,
        progress: Progress = _quiet,
        scan_count: int = SCAN_COUNT,
        chunk: int = CHUNK,
    ) -> None:
        self._redis = redis
        self._delete_old = delete_old
        self._progress = progress
        self._campaigns = CampaignService(redis, settings.code_length, settings.durability)
        self._links = LinkService(redis, self._campaigns, settings)
        self._store = self._links.store
        self._old = LegacyStore(redis, settings.durability, scan_count, chunk)
        self._chains: dict[int | None, Chain | None] = {}
        self._old_counts: dict[int, int] = {}  # campaign -> its link count in layout 1
        self.tally = Tally()

    async def old_layout_present(self) -> bool:
        for match in legacy.ALL_MATCHES:
            async for names in self._old.scan(match):
                if any(legacy.is_old(name) for name in names):
                    return True
        return False

    async def run(self) -> Tally:
        for phase, step in (
            ("campaigns", self._campaigns_phase),
            ("links", self._links_phase),
            ("recipients", self._recipients_phase),
            ("clicks", self._clicks_phase),
            ("check", self._check_phase),
        ):
            await step()
            self._progress(phase, self.tally, True)
        return self.tally

    # -- 1. campaigns ----------------------------------------------------------------------

    async def _campaigns_phase(self) -> None:
        async for names in self._old.scan(legacy.CAMPAIGNS_MATCH):
            ids = {name: i for name in names if (i := legacy.campaign_id_of(name)) is not None}
            spans = []  # how many fields each campaign sets, in order
            async with self._redis.pipeline(transaction=True) as pipe:
                for campaign_id, flat in zip(
                    ids.values(), await self._old.hashes(list(ids)), strict=True
                ):
                    pairs = dict(zip(flat[::2], flat[1::2], strict=True))
                    links = pairs.pop(legacy.CAMPAIGN_LINKS.encode(), b"0")
                    self._old_counts[campaign_id] = int(links)
                    kept = list(pairs.items())
                    for name, value in kept:
                        pipe.hsetnx(campaign_key(campaign_id), name, value)
                    spans.append(len(kept))
                replies = await pipe.execute()
            self.tally.campaigns += len(ids)
            start = 0
            for span in spans:
                self.tally.campaigns_written += any(replies[start : start + span])
                start += span
            self._progress("campaigns", self.tally, False)

    # -- 2. links ---------------------------------------------------------------------------

    async def _links_phase(self) -> None:
        async for fields in self._old.old_fields(legacy.LINKS_MATCH, legacy.is_link_bucket):
            olds = self._decoded(fields)
            targets = await self._old.references([old.record for old in olds])
            items = [
                (
                    old.code,
                    old.record.campaign_id,
                    encode_text(migrated_record(old.code, old.record, target)),
                )
                for old, target in zip(olds, targets, strict=True)
            ]
            outcomes = await self._old.put(items)
            done = await self._links_done(olds, outcomes)
            await self._drop(old.old for old in olds if old.code in done)
            self._progress("links", self.tally, False)

    def _decoded(self, fields: list[Field]) -> list[_OldLink]:
        olds = []
        self.tally.links += len(fields)
        for old in fields:
            bucket, raw_code, raw = old
            code = as_text(raw_code)
            try:
                record = decode(raw)
            except RecordError as exc:
                self.tally.problem(f"link {code!r} in {bucket}: {exc}")
                continue
            if not isinstance(record.destination, Destination) or not record.live:
                self.tally.problem(f"link {code!r} in {bucket}: not a layout-1 record")
                continue
            olds.append(_OldLink(old, code, record))
        return olds

    async def _links_done(self, olds: list[_OldLink], outcomes: dict[str, int]) -> set[str]:
        """The codes whose link is in the new layout (tallied); a code held by another link
        is a problem, and its old record stays."""
        held = [old for old in olds if outcomes[old.code] == legacy.HELD]
        found = await self._old.records([old.code for old in held])
        done = {old.code for old in olds if outcomes[old.code] != legacy.HELD}
        self.tally.links_written += sum(outcomes[code] == legacy.WRITTEN for code in done)
        self.tally.links_already += sum(outcomes[code] == legacy.ALREADY for code in done)
        for old, now in zip(held, found, strict=True):
            if now is not None and _same_link(now, old.record):
                self.tally.links_changed += 1  # edited or deleted by the admin since
                done.add(old.code)
            else:
                self.tally.problem(
                    f"link {old.code!r}: its code holds another link in the new layout;"
                    f" left in {old.old[0]}"
                )
        return done

    # -- 3. recipients ----------------------------------------------------------------------

    async def _recipients_phase(self) -> None:
        async for fields in self._old.old_fields(
            legacy.RECIPIENTS_MATCH, legacy.is_recipient_bucket
        ):
            self.tally.recipients += len(fields)
            codes = [as_text(code) for _, _, code in fields]
            by_campaign: dict[int | None, list[_Entry]] = {}
            done: list[Field] = []  # the entries that are in the new layout
            for old, code, target in zip(
                fields, codes, await self._old.records(codes), strict=True
            ):
                campaign_id, recipient = legacy.recipient_of(as_text(old[1]))
                if target is None or not target.live or not _owned(target, campaign_id, recipient):
                    self.tally.recipients_dangling += 1
                    done.append(old)
                else:
                    entry = _Entry(old, recipient, code, target)
                    by_campaign.setdefault(campaign_id, []).append(entry)
            for campaign_id, found in by_campaign.items():
                if await self._aliases(campaign_id, found):
                    done += (entry.old for entry in found)
            await self._drop(done)
            self._progress("recipients", self.tally, False)

    async def _aliases(self, campaign_id: int | None, found: list[_Entry]) -> bool:
        """Points each recipient's chain at their old code; False if that could not be done."""
        chain = await self._chain(campaign_id)
        if chain is None:
            self.tally.problem(
                f"campaign {campaign_id} is gone: {len(found)} recipients' links not aliased"
            )
            return False
        firsts = chain.first_codes(campaign_id, [entry.recipient for entry in found])
        writes = [
            _alias(index, campaign_id, entry, first)
            for index, (entry, first) in enumerate(zip(found, firsts, strict=True))
        ]
        try:
            await self._store.write(campaign_id, writes, chain)
        except Contention as exc:
            self.tally.problem(f"campaign {campaign_id}: {exc}")
            return False
        for write, entry in zip(writes, found, strict=True):
            if write.existing is None:
                self.tally.aliases_written += 1
            elif write.existing == entry.code:
                self.tally.aliases_already += 1
            else:
                self.tally.recipients_relinked += 1
        return True

    async def _chain(self, campaign_id: int | None) -> Chain | None:
        """The campaign's chain, as the admin derives it (None when the campaign is gone);
        a campaign without a code length gets today's, as the admin would give it."""
        if campaign_id not in self._chains:
            try:
                campaign = None
                if campaign_id is not None:
                    campaign = await self._campaigns.get_campaign(
                        campaign_id, None, count_links=False
                    )
                self._chains[campaign_id] = await self._links.chain(campaign)
            except CampaignNotFound:
                self._chains[campaign_id] = None
        return self._chains[campaign_id]

    # -- 4. clicks --------------------------------------------------------------------------

    async def _clicks_phase(self) -> None:
        async for names in self._old.scan(legacy.CLICKS_MATCH):
            codes = {name: code for name in names if (code := legacy.link_clicks_code(name))}
            distinct = list(dict.fromkeys(codes.values()))
            records = dict(zip(distinct, await self._old.records(distinct), strict=True))
            orphans = [code for code, record in records.items() if record is None]
            if orphans:
                tombstones = [(code, None, encode_text(tombstone(code))) for code in orphans]
                outcomes = await self._old.put(tombstones)
                self.tally.tombstones += sum(o == legacy.WRITTEN for o in outcomes.values())
                records.update(zip(orphans, await self._old.records(orphans), strict=True))
            # A link's stats are stamped with its creation time as they move (a deleted
            # link's, even if its code was taken again meanwhile, with 0: before any).
            moves: list[legacy.Move] = [
                (
                    name,
                    legacy.new_link_clicks_key(name, _campaign_of(records[code])),
                    _created(records[code], code in orphans)
                    if legacy.is_link_stats(name)
                    else None,
                )
                for name, code in codes.items()
            ]
            moves += (
                (name, new, None) for name in names if (new := legacy.new_campaign_clicks_key(name))
            )
            self.tally.click_keys_moved += await self._old.move(moves)
            self._progress("clicks", self.tally, False)

    # -- 5. check ---------------------------------------------------------------------------

    async def _check_phase(self) -> None:
        """Compares the link counts (read in phase 1) and, with `delete_old`, deletes the old
        campaign hashes."""
        ids = list(self._old_counts)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            fields = [str(campaign_id) for campaign_id in chunk]
            async with self._redis.pipeline(transaction=False) as pipe:
                for tag in LINK_TAGS:
                    pipe.hmget(link_count_key(tag), fields)
                counts = await pipe.execute()
            for i, campaign_id in enumerate(chunk):
                before, now = self._old_counts[campaign_id], sum(int(row[i] or 0) for row in counts)
                if before != now:
                    self.tally.count_differences.append(
                        f"campaign {campaign_id}: {before} links in layout 1, {now} now"
                    )
            if self._delete_old:
                old_names = [legacy.old_campaign_key(campaign_id) for campaign_id in chunk]
                self.tally.old_deleted += int(await self._redis.delete(*old_names))

    async def _drop(self, migrated: Iterable[Field]) -> None:
        """With `delete_old`, deletes old entries that still hold what was migrated."""
        if self._delete_old:
            self.tally.old_deleted += await self._old.drop(migrated)


def _alias(
    index: int, campaign_id: int | None, entry: _Entry, first: tuple[int, str]
) -> PlannedLink:
    """A recipient's chain position pointing at their old link (admin/service/store.py)."""
    position, chain_code = first
    created_at, recipient = entry.target.created_at, entry.recipient
    record = Record(created_at, "", None, campaign_id, recipient, alias_of=entry.code)
    shared = Link("", created_at, campaign_id=campaign_id)
    return PlannedLink(
        index, chain_code, "chain", shared, recipient, 0, position, encode_text(record), False
    )


def _same_link(now: Record, old: Record) -> bool:
    return (now.created_at, now.campaign_id, now.recipient) == (
        old.created_at,
        old.campaign_id,
        old.recipient,
    )


def _owned(record: Record, campaign_id: int | None, recipient: str) -> bool:
    return (record.campaign_id, record.recipient) == (campaign_id, recipient)


def _created(record: Record | None, deleted: bool) -> int:
    """The creation time that a link's migrated stats are stamped with: 0 for a deleted one."""
    return 0 if deleted or record is None or not record.live else record.created_at


def _campaign_of(record: Record | None) -> int | None:
    return None if record is None else record.campaign_id
