"""Hot links keep redirecting while Redis loads its data (after a restart it answers every
read with LOADING for as long as that takes): the redirector subscribes again at once, but
drops its cache only once Redis answers reads, and serves what it holds meanwhile, even past
its TTL (a short one here, so that every entry outlives it)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from pytest_aiohttp import AiohttpClient
from redis import Redis as NodeClient
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from redirector.app import create_app
from redirector.appkeys import invalidation_ready_key
from redirector.settings import Settings
from redirector.store.connection import Store
from redirector.store.keys import INVALIDATION_CHANNEL, link_key
from redirector.store.record import Link, encode
from tests.conftest import Client, redirector_client
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer
from tests.waiting import eventually

CODE = "hotlink"
# Redis loads these keys one by one, LOAD_SECONDS in all, answering clients every 1 KB (5 keys).
FILLER_KEYS = 3_000
LOAD_SECONDS = 4.0


def _slow_loading() -> dict[str, int]:
    delay_us = int(LOAD_SECONDS * 1_000_000 / FILLER_KEYS)
    return {"key-load-delay": delay_us, "loading-process-events-interval-bytes": 1024}


async def _store_hot_link(store: Store) -> None:
    """The link, and filler keys for its node to load (200 random bytes, that RDB cannot
    shrink), in its slot."""
    key = link_key(CODE)
    await store.hset(key, CODE, encode(Link("https://shop.example/hot", 1)))
    tag = key[key.index("{") : key.index("}") + 1]
    async with store.pipeline(transaction=False) as pipe:
        for number in range(FILLER_KEYS):
            pipe.set(f"filler:{tag}:{number}", secrets.token_hex(100))
        await pipe.execute()


async def _cached_redirector(aiohttp_client: AiohttpClient, settings: Settings) -> Client:
    app = create_app(settings.model_copy(update={"cache_ttl": 0.5, "click_tracking": False}))
    client = await redirector_client(aiohttp_client, app)
    await app[invalidation_ready_key].wait()
    assert await _status(client) == 302  # now cached
    return client


async def _status(client: Client) -> int:
    return (await client.get(f"/{CODE}", allow_redirects=False)).status


def _loading(port: int) -> bool:
    with NodeClient(port=port) as node:
        return bool(node.info("persistence")["loading"])


def _subscribers(ports: list[int]) -> int:
    total = 0
    for port in ports:
        with NodeClient(port=port) as node:
            total += node.pubsub_numsub(INVALIDATION_CHANNEL)[0][1]
    return total


async def _true(value: bool) -> bool:
    return value


async def test_a_restarted_redis_loading_its_data_leaves_hot_links_redirecting(
    aiohttp_client: AiohttpClient, own_redis: RedisServer
) -> None:
    store = Redis.from_url(own_redis.url)
    await _store_hot_link(store)
    await store.save()
    await store.aclose()
    client = await _cached_redirector(aiohttp_client, Settings(redis_url=own_redis.url))
    ready = client.app[invalidation_ready_key]
    own_redis.stop()
    await eventually(lambda: _true(not ready.is_set()))  # the feed is lost
    assert await _status(client) == 302
    slow = _slow_loading()
    own_redis.start(*(word for name, value in slow.items() for word in (f"--{name}", str(value))))
    # Subscribed again while Redis loads: before the fix, the cache was dropped right then.
    await eventually(lambda: _true(_subscribers([own_redis.port]) == 1))
    for _ in range(5):
        assert await _status(client) == 302
    assert _loading(own_redis.port)  # so those were answered while Redis could not
    await eventually(lambda: _true(ready.is_set()), within=LOAD_SECONDS * 5)
    assert await _status(client) == 302  # read afresh


@contextlib.asynccontextmanager
async def _reloading(port: int) -> AsyncIterator[None]:
    """The node on `port` reloading its data (DEBUG RELOAD) slowly meanwhile."""
    with NodeClient(port=port) as node:
        try:
            node.execute_command("DEBUG", "SLEEP", 0)
        except ResponseError as exc:  # TEST_REDIS_URL: a server without DEBUG
            pytest.skip(f"needs DEBUG: {exc}")
        for name, value in _slow_loading().items():
            node.config_set(name, value)
    reload = asyncio.create_task(asyncio.to_thread(_reload, port))
    try:
        await eventually(lambda: _true(_loading(port)))
        yield
    finally:
        await reload
        with NodeClient(port=port) as node:
            node.config_set("key-load-delay", 0)


def _reload(port: int) -> None:
    with NodeClient(port=port, socket_timeout=LOAD_SECONDS * 10) as node:
        node.execute_command("DEBUG", "RELOAD")


async def test_hot_links_redirect_while_redis_reloads_and_the_feed_subscribes_again(
    aiohttp_client: AiohttpClient,
    redirector_settings: Settings,
    redis: Store,
    store_kind: str,
    redis_url: str,
    request: pytest.FixtureRequest,
) -> None:
    await _store_hot_link(redis)
    client = await _cached_redirector(aiohttp_client, redirector_settings)
    cluster: RedisCluster | None = (
        request.getfixturevalue("redis_cluster") if store_kind == "cluster" else None
    )
    # The node of the link's slot (the others serve: on a cluster, the feed subscribes again).
    loading = cluster.master_serving(link_key(CODE)) if cluster else urlsplit(redis_url).port
    assert loading is not None
    nodes = cluster.running() if cluster else [loading]
    async with _reloading(loading):
        for port in nodes:  # the feed's connection, wherever it is
            with NodeClient(port=port) as node:
                node.client_kill_filter(_type="pubsub")
        await eventually(lambda: _true(_subscribers(nodes) == 1))
        for _ in range(5):
            assert await _status(client) == 302
        assert _loading(loading)
    await eventually(lambda: _true(client.app[invalidation_ready_key].is_set()), within=10)
    assert await _status(client) == 302
