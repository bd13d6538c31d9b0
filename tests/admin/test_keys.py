"""API keys: made by root keys (or keys:admin), shown once and stored as a hash, scoped (403
per missing scope, from the route table), expiring, revoked; malformed headers are 401s; the
bootstrap CLI. Revocation across worker processes: tests/admin/test_workers.py."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from admin.access import SCOPES, root_key_id
from admin.app import create_app
from admin.openapi import operation_of
from admin.settings import AdminSettings
from redirector.store.access import TouchKeyScript
from redirector.store.connection import Store
from redirector.store.keys import api_key_key
from tests.admin.helpers import (
    bearer,
    create_campaign,
    create_key,
    create_workspace,
    expect_error,
)
from tests.conftest import API_KEY, Client
from tests.waiting import eventually


def _scoped_routes() -> list[tuple[str, str, str]]:
    """(method, path, what it needs) of every route that needs a scope or a root key."""
    app = create_app(AdminSettings(api_keys=(API_KEY,)))
    found = []
    for route in app.router.routes():
        operation = operation_of(route.handler)
        if route.method != "HEAD" and operation is not None and operation.access is not None:
            assert route.resource is not None
            found.append((route.method, route.resource.canonical, operation.access))
    return sorted(found)


SCOPED_ROUTES = _scoped_routes()


def _filled(template: str) -> str:
    """Any values do: the scope is checked before the route looks at them."""
    return re.sub(r"{\w+}", "x1", template)


async def stored_values(redis: Redis) -> list[bytes]:
    """Every name and value Redis holds (strings, hashes, sets, zsets, streams)."""
    found: list[Any] = []
    client: Any = redis  # redis-py's annotations say str where bytes come
    async for name in client.scan_iter():
        found.append(name)
        kind = (await client.type(name)).decode()
        if kind == "string":
            found.append(await client.get(name))
        elif kind == "hash":
            found += [part for pair in (await client.hgetall(name)).items() for part in pair]
        elif kind == "set":
            found += list(await client.smembers(name))
        elif kind == "zset":
            found += await client.zrange(name, 0, -1)
        elif kind == "stream":
            for _, fields in await client.xrange(name):
                found += [part for pair in fields.items() for part in pair]
    return [value if isinstance(value, bytes) else str(value).encode() for value in found]


async def test_a_key_is_shown_once_and_stored_as_its_hash(admin: Client, redis: Redis) -> None:
    workspace = await create_workspace(admin)
    made = await create_key(admin, workspace, ["campaigns:read"], name="shop backend")
    key = made["key"]
    assert re.fullmatch(r"smsl_[0-9A-Za-z]{43}", key)
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert made["id"] == digest[:16]
    assert made["workspace_id"] == workspace and made["scopes"] == ["campaigns:read"]
    values = await stored_values(redis)
    assert not [v for v in values if key.encode() in v or key[5:].encode() in v]
    assert (await redis.hgetall(api_key_key(made["id"])))[b"hash"] == digest.encode()
    listed = (await (await admin.get(f"/api/workspaces/{workspace}/keys")).json())["keys"]
    assert [k["id"] for k in listed] == [made["id"]] and "key" not in listed[0]
    # The key works, in its workspace.
    assert (await admin.get("/api/campaigns", headers=bearer(key))).status == 200


@pytest.mark.parametrize(("method", "template", "needed"), SCOPED_ROUTES)
async def test_a_missing_scope_is_403(
    admin: Client, redis: Store, method: str, template: str, needed: str
) -> None:
    workspace = await create_workspace(admin)
    others = [s for s in SCOPES if s != needed]
    lacking = (await create_key(admin, workspace, others))["key"]
    resp = await admin.request(method, _filled(template), json={}, headers=bearer(lacking))
    error = await expect_error(resp, 403, "forbidden")
    assert needed in error["message"]
    if needed != "root":
        having = (await create_key(admin, workspace, [needed]))["key"]
        resp = await admin.request(method, _filled(template), json={}, headers=bearer(having))
        assert resp.status != 403, await resp.text()


@pytest.mark.parametrize(
    "header",
    [
        "Bearer smsl_" + "A" * 43,  # shaped as a key, but none
        "Bearer smsl_short",
        "Basic {key}",
        "{key}",
        "Bearer",
        "Bearer {key} {key}",
        "Bearer {key}x",
    ],
)
async def test_anything_but_a_valid_key_is_401(admin: Client, header: str) -> None:
    key = (await create_key(admin, "default", ["campaigns:read"]))["key"]
    resp = await admin.get("/api/campaigns", headers={"Authorization": header.format(key=key)})
    await expect_error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_a_generated_key_followed_by_bytes_that_are_not_utf8_is_401(admin: Client) -> None:
    key = (await create_key(admin, "default", ["campaigns:read"]))["key"].encode()
    assert admin.server.host is not None and admin.server.port is not None
    for value in (b"Bearer " + key + b"\xff", b"Bearer \xc3" + key):
        reader, writer = await asyncio.open_connection(admin.server.host, admin.server.port)
        request = b"GET /api/campaigns HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        writer.write(request + b"Authorization: " + value + b"\r\n\r\n")
        head = (await reader.read()).partition(b"\r\n\r\n")[0]
        writer.close()
        await writer.wait_closed()
        assert head.startswith(b"HTTP/1.1 401 "), head


async def test_a_deleted_key_is_refused_at_once_by_the_process_that_deleted_it(
    admin: Client,
) -> None:
    made = await create_key(admin, "default", ["keys:admin"])
    assert (await admin.get("/api/keys", headers=bearer(made["key"]))).status == 200
    resp = await admin.delete(f"/api/keys/{made['id']}", headers=bearer(made["key"]))  # itself
    assert resp.status == 204
    await expect_error(
        await admin.get("/api/keys", headers=bearer(made["key"])), 401, "unauthorized"
    )
    await expect_error(await admin.delete(f"/api/keys/{made['id']}"), 404, "key_not_found")


async def test_an_expired_key_is_refused(admin: Client) -> None:
    expires = int(time.time()) + 2
    when = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    made = await create_key(admin, "default", ["campaigns:read"], expires_at=when)
    assert made["expires_at"] == when
    assert (await admin.get("/api/campaigns", headers=bearer(made["key"]))).status == 200

    async def refused() -> bool:
        resp = await admin.get("/api/campaigns", headers=bearer(made["key"]))
        return resp.status == 401

    await eventually(refused, within=5)
    assert time.time() >= expires  # and not before


async def test_a_key_in_the_past_or_with_unknown_scopes_is_422(admin: Client) -> None:
    for body in (
        {"name": "k", "scopes": ["links:read"], "expires_at": "2020-01-01T00:00:00Z"},
        {"name": "k", "scopes": ["links:admin"]},
        {"name": "k", "scopes": []},
    ):
        resp = await admin.post("/api/workspaces/default/keys", json=body)
        await expect_error(resp, 422, "validation_failed")


async def test_keys_admin_manages_its_own_workspaces_keys_only(admin: Client) -> None:
    mine, theirs = await create_workspace(admin, "A"), await create_workspace(admin, "B")
    manager = (await create_key(admin, mine, ["keys:admin"]))["key"]
    body = {"name": "made by a manager", "scopes": ["links:read", "links:read"]}
    resp = await admin.post(f"/api/workspaces/{mine}/keys", json=body, headers=bearer(manager))
    assert resp.status == 201 and (await resp.json())["scopes"] == ["links:read"]
    resp = await admin.post(f"/api/workspaces/{theirs}/keys", json=body, headers=bearer(manager))
    await expect_error(resp, 404, "workspace_not_found")
    resp = await admin.post("/api/workspaces", json={"name": "C"}, headers=bearer(manager))
    await expect_error(resp, 403, "forbidden")
    listed = await (await admin.get("/api/keys", headers=bearer(manager))).json()
    assert len(listed["keys"]) == 2 and {k["workspace_id"] for k in listed["keys"]} == {mine}


async def test_last_use_is_written_at_most_once_a_minute(admin: Client, redis: Store) -> None:
    made = await create_key(admin, "default", ["campaigns:read"])
    key_hash = api_key_key(made["id"])
    assert await redis.hget(key_hash, "last_used_at") is None
    before = int(time.time())
    await admin.get("/api/campaigns", headers=bearer(made["key"]))
    used = await redis.hget(key_hash, "last_used_at")
    assert used is not None and before <= int(used) <= time.time()
    await redis.hset(key_hash, "last_used_at", int(used) - 30)  # as if used 30 s earlier
    await admin.get("/api/campaigns", headers=bearer(made["key"]))
    assert int(await redis.hget(key_hash, "last_used_at") or 0) == int(used) - 30
    listed = (await (await admin.get("/api/keys")).json())["keys"]
    assert listed[0]["last_used_at"] is not None
    # The script itself, as any other process would run it: once the minute is over.
    touch = TouchKeyScript(redis, "last_used_at", 60)
    assert not await touch(made["id"], int(used) + 29)
    assert await touch(made["id"], int(used) + 30)
    assert not await touch("0" * 16, int(used))  # a deleted key is not brought back


def test_a_root_keys_id_is_stable_and_says_little() -> None:
    digest = hashlib.sha256(API_KEY.encode()).hexdigest()
    assert root_key_id(digest) == "root-" + digest[:12]


# -- python -m admin keys create -----------------------------------------------------------


async def run_cli(redis_url: str, store_kind: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ADMIN_API_KEYS"}
    env |= {"REDIS_URL": redis_url, "REDIS_CLUSTER": str(store_kind == "cluster")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "admin",
        "keys",
        "create",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_makes_a_key_and_prints_it_once(
    admin: Client, redis: Store, redis_url: str, store_kind: str
) -> None:
    workspace = await create_workspace(admin)
    code, out, err = await run_cli(
        redis_url, store_kind, "--workspace", workspace, "--scopes", "campaigns:read,links:read"
    )
    assert code == 0, err
    key = out.strip()
    assert re.fullmatch(r"smsl_[0-9A-Za-z]{43}", key) and key not in err
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert digest[:16] in err and "not shown again" in err
    await create_campaign(admin)  # root's, in default: not the key's
    listed: Any = await (await admin.get("/api/campaigns", headers=bearer(key))).json()
    assert listed["total"] == 0
    resp = await admin.post("/api/campaigns", json={"name": "x"}, headers=bearer(key))
    await expect_error(resp, 403, "forbidden")
    [entry] = (await (await admin.get(f"/api/workspaces/{workspace}/keys")).json())["keys"]
    assert entry["scopes"] == ["campaigns:read", "links:read"]


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (["--workspace", "w999", "--scopes", "links:read"], 1, "no workspace"),
        (["--workspace", "default", "--scopes", "links:admin"], 2, "scopes"),
        (["--workspace", "default"], 2, "--scopes"),
    ],
)
async def test_the_cli_refuses_what_it_cannot_make(
    redis: Store, redis_url: str, store_kind: str, args: list[str], status: int, says: str
) -> None:
    code, out, err = await run_cli(redis_url, store_kind, *args)
    assert (code, out) == (status, "") and says in err
    assert [k async for k in redis.scan_iter("ak:*")] == []
