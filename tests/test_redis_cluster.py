"""The local Redis Cluster of the fixtures, through redis-py's asyncio cluster client.

How that client recovers from a failover (redis-py 8.1, asyncio `RedisCluster`):
- A failed command marks the topology stale and the next command re-reads it (CLUSTER SLOTS),
  so the SAME client works again once the replica is promoted; nothing needs re-creating.
- Its `retry=Retry(...)` option only sets the number of attempts: their backoff is ignored and
  they run back to back in ~0.1 s, while a dead master keeps its slots for ~2 s
  (`cluster-node-timeout 1000`). No constructor option makes one call outlive a failover.
- So an operation that must outlive one is wrapped in `redis.asyncio.retry.Retry` with a real
  backoff (`with_failover` in redirector/store/connection.py). Keep `socket_timeout` and
  `socket_connect_timeout`: a host that vanishes without refusing connections costs that long
  per attempt.
- WAIT counts the writes of its own connection, and the cluster client lends a connection per
  command; its pipeline sends what it holds for one node on one connection, and a command
  given `target_nodes` joins that node's share (`run_replicated` in the same module).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient
from redis import Redis as NodeClient
from redis import exceptions as errors
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.asyncio.connection import Connection

from redirector.app import create_app
from redirector.settings import Settings
from redirector.store.connection import (
    Durability,
    HiredisPackedConnection,
    NotReplicated,
    Store,
    connect,
    run_replicated,
    with_failover,
)
from tests.conftest import redirector_client
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer, free_port
from tests.waiting import eventually

SCRIPT = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('INCR', KEYS[2])"
KEYS = [f"key:{number}" for number in range(20)]


@pytest.fixture
async def client(redis_cluster: RedisCluster) -> AsyncIterator[ClusterClient]:
    redis_cluster.flushall()
    client = await ClusterClient.from_url(redis_cluster.url, decode_responses=True).initialize()
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis_cluster: RedisCluster) -> AsyncIterator[Store]:
    """The apps' client, as REDIS_CLUSTER=true makes it."""
    redis_cluster.flushall()
    store = connect(redis_cluster.url, timeout=10, cluster=True)
    yield store
    await store.aclose()


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


def test_the_settings_choose_the_cluster_client_and_replicated_writes() -> None:
    single = Settings.from_env({})
    cluster = Settings.from_env({"REDIS_CLUSTER": "true", "REDIS_URL": "redis://node-1:6379"})
    assert isinstance(connect(single.redis_url, timeout=1), Redis)
    assert isinstance(connect(cluster.redis_url, timeout=1, cluster=True), ClusterClient)
    # The redirect process's flushes wait at most half its REDIS_TIMEOUT (0.5 s).
    assert (single.flush_durability, cluster.flush_durability) == (
        Durability(0, 250),
        Durability(1, 250),
    )
    assert Settings(redis_wait_replicas=2, redis_wait_timeout=50).durability == Durability(2, 50)
    with pytest.raises(ValueError, match="REDIS_CLUSTER needs a redis://"):
        Settings.from_env({"REDIS_CLUSTER": "1", "REDIS_URL": "redis://node-1:6379/3"})


async def test_a_connection_closed_by_another_task_while_a_command_is_sent_is_lost(
    own_redis: RedisServer, redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster client's failover handling closes its nodes' connections, in use or not,
    without waiting; redis-py then writes the command on no writer and raises AttributeError,
    which the admin answered 500 (test_failover, once in four runs). Ours is a lost
    connection: retried by the client, or a 503."""

    async def sent_while_closed(connection: Connection) -> BaseException | None:
        await connection.connect()  # type: ignore[no-untyped-call]
        # Under a socket timeout redis-py writes in a task of its own: closed before it runs.
        sending = asyncio.ensure_future(connection.send_packed_command([b"PING\r\n"]))
        await asyncio.sleep(0)
        await connection.disconnect(nowait=True)
        try:
            await sending
        except BaseException as exc:
            return exc
        return None

    port = own_redis.port
    upstream = await sent_while_closed(Connection(port=port, socket_timeout=1.0))
    # redis-py's own raises AttributeError (on Python 3.11, whose asyncio.wait_for sends in a
    # task of its own: the race needs that): the day it no longer does, drop ours.
    assert isinstance(upstream, AttributeError), upstream
    ours = await sent_while_closed(HiredisPackedConnection(port=port, socket_timeout=1.0))
    assert isinstance(ours, errors.ConnectionError), ours
    # Any other AttributeError is a bug: raised as it is, not retried as a lost connection.
    with monkeypatch.context() as patched:

        async def buggy(self: Connection, *args: Any) -> None:
            raise AttributeError("a bug", name="pack", obj=self)

        patched.setattr(Connection, "send_packed_command", buggy)
        with pytest.raises(AttributeError, match="a bug"):
            await HiredisPackedConnection(port=port).send_packed_command([b"PING\r\n"])
    # Every node of the apps' cluster client, found at start or later, has ours.
    store = connect(redis_cluster.url, timeout=1, cluster=True)
    try:
        assert await store.ping()
        nodes = store.get_nodes()  # type: ignore[union-attr]
        assert len(nodes) >= 3  # the startup node, and those CLUSTER SLOTS named
        assert {node.connection_class for node in nodes} == {HiredisPackedConnection}
        assert all(
            isinstance(connection, HiredisPackedConnection)
            for node in nodes
            for connection in node._connections
        )
    finally:
        await store.aclose()


async def test_no_node_answering_is_a_connection_error_and_a_503(
    aiohttp_client: AiohttpClient,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    store = connect(url, timeout=0.2, cluster=True)
    with pytest.raises(errors.ConnectionError, match="cannot be connected"):
        await store.ping()
    settings = Settings(redis_url=url, redis_cluster=True, redis_timeout=0.2, click_tracking=False)
    redirector = await redirector_client(aiohttp_client, create_app(settings))
    assert (await redirector.get("/healthz")).status == 503


async def test_the_apps_client_reads_a_key_again_after_its_master_is_killed(
    redis_cluster: RedisCluster, store: Store
) -> None:
    await store.set("survivor", "kept")
    redis_cluster.wait_replicated()
    killed = redis_cluster.kill_master("survivor")
    try:
        assert await asyncio.wait_for(with_failover(lambda: store.get("survivor")), 5) == b"kept"
        promoted = redis_cluster.wait_failover("survivor")
        assert promoted != killed
    finally:
        redis_cluster.restart(killed)


# -- acknowledged = replicated --------------------------------------------------------------

WRITE = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('INCR', KEYS[2])"


def replica_port(cluster: RedisCluster, client: ClusterClient, key: str) -> int:
    """The port of the replica of the master that serves `key`."""
    master = serving_port(client, key)
    return next(port for port in cluster.running() if cluster.master_of(port) == master)


def replica_value(cluster: RedisCluster, client: ClusterClient, key: str) -> str | None:
    """`key` as the replica of its master has it at this moment."""
    with NodeClient(port=replica_port(cluster, client, key), decode_responses=True) as node:
        node.execute_command("READONLY")
        value: str | None = node.get(key)
        return value


async def test_a_replicated_script_is_on_the_replica_when_it_returns(
    redis_cluster: RedisCluster, store: Store, client: ClusterClient
) -> None:
    script = store.register_script(WRITE)
    for number in range(20):  # over every master
        keys = [f"{{w{number}}}:value", f"{{w{number}}}:count"]
        reply = await run_replicated(store, script, keys, [f"v{number}"], Durability(1, 5000))
        assert reply == 1
        assert replica_value(redis_cluster, client, keys[0]) == f"v{number}"


async def test_a_write_its_replica_did_not_confirm_is_a_storage_error(
    redis_cluster: RedisCluster, store: Store, client: ClusterClient
) -> None:
    """The client holds several connections to the master, all of whose commands the replica
    has confirmed: a WAIT on any but the write's own would count the frozen replica."""
    assert isinstance(store, ClusterClient)
    script = store.register_script(WRITE)
    keys = ["{w}:value", "{w}:count"]
    await store.initialize()
    await asyncio.gather(*(store.get(keys[0]) for _ in range(8)))
    await store.execute_command("WAIT", 1, 5000, target_nodes=store.get_node_from_key(keys[0]))
    replica = replica_port(redis_cluster, client, keys[0])
    with redis_cluster.paused(replica), pytest.raises(NotReplicated, match="0 of 1 replicas"):
        await run_replicated(store, script, keys, ["x"], Durability(1, 100))


async def test_a_replicated_script_follows_its_slot_to_another_master(
    redis_cluster: RedisCluster, store: Store, client: ClusterClient
) -> None:
    """A stale slots map (as after a failover) sends the script to the wrong master: MOVED."""
    assert isinstance(store, ClusterClient)
    keys = ["{w}:value", "{w}:count"]
    await store.initialize()
    slot, owner = store.keyslot(keys[0]), store.get_node_from_key(keys[0])
    store.nodes_manager.slots_cache[slot] = [n for n in store.get_primaries() if n != owner][:1]
    script = store.register_script(WRITE)
    assert await run_replicated(store, script, keys, ["x"], Durability(1, 5000)) == 1
    assert store.get_node_from_key(keys[0]) == owner
    assert replica_value(redis_cluster, client, keys[0]) == "x"


async def test_a_replicated_script_losing_its_node_leaves_other_nodes_calls_alone(
    redis_cluster: RedisCluster,
    store: Store,
    client: ClusterClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection error on one master drops only that master's connections: a call waiting
    on another master (here a WAIT for its frozen replica) still gets its answer."""
    assert isinstance(store, ClusterClient)
    script = store.register_script(WRITE)
    await store.initialize()
    lost = store.get_node_from_key("{w}:value")
    assert lost is not None
    other = next(f"{{w{n}}}" for n in range(20) if serving_port(client, f"{{w{n}}}") != lost.port)
    waiting_keys, lost_keys = [f"{other}:value", f"{other}:count"], ["{w}:value", "{w}:count"]
    execute_pipeline = ClusterNode.execute_pipeline

    async def failing_on_lost(node: ClusterNode, commands: list[PipelineCommand]) -> bool:
        if node.name == lost.name:
            raise errors.ConnectionError("injected: connection to the master lost")
        return await execute_pipeline(node, commands)

    with redis_cluster.paused(replica_port(redis_cluster, client, waiting_keys[0])):
        waiting = asyncio.ensure_future(
            run_replicated(store, script, waiting_keys, ["x"], Durability(1, 8000))
        )
        with NodeClient(port=serving_port(client, waiting_keys[0])) as master:
            await eventually(lambda: _blocked(master))
        monkeypatch.setattr(ClusterNode, "execute_pipeline", failing_on_lost)
        with pytest.raises(errors.ConnectionError, match="injected"):
            await run_replicated(store, script, lost_keys, ["y"], Durability(1, 8000))
        monkeypatch.undo()
    assert await waiting == 1
    assert await run_replicated(store, script, lost_keys, ["y"], Durability(1, 8000)) == 1


async def _blocked(node: NodeClient) -> bool:
    return int(node.info("clients")["blocked_clients"]) > 0


async def test_on_a_single_node_replicas_are_waited_for_only_when_asked(
    own_redis: RedisServer,
) -> None:
    store = connect(own_redis.url, timeout=1)
    script = store.register_script(WRITE)
    try:
        assert await run_replicated(store, script, ["v", "n"], ["x"], Durability(0, 10)) == 1
        with pytest.raises(NotReplicated, match="0 of 1 replicas"):
            await run_replicated(store, script, ["v", "n"], ["x"], Durability(1, 10))
        assert await store.get("n") == b"2"
    finally:
        await store.aclose()
