"""Campaigns' link counts, read. Each link-record tag counts the links whose record it holds
(`n:{xx}`, keys.py), so a campaign's count is a sum over the 256 tags: the admin reads it for
every campaign it answers and every link it creates.

Asked as 256 commands, the answer costs ~4 ms of client CPU (redis-py packs and parses each
one), where Redis needs a tenth of that. So on one Redis a script reads and sums them (the one
script that touches keys of many tags, and only reads: on a cluster, where the tags are 256
slots, it is never used); but only for a few campaigns at once, since Redis serves nobody else
while it runs (~0.1 ms per campaign). On a cluster the HMGETs go in one pipeline per node, sent
together, without the cluster pipeline's routing of each command; a map of the slots that
fails falls back to that pipeline, which also serves longer lists on one Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, RedisError

from redirector.store.connection import Store
from redirector.store.keys import LINK_TAGS, link_count_key

# Campaigns summed by one script call at most (each adds ~0.1 ms to the time it holds Redis).
SUMMED_IN_REDIS = 4
# The 256 link-count hashes, and the slot of each.
_COUNT_KEYS = tuple(link_count_key(tag) for tag in LINK_TAGS)
_SLOTS = tuple(key_slot(key.encode()) for key in _COUNT_KEYS)

# -- SUM_LINK_COUNTS (one Redis only) ------------------------------------------------------
#
#   KEYS   the link-count hashes of every tag
#   ARGV   campaign ids (the hashes' fields)
# Returns each campaign's sum, in the order of ARGV.
SUM_LINK_COUNTS = """
local totals = {}
for i = 1, #ARGV do totals[i] = 0 end
for _, counts in ipairs(KEYS) do
  local found = redis.call('HMGET', counts, unpack(ARGV))
  for i = 1, #ARGV do totals[i] = totals[i] + (tonumber(found[i]) or 0) end
end
return totals
"""


class LinkCounts:
    def __init__(self, redis: Store) -> None:
        self._redis = redis
        self._sum = redis.register_script(SUM_LINK_COUNTS)

    async def __call__(self, campaign_ids: Sequence[int]) -> list[int]:
        """How many links each campaign has."""
        return await self.fields([str(campaign_id) for campaign_id in campaign_ids])

    async def fields(self, wanted: Sequence[str]) -> list[int]:
        """The sum over the 256 tags of each field of the link-count hashes (a campaign's id,
        or `keys.recipient_links_field` of one)."""
        if not wanted:
            return []
        fields = list(wanted)
        redis = self._redis
        if isinstance(redis, RedisCluster):
            try:
                rows = await _by_node(redis, fields)
            except (RedisError, RedisClusterException):
                rows = await _by_pipeline(redis, fields)
        elif len(fields) <= SUMMED_IN_REDIS:
            return [int(total) for total in await self._sum(keys=_COUNT_KEYS, args=fields)]
        else:
            rows = await _by_pipeline(redis, fields)
        return [sum(int(row[i] or 0) for row in rows) for i in range(len(fields))]


async def _by_node(cluster: RedisCluster, fields: list[str]) -> list[list[bytes | None]]:
    """The HMGET of every tag, one pipeline per node, as the slots map says; a RedisError if
    any part failed (a slot moved, a node gone)."""
    await cluster.initialize()
    sent: dict[str, tuple[ClusterNode, list[PipelineCommand]]] = {}
    for position, (key, slot) in enumerate(zip(_COUNT_KEYS, _SLOTS, strict=True)):
        node = cluster.nodes_manager.get_node_from_slot(slot)
        command = PipelineCommand(position, "HMGET", key, *fields)
        sent.setdefault(node.name, (node, []))[1].append(command)
    calls = (node.execute_pipeline(commands) for node, commands in sent.values())
    for failure in await asyncio.gather(*calls, return_exceptions=True):
        if isinstance(failure, BaseException):
            raise failure
    rows: list[list[bytes | None]] = [[] for _ in _COUNT_KEYS]
    for _, commands in sent.values():
        for command in commands:
            if isinstance(command.result, Exception):
                raise RedisError(f"reading {_COUNT_KEYS[command.position]}") from command.result
            rows[command.position] = command.result
    return rows


async def _by_pipeline(redis: Store, fields: list[str]) -> list[list[bytes | None]]:
    """The same through the client's pipeline, which on a cluster follows moved slots and
    reads the topology again when a node is gone."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in _COUNT_KEYS:
            pipe.hmget(key, fields)
        rows: list[list[bytes | None]] = await pipe.execute()
    return rows
