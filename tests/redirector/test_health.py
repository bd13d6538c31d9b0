"""/healthz: 503 within a second whenever Redis does not answer (stopped, or paused: connected
but silent), and nothing in the answer about hosts, ports or errors."""

from __future__ import annotations

import time

import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio.cluster import RedisCluster

from redirector.app import create_app
from redirector.appkeys import invalidation_ready_key
from redirector.settings import Settings
from redirector.store.connection import Store
from tests.conftest import Client, redirector_client
from tests.redis_server import RedisServer
from tests.waiting import eventually


async def _health(client: Client) -> tuple[int, str, float]:
    started = time.monotonic()
    resp = await client.get("/healthz")
    return resp.status, await resp.text(), time.monotonic() - started


async def _unavailable_within_a_second(client: Client) -> None:
    status, text, seconds = await _health(client)
    assert (status, seconds < 1.0) == (503, True), seconds
    assert text == '{"status": "unavailable"}'  # no host, port or error


async def _healthy(client: Client) -> bool:
    return (await _health(client))[0] == 200


@pytest.fixture
def redirector_settings(redirector_settings: Settings) -> Settings:
    """Commands may wait longer than /healthz: its answer must not wait for them."""
    return redirector_settings.model_copy(update={"redis_timeout": 2.0})


async def test_503_within_a_second_while_redis_is_paused(redirector: Client, redis: Store) -> None:
    assert await _healthy(redirector)
    # Every master takes connections but runs no command for 2.5 s.
    if isinstance(redis, RedisCluster):
        await redis.client_pause(2500, target_nodes=RedisCluster.PRIMARIES)
    else:
        await redis.client_pause(2500)
    await _unavailable_within_a_second(redirector)
    await eventually(lambda: _healthy(redirector))


async def test_503_within_a_second_while_redis_is_stopped(
    aiohttp_client: AiohttpClient, own_redis: RedisServer
) -> None:
    app = create_app(Settings(redis_url=own_redis.url, click_tracking=False))
    client = await redirector_client(aiohttp_client, app)
    await app[invalidation_ready_key].wait()
    assert await _healthy(client)
    own_redis.stop()
    await _unavailable_within_a_second(client)
    own_redis.start()
    await eventually(lambda: _healthy(client))
