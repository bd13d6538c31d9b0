"""Cache invalidation on a Redis Cluster: a PUBLISH through the cluster client reaches every
redirector, and a listener whose node dies subscribes again through another node."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient
from redis import Redis as NodeClient
from redis.asyncio.cluster import RedisCluster as ClusterClient

from redirector import invalidation
from redirector.app import create_app
from redirector.appkeys import invalidation_ready_key
from redirector.settings import Settings
from redirector.store.connection import with_failover
from redirector.store.keys import INVALIDATION_CHANNEL, link_key
from redirector.store.record import Link, encode
from tests.conftest import Client, redirector_client
from tests.redis_cluster import RedisCluster
from tests.waiting import eventually

pytestmark = pytest.mark.parametrize("store_kind", ["cluster"], indirect=True)
CODE = "inval01"


@pytest.fixture
def redirector_settings(redirector_settings: Settings) -> Settings:
    return redirector_settings.model_copy(update={"click_tracking": False})  # not the subject


async def _redirectors(
    aiohttp_client: AiohttpClient, settings: Settings, count: int
) -> list[Client]:
    clients = []
    for _ in range(count):
        app = create_app(settings)
        clients.append(await redirector_client(aiohttp_client, app))
        await app[invalidation_ready_key].wait()
    return clients


async def _retarget(redis: ClusterClient, destination: str) -> None:
    """Change the link's record and announce it, as the admin does."""
    await redis.hset(link_key(CODE), CODE, encode(Link(destination, created_at=1)))
    await redis.publish(INVALIDATION_CHANNEL, CODE)


async def _sees(client: Client, destination: str) -> bool:
    resp = await client.get(f"/{CODE}", allow_redirects=False)
    return resp.status == 302 and resp.headers["Location"] == destination


def _listening_node(cluster: RedisCluster) -> int | None:
    """The port of the running node that holds the subscription to the channel, if any."""
    for port in cluster.running():
        with NodeClient(port=port) as node:
            if node.pubsub_numsub(INVALIDATION_CHANNEL)[0][1]:
                return port
    return None


async def test_an_invalidation_published_through_the_cluster_reaches_every_redirector(
    aiohttp_client: AiohttpClient, redirector_settings: Settings, redis: ClusterClient
) -> None:
    clients = await _redirectors(aiohttp_client, redirector_settings, 2)
    await _retarget(redis, "https://a.example/1")
    for client in clients:  # now cached in both
        assert await _sees(client, "https://a.example/1")
    await _retarget(redis, "https://a.example/2")

    async def all_see() -> bool:
        return all([await _sees(client, "https://a.example/2") for client in clients])

    await eventually(all_see, within=1.0)


async def test_a_listener_whose_node_dies_listens_again_through_another(
    aiohttp_client: AiohttpClient,
    redirector_settings: Settings,
    redis: ClusterClient,
    redis_cluster: RedisCluster,
) -> None:
    (client,) = await _redirectors(aiohttp_client, redirector_settings, 1)
    await _retarget(redis, "https://a.example/1")
    listening = _listening_node(redis_cluster)
    assert listening is not None
    killed = redis_cluster.kill(listening)
    try:
        # Subscribed again elsewhere, and the link readable again (its own slot may have
        # been failing over too), a few seconds after the kill; that read is cached.
        await eventually(lambda: _subscribed_again(client, redis_cluster), within=5.0)
        await eventually(lambda: _sees(client, "https://a.example/1"), within=5.0)
        await with_failover(lambda: _retarget(redis, "https://a.example/2"))
        await eventually(lambda: _sees(client, "https://a.example/2"), within=1.0)
    finally:
        redis_cluster.restart(killed)


async def _subscribed_again(client: Client, cluster: RedisCluster) -> bool:
    return client.app[invalidation_ready_key].is_set() and _listening_node(cluster) is not None


async def test_the_listener_outlives_an_error_that_is_not_redis_s(
    aiohttp_client: AiohttpClient,
    redirector_settings: Settings,
    redis: ClusterClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """redis-py's cluster client once raised AttributeError while connecting: the listener must
    subscribe again, not die and leave the cache unaware of changes."""
    real = invalidation._pubsub
    failures = [AttributeError("'NoneType' object has no attribute 'writelines'")]

    async def flaky(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(*args)

    monkeypatch.setattr(invalidation, "_pubsub", flaky)
    [client] = await _redirectors(aiohttp_client, redirector_settings, 1)
    assert not failures
    await _retarget(redis, "https://shop.example/before")
    await eventually(lambda: _sees(client, "https://shop.example/before"))
    await _retarget(redis, "https://shop.example/after")
    await eventually(lambda: _sees(client, "https://shop.example/after"))
