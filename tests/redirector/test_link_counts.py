"""Campaigns' link counts, summed over the 256 tags' count hashes however they are read: by
the script (a few campaigns on one Redis), by the client's pipeline (more of them), and on a
cluster by one pipeline per node, or the cluster pipeline once the slots map is stale."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient

from redirector.store.connection import Store, connect
from redirector.store.counts import SUMMED_IN_REDIS, LinkCounts
from redirector.store.keys import LINK_TAGS, link_count_key
from tests.redis_cluster import RedisCluster

# Campaign 1 has a link in every tag, campaign 2 as many as the tag's position, 9 five each.
EXPECTED = {1: 256, 2: sum(range(256)), 9: 5 * 256}


async def _count_links(redis: Store) -> None:
    for position, tag in enumerate(LINK_TAGS):
        await redis.hset(link_count_key(tag), mapping={"1": 1, "2": position, "9": 5})


# One campaign, a few (both summed by the script on one Redis), more than the script takes.
MANY = [1, 2, 3, 9, *range(10, 10 + SUMMED_IN_REDIS)]


@pytest.mark.parametrize("ids", [[1], [2, 9, 3][:SUMMED_IN_REDIS], MANY])
async def test_a_campaigns_links_are_summed_over_every_tag(redis: Store, ids: list[int]) -> None:
    await _count_links(redis)
    assert await LinkCounts(redis)(ids) == [EXPECTED.get(i, 0) for i in ids]


@pytest.fixture
async def cluster_store(redis_cluster: RedisCluster) -> AsyncIterator[ClusterClient]:
    redis_cluster.flushall()
    store = connect(redis_cluster.url, timeout=5, cluster=True)
    assert isinstance(store, ClusterClient)
    yield store
    await store.aclose()


async def test_a_stale_slots_map_falls_back_to_the_cluster_pipeline(
    cluster_store: ClusterClient,
) -> None:
    await _count_links(cluster_store)
    await cluster_store.initialize()
    key = link_count_key(LINK_TAGS[0])
    slot, owner = cluster_store.keyslot(key), cluster_store.get_node_from_key(key)
    wrong = [node for node in cluster_store.get_primaries() if node != owner][:1]
    cluster_store.nodes_manager.slots_cache[slot] = wrong  # as after a failover: MOVED
    assert await LinkCounts(cluster_store)([1, 2]) == [EXPECTED[1], EXPECTED[2]]
    assert cluster_store.get_node_from_key(key) == owner
