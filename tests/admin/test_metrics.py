"""Prometheus metrics of the admin API."""

from __future__ import annotations

import pytest
from aiohttp import ClientPayloadError, web
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from admin import apidoc
from admin.app import create_app
from admin.openapi import Operation
from admin.settings import AdminSettings
from redirector.store.keys import link_key
from tests.conftest import Client
from tests.prometheus import growth, scrape


async def test_requests_and_links_are_counted(admin: Client) -> None:
    before = await scrape(admin)
    links = [{"url": f"https://a.example/{i}"} for i in range(3)]
    assert (await admin.post("/api/links/batch", json={"links": links})).status == 201
    assert (await admin.post("/api/links", json={"url": "ftp://x"})).status == 422
    assert (await admin.get("/api/links/nope")).status == 404
    after = await scrape(admin)
    delta = growth(before, after)
    assert delta("smslinks_links_created_total") == 3
    assert delta('smslinks_admin_requests_total{route="/api/links/batch",status="201"}') == 1
    assert delta('smslinks_admin_requests_total{route="/api/links",status="422"}') == 1
    # One series per route template, not per link code.
    assert delta('smslinks_admin_requests_total{route="/api/links/{code}",status="404"}') == 1
    assert delta('smslinks_admin_request_seconds_count{route="/api/links/batch"}') == 1


async def test_an_internal_error_is_counted_as_500(admin: Client, redis: Redis) -> None:
    await redis.hset(link_key("broken"), "broken", "not a link record")
    before = await scrape(admin)
    assert (await admin.get("/api/links/broken")).status == 500
    after = await scrape(admin)
    name = 'smslinks_admin_requests_total{route="/api/links/{code}",status="500"}'
    assert growth(before, after)(name) == 1


async def test_an_answer_broken_midway_is_still_counted(
    aiohttp_client: AiohttpClient, admin_settings: AdminSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once bytes are sent, the exception passes the errors middleware (only dropping the
    connection is left); the metrics middleware counts it all the same."""

    async def breaks(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"the first rows")
        raise RuntimeError("failed midway")

    monkeypatch.setitem(apidoc.OPERATIONS, "breaks", apidoc.Text("Fails midway (test only)"))
    app = create_app(admin_settings)
    app.router.add_get("/breaks", Operation("breaks", "service", media="text/plain")(breaks))
    client = await aiohttp_client(app)
    before = await scrape(client)
    resp = await client.get("/breaks")
    with pytest.raises(ClientPayloadError):
        await resp.read()
    after = await scrape(client)
    name = 'smslinks_admin_requests_total{route="/breaks",status="500"}'
    assert growth(before, after)(name) == 1
