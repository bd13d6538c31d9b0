"""The local Redis Cluster of the fixtures, through redis-py's asyncio cluster client.

How that client recovers from a failover (redis-py 8.1, asyncio `RedisCluster`):
- A failed command marks the topology stale and the next command re-reads it (CLUSTER SLOTS),
  so the SAME client works again once the replica is promoted; nothing needs re-creating.
- Its `retry=Retry(...)` option only sets the number of attempts: their backoff is ignored and
  they run back to back in ~0.1 s, while a dead master keeps its slots for ~2 s
  (`cluster-node-timeout 1000`). No constructor option makes one call outlive a failover.
- So an operation that must outlive one is wrapped in `redis.asyncio.retry.Retry` with a real
  backoff (`RIDES_OUT_FAILOVER` below). Keep `socket_timeout`/`socket_connect_timeout`: a host
  that vanishes without refusing connections costs that long per attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis import exceptions as errors
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from tests.redis_cluster import RedisCluster
from tests.waiting import eventually

RIDES_OUT_FAILOVER = Retry(
    ExponentialWithJitterBackoff(base=0.05, cap=0.5),
    retries=30,
    supported_errors=(errors.ConnectionError, errors.TimeoutError, errors.ClusterDownError),
)
SCRIPT = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('INCR', KEYS[2])"
KEYS = [f"key:{number}" for number in range(20)]


@pytest.fixture
async def client(redis_cluster: RedisCluster) -> AsyncIterator[ClusterClient]:
    redis_cluster.flushall()
    client = await ClusterClient.from_url(redis_cluster.url, decode_responses=True).initialize()
    yield client
    await client.aclose()


def serving_port(client: ClusterClient, key: str) -> int:
    """The port of the master that serves `key`, as the client's topology says."""
    node = client.get_node_from_key(key)
    assert node is not None
    return int(node.port)


async def next_message(read: Callable[[], Awaitable[Any]], kind: str) -> Any:
    """The data of the next pub/sub message of type `kind` that `read` returns."""
    received: list[Any] = []

    async def arrived() -> bool:
        message = await read()
        if message is not None and message["type"] == kind:
            received.append(message["data"])
        return bool(received)

    await eventually(arrived)
    return received[0]


async def test_keys_spread_over_every_master_are_read_back(
    redis_cluster: RedisCluster, client: ClusterClient
) -> None:
    for key in KEYS:
        await client.set(key, key)
    assert {serving_port(client, key) for key in KEYS} == set(redis_cluster.masters())
    assert [await client.get(key) for key in KEYS] == KEYS


async def test_a_script_runs_within_a_hash_tag_and_is_refused_across_slots(
    client: ClusterClient,
) -> None:
    assert await client.eval(SCRIPT, 2, "{c:1}:name", "{c:1}:links", "x") == 1
    assert client.keyslot("{c:1}:name") != client.keyslot("{c:2}:links")
    # redis-py refuses before sending; a node sent it anyway answers CROSSSLOT.
    with pytest.raises(errors.RedisClusterException, match="same key slot"):
        await client.eval(SCRIPT, 2, "{c:1}:name", "{c:2}:links", "x")
    node = client.get_node_from_key("{c:1}:name")
    with pytest.raises(errors.ClusterCrossSlotError):  # the server's CROSSSLOT error
        await client.execute_command(
            "EVAL", SCRIPT, 2, "{c:1}:name", "{c:2}:links", "x", target_nodes=node
        )


async def test_a_pipeline_spans_slots(client: ClusterClient) -> None:
    async with client.pipeline() as pipe:
        for key in KEYS:
            pipe.set(key, key)
        for key in KEYS:
            pipe.get(key)
        assert await pipe.execute() == [True] * len(KEYS) + KEYS


async def test_sharded_pubsub_reaches_a_subscriber_through_another_node(
    redis_cluster: RedisCluster, client: ClusterClient
) -> None:
    channel = "links:invalidate"
    # The publisher starts from a node that does not serve the channel's slot.
    shard = serving_port(client, channel)
    elsewhere = next(port for port in redis_cluster.masters() if port != shard)
    publisher = ClusterClient(host="127.0.0.1", port=elsewhere, decode_responses=True)
    subscriber = client.pubsub()
    try:
        await subscriber.ssubscribe(channel)
        await next_message(subscriber.get_sharded_message, "ssubscribe")
        assert await publisher.spublish(channel, "abc def") == 1
        assert await next_message(subscriber.get_sharded_message, "smessage") == "abc def"
    finally:
        await publisher.aclose()
        await subscriber.aclose()


async def test_publish_on_one_node_reaches_a_subscriber_on_another(client: ClusterClient) -> None:
    listening_node, publishing_node = client.get_primaries()[:2]
    subscriber = client.pubsub(node=listening_node)
    try:
        await subscriber.subscribe("links:invalidate")
        await next_message(subscriber.get_message, "subscribe")
        await client.execute_command(
            "PUBLISH", "links:invalidate", "abc", target_nodes=publishing_node
        )
        assert await next_message(subscriber.get_message, "message") == "abc"
    finally:
        await subscriber.aclose()


async def ignore(error: Exception) -> None:
    """`Retry.call_with_retry` reports each failure here; the test only needs the result."""


async def test_the_client_reads_a_key_again_after_its_master_is_killed(
    redis_cluster: RedisCluster, client: ClusterClient
) -> None:
    await client.set("survivor", "kept")
    redis_cluster.wait_replicated()
    killed = redis_cluster.kill_master("survivor")
    try:
        read = RIDES_OUT_FAILOVER.call_with_retry(lambda: client.get("survivor"), ignore)
        assert await asyncio.wait_for(read, 5) == "kept"
        promoted = redis_cluster.wait_failover("survivor")
        assert promoted != killed and serving_port(client, "survivor") == promoted
    finally:
        redis_cluster.restart(killed)
