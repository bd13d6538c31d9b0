"""The audit log: one entry per write request that succeeded, on every write route of the
route table, in the workspace written to; paged newest first; capped."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from admin.access import SCOPES, is_dashboard, root_key_id
from admin.app import create_app
from admin.auth import WRITES
from admin.service.audit import AuditService
from admin.settings import AdminSettings
from redirector.store.connection import Store
from redirector.store.keys import audit_key
from tests.admin.helpers import (
    URL,
    bearer,
    create_key,
    create_workspace,
    expect_error,
)
from tests.conftest import API_KEY, Client, schema_errors

ROOT_ID = root_key_id(hashlib.sha256(API_KEY.encode()).hexdigest())


def _write_routes() -> list[tuple[str, str]]:
    app = create_app(AdminSettings(api_keys=(API_KEY,)))
    return sorted(
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method in WRITES
        and route.resource is not None
        # The dashboard's writes: tests/admin/dashboard (they record the API's actions).
        and not is_dashboard(route.resource.canonical)
    )


class Tenant:
    """A workspace with a key of every scope; `request` makes requests with it."""

    def __init__(self, admin: Client, workspace: str, made: dict[str, Any]) -> None:
        self.admin, self.workspace, self.key_id = admin, workspace, made["id"]
        self.headers = bearer(made["key"])

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        resp = await self.admin.request(method, path, json=body, headers=self.headers)
        assert resp.status < 300, await resp.text()
        return None if resp.status == 204 else await resp.json()


# What each write route's request is made of, and the entry it must leave:
# (workspace of the log, key id, action, target). A new write route fails until it is here.
Entry = tuple[str, str, str, str]
Scenario = Callable[[Client, Tenant], Awaitable[Entry]]


async def _campaign(admin: Client, me: Tenant) -> Entry:
    made = await me.request("POST", "/api/campaigns", {"name": "Spring"})
    return me.workspace, me.key_id, "createCampaign", f"campaign:{made['id']}"


async def _link(admin: Client, me: Tenant) -> Entry:
    made = await me.request("POST", "/api/links", {"url": URL})
    return me.workspace, me.key_id, "createLink", f"link:{made['code']}"


async def _batch(admin: Client, me: Tenant) -> Entry:
    campaign = await me.request("POST", "/api/campaigns", {"name": "Spring"})
    body = {"campaign_id": campaign["id"], "links": [{"url": URL}, {"url": URL}]}
    await me.request("POST", "/api/links/batch", body)
    return me.workspace, me.key_id, "createLinkBatch", f"campaign:{campaign['id']} (2 links)"


async def _update(admin: Client, me: Tenant) -> Entry:
    code = (await me.request("POST", "/api/links", {"url": URL}))["code"]
    await me.request("PATCH", f"/api/links/{code}", {"disabled": True})
    return me.workspace, me.key_id, "updateLink", f"link:{code}"


async def _delete(admin: Client, me: Tenant) -> Entry:
    code = (await me.request("POST", "/api/links", {"url": URL}))["code"]
    await me.request("DELETE", f"/api/links/{code}")
    return me.workspace, me.key_id, "deleteLink", f"link:{code}"


async def _workspace(admin: Client, me: Tenant) -> Entry:
    made = await create_workspace(admin, "C")  # root's: in root's own workspace's log
    return "default", ROOT_ID, "createWorkspace", f"workspace:{made}"


async def _key(admin: Client, me: Tenant) -> Entry:
    made = await create_key(admin, me.workspace, ["links:read"])  # root's, in me's workspace
    return me.workspace, ROOT_ID, "createKey", f"key:{made['id']}"


async def _delete_workspace_key(admin: Client, me: Tenant) -> Entry:
    made = await create_key(admin, me.workspace, ["links:read"])
    resp = await admin.delete(f"/api/workspaces/{me.workspace}/keys/{made['id']}")
    assert resp.status == 204
    return me.workspace, ROOT_ID, "deleteWorkspaceKey", f"key:{made['id']}"


async def _delete_key(admin: Client, me: Tenant) -> Entry:
    made = await create_key(admin, me.workspace, ["links:read"])
    await me.request("DELETE", f"/api/keys/{made['id']}")
    return me.workspace, me.key_id, "deleteKey", f"key:{made['id']}"


async def _sends(admin: Client, me: Tenant) -> Entry:
    campaign = await me.request("POST", "/api/campaigns", {"name": "Spring"})
    send = {"campaign_id": campaign["id"], "recipient": "+34600000001", "sent_at": SOME_TIME}
    await me.request("POST", "/api/sends", {"sends": [send, send]})
    return me.workspace, me.key_id, "recordSends", "sends (2)"


async def _conversions(admin: Client, me: Tenant) -> Entry:
    order = {
        "order_id": "A-1",
        "recipient": "+34600000001",
        "amount": "80.00",
        "currency": "EUR",
        "occurred_at": SOME_TIME,
    }
    await me.request("POST", "/api/conversions", {"conversions": [order, order]})
    return me.workspace, me.key_id, "recordConversions", "conversions (1 new, 1 duplicates)"


SOME_TIME = "2026-01-01T00:00:00Z"

SCENARIOS: dict[tuple[str, str], Scenario] = {
    ("POST", "/api/sends"): _sends,
    ("POST", "/api/conversions"): _conversions,
    ("POST", "/api/campaigns"): _campaign,
    ("POST", "/api/links"): _link,
    ("POST", "/api/links/batch"): _batch,
    ("PATCH", "/api/links/{code}"): _update,
    ("DELETE", "/api/links/{code}"): _delete,
    ("POST", "/api/workspaces"): _workspace,
    ("POST", "/api/workspaces/{workspace_id}/keys"): _key,
    ("DELETE", "/api/workspaces/{workspace_id}/keys/{key_id}"): _delete_workspace_key,
    ("DELETE", "/api/keys/{key_id}"): _delete_key,
}


async def tenant(admin: Client) -> Tenant:
    workspace = await create_workspace(admin, "A")
    return Tenant(admin, workspace, await create_key(admin, workspace, list(SCOPES)))


async def audit_log(admin: Client, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    resp = await admin.get("/api/audit" + query, headers=headers)
    assert resp.status == 200, await resp.text()
    page: dict[str, Any] = await resp.json()
    assert schema_errors(page, "AuditPage") == []
    return page


@pytest.mark.parametrize(("method", "path"), _write_routes())
async def test_every_write_route_records_one_entry(admin: Client, method: str, path: str) -> None:
    scenario = SCENARIOS.get((method, path))
    assert scenario is not None, f"add {method} {path} to SCENARIOS"
    me = await tenant(admin)
    before = {
        "default": len((await audit_log(admin, {}))["entries"]),
        me.workspace: len((await audit_log(admin, me.headers))["entries"]),
    }
    started = time.time()
    workspace, key_id, action, target = await scenario(admin, me)
    headers = {} if workspace == "default" else me.headers
    entries = (await audit_log(admin, headers))["entries"]
    newest = entries[0]
    assert (newest["key_id"], newest["action"], newest["target"]) == (key_id, action, target)
    at = datetime.fromisoformat(newest["at"]).timestamp()
    assert started - 0.001 <= at <= time.time()
    # One entry per write: a scenario that writes twice (a link, then its change) left two.
    twice = {"createLinkBatch", "updateLink", "deleteLink", "deleteWorkspaceKey", "deleteKey"}
    twice.add("recordSends")  # its campaign first
    writes = 2 if action in twice else 1
    assert len(entries) - before[workspace] == writes


async def test_reads_and_refused_writes_record_nothing(admin: Client) -> None:
    me = await tenant(admin)
    made_by_root = (await audit_log(admin, me.headers))["entries"]
    assert [e["action"] for e in made_by_root] == ["createKey"]  # me's key
    await me.request("GET", "/api/campaigns")
    resp = await admin.post("/api/links", json={"url": "ftp://x"}, headers=me.headers)
    await expect_error(resp, 422, "validation_failed")
    resp = await admin.delete("/api/links/nosuchcode", headers=me.headers)
    await expect_error(resp, 404, "link_not_found")
    assert (await audit_log(admin, me.headers))["entries"] == made_by_root


async def test_a_workspace_reads_only_its_own_log_in_pages(admin: Client) -> None:
    me = await tenant(admin)
    codes = [(await me.request("POST", "/api/links", {"url": URL}))["code"] for _ in range(5)]
    await admin.post("/api/links", json={"url": URL})  # root's: default's log
    first = await audit_log(admin, me.headers, "?limit=2")
    second = await audit_log(admin, me.headers, f"?limit=2&before={first['next']}")
    third = await audit_log(admin, me.headers, f"?limit=2&before={second['next']}")
    assert third["next"] is None  # no fourth page, though the third is full
    pages = first["entries"] + second["entries"] + third["entries"]
    made = [f"link:{code}" for code in reversed(codes)]
    assert [e["target"] for e in pages] == [*made, f"key:{me.key_id}"]
    resp = await admin.get("/api/audit?before=nonsense", headers=me.headers)
    await expect_error(resp, 422, "validation_failed")


@pytest.mark.parametrize("before", ["0-0", "00-000"])
async def test_nothing_is_before_the_first_id(admin: Client, before: str) -> None:
    me = await tenant(admin)
    page = await audit_log(admin, me.headers, f"?before={before}")
    assert page == {"entries": [], "next": None}


@pytest.mark.parametrize("before", ["18446744073709551616-0", "1-18446744073709551616"])
async def test_an_id_past_64_bits_is_422(admin: Client, before: str) -> None:
    me = await tenant(admin)
    resp = await admin.get(f"/api/audit?before={before}", headers=me.headers)
    error = await expect_error(resp, 422, "validation_failed")
    assert error["fields"] == [
        {"field": "before", "message": "must be the next of an earlier page"}
    ]
    largest = "18446744073709551615-18446744073709551615"
    assert (await audit_log(admin, me.headers, f"?before={largest}"))["entries"]


async def test_the_log_is_capped(redis: Store) -> None:
    log = AuditService(redis, maxlen=50)
    for number in range(600):
        await log.record("w1", "k", "createLink", f"link:{number}", number)
    # Approximate trimming drops whole stream nodes (100 entries each by default).
    assert 50 <= await redis.xlen(audit_key("w1")) <= 150
    entries, _ = await log.page("w1", None, 1)
    assert entries[0].target == "link:599"


@pytest.mark.parametrize(
    ("before", "status"),
    [
        ("0-0", 200),  # nothing is older than the first possible entry
        ("000-00", 200),
        ("0-1", 200),
        ("18446744073709551615-18446744073709551615", 200),  # the last possible entry
        ("18446744073709551616-0", 422),  # past 64 bits: no entry id
        ("0-18446744073709551616", 422),
        ("99999999999999999999-99999999999999999999", 422),
    ],
)
async def test_a_page_before_any_entry_id_is_an_answer(
    admin: Client, before: str, status: int
) -> None:
    """Every `before` the pattern lets through is a page or a 422, never Redis's error (it was
    a 503 storage_unavailable: `(0-0` is no interval's end, and past 2**64 no stream id)."""
    me = await tenant(admin)
    resp = await admin.get(f"/api/audit?before={before}", headers=me.headers)
    if status == 422:
        await expect_error(resp, 422, "validation_failed")
        return
    assert resp.status == 200, await resp.text()
    older = [e["target"] for e in (await resp.json())["entries"]]
    assert older == ([] if int(before.split("-")[0]) == 0 else [f"key:{me.key_id}"])
