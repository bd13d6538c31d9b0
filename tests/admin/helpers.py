"""What the admin tests share: API calls that must succeed, the check of an error answer,
taps through the redirector with the stats they end up in, and `python -m admin` in a process
of its own. Not a test module."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiohttp import ClientResponse
from redis.asyncio import Redis

from redirector.store.keys import RATE_WINDOW_PREFIX
from tests.conftest import API_KEY, Client, schema_errors
from tests.redis_server import free_port
from tests.user_agents import ANDROID, IPHONE, WINDOWS
from tests.waiting import wait_healthy

URL = "https://shop.example/p"
BROWSERS = [IPHONE, ANDROID, WINDOWS]
PREVIEWS = [
    "WhatsApp/2.23.20.0 A",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "TelegramBot (like TwitterBot)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "",
]
FLUSH_DEADLINE = 5.0
# Seconds an admin process started by a test has to stop on SIGTERM before it is killed.
STOP_WITHIN = 30.0


async def create_campaign(admin: Client, **fields: Any) -> dict[str, Any]:
    resp = await admin.post("/api/campaigns", json={"name": "Spring", **fields})
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def create_link(admin: Client, **fields: Any) -> dict[str, Any]:
    resp = await admin.post("/api/links", json={"url": URL, **fields})
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def create_links(
    admin: Client, campaign_id: int | None, items: list[dict[str, Any]]
) -> list[str]:
    """The codes of a batch of links to URL, each item's fields added."""
    body = {"campaign_id": campaign_id, "links": [{"url": URL, **item} for item in items]}
    resp = await admin.post("/api/links/batch", json=body)
    assert resp.status == 201, await resp.text()
    return [link["code"] for link in (await resp.json())["links"]]


def bearer(key: str) -> dict[str, str]:
    """The header of a request made with `key` instead of the client's root key."""
    return {"Authorization": f"Bearer {key}"}


async def create_workspace(admin: Client, name: str = "Shop B") -> str:
    """A new workspace's id (the client's key must be a root key)."""
    resp = await admin.post("/api/workspaces", json={"name": name})
    assert resp.status == 201, await resp.text()
    workspace_id: str = (await resp.json())["id"]
    return workspace_id


async def create_key(admin: Client, workspace: str, scopes: Sequence[str], **fields: Any) -> Any:
    """A new key of `workspace` as the API answers it (with `key`), made by a root key."""
    body = {"name": "test", "scopes": list(scopes), **fields}
    resp = await admin.post(f"/api/workspaces/{workspace}/keys", json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def expect_error(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """The `error` of a JSON error answer, checked against the documented shape."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    whole = await resp.json()
    assert schema_errors(whole, "Error") == []
    body: dict[str, Any] = whole["error"]
    assert body["code"] == code
    assert body["message"]
    return body


async def redis_keys(redis: Redis) -> set[bytes]:
    """What requests wrote: every key but the rate limit's counters, which every request with
    a key spends, refused or not (tests/admin/test_rate_limit.py has theirs)."""
    counters = RATE_WINDOW_PREFIX.encode()
    return {k async for k in redis.scan_iter() if not k.startswith(counters)}


async def tap(
    redirector: Client, code: str, user_agent: str, *, head: bool = False, referer: str = ""
) -> None:
    headers = {"User-Agent": user_agent} | ({"Referer": referer} if referer else {})
    method = "HEAD" if head else "GET"
    resp = await redirector.request(method, f"/{code}", headers=headers, allow_redirects=False)
    assert resp.status == 302


async def stats_once_flushed(
    admin: Client, path: str, *, clicks: int, bot_hits: int, query: str = ""
) -> dict[str, Any]:
    """The stats once the redirector has flushed the expected totals (it does so every
    0.1 s); the totals only grow, so reaching them means nothing else is on its way."""
    deadline = time.monotonic() + FLUSH_DEADLINE
    while True:
        resp = await admin.get(path + query)
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        if (body["clicks"], body["bot_hits"]) == (clicks, bot_hits):
            return body
        assert time.monotonic() < deadline, f"expected {clicks}/{bot_hits} clicks/bots: {body}"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def admin_process(
    args: list[str], env: Mapping[str, str]
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`python -m admin *args`, healthy; stopped at the end unless the test stopped it: with
    SIGTERM, so that a supervisor stops its workers (SIGKILL would leave them running)."""
    port = free_port()
    # No PROMETHEUS_MULTIPROC_DIR: the supervisor makes its own.
    inherited = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env = inherited | {"ADMIN_PORT": str(port), "ADMIN_API_KEYS": API_KEY} | dict(env)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "admin", *args, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url)
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_WITHIN)
            except TimeoutError:
                proc.kill()
                await proc.wait()
