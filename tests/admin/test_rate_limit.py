"""The per-key rate limit (ADMIN_RATE_LIMIT per 60-second window): a key may spend its window
at once, then gets 429 with Retry-After; every answer to a known key carries the RateLimit
fields; a 0 limit counts nothing. Across worker processes: tests/admin/test_workers.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientResponse
from pytest_aiohttp import AiohttpClient

from admin.access import key_digest, root_key_id
from admin.app import create_app
from admin.settings import AdminSettings
from redirector.store.connection import Store
from redirector.store.keys import RATE_WINDOW_PREFIX, rate_window_key
from tests.admin.helpers import (
    bearer,
    create_campaign,
    create_key,
    expect_error,
)
from tests.conftest import API_KEY, AUTH, Client
from tests.redis_server import RedisServer
from tests.waiting import eventually

ROOT_COUNTER = rate_window_key(root_key_id(key_digest(API_KEY.encode())))
FIELDS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")

Limited = Callable[[int], Awaitable[Client]]


@pytest.fixture
def limited(aiohttp_client: AiohttpClient, admin_settings: AdminSettings, redis: Store) -> Limited:
    """An admin client (root key) of an app whose ADMIN_RATE_LIMIT is the one given."""

    async def make(limit: int) -> Client:
        settings = admin_settings.model_copy(update={"rate_limit": limit})
        return await aiohttp_client(create_app(settings), headers=AUTH)

    return make


def fields(resp: ClientResponse) -> dict[str, str]:
    return {name: resp.headers[name] for name in FIELDS if name in resp.headers}


def spent(limit: int, remaining: int, reset: str = "60") -> dict[str, str]:
    """The fields of an answer `remaining` requests short of the limit."""
    return {
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": str(remaining),
        "RateLimit-Reset": reset,
        "RateLimit-Policy": f"{limit};w=60",
    }


async def test_a_key_spends_its_whole_window_at_once_then_gets_429_until_it_ends(
    limited: Limited, redis: Store
) -> None:
    admin = await limited(5)
    for remaining in (4, 3, 2, 1, 0):
        resp = await admin.get("/api/campaigns")
        assert resp.status == 200
        # The window started with the first request, well under a second ago.
        assert fields(resp) == spent(5, remaining)
    for _ in range(2):  # a refused request counts too; the window does not move
        resp = await admin.get("/api/campaigns")
        error = await expect_error(resp, 429, "rate_limited")
        assert fields(resp) == spent(5, 0)
        assert resp.headers["Retry-After"] == "60"
        assert error["message"] == "this key made its 5 requests of 60 s; try again in 60 s"
    assert 59_000 < await redis.pttl(ROOT_COUNTER) <= 60_000
    # The window ends (made to end now): a new one, with the whole budget, starts.
    await redis.pexpire(ROOT_COUNTER, 1)

    async def window_ended() -> bool:
        return not await redis.exists(ROOT_COUNTER)

    await eventually(window_ended)
    resp = await admin.get("/api/campaigns")
    assert resp.status == 200
    assert fields(resp) == spent(5, 4)


async def test_reset_and_retry_after_are_the_seconds_left_rounded_up(
    limited: Limited, redis: Store
) -> None:
    admin = await limited(1)
    assert (await admin.get("/api/campaigns")).status == 200
    await redis.pexpire(ROOT_COUNTER, 41_500)
    resp = await admin.get("/api/campaigns")
    await expect_error(resp, 429, "rate_limited")
    assert fields(resp) == spent(1, 0, reset="42")
    assert resp.headers["Retry-After"] == "42"


async def test_a_counter_left_without_expiry_gets_one(limited: Limited, redis: Store) -> None:
    await redis.set(ROOT_COUNTER, 7)
    admin = await limited(10)
    resp = await admin.get("/api/campaigns")
    assert fields(resp) == spent(10, 2)
    assert 0 < await redis.pttl(ROOT_COUNTER) <= 60_000


async def test_each_key_has_its_own_window(limited: Limited) -> None:
    admin = await limited(3)
    made = await create_key(admin, "default", ["campaigns:read"])  # the root key's first
    for _ in range(3):
        await admin.get("/api/campaigns")
    await expect_error(await admin.get("/api/campaigns"), 429, "rate_limited")
    resp = await admin.get("/api/campaigns", headers=bearer(made["key"]))
    assert resp.status == 200
    assert fields(resp) == spent(3, 2)


async def test_every_answer_to_a_known_key_carries_the_fields(limited: Limited) -> None:
    admin = await limited(100)
    campaign = await create_campaign(admin)  # 201
    narrow = bearer((await create_key(admin, "default", ["links:read"]))["key"])
    answers = [
        await admin.get(f"/api/campaigns/{campaign['id']}/clicks.csv"),  # streamed
        await admin.get("/api/links/nothing1"),  # 404
        await admin.get("/api/campaigns?limit=0"),  # 422
        await admin.post("/api/campaigns", data=b"{"),  # 400
        await admin.get("/api/nowhere"),  # aiohttp's own 404
        await admin.get("/api/campaigns", headers=narrow),  # 403, with the other key
    ]
    assert [resp.status for resp in answers] == [200, 404, 422, 400, 404, 403]
    assert [fields(resp) for resp in answers] == [
        spent(100, 97),
        spent(100, 96),
        spent(100, 95),
        spent(100, 94),
        spent(100, 93),
        spent(100, 99),
    ]
    # No key known: nothing counted, nothing said.
    unknown = await admin.get("/api/campaigns", headers=bearer("smsl_" + "x" * 43))
    health = await admin.get("/healthz")
    assert [(resp.status, fields(resp)) for resp in (unknown, health)] == [(401, {}), (200, {})]


async def test_a_zero_limit_is_off(limited: Limited, redis: Store) -> None:
    admin = await limited(0)
    for _ in range(30):
        resp = await admin.get("/api/campaigns")
        assert resp.status == 200
        assert fields(resp) == {}
        assert "Retry-After" not in resp.headers
    assert [key async for key in redis.scan_iter(match=RATE_WINDOW_PREFIX + "*")] == []


async def test_a_request_costs_one_redis_call(
    limited: Limited, redis: Store, store_kind: str
) -> None:
    if store_kind == "cluster":
        pytest.skip("counts the commands of one server")
    admin = await limited(100)
    assert (await admin.get("/api/openapi.json")).status == 200  # the script is loaded
    await redis.config_resetstat()
    for _ in range(5):  # a root key, a route that reads nothing: the limit's call alone
        assert (await admin.get("/api/openapi.json")).status == 200
    calls = {
        name.removeprefix("cmdstat_"): stat["calls"]
        for name, stat in (await redis.info("commandstats")).items()
    }
    # One script call each; INCR and PTTL are the script's (commandstats counts them too).
    assert calls == {"evalsha": 5, "incr": 5, "pttl": 5, "config|resetstat": 1}


async def test_with_redis_unreachable_a_limited_key_gets_503(
    aiohttp_client: AiohttpClient, own_redis: RedisServer
) -> None:
    settings = AdminSettings(api_keys=(API_KEY,), redis_url=own_redis.url, rate_limit=10)
    admin = await aiohttp_client(create_app(settings), headers=AUTH)
    assert (await admin.get("/api/openapi.json")).status == 200
    own_redis.stop()
    # The limit is not lifted while it cannot be counted.
    resp = await admin.get("/api/openapi.json")
    await expect_error(resp, 503, "storage_unavailable")
