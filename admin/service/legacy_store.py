"""The store as the migration (admin/service/migration.py) reads and writes it: layout-1 keys
found with SCAN and read a chunk at a time, new records put where their code holds nothing,
click keys moved, migrated old entries dropped; and the records a layout-1 link becomes.
Through redis-py each command costs the client ~30 µs, more than Redis spends on reading a
bucket, so reads and writes go many to a script call (redirector/store/legacy.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

from redis.asyncio import Redis

from admin.service import as_text
from admin.service.links import destination_finder
from redirector.store import legacy
from redirector.store.connection import NO_WAIT, Durability
from redirector.store.keys import link_key, link_tag
from redirector.store.record import Destination, Record, decode, encode_destination
from redirector.store.scripts import MakeDestinationsScript

# Names asked for per SCAN call; old hashes read per call; old entries handled per chunk
# (the memory a run holds: a chunk, and the hashes of one read).
SCAN_COUNT = 1000
HASHES_PER_READ = 128
CHUNK = 5000
# A code that no draw could make (admin/codes.py: 5-32 base62 characters) was chosen.
_DRAWABLE = re.compile(r"[0-9A-Za-z]{5,32}")

# A field of an old hash: the hash, the field and its value.
Field = tuple[str, bytes, bytes]
# A record to put: its code, the campaign it counts in (None: not counted), the record.
NewRecord = tuple[str, int | None, str]


class LegacyStore:
    def __init__(
        self,
        redis: Redis,
        durability: Durability = NO_WAIT,
        scan_count: int = SCAN_COUNT,
        chunk: int = CHUNK,
    ) -> None:
        self._redis = redis
        self._make_destinations = MakeDestinationsScript(redis, durability)
        self._scan_count, self._chunk = scan_count, chunk
        self._put_records = legacy.PutRecordsScript(redis)
        self._move_keys = legacy.MoveKeysScript(redis)
        self._drop_migrated = legacy.DropMigratedScript(redis)
        self._reads = legacy.ReadScripts(redis)

    async def scan(self, match: str) -> AsyncIterator[list[str]]:
        cursor = 0
        while True:
            cursor, names = await self._redis.scan(cursor, match=match, count=self._scan_count)
            if names:
                yield [as_text(name) for name in names]
            if cursor == 0:
                return

    async def old_fields(
        self, match: str, is_wanted: Callable[[str], bool]
    ) -> AsyncIterator[list[Field]]:
        """The fields of the old hashes SCAN finds, about a chunk at a time."""
        chunk: list[Field] = []
        async for names in self.scan(match):
            wanted = [name for name in names if is_wanted(name)]
            for start in range(0, len(wanted), HASHES_PER_READ):
                batch = wanted[start : start + HASHES_PER_READ]
                for name, flat in zip(batch, await self._reads.hashes(batch), strict=True):
                    chunk += ((name, flat[i], flat[i + 1]) for i in range(0, len(flat), 2))
                if len(chunk) >= self._chunk:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk

    async def records(self, codes: Sequence[str]) -> list[Record | None]:
        """The new records of `codes` (one read for all)."""
        raws = await self._reads.fields([(link_key(code), code) for code in codes])
        return [None if raw is None else decode(raw) for raw in raws]

    async def references(self, records: list[Record]) -> list[Destination | str]:
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
            if made is not None:  # a destination past the campaign's limit stays inline
                pairs_made = zip(((campaign_id, d) for d in targets), made, strict=True)
                ids.update((pair, i) for pair, i in pairs_made if i is not None)
        return [
            ids.get((r.campaign_id, r.destination), r.destination)
            if r.campaign_id is not None and isinstance(r.destination, Destination)
            else r.destination
            for r in records
        ]

    async def hashes(self, names: Sequence[str]) -> list[list[bytes]]:
        """Each hash's fields and values, flat."""
        return await self._reads.hashes(names)

    async def put(self, items: Sequence[NewRecord]) -> dict[str, int]:
        """PUT_RECORDS of (code, campaign it counts in, record) items, one call per link tag
        in one pipeline: each code's outcome."""
        by_tag: dict[str, list[NewRecord]] = {}
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

    async def move(self, moves: Iterable[legacy.Move]) -> int:
        """Moves click keys (old name, new name, creation time to stamp a link's stats with);
        how many were moved."""
        moved, pending = 0, list(moves)
        while pending:
            outcomes = await self._move_keys(pending)
            moved += sum(o == legacy.MOVED for o in outcomes)
            pending = [move for move, o in zip(pending, outcomes, strict=True) if o == legacy.MORE]
        return moved

    async def drop(self, migrated: Iterable[Field]) -> int:
        """Deletes old hash fields that still hold what was migrated; how many."""
        return await self._drop_migrated(migrated)


def migrated_record(code: str, record: Record, target: Destination | str) -> Record:
    """The new record of a layout-1 link: its destination referred to (`target`), and whether
    its code was chosen guessed, as layout 1 did not keep it: a code no draw could make was,
    and may be chosen again once deleted; any other never serves again once deleted."""
    return Record(
        record.created_at,
        target,
        record.expires_at,
        record.campaign_id,
        record.recipient,
        record.disabled,
        custom=_DRAWABLE.fullmatch(code) is None,
    )


def tombstone(code: str) -> Record:
    """For the code of a link that layout 1 deleted: its campaign and times are not known."""
    return Record(0, "", custom=_DRAWABLE.fullmatch(code) is None, deleted=True)
