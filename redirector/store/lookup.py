"""The redirector's reads: the records of many codes, and the destinations they refer to, each
set in one round trip.

The resolver's waiting misses are read together. redis-py spends ~12 µs of client CPU per
command of a pipeline (building, packing and parsing each one in Python); one READ_LINKS call
that returns every record costs ~3 µs per code, its reply parsed by hiredis in one piece. On
one Redis the call spans any tags, as CREATE_LINKS does (scripts.py). On a cluster a script
call may only touch keys of one slot, and the codes of a read rarely share one of 256 tags,
so one call per tag would cost a command per code anyway, dearer than an HGET: there the
records are read by a pipeline of HGETs, one round trip per node, in parallel.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from redirector.store.connection import OwnConnection, Store
from redirector.store.keys import destinations_key, link_hashes

# -- READ_LINKS ----------------------------------------------------------------------------
#
#   KEYS[i]   the link hash of the i-th code (keys repeat when codes share a bucket)
#   ARGV[i]   the i-th code, its field in that hash
# Returns the records in that order, nil for a code without one. `no-writes`: it runs where
# only reads may (a replica, or a primary out of memory) and says so.
READ_LINKS = """#!lua flags=no-writes
local records = {}
for i = 1, #KEYS do
  records[i] = redis.call('HGET', KEYS[i], ARGV[i])
end
return records
"""

Raw = bytes | None


class LinkReader:
    """Reads link records and destinations; every call is one round trip (one per node on a
    cluster). Replies are raw: decoding them is `redirector.store.record`'s.

    On one Redis the records are read on an `OwnConnection` (the resolver has one read out at
    a time)."""

    def __init__(self, redis: Store) -> None:
        self._redis = redis
        single = redis if isinstance(redis, Redis) else None
        self._read_links = None if single is None else single.register_script(READ_LINKS)
        self._own = None if single is None else OwnConnection(single)

    async def records(self, codes: Sequence[str]) -> list[Raw]:
        """Each code's record, or None, in the order of `codes`."""
        if self._read_links is None or self._own is None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for code, key in zip(codes, link_hashes(codes), strict=True):
                    pipe.hget(key, code)
                return await pipe.execute()
        script, keys = self._read_links, link_hashes(codes)
        records: list[Raw] = await self._own.command(
            lambda: script(keys=keys, args=codes), "EVALSHA", script.sha, len(keys), *keys, *codes
        )
        return records

    async def destinations(self, wanted: Sequence[tuple[int, str]]) -> list[Raw]:
        """Each (campaign, destination id)'s destination record, or None, in that order. Rare:
        destinations are cached in process, a few per campaign."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for campaign_id, destination_id in wanted:
                pipe.hget(destinations_key(campaign_id), destination_id)
            return await pipe.execute()
