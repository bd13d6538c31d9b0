"""The admin API over a real Redis: every route, validation rule and error code."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from admin import codes
from admin.app import create_app
from admin.appkeys import campaigns_key
from admin.models import MAX_BATCH
from admin.service.campaigns import Campaign
from admin.settings import AdminSettings
from redirector.store.keys import campaign_key, link_key
from redirector.store.record import RecordError
from tests.conftest import API_KEY, AUTH, Client, schema_errors
from tests.redis_server import RedisServer

URL = "https://shop.example/p"
KEY_BYTES = API_KEY.encode()


async def _campaign(admin: Client, **fields: Any) -> dict[str, Any]:
    resp = await admin.post("/api/campaigns", json={"name": "Spring", **fields})
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _link(admin: Client, **fields: Any) -> dict[str, Any]:
    resp = await admin.post("/api/links", json={"url": URL, **fields})
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    whole = await resp.json()
    assert schema_errors(whole, "Error") == []
    body: dict[str, Any] = whole["error"]
    assert body["code"] == code
    assert body["message"]
    return body


async def _keys(redis: Redis) -> set[bytes]:
    return {k async for k in redis.scan_iter()}


# -- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-key-0123456789", f"Basic {API_KEY}", "Bearer", f"Bearer {API_KEY}x"],
)
async def test_api_needs_a_valid_bearer_key(admin: Client, header: str | None) -> None:
    headers = {"Authorization": header} if header else {"Authorization": ""}
    resp = await admin.get("/api/campaigns", headers=headers)
    await _error(resp, 401, "unauthorized")
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
        await _error(resp, 401, "unauthorized")


async def test_health_needs_no_key(admin: Client) -> None:
    resp = await admin.get("/healthz", headers={"Authorization": ""})
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


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
        error = await _error(await admin.get("/api/links/broken"), 500, "internal")
    assert error == {"code": "internal", "message": "internal error"}  # nothing of the cause
    [logged] = [r for r in caplog.records if r.name == "admin.errors"]
    assert "GET /api/links/broken" in logged.getMessage()
    assert logged.exc_info is not None and isinstance(logged.exc_info[1], RecordError)


# -- campaigns -----------------------------------------------------------------------------


async def test_campaign_create_get_list(admin: Client) -> None:
    a = await _campaign(admin, kind="automation", utm_source="newsletter")
    b = await _campaign(admin, name="Summer")
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


@pytest.mark.parametrize("path", ["/api/campaigns/999", "/api/campaigns/abc", "/api/campaigns/0"])
async def test_unknown_campaign_is_404(admin: Client, path: str) -> None:
    await _error(await admin.get(path), 404, "campaign_not_found")


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
        ({"name": "x", "extra": 1}, "extra"),
        ([], "body"),
    ],
)
async def test_campaign_validation(admin: Client, redis: Redis, body: Any, field: str) -> None:
    error = await _error(await admin.post("/api/campaigns", json=body), 422, "validation_failed")
    assert field in [f["field"] for f in error["fields"]]
    assert await _keys(redis) == set()


BAD_PAGING = ["limit=0", "limit=1001", "offset=-1", "limit=x", "offset=2147483649"]
# int() would take these; only plain digits are a number here.
BAD_PAGING += ["limit=%2B5", "limit=%205", "limit=1_0", "offset=%C2%B2"]


@pytest.mark.parametrize("query", BAD_PAGING)
async def test_campaign_list_bad_paging(admin: Client, query: str) -> None:
    error = await _error(await admin.get(f"/api/campaigns?{query}"), 422, "validation_failed")
    [field] = error["fields"]
    assert field["field"] == query.split("=")[0]
    low, high = (1, 1000) if field["field"] == "limit" else (0, 2**31)
    assert field["message"] == f"must be a whole number from {low} to {high}"


@pytest.mark.parametrize("when", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00%2B01:00"])
async def test_times_beyond_the_calendar_are_422(admin: Client, when: str) -> None:
    campaign = await _campaign(admin)
    resp = await admin.get(f"/api/campaigns/{campaign['id']}/stats?from={when}")
    error = await _error(resp, 422, "validation_failed")
    assert [f["field"] for f in error["fields"]] == ["from"]


# -- creating links ------------------------------------------------------------------------


async def test_link_without_campaign_gets_source_and_medium_only(admin: Client) -> None:
    resp = await admin.post("/api/links", json={"url": URL})
    assert resp.status == 201
    link = await resp.json()
    assert link["destination"] == URL + "?utm_source=instasent&utm_medium=sms"
    assert link["url"] == URL
    assert link["campaign_id"] is None and link["recipient"] is None
    assert link["expires_at"] is None and link["disabled"] is False and link["tag"] is True
    assert link["created_at"].endswith("Z")
    assert schema_errors(link, "Link") == []


async def test_campaign_utm_overrides_and_existing_utm_wins(admin: Client) -> None:
    c = await _campaign(admin, name="Café & Co", utm_source="newsletter", utm_medium="text")
    resp = await admin.post(
        "/api/links", json={"url": URL + "?utm_medium=own", "campaign_id": c["id"]}
    )
    link = await resp.json()
    assert link["destination"] == (
        URL + "?utm_medium=own&utm_source=newsletter&utm_campaign=Caf%C3%A9%20%26%20Co"
    )


async def test_untagged_link_gets_nothing(admin: Client) -> None:
    c = await _campaign(admin)
    resp = await admin.post("/api/links", json={"url": URL, "campaign_id": c["id"], "tag": False})
    link = await resp.json()
    assert link["destination"] == URL and link["tag"] is False


async def test_custom_code_and_conflict(admin: Client) -> None:
    resp = await admin.post("/api/links", json={"url": URL, "code": "Promo_2026-x"})
    assert resp.status == 201
    assert (await resp.json())["code"] == "Promo_2026-x"
    resp = await admin.post("/api/links", json={"url": URL + "2", "code": "Promo_2026-x"})
    assert "index" not in await _error(resp, 409, "code_taken")  # one link: no item to name
    # The taken code still points where it did.
    resp = await admin.get("/api/links/Promo_2026-x")
    assert (await resp.json())["url"] == URL


async def test_expiry_is_stored_and_returned(admin: Client) -> None:
    resp = await admin.post(
        "/api/links", json={"url": URL, "expires_at": "2099-01-02T03:04:05+01:00"}
    )
    assert (await resp.json())["expires_at"] == "2099-01-02T02:04:05Z"


BAD_LINKS: list[tuple[dict[str, Any], str]] = [
    ({}, "url"),
    ({"url": 5}, "url"),
    ({"url": "ftp://shop.example/"}, "url"),
    ({"url": "shop.example/p"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "https:///nohost"}, "url"),
    ({"url": "https://user:pw@shop.example/"}, "url"),
    ({"url": "https://shop.example/a\tb"}, "url"),
    ({"url": "https://shop.example/a\r\nb"}, "url"),
    ({"url": "https://shop.example/\x00"}, "url"),
    ({"url": "https://shop.example/" + "a" * 4096}, "url"),
    ({"url": "https://sho.rt/loop"}, "url"),
    ({"url": "http://SHO.RT:8080/loop"}, "url"),
    ({"url": URL, "code": "ab"}, "code"),
    ({"url": URL, "code": "a" * 65}, "code"),
    ({"url": URL, "code": "bad code"}, "code"),
    ({"url": URL, "code": "é-code"}, "code"),
    ({"url": URL, "code": "healthz"}, "code"),
    ({"url": URL, "code": "API"}, "code"),
    ({"url": URL, "code": "metrics"}, "code"),
    ({"url": URL, "expires_at": "2099-01-01"}, "expires_at"),
    ({"url": URL, "expires_at": "2099-01-01T00:00:00"}, "expires_at"),
    ({"url": URL, "expires_at": 4102444800}, "expires_at"),
    ({"url": URL, "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"url": URL, "expires_at": "0001-01-01T00:00:00+01:00"}, "expires_at"),
    ({"url": URL, "recipient": ""}, "recipient"),
    ({"url": URL, "recipient": "x" * 129}, "recipient"),
    ({"url": URL, "recipient": "a\nb"}, "recipient"),
    ({"url": URL, "campaign_id": "1"}, "campaign_id"),
    ({"url": URL, "campaign_id": 0}, "campaign_id"),
    ({"url": URL, "campaign_id": 12345}, "campaign_id"),
    ({"url": URL, "tag": "no"}, "tag"),
    ({"url": URL, "unknown": True}, "unknown"),
]


@pytest.mark.parametrize(("body", "field"), BAD_LINKS)
async def test_link_validation_names_the_field_and_writes_nothing(
    admin: Client, redis: Redis, body: dict[str, Any], field: str
) -> None:
    error = await _error(await admin.post("/api/links", json=body), 422, "validation_failed")
    assert field in [f["field"] for f in error["fields"]], error
    assert await _keys(redis) == set()


async def test_url_at_max_length_is_accepted(admin: Client) -> None:
    url = "https://shop.example/" + "a" * (4096 - len("https://shop.example/"))
    resp = await admin.post("/api/links", json={"url": url, "tag": False})
    assert resp.status == 201


async def test_url_whitespace_trimmed_and_space_inside_encoded(admin: Client) -> None:
    resp = await admin.post(
        "/api/links", json={"url": "  https://shop.example/a b \n", "tag": False}
    )
    assert (await resp.json())["destination"] == "https://shop.example/a%20b"


@pytest.mark.parametrize("body", [b"{", b"", b"not json", b'{"url": "x",}'])
async def test_malformed_json_is_400(admin: Client, redis: Redis, body: bytes) -> None:
    resp = await admin.post("/api/links", data=body, headers={"Content-Type": "application/json"})
    await _error(resp, 400, "bad_request")
    assert await _keys(redis) == set()


async def test_oversized_body_is_413(
    aiohttp_client: AiohttpClient, admin_settings: AdminSettings, redis: Redis
) -> None:
    small = admin_settings.model_copy(update={"max_body_bytes": 2048})
    client = await aiohttp_client(create_app(small))
    resp = await client.post("/api/links/batch", json={"links": [{"url": URL}] * 200}, headers=AUTH)
    await _error(resp, 413, "body_too_large")
    assert await _keys(redis) == set()


async def test_unknown_route_and_method_are_json(admin: Client) -> None:
    await _error(await admin.get("/api/nope"), 404, "not_found")
    await _error(await admin.put("/api/links/abc", json={}), 405, "method_not_allowed")


# -- batches -------------------------------------------------------------------------------


async def test_batch_in_request_order_and_idempotent_per_recipient(
    admin: Client, redis: Redis
) -> None:
    c = await _campaign(admin)
    items = [{"url": f"{URL}/{i}", "recipient": f"+3460000{i:04d}"} for i in range(50)]
    items.append({"url": URL + "/anon"})
    resp = await admin.post("/api/links/batch", json={"campaign_id": c["id"], "links": items})
    assert resp.status == 201
    body = await resp.json()
    assert schema_errors(body, "LinkBatch") == []
    links = body["links"]
    assert [x["url"] for x in links] == [i["url"] for i in items]
    assert len({x["code"] for x in links}) == 51
    assert all(x["campaign_id"] == c["id"] for x in links)
    assert links[3]["recipient"] == "+34600000003"
    assert (
        links[3]["destination"]
        == f"{URL}/3?utm_source=instasent&utm_medium=sms&utm_campaign=Spring"
    )

    # Sending the recipients again returns their codes; only the anonymous item is new.
    resp = await admin.post("/api/links/batch", json={"campaign_id": c["id"], "links": items})
    again = (await resp.json())["links"]
    assert [x["code"] for x in again[:50]] == [x["code"] for x in links[:50]]
    assert again[50]["code"] != links[50]["code"]
    campaign = await (await admin.get(f"/api/campaigns/{c['id']}")).json()
    assert campaign["links"] == 52

    # The same recipient in another campaign is another link.
    other = await _campaign(admin, name="Other")
    resp = await admin.post(
        "/api/links/batch", json={"campaign_id": other["id"], "links": items[:1]}
    )
    assert (await resp.json())["links"][0]["code"] != links[0]["code"]


async def test_same_recipient_twice_in_one_batch_gets_one_link(admin: Client) -> None:
    items = [{"url": URL, "recipient": "r1"}, {"url": URL, "recipient": "r1"}]
    resp = await admin.post("/api/links/batch", json={"links": items})
    links = (await resp.json())["links"]
    assert links[0]["code"] == links[1]["code"]


async def test_single_create_returns_existing_recipient_link_with_200(admin: Client) -> None:
    c = await _campaign(admin)
    body = {"url": URL, "campaign_id": c["id"], "recipient": "+34600000001"}
    first = await admin.post("/api/links", json=body)
    second = await admin.post("/api/links", json=body | {"url": URL + "/other"})
    assert (first.status, second.status) == (201, 200)
    assert (await first.json()) == (await second.json())


async def test_batch_validation_reports_every_bad_index_and_writes_nothing(
    admin: Client, redis: Redis
) -> None:
    c = await _campaign(admin)
    before = await _keys(redis)
    items = [
        {"url": URL},
        {"url": "ftp://x"},
        {"url": URL, "code": "x"},
        {"url": URL},
        {"url": URL, "expires_at": "yesterday"},
    ]
    resp = await admin.post("/api/links/batch", json={"campaign_id": c["id"], "links": items})
    error = await _error(resp, 422, "validation_failed")
    assert sorted(f["index"] for f in error["fields"]) == [1, 2, 4]
    assert {f["field"] for f in error["fields"]} == {
        "links[1].url",
        "links[2].code",
        "links[4].expires_at",
    }
    assert await _keys(redis) == before


async def test_batch_custom_code_taken_writes_nothing(admin: Client, redis: Redis) -> None:
    await admin.post("/api/links", json={"url": URL, "code": "taken"})
    before = await _keys(redis)
    count_before = await redis.hlen(next(k for k in before if k.startswith(b"l:")))
    items = [{"url": URL + "/a"}, {"url": URL + "/b", "code": "taken"}]
    error = await _error(
        await admin.post("/api/links/batch", json={"links": items}), 409, "code_taken"
    )
    assert error["index"] == 1
    assert await _keys(redis) == before
    assert await redis.hlen(next(k for k in before if k.startswith(b"l:"))) == count_before


async def test_batch_whose_drawn_code_is_taken_draws_again_and_writes_once(
    admin: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = await _campaign(admin)
    taken = await _link(admin, code="Taken01")  # as long as a drawn code (CODE_LENGTH 7)
    real_draw, draws = codes.draw, []

    def draw(count: int, length: int) -> list[str]:
        draws.append(count)
        drawn = real_draw(count, length)
        return ["Taken01", *drawn[1:]] if len(draws) == 1 else drawn

    monkeypatch.setattr(codes, "draw", draw)
    items = [{"url": f"{URL}/{i}", "recipient": f"r{i}"} for i in range(3)]
    resp = await admin.post("/api/links/batch", json={"campaign_id": c["id"], "links": items})
    assert resp.status == 201, await resp.text()
    links = (await resp.json())["links"]
    assert draws == [3, 1]  # the script found Taken01 in use; only that item drew again
    assert "Taken01" not in [x["code"] for x in links] and len({x["code"] for x in links}) == 3
    for link, item in zip(links, items, strict=True):
        assert (await (await admin.get(f"/api/links/{link['code']}")).json())["url"] == item["url"]
    assert await (await admin.get("/api/links/Taken01")).json() == taken
    # Written once: four links in all, three recipients, the campaign counts three.
    assert sum([await redis.hlen(k) async for k in redis.scan_iter("l:*")]) == 4
    assert sum([await redis.hlen(k) async for k in redis.scan_iter("r:*")]) == 3
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 3


async def test_campaign_gone_before_the_write_is_422_and_writes_nothing(
    admin: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = await _campaign(admin)
    campaigns = admin.app[campaigns_key]
    read = campaigns.get_campaign

    async def read_then_vanish(campaign_id: int) -> Campaign:
        campaign = await read(campaign_id)
        await redis.delete(campaign_key(campaign_id))  # as if deleted meanwhile
        return campaign

    monkeypatch.setattr(campaigns, "get_campaign", read_then_vanish)
    body = {"campaign_id": c["id"], "links": [{"url": URL}]}
    error = await _error(await admin.post("/api/links/batch", json=body), 422, "validation_failed")
    message = f"no campaign with id {c['id']}"
    assert error["fields"] == [{"field": "campaign_id", "message": message}]
    assert not [k async for k in redis.scan_iter("l:*")]


async def test_batch_same_custom_code_twice_is_409(admin: Client, redis: Redis) -> None:
    items = [{"url": URL, "code": "twice"}, {"url": URL, "code": "twice"}]
    error = await _error(
        await admin.post("/api/links/batch", json={"links": items}), 409, "code_taken"
    )
    assert error["index"] == 1
    assert await _keys(redis) == set()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"links": []}, "links"),
        ({}, "links"),
        ({"links": [{"url": URL}] * (MAX_BATCH + 1)}, "links"),
        ({"links": [{"url": URL, "campaign_id": 1}]}, "links[0].campaign_id"),
        ({"campaign_id": 77, "links": [{"url": URL}]}, "campaign_id"),
    ],
)
async def test_batch_shape_errors(
    admin: Client, redis: Redis, body: dict[str, Any], field: str
) -> None:
    resp = await admin.post("/api/links/batch", json=body)
    error = await _error(resp, 422, "validation_failed")
    assert field in [f["field"] for f in error["fields"]]
    assert await _keys(redis) == set()


async def test_full_batch_of_10000(admin: Client, redis: Redis) -> None:
    c = await _campaign(admin)
    items = [{"url": f"{URL}?i={i}", "recipient": str(i)} for i in range(MAX_BATCH)]
    resp = await admin.post("/api/links/batch", json={"campaign_id": c["id"], "links": items})
    assert resp.status == 201
    links = (await resp.json())["links"]
    assert len({x["code"] for x in links}) == MAX_BATCH
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == MAX_BATCH


# -- reading, changing and deleting links --------------------------------------------------


async def test_get_link(admin: Client) -> None:
    link = await _link(admin, recipient="+34600000001")
    resp = await admin.get(f"/api/links/{link['code']}")
    assert await resp.json() == link
    await _error(await admin.get("/api/links/nope"), 404, "link_not_found")


async def test_patch_url_recomputes_destination_with_campaign(admin: Client) -> None:
    c = await _campaign(admin, name="Winter")
    link = await _link(admin, campaign_id=c["id"])
    resp = await admin.patch(
        f"/api/links/{link['code']}", json={"url": "https://other.example/x?utm_campaign=mine"}
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["url"] == "https://other.example/x?utm_campaign=mine"
    assert body["destination"] == (
        "https://other.example/x?utm_campaign=mine&utm_source=instasent&utm_medium=sms"
    )
    assert body["code"] == link["code"] and body["created_at"] == link["created_at"]


async def test_patch_untagged_link_stays_untagged(admin: Client) -> None:
    link = await _link(admin, tag=False)
    resp = await admin.patch(f"/api/links/{link['code']}", json={"url": URL + "/new"})
    assert (await resp.json())["destination"] == URL + "/new"


async def test_patch_expiry_and_disabled(admin: Client) -> None:
    link = await _link(admin)
    path = f"/api/links/{link['code']}"
    body = await (await admin.patch(path, json={"expires_at": "2100-01-01T00:00:00Z"})).json()
    assert body["expires_at"] == "2100-01-01T00:00:00Z"
    body = await (await admin.patch(path, json={"disabled": True})).json()
    assert body["disabled"] is True and body["expires_at"] == "2100-01-01T00:00:00Z"
    body = await (await admin.patch(path, json={"expires_at": None, "disabled": False})).json()
    assert body["expires_at"] is None and body["disabled"] is False
    assert body["destination"] == link["destination"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://x"}, "url"),
        ({"url": None}, "url"),
        ({"disabled": None}, "disabled"),
        ({"disabled": "yes"}, "disabled"),
        ({"expires_at": "soon"}, "expires_at"),
        ({"code": "new"}, "code"),
    ],
)
async def test_patch_validation_changes_nothing(
    admin: Client, body: dict[str, Any], field: str
) -> None:
    link = await _link(admin)
    resp = await admin.patch(f"/api/links/{link['code']}", json=body)
    error = await _error(resp, 422, "validation_failed")
    assert field in [f["field"] for f in error["fields"]]
    assert await (await admin.get(f"/api/links/{link['code']}")).json() == link


@pytest.mark.parametrize("field", ["url", "disabled"])
async def test_patch_to_null_is_refused_by_name(admin: Client, field: str) -> None:
    link = await _link(admin)
    resp = await admin.patch(f"/api/links/{link['code']}", json={field: None})
    error = await _error(resp, 422, "validation_failed")
    assert error["fields"] == [{"field": field, "message": "must not be null"}]


async def test_patch_unknown_is_404(admin: Client) -> None:
    await _error(
        await admin.patch("/api/links/nope", json={"disabled": True}), 404, "link_not_found"
    )


async def test_delete_frees_code_and_recipient(admin: Client, redis: Redis) -> None:
    c = await _campaign(admin)
    link = await _link(admin, campaign_id=c["id"], recipient="r1", code="gone-soon")
    resp = await admin.delete("/api/links/gone-soon")
    assert resp.status == 204
    await _error(await admin.get("/api/links/gone-soon"), 404, "link_not_found")
    await _error(await admin.delete("/api/links/gone-soon"), 404, "link_not_found")
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 0
    again = await _link(admin, campaign_id=c["id"], recipient="r1", code="gone-soon")
    assert again["code"] == link["code"] and again["created_at"] >= link["created_at"]


def _same_bucket_codes() -> tuple[str, str]:
    seen: dict[str, str] = {}
    for i in range(1_000_000):
        code = f"bucket-{i}"
        other = seen.setdefault(link_key(code), code)
        if other != code:
            return other, code
    raise AssertionError("no two codes share a bucket")  # pragma: no cover


async def test_concurrent_changes_to_links_sharing_a_bucket_all_land(admin: Client) -> None:
    """Both links live in one hash, so their transactions conflict (WATCH) and retry."""
    first, second = _same_bucket_codes()
    for code in (first, second):
        await _link(admin, code=code)
    urls = {code: [f"https://a.example/{code}/{i}" for i in range(8)] for code in (first, second)}
    responses = await asyncio.gather(
        *(
            admin.patch(f"/api/links/{code}", json={"url": url})
            for code in (first, second)
            for url in urls[code]
        )
    )
    assert [r.status for r in responses] == [200] * 16
    for code in (first, second):
        final = await (await admin.get(f"/api/links/{code}")).json()
        assert final["url"] in urls[code]
    await admin.delete(f"/api/links/{first}")
    assert (await admin.get(f"/api/links/{second}")).status == 200
