"""Links through the admin API over a real Redis: creating one, reading, changing and deleting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from admin.app import create_app
from admin.settings import AdminSettings
from redirector.store.keys import link_key
from tests.admin.helpers import (
    URL,
    create_campaign,
    create_link,
    expect_error,
    redis_keys,
)
from tests.conftest import AUTH, Client, schema_errors

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
    c = await create_campaign(admin, name="Café & Co", utm_source="newsletter", utm_medium="text")
    resp = await admin.post(
        "/api/links", json={"url": URL + "?utm_medium=own", "campaign_id": c["id"]}
    )
    link = await resp.json()
    assert link["destination"] == (
        URL + "?utm_medium=own&utm_source=newsletter&utm_campaign=Caf%C3%A9%20%26%20Co"
    )


async def test_untagged_link_gets_nothing(admin: Client) -> None:
    c = await create_campaign(admin)
    resp = await admin.post("/api/links", json={"url": URL, "campaign_id": c["id"], "tag": False})
    link = await resp.json()
    assert link["destination"] == URL and link["tag"] is False


async def test_custom_code_and_conflict(admin: Client) -> None:
    resp = await admin.post("/api/links", json={"url": URL, "code": "Promo_2026-x"})
    assert resp.status == 201
    assert (await resp.json())["code"] == "Promo_2026-x"
    resp = await admin.post("/api/links", json={"url": URL + "2", "code": "Promo_2026-x"})
    assert "index" not in await expect_error(resp, 409, "code_taken")  # one link: no item to name
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
    error = await expect_error(await admin.post("/api/links", json=body), 422, "validation_failed")
    assert field in [f["field"] for f in error["fields"]], error
    assert await redis_keys(redis) == set()


@pytest.mark.parametrize("url", ["http://localhost:8080/", "http://[::ffff:127.0.0.1]:8080/"])
async def test_a_redirector_on_loopback_refuses_loopback_in_any_spelling(
    aiohttp_client: AiohttpClient, admin_settings: AdminSettings, redis: Redis, url: str
) -> None:
    # The default PUBLIC_BASE_URL (http://127.0.0.1:8080); issue 10 found both bypasses.
    settings = admin_settings.model_copy(update={"public_base_url": "http://127.0.0.1:8080"})
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    error = await expect_error(
        await client.post("/api/links", json={"url": url}), 422, "validation_failed"
    )
    assert error["fields"] == [
        {"field": "url", "message": "URL must not point at this service's own host (127.0.0.1)"}
    ]
    assert await redis_keys(redis) == set()


async def test_url_at_max_length_is_accepted(admin: Client) -> None:
    url = "https://shop.example/" + "a" * (4096 - len("https://shop.example/"))
    resp = await admin.post("/api/links", json={"url": url, "tag": False})
    assert resp.status == 201


async def test_url_whitespace_trimmed_and_space_inside_encoded(admin: Client) -> None:
    resp = await admin.post(
        "/api/links", json={"url": "  https://shop.example/a b \n", "tag": False}
    )
    assert (await resp.json())["destination"] == "https://shop.example/a%20b"


# -- reading, changing and deleting links --------------------------------------------------


async def test_get_link(admin: Client) -> None:
    link = await create_link(admin, recipient="+34600000001")
    resp = await admin.get(f"/api/links/{link['code']}")
    assert await resp.json() == link
    await expect_error(await admin.get("/api/links/nope"), 404, "link_not_found")


async def test_patch_url_recomputes_destination_with_campaign(admin: Client) -> None:
    c = await create_campaign(admin, name="Winter")
    link = await create_link(admin, campaign_id=c["id"])
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
    link = await create_link(admin, tag=False)
    resp = await admin.patch(f"/api/links/{link['code']}", json={"url": URL + "/new"})
    assert (await resp.json())["destination"] == URL + "/new"


async def test_patch_expiry_and_disabled(admin: Client) -> None:
    link = await create_link(admin)
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
    link = await create_link(admin)
    resp = await admin.patch(f"/api/links/{link['code']}", json=body)
    error = await expect_error(resp, 422, "validation_failed")
    assert field in [f["field"] for f in error["fields"]]
    assert await (await admin.get(f"/api/links/{link['code']}")).json() == link


@pytest.mark.parametrize("field", ["url", "disabled"])
async def test_patch_to_null_is_refused_by_name(admin: Client, field: str) -> None:
    link = await create_link(admin)
    resp = await admin.patch(f"/api/links/{link['code']}", json={field: None})
    error = await expect_error(resp, 422, "validation_failed")
    assert error["fields"] == [{"field": field, "message": "must not be null"}]


async def test_patch_unknown_is_404(admin: Client) -> None:
    await expect_error(
        await admin.patch("/api/links/nope", json={"disabled": True}), 404, "link_not_found"
    )


async def test_delete_frees_code_and_recipient(admin: Client, redis: Redis) -> None:
    c = await create_campaign(admin)
    link = await create_link(admin, campaign_id=c["id"], recipient="r1", code="gone-soon")
    resp = await admin.delete("/api/links/gone-soon")
    assert resp.status == 204
    await expect_error(await admin.get("/api/links/gone-soon"), 404, "link_not_found")
    await expect_error(await admin.delete("/api/links/gone-soon"), 404, "link_not_found")
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 0
    again = await create_link(admin, campaign_id=c["id"], recipient="r1", code="gone-soon")
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
        await create_link(admin, code=code)
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
