"""Moving a store of layout 1 (the releases before the tagged key schema, described in
redirector/store/legacy.py) into the schema of keys.py; `python -m admin migrate` runs it.

Each phase reads one kind of old key with SCAN, a chunk at a time (memory is bounded by a
chunk), and writes what it read in pipelines. Every write is one that changes nothing when
made again: records are written only where their code holds nothing, campaign fields with
HSETNX, aliases by the admin's own chain writes, and click keys are moved (renamed, or merged
and removed in one step). So a run stopped anywhere is finished by running it again, and a
link is served from its old key until its new record is written. The phases, in the order
they depend on each other:

1. campaigns   each c:{id} -> c:{{id}}, without its link count (counted per link tag now)
2. links       each record of an l: bucket -> its code's field of the new l: hashes, counted
               in its campaign; a campaign's destinations stored once, in its d:{{id}}
3. recipients  each entry of the r: index -> an alias at the first free position of the
               recipient's chain, pointing at the old code, so asking for the recipient's
               link again answers that code (as for a recipient's custom link)
4. clicks      each click key moved to its tagged name; the counters of a link that layout 1
               deleted (it kept no tombstone) get a tombstone for their code, so that the code
               is never handed out again
5. check       each campaign's link count compared with the one layout 1 kept

With `delete_old`, the old entries of links and recipients are deleted once they are in the
new layout, and the old campaign hashes last.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis, RedisCluster

from admin.exceptions import CampaignNotFound, Contention
from admin.service import as_text
from admin.service.campaigns import CampaignService
from admin.service.links import LinkService, destination_finder
from admin.service.plan import Chain, PlannedLink
from admin.service.store import Write
from admin.settings import AdminSettings
from redirector.store import legacy
from redirector.store.connection import Store
from redirector.store.keys import LINK_TAGS, campaign_key, link_count_key, link_tag
from redirector.store.record import (
    Destination,
    Link,
    Record,
    RecordError,
    decode,
    encode_destination,
    encode_text,
)
from redirector.store.scripts import MakeDestinationsScript

# Keys asked for per SCAN call: a chunk of a phase.
SCAN_COUNT = 256
# Problems kept word for word for the summary (all are counted).
PROBLEMS_SHOWN = 20
# A code that no draw could make (admin/codes.py: 5-32 base62 characters) was chosen.
_DRAWABLE = re.compile(r"[0-9A-Za-z]{5,32}")


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
    bucket: str
    code: str
    raw: bytes
    record: Record


@dataclass(frozen=True, slots=True)
class _Entry:
    """An entry of the old recipient index whose link is in the new layout."""

    name: str  # the index's field: campaign and recipient
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
    ) -> None:
        self._redis = redis
        self._delete_old = delete_old
        self._progress = progress
        self._scan_count = scan_count
        self._campaigns = CampaignService(redis, settings.code_length, settings.durability)
        self._links = LinkService(redis, self._campaigns, settings)
        self._store = self._links.store
        self._make_destinations = MakeDestinationsScript(redis, settings.durability)
        self._put_records = legacy.PutRecordsScript(redis)
        self._move_key = legacy.MoveKeyScript(redis)
        self._drop_migrated = legacy.DropMigratedScript(redis)
        self._chains: dict[int | None, Chain | None] = {}
        self.tally = Tally()

    async def old_layout_present(self) -> bool:
        for match in legacy.ALL_MATCHES:
            async for names in self._scan(match):
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
        async for names in self._scan(legacy.CAMPAIGNS_MATCH):
            ids = {name: i for name in names if (i := legacy.campaign_id_of(name)) is not None}
            hashes = await self._hgetall(ids)
            spans = []  # how many fields each campaign sets, in order
            async with self._redis.pipeline(transaction=True) as pipe:
                for campaign_id, fields in zip(ids.values(), hashes, strict=True):
                    kept = {k: v for k, v in fields.items() if as_text(k) != legacy.CAMPAIGN_LINKS}
                    for name, value in kept.items():
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
        async for names in self._scan(legacy.LINKS_MATCH):
            buckets = [name for name in names if legacy.is_link_bucket(name)]
            olds = self._decoded(buckets, await self._hgetall(buckets))
            targets = await self._references([old.record for old in olds])
            items = [
                (old.code, old.record.campaign_id, encode_text(_migrated(old, target)))
                for old, target in zip(olds, targets, strict=True)
            ]
            outcomes = await self._put(items)
            done = await self._links_done(olds, outcomes)
            await self._drop((old.bucket, old.code, old.raw) for old in olds if old.code in done)
            self._progress("links", self.tally, False)

    def _decoded(self, buckets: list[str], contents: list[dict[bytes, bytes]]) -> list[_OldLink]:
        olds = []
        for bucket, fields in zip(buckets, contents, strict=True):
            for raw_code, raw in fields.items():
                code = as_text(raw_code)
                self.tally.links += 1
                try:
                    record = decode(raw)
                except RecordError as exc:
                    self.tally.problem(f"link {code!r} in {bucket}: {exc}")
                    continue
                if not isinstance(record.destination, Destination) or not record.live:
                    self.tally.problem(f"link {code!r} in {bucket}: not a layout-1 record")
                    continue
                olds.append(_OldLink(bucket, code, raw, record))
        return olds

    async def _references(self, records: list[Record]) -> list[Destination | str]:
        """Each record's destination as its new record refers to it: the id of the one its
        campaign stores (made if new), or itself (no campaign, or a campaign that is gone)."""
        wanted: dict[int, dict[Destination, None]] = {}
        for record in records:
            if record.campaign_id is not None and isinstance(record.destination, Destination):
                wanted.setdefault(record.campaign_id, {})[record.destination] = None
        ids: dict[tuple[int, Destination], str] = {}
        for campaign_id, targets in wanted.items():
            pairs = [(destination_finder(d), encode_destination(d)) for d in targets]
            made = await self._make_destinations(campaign_id, pairs)
            if made is not None:
                ids.update(zip(((campaign_id, d) for d in targets), made, strict=True))
        return [
            ids.get((r.campaign_id, r.destination), r.destination)
            if r.campaign_id is not None and isinstance(r.destination, Destination)
            else r.destination
            for r in records
        ]

    async def _links_done(self, olds: list[_OldLink], outcomes: dict[str, int]) -> set[str]:
        """The codes whose link is in the new layout (tallied); a code held by another link
        is a problem, and its old record stays."""
        held = [old for old in olds if outcomes[old.code] == legacy.HELD]
        found = await self._store.records(old.code for old in held)
        done = {old.code for old in olds if outcomes[old.code] != legacy.HELD}
        self.tally.links_written += sum(outcomes[code] == legacy.WRITTEN for code in done)
        self.tally.links_already += sum(outcomes[code] == legacy.ALREADY for code in done)
        for old in held:
            now = found[old.code]
            if now is not None and _same_link(now, old.record):
                self.tally.links_changed += 1  # edited or deleted by the admin since
                done.add(old.code)
            else:
                self.tally.problem(
                    f"link {old.code!r}: its code holds another link in the new layout;"
                    f" left in {old.bucket}"
                )
        return done

    # -- 3. recipients ----------------------------------------------------------------------

    async def _recipients_phase(self) -> None:
        async for names in self._scan(legacy.RECIPIENTS_MATCH):
            buckets = [name for name in names if legacy.is_recipient_bucket(name)]
            entries = [
                (bucket, as_text(name), as_text(code), name, code)
                for bucket, fields in zip(buckets, await self._hgetall(buckets), strict=True)
                for name, code in fields.items()
            ]
            self.tally.recipients += len(entries)
            targets = await self._store.records(code for _, _, code, _, _ in entries)
            by_campaign: dict[int | None, list[_Entry]] = {}
            done: set[str] = set()  # fields of the index that are in the new layout
            for _, name, code, _, _ in entries:
                campaign_id, recipient = legacy.recipient_of(name)
                target = targets[code]
                if target is None or not target.live or not _same_owner(target, name):
                    self.tally.recipients_dangling += 1
                    done.add(name)
                else:
                    by_campaign.setdefault(campaign_id, []).append(
                        _Entry(name, recipient, code, target)
                    )
            for campaign_id, found in by_campaign.items():
                if await self._aliases(campaign_id, found):
                    done.update(entry.name for entry in found)
            await self._drop(
                (bucket, raw_name, raw_code)
                for bucket, name, _, raw_name, raw_code in entries
                if name in done
            )
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
                    campaign = await self._campaigns.get_campaign(campaign_id)
                self._chains[campaign_id] = await self._links.chain(campaign)
            except CampaignNotFound:
                self._chains[campaign_id] = None
        return self._chains[campaign_id]

    # -- 4. clicks --------------------------------------------------------------------------

    async def _clicks_phase(self) -> None:
        async for names in self._scan(legacy.LINK_CLICKS_MATCH):
            codes = {name: code for name in names if (code := legacy.link_clicks_code(name))}
            records = await self._store.records(codes.values())
            orphans = [code for code, record in records.items() if record is None]
            if orphans:
                outcomes = await self._put(
                    [(code, None, encode_text(_tombstone(code))) for code in orphans]
                )
                self.tally.tombstones += sum(o == legacy.WRITTEN for o in outcomes.values())
                records |= await self._store.records(orphans)
            await self._move(
                (name, legacy.new_link_clicks_key(name, _campaign_of(records[code])))
                for name, code in codes.items()
            )
            self._progress("clicks", self.tally, False)
        for match in legacy.CAMPAIGN_CLICKS_MATCHES:
            async for names in self._scan(match):
                await self._move(
                    (name, new) for name in names if (new := legacy.new_campaign_clicks_key(name))
                )
                self._progress("clicks", self.tally, False)

    async def _move(self, moves: Iterable[tuple[str, str]]) -> None:
        pending = list(moves)
        while pending:
            async with self._redis.pipeline(transaction=False) as pipe:
                for old, new in pending:
                    await self._move_key.queue(pipe, old, new)
                replies = await pipe.execute()
            self.tally.click_keys_moved += sum(reply == legacy.MOVED for reply in replies)
            pending = [
                move for move, reply in zip(pending, replies, strict=True) if reply == legacy.MORE
            ]

    # -- 5. check ---------------------------------------------------------------------------

    async def _check_phase(self) -> None:
        async for names in self._scan(legacy.CAMPAIGNS_MATCH):
            ids = {name: i for name in names if (i := legacy.campaign_id_of(name)) is not None}
            fields = [str(i) for i in ids.values()]
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in ids:
                    pipe.hget(name, legacy.CAMPAIGN_LINKS)
                for tag in LINK_TAGS:
                    pipe.hmget(link_count_key(tag), fields)
                replies = await pipe.execute()
            before, counts = replies[: len(ids)], replies[len(ids) :]
            for i, (campaign_id, old) in enumerate(zip(ids.values(), before, strict=True)):
                now = sum(int(row[i] or 0) for row in counts)
                if int(old or 0) != now:
                    self.tally.count_differences.append(
                        f"campaign {campaign_id}: {int(old or 0)} links in layout 1, {now} now"
                    )
            if self._delete_old:
                self.tally.old_deleted += int(await self._redis.delete(*ids)) if ids else 0

    # -- helpers ----------------------------------------------------------------------------

    async def _scan(self, match: str) -> AsyncIterator[list[str]]:
        cursor = 0
        while True:
            cursor, names = await self._redis.scan(cursor, match=match, count=self._scan_count)
            if names:
                yield [as_text(name) for name in names]
            if cursor == 0:
                return

    async def _hgetall(self, names: Iterable[str]) -> list[dict[bytes, bytes]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(name)
            replies: list[dict[bytes, bytes]] = await pipe.execute()
        return replies

    async def _put(self, items: Sequence[tuple[str, int | None, str]]) -> dict[str, int]:
        """PUT_RECORDS of (code, campaign it counts in, record) items, one call per link tag
        in one pipeline: each code's outcome."""
        by_tag: dict[str, list[tuple[str, int | None, str]]] = {}
        for item in items:
            by_tag.setdefault(link_tag(item[0]), []).append(item)
        async with self._redis.pipeline(transaction=False) as pipe:
            for tag, group in by_tag.items():
                await self._put_records.queue(pipe, tag, group)
            replies = await pipe.execute()
        return {
            code: int(outcome)
            for group, reply in zip(by_tag.values(), replies, strict=True)
            for (code, _, _), outcome in zip(group, reply, strict=True)
        }

    async def _drop(self, migrated: Iterable[tuple[str, bytes | str, bytes]]) -> None:
        """With `delete_old`, deletes old hash fields (hash, field, value) still as migrated."""
        if not self._delete_old:
            return
        by_hash: dict[str, list[bytes]] = {}
        for name, old_field, value in migrated:
            raw_field = old_field.encode() if isinstance(old_field, str) else old_field
            by_hash.setdefault(name, []).extend((raw_field, value))
        if not by_hash:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for name, pairs in by_hash.items():
                await self._drop_migrated.queue(pipe, name, pairs)
            self.tally.old_deleted += sum(await pipe.execute())


def _migrated(old: _OldLink, target: Destination | str) -> Record:
    """The new record of a layout-1 link: its destination referred to, and whether its code
    was chosen guessed (layout 1 did not keep it): a code no draw could make was, and may be
    chosen again once deleted; any other code never serves again once deleted."""
    record = old.record
    return Record(
        record.created_at,
        target,
        record.expires_at,
        record.campaign_id,
        record.recipient,
        record.disabled,
        custom=_DRAWABLE.fullmatch(old.code) is None,
    )


def _tombstone(code: str) -> Record:
    """For the code of a link that layout 1 deleted: its campaign and times are not known."""
    return Record(0, "", custom=_DRAWABLE.fullmatch(code) is None, deleted=True)


def _alias(index: int, campaign_id: int | None, entry: _Entry, first: tuple[int, str]) -> Write:
    """A recipient's chain position pointing at their old link (admin/service/store.py)."""
    position, chain_code = first
    created_at, recipient = entry.target.created_at, entry.recipient
    record = Record(created_at, "", None, campaign_id, recipient, alias_of=entry.code)
    shared = Link("", created_at, campaign_id=campaign_id)
    planned = PlannedLink(index, chain_code, "chain", shared, recipient, 0, position)
    return Write(planned, encode_text(record), counted=False)


def _same_link(now: Record, old: Record) -> bool:
    return (now.created_at, now.campaign_id, now.recipient) == (
        old.created_at,
        old.campaign_id,
        old.recipient,
    )


def _same_owner(record: Record, recipient_field: str) -> bool:
    return (record.campaign_id, record.recipient) == legacy.recipient_of(recipient_field)


def _campaign_of(record: Record | None) -> int | None:
    return None if record is None else record.campaign_id
