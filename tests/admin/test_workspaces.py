"""Workspaces: a key sees only its own workspace's campaigns, links, keys and clicks; another
workspace's are 404s (on every route that takes an id or a code, from the route table), its
campaign in a create a 422, as missing ones; codes stay one namespace, served to everyone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from admin.access import SCOPES, is_dashboard
from admin.app import create_app
from admin.appkeys import links_key
from admin.openapi import operation_of
from admin.settings import AdminSettings
from redirector.store.connection import Store
from redirector.store.keys import CAMPAIGNS_KEY, campaign_key, link_key
from redirector.store.record import b36
from tests.admin.helpers import (
    URL,
    bearer,
    create_campaign,
    create_key,
    create_link,
    create_workspace,
    expect_error,
)
from tests.conftest import API_KEY, Client

ALL_SCOPES = list(SCOPES)


def _routes_with_ids() -> list[tuple[str, str, str | None]]:
    """(method, path, the scope it needs) of every route whose path takes an id or a code."""
    app = create_app(AdminSettings(api_keys=(API_KEY,)))
    found = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None or "{" not in route.resource.canonical:
            continue
        if is_dashboard(route.resource.canonical):  # its pages: tests/admin/dashboard
            continue
        operation = operation_of(route.handler)
        assert operation is not None
        found.append((route.method, route.resource.canonical, operation.access))
    return sorted(found)


ROUTES_WITH_IDS = _routes_with_ids()
# A valid body for each route above that takes one: a new such route fails until it has one.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/api/links/{code}"): {"disabled": True},
    ("POST", "/api/workspaces/{workspace_id}/keys"): {"name": "k", "scopes": ["links:read"]},
}
# Ids that nothing has, for the answers to compare with.
MISSING = {
    "id": "987654321",
    "code": "nosuchcode",
    "key_id": "0" * 16,
    "workspace_id": "wzzzz",
    "order_id": "no-such-order",
}


@dataclass(frozen=True)
class Tenant:
    """A workspace and a key of it with every scope (None: the client's root key)."""

    workspace: str
    key: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.key is None else bearer(self.key)


async def tenant(admin: Client, name: str | None) -> Tenant:
    """A new workspace with a key of every scope; None: root, in `default`."""
    if name is None:
        return Tenant("default", None)
    workspace = await create_workspace(admin, name)
    return Tenant(workspace, (await create_key(admin, workspace, ALL_SCOPES))["key"])


async def holdings(admin: Client, owner: Tenant) -> list[dict[str, str]]:
    """What `owner` holds, as path values: a campaign, a link of it and a key; then a link
    without campaign and another key."""
    headers = owner.headers
    resp = await admin.post("/api/campaigns", json={"name": "Spring"}, headers=headers)
    campaign = str((await resp.json())["id"])
    found = []
    for campaign_id in (int(campaign), None):
        body = {"url": URL, "campaign_id": campaign_id, "recipient": f"+3460000{campaign}"}
        resp = await admin.post("/api/links", json=body, headers=headers)
        assert resp.status == 201, await resp.text()
        key_id = (await create_key(admin, owner.workspace, ["links:read"]))["id"]
        code = (await resp.json())["code"]
        order_id = f"order-{code}"
        await record_conversion(admin, order_id, headers)
        found.append(
            {
                "id": campaign,
                "code": code,
                "key_id": key_id,
                "workspace_id": owner.workspace,
                "order_id": order_id,
            }
        )
    return found


async def record_conversion(admin: Client, order_id: str, headers: dict[str, str]) -> None:
    item = {
        "order_id": order_id,
        "recipient": "+34600000001",
        "amount": "1.00",
        "currency": "EUR",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    resp = await admin.post("/api/conversions", json={"conversions": [item]}, headers=headers)
    assert resp.status == 200, await resp.text()


async def campaign_field(redis: Redis, code: str) -> str:
    """The campaign field of the code's record as stored (redirector/store/record.py)."""
    raw: Any = await redis.hget(link_key(code), code)
    field: bytes = raw.split(b"|")[3]
    return field.decode()


def _path(template: str, values: dict[str, str]) -> str:
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], template)


@pytest.mark.parametrize(("method", "template", "access"), ROUTES_WITH_IDS)
async def test_another_workspaces_ids_are_404_as_missing_ones(
    admin: Client, method: str, template: str, access: str | None
) -> None:
    w1, w2, root = (await tenant(admin, "A"), await tenant(admin, "B"), await tenant(admin, None))
    body = BODIES.get((method, template))
    if method in {"POST", "PATCH", "PUT"}:
        assert body is not None, f"add a valid body of {method} {template} to BODIES"
    for owner, intruder in [(w1, w2), (w1, root), (root, w1)]:
        for values in await holdings(admin, owner):
            path = _path(template, values)
            if intruder.key is None and template.startswith("/api/workspaces/"):
                continue  # root keys manage the keys of every workspace
            seen = await admin.request(method, path, json=body, headers=intruder.headers)
            missing = await admin.request(
                method, _path(template, MISSING), json=body, headers=intruder.headers
            )
            status = 403 if access == "root" and intruder.key is not None else 404
            error = await expect_error(seen, status, (await missing.json())["error"]["code"])
            assert missing.status == status, (path, error)
            # The ids were real: their owner (or, for root's routes, a root key) gets them.
            mine = owner.headers if access != "root" else {}
            resp = await admin.request(method, path, json=body, headers=mine)
            assert resp.status < 300, (path, await resp.text())


async def test_lists_show_only_the_keys_workspace(admin: Client) -> None:
    w1 = await tenant(admin, "A")
    mine = await create_campaign(admin, name="root's")
    resp = await admin.post("/api/campaigns", json={"name": "A's"}, headers=w1.headers)
    theirs = await resp.json()
    assert theirs["id"] == mine["id"] + 1  # one namespace of ids: none repeats
    listed = await (await admin.get("/api/campaigns")).json()
    assert (listed["total"], [c["id"] for c in listed["campaigns"]]) == (1, [mine["id"]])
    listed = await (await admin.get("/api/campaigns", headers=w1.headers)).json()
    assert (listed["total"], [c["id"] for c in listed["campaigns"]]) == (1, [theirs["id"]])
    keys = await (await admin.get("/api/keys", headers=w1.headers)).json()
    assert [k["workspace_id"] for k in keys["keys"]] == [w1.workspace]
    assert (await (await admin.get("/api/keys")).json())["keys"] == []  # root keys: not listed


@pytest.mark.parametrize("path", ["/api/links", "/api/links/batch"])
async def test_another_workspaces_campaign_in_a_create_is_the_422_of_a_missing_one(
    admin: Client, redis: Store, path: str
) -> None:
    w1 = await tenant(admin, "A")
    campaign = await create_campaign(admin)  # root's, in default
    answers = []
    for campaign_id in (campaign["id"], 987654321):
        link = {"url": URL, "campaign_id": campaign_id}
        body = link if path == "/api/links" else {"campaign_id": campaign_id, "links": [link]}
        resp = await admin.post(path, json=body, headers=w1.headers)
        error = await expect_error(resp, 422, "validation_failed")
        answers.append((error["fields"][0]["field"], error["message"].split(" with id ")[0]))
    assert answers[0] == answers[1]
    assert await redis.hlen(campaign_key(campaign["id"])) > 0
    assert (await (await admin.get(f"/api/campaigns/{campaign['id']}")).json())["links"] == 0


async def test_recipients_are_opaque_and_per_workspace(admin: Client, redis: Redis) -> None:
    """A recipient's link without campaign is one per workspace: the same string in two
    workspaces is two people, and `default`'s codes are those derived before workspaces."""
    w1, w2 = await tenant(admin, "A"), await tenant(admin, "B")
    body = {"url": URL, "recipient": "+34600000001"}
    codes = {}
    for who in (None, w1, w2):
        headers = {} if who is None else who.headers
        resp = await admin.post("/api/links", json=body, headers=headers)
        assert resp.status == 201, await resp.text()
        code = (await resp.json())["code"]
        again = await admin.post("/api/links", json=body, headers=headers)
        assert (again.status, (await again.json())["code"]) == (200, code)
        codes[who.workspace if who else "default"] = code
    assert len(set(codes.values())) == 3
    # Each workspace's chain of codes is its own: the recipient's link is first on it (not
    # after the other workspaces' links, which would use up the chain's 16 places).
    for workspace, code in codes.items():
        chain = await admin.app[links_key].chain(None, workspace)
        assert code == chain.code(None, "+34600000001", 0)[1]
    assert chain.workspace == w2.workspace
    assert (await admin.app[links_key].chain(None)).workspace is None  # as before workspaces
    assert await campaign_field(redis, codes[w1.workspace]) == f"~{w1.workspace}"
    assert await campaign_field(redis, codes["default"]) == ""


async def test_a_campaigns_links_carry_no_workspace(admin: Client, redis: Redis) -> None:
    """A campaign's links take its workspace from the campaign: not a byte per link."""
    w1 = await tenant(admin, "A")
    resp = await admin.post("/api/campaigns", json={"name": "A's"}, headers=w1.headers)
    campaign_id = (await resp.json())["id"]
    body = {"url": URL, "campaign_id": campaign_id, "recipient": "+34600000001"}
    code = (await (await admin.post("/api/links", json=body, headers=w1.headers)).json())["code"]
    assert await campaign_field(redis, code) == b36(campaign_id)


async def test_custom_codes_are_one_namespace(admin: Client) -> None:
    w1 = await tenant(admin, "A")
    await create_link(admin, code="promo")
    resp = await admin.post("/api/links", json={"url": URL, "code": "promo"}, headers=w1.headers)
    await expect_error(resp, 409, "code_taken")


async def test_the_redirector_serves_every_workspaces_codes(
    admin: Client, redirector: Client
) -> None:
    w1 = await tenant(admin, "A")
    mine = await create_link(admin)
    resp = await admin.post("/api/links", json={"url": URL}, headers=w1.headers)
    theirs = await resp.json()
    for link in (mine, theirs):
        resp = await redirector.get(f"/{link['code']}", allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (302, link["destination"])


async def test_everything_made_before_workspaces_is_defaults(admin: Client, redis: Store) -> None:
    """A campaign hash and records as an earlier release wrote them: no migration."""
    w1 = await tenant(admin, "A")
    await redis.hset(
        campaign_key(41),
        mapping={"name": "Old", "kind": "campaign", "created_at": 1, "code_length": 7},
    )
    await redis.zadd(CAMPAIGNS_KEY, {"41": 1})
    await redis.hset(link_key("old-linked"), "old-linked", "24|1||15|0|0||https://a.example/")
    await redis.hset(link_key("old-loose"), "old-loose", "24|1|||0|0||https://b.example/")
    assert (await admin.get("/api/campaigns/41")).status == 200
    listed = await (await admin.get("/api/campaigns")).json()
    assert [c["id"] for c in listed["campaigns"]] == [41]
    for code in ("old-linked", "old-loose"):
        assert (await admin.get(f"/api/links/{code}")).status == 200
        resp = await admin.get(f"/api/links/{code}", headers=w1.headers)
        await expect_error(resp, 404, "link_not_found")
    await expect_error(
        await admin.get("/api/campaigns/41", headers=w1.headers), 404, "campaign_not_found"
    )
