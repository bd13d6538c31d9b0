"""The admin API over a real Redis: the key, health, the error edge and campaigns."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from admin.app import create_app
from admin.settings import AdminSettings
from redirector.store.keys import CAMPAIGN_SEQ_KEY, link_key
from redirector.store.record import RecordError
from tests.admin.helpers import (
    URL,
    create_campaign,
    create_link,
    expect_error,
    redis_keys,
)
from tests.conftest import API_KEY, AUTH, Client, schema_errors
from tests.redis_server import RedisServer
from tests.waiting import eventually

KEY_BYTES = API_KEY.encode()


# -- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-key-0123456789", f"Basic {API_KEY}", "Bearer", f"Bearer {API_KEY}x"],
)
async def test_api_needs_a_valid_bearer_key(admin: Client, header: str | None) -> None:
    headers = {"Authorization": header} if header else {"Authorization": ""}
    resp = await admin.get("/api/campaigns", headers=headers)
    await expect_error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "value", [b"Bearer \xff\xfe", b"\xff " + KEY_BYTES, b"Bearer " + KEY_BYTES + b"\xc3"]
)
async def test_a_header_that_is_not_utf8_is_401(admin: Client, value: bytes) -> None:
    # Sent raw: the test client would refuse to send these bytes.
    assert admin.server.host is not None and admin.server.port is not None
    reader, writer = await asyncio.open_connection(admin.server.host, admin.server.port)
    request = (
        b"GET /api/campaigns HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: %s\r\n\r\n"
    )
    writer.write(request % value)
    head, _, body = (await reader.read()).partition(b"\r\n\r\n")
    writer.close()
    await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 401 ") and b"WWW-Authenticate: Bearer" in head
    assert orjson.loads(body)["error"]["code"] == "unauthorized"


async def test_every_api_route_is_guarded(admin: Client) -> None:
    for method, path in [
        ("GET", "/api/openapi.json"),
        ("POST", "/api/links"),
        ("POST", "/api/links/batch"),
        ("DELETE", "/api/links/abc"),
        ("GET", "/api/nothing-here"),
    ]:
        resp = await admin.request(method, path, headers={"Authorization": ""})
        await expect_error(resp, 401, "unauthorized")


async def test_health_needs_no_key(admin: Client) -> None:
    resp = await admin.get("/healthz", headers={"Authorization": ""})
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_health_says_unavailable_within_a_second_while_redis_is_paused(
    aiohttp_client: AiohttpClient, own_redis: RedisServer
) -> None:
    # Commands may wait longer (and are retried): the health check must not wait for them.
    settings = AdminSettings(api_keys=(API_KEY,), redis_url=own_redis.url, redis_timeout=2.0)
    client: Client = await aiohttp_client(create_app(settings))
    assert await _healthy(client)
    paused = Redis.from_url(own_redis.url)
    await paused.client_pause(2500)  # takes connections, runs no command
    started = time.monotonic()
    resp = await client.get("/healthz")
    assert (resp.status, time.monotonic() - started < 1.0) == (503, True)
    assert await resp.json() == {"status": "unavailable"}
    await paused.aclose()
    await eventually(lambda: _healthy(client))


async def _healthy(client: Client) -> bool:
    resp = await client.get("/healthz")
    return resp.status == 200


async def test_health_says_unavailable_and_nothing_more(
    aiohttp_client: AiohttpClient, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = AdminSettings(api_keys=(API_KEY,), redis_url=own_redis.url, redis_timeout=0.5)
    client = await aiohttp_client(create_app(settings))
    own_redis.stop()
    with caplog.at_level(logging.INFO, logger="admin"):
        for _ in range(2):
            resp = await client.get("/healthz")
            assert resp.status == 503
            # No host, port or exception text: anyone may ask.
            assert await resp.json() == {"status": "unavailable"}
    # Nor a log line: anyone could flood the log.
    assert [r for r in caplog.records if r.name.startswith("admin")] == []


# -- the error edge ------------------------------------------------------------------------


async def test_an_unexpected_failure_is_a_logged_json_500(
    admin: Client, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await redis.hset(link_key("broken"), "broken", "not a link record")
    with caplog.at_level(logging.ERROR, logger="admin.errors"):
        error = await expect_error(await admin.get("/api/links/broken"), 500, "internal")
    assert error == {"code": "internal", "message": "internal error"}  # nothing of the cause
    [logged] = [r for r in caplog.records if r.name == "admin.errors"]
    assert "GET /api/links/broken" in logged.getMessage()
    assert logged.exc_info is not None and isinstance(logged.exc_info[1], RecordError)


@pytest.mark.parametrize("body", [b"{", b"", b"not json", b'{"url": "x",}'])
async def test_malformed_json_is_400(admin: Client, redis: Redis, body: bytes) -> None:
    resp = await admin.post("/api/links", data=body, headers={"Content-Type": "application/json"})
    await expect_error(resp, 400, "bad_request")
    assert await redis_keys(redis) == set()


async def test_oversized_body_is_413(
    aiohttp_client: AiohttpClient, admin_settings: AdminSettings, redis: Redis
) -> None:
    small = admin_settings.model_copy(update={"max_body_bytes": 2048})
    client = await aiohttp_client(create_app(small))
    resp = await client.post("/api/links/batch", json={"links": [{"url": URL}] * 200}, headers=AUTH)
    await expect_error(resp, 413, "body_too_large")
    assert await redis_keys(redis) == set()


async def test_unknown_route_and_method_are_json(admin: Client) -> None:
    await expect_error(await admin.get("/api/nope"), 404, "not_found")
    resp = await admin.put("/api/links/abc", json={})
    await expect_error(resp, 405, "method_not_allowed")
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD", "PATCH", "DELETE"}


# -- campaigns -----------------------------------------------------------------------------


async def test_campaign_create_get_list(admin: Client) -> None:
    a = await create_campaign(admin, kind="automation", utm_source="newsletter")
    b = await create_campaign(admin, name="Summer")
    assert a["kind"] == "automation" and a["utm_source"] == "newsletter" and a["links"] == 0
    assert schema_errors(a, "Campaign") == []
    assert b["kind"] == "campaign" and b["utm_medium"] is None

    resp = await admin.get(f"/api/campaigns/{a['id']}")
    assert resp.status == 200
    assert await resp.json() == a

    resp = await admin.get("/api/campaigns")
    body = await resp.json()
    assert schema_errors(body, "CampaignList") == []
    assert body["total"] == 2
    assert [c["id"] for c in body["campaigns"]] == [a["id"], b["id"]]
    resp = await admin.get("/api/campaigns?offset=1&limit=1")
    assert [c["id"] for c in (await resp.json())["campaigns"]] == [b["id"]]


async def test_a_campaign_may_choose_longer_codes(admin: Client) -> None:
    """Per-recipient links may lead to personal pages: harder to guess with longer codes."""
    longer = await create_campaign(admin, code_length=12)
    assert longer["code_length"] == 12 and schema_errors(longer, "Campaign") == []
    assert (await (await admin.get(f"/api/campaigns/{longer['id']}")).json()) == longer
    personal = await create_link(admin, campaign_id=longer["id"], recipient="+34600000001")
    drawn = await create_link(admin, campaign_id=longer["id"])
    body = {"campaign_id": longer["id"], "url": URL, "links": [{"recipient": "+34600000002"}, {}]}
    batch = await (await admin.post("/api/links/batch", json=body)).json()
    codes = [personal["code"], drawn["code"], *(link["code"] for link in batch["links"])]
    assert [len(code) for code in codes] == [12] * 4
    assert (await create_campaign(admin, name="Default"))["code_length"] == 7  # CODE_LENGTH


async def test_a_campaign_id_drawn_again_after_a_failover_overwrites_nothing(
    admin: Client, redis: Redis
) -> None:
    first = await create_campaign(admin, name="First")
    await redis.set(CAMPAIGN_SEQ_KEY, 0)  # the INCR that drew it lost in a failover
    second = await create_campaign(admin, name="Second")
    assert second["id"] == first["id"] + 1
    assert await (await admin.get(f"/api/campaigns/{first['id']}")).json() == first
    assert (await (await admin.get("/api/campaigns")).json())["total"] == 2


async def test_a_campaign_is_acknowledged_only_once_on_the_replicas_asked_for(
    aiohttp_client: AiohttpClient, admin_settings: AdminSettings, redis: Redis, store_kind: str
) -> None:
    if store_kind == "cluster":
        pytest.skip("a cluster's masters have replicas; this single Redis has none")
    waiting = admin_settings.model_copy(update={"redis_wait_replicas": 1, "redis_wait_timeout": 10})
    client = await aiohttp_client(create_app(waiting), headers=AUTH)
    resp = await client.post("/api/campaigns", json={"name": "Spring"})
    await expect_error(resp, 503, "storage_unavailable")


@pytest.mark.parametrize("path", ["/api/campaigns/999", "/api/campaigns/abc", "/api/campaigns/0"])
async def test_unknown_campaign_is_404(admin: Client, path: str) -> None:
    await expect_error(await admin.get(path), 404, "campaign_not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x", "kind": "other"}, "kind"),
        ({"name": "x", "utm_source": ""}, "utm_source"),
        ({"name": "x", "code_length": 4}, "code_length"),
        ({"name": "x", "code_length": 33}, "code_length"),
        ({"name": "x", "code_length": "12"}, "code_length"),
        ({"name": "x", "extra": 1}, "extra"),
        ([], "body"),
    ],
)
async def test_campaign_validation(admin: Client, redis: Redis, body: Any, field: str) -> None:
    error = await expect_error(
        await admin.post("/api/campaigns", json=body), 422, "validation_failed"
    )
    assert field in [f["field"] for f in error["fields"]]
    assert await redis_keys(redis) == set()


BAD_PAGING = ["limit=0", "limit=1001", "offset=-1", "limit=x", "offset=2147483649"]
# int() would take these; only plain digits are a number here.
BAD_PAGING += ["limit=%2B5", "limit=%205", "limit=1_0", "offset=%C2%B2"]


@pytest.mark.parametrize("query", BAD_PAGING)
async def test_campaign_list_bad_paging(admin: Client, query: str) -> None:
    error = await expect_error(await admin.get(f"/api/campaigns?{query}"), 422, "validation_failed")
    [field] = error["fields"]
    assert field["field"] == query.split("=")[0]
    low, high = (1, 1000) if field["field"] == "limit" else (0, 2**31)
    assert field["message"] == f"must be a whole number from {low} to {high}"


@pytest.mark.parametrize("when", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00%2B01:00"])
async def test_times_beyond_the_calendar_are_422(admin: Client, when: str) -> None:
    campaign = await create_campaign(admin)
    resp = await admin.get(f"/api/campaigns/{campaign['id']}/stats?from={when}")
    error = await expect_error(resp, 422, "validation_failed")
    assert [f["field"] for f in error["fields"]] == ["from"]
