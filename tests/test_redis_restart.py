"""Both apps' Redis client across a restart of its redis-server: the connections the server
closed while they waited in the pool are connected afresh before a command goes out on them
(issue 10: the admin's first request after a restart failed on one), and a command that was
already sent when the server went away is not sent again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient
from redis.exceptions import ConnectionError as RedisConnectionError

from admin.app import create_app
from admin.settings import AdminSettings
from redirector.store.connection import connect
from tests.admin.helpers import URL
from tests.conftest import API_KEY, AUTH
from tests.redis_server import RedisServer
from tests.waiting import eventually

# A read, a script write, a batch (scripts and a pipeline), and the health check's PING.
REQUESTS: list[tuple[str, str, Any, int]] = [
    ("GET", "/healthz", None, 200),
    ("GET", "/api/campaigns", None, 200),
    ("POST", "/api/campaigns", {"name": "Spring"}, 201),
    ("POST", "/api/links/batch", {"links": [{"url": URL, "recipient": "+34600000001"}]}, 201),
    ("POST", "/api/links", {"url": URL, "code": "after-restart"}, 201),
]


async def test_the_first_request_after_a_redis_restart_is_answered(
    aiohttp_client: AiohttpClient, own_redis: RedisServer
) -> None:
    settings = AdminSettings(api_keys=(API_KEY,), redis_url=own_redis.url)
    admin = await aiohttp_client(create_app(settings), headers=AUTH)
    for method, path, body, status in REQUESTS:
        assert (await admin.get("/api/campaigns")).status == 200  # a connection in the pool
        own_redis.stop()
        own_redis.start()  # empty: the test server keeps no data
        resp = await admin.request(method, path, json=body)
        assert resp.status == status, (path, await resp.text())


async def test_a_command_already_sent_is_not_sent_again(own_redis: RedisServer) -> None:
    store = connect(own_redis.url, timeout=5)
    try:
        blocked = asyncio.ensure_future(store.blpop(["nothing"], timeout=3))

        async def sent() -> bool:
            return int((await store.info("clients"))["blocked_clients"]) > 0

        await eventually(sent)
        own_redis.stop()
        own_redis.start()
        # Sent again, it would wait out its 3 s on the new server and answer None.
        with pytest.raises(RedisConnectionError):
            await blocked
        assert await store.ping() is True
    finally:
        await store.aclose()
