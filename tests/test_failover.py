"""Both apps on the local Redis Cluster while a master is SIGKILLed under load: links keep
being tapped and created, the replica takes over, both apps answer again within 5 s of the
kill by themselves, and every link whose creation was acknowledged is still there."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from redirector.settings import Settings
from redirector.store.keys import link_key
from tests.conftest import Client
from tests.redis_cluster import RedisCluster
from tests.waiting import eventually

pytestmark = [
    pytest.mark.failover,
    pytest.mark.parametrize("store_kind", ["cluster"], indirect=True),
]
RECOVERY = 5.0
LINKS = 30


@pytest.fixture
def redirector_settings(redirector_settings: Settings) -> Settings:
    # Every tap reads Redis (a cached link would redirect through the failover unseen);
    # recording the clicks is not what this test is about.
    return redirector_settings.model_copy(update={"cache_size": 0, "click_tracking": False})


@dataclass
class Answers:
    """Each request of one app: when it was sent, when answered, and its status."""

    requests: list[tuple[float, float, int]] = field(default_factory=list)

    def statuses(self) -> set[int]:
        return {status for _, _, status in self.requests}

    def recovered_after(self, kill: float) -> float:
        """Seconds from the kill until a request sent after it, and after the last failure,
        succeeded (a slow success counts from when it was sent)."""
        failures = [answered for _, answered, status in self.requests if status >= 500]
        since = max([kill, *failures])
        return min(a for sent, a, status in self.requests if sent >= since and status < 500) - kill

    def succeeding(self, since: float, count: int) -> bool:
        recent = [status < 500 for sent, _, status in self.requests if sent > since][-count:]
        return len(recent) == count and all(recent)


async def _create(admin: Client, created: list[str]) -> int:
    resp = await admin.post("/api/links", json={"url": "https://shop.example/x", "tag": False})
    if resp.status == 201:
        created.append((await resp.json())["code"])
    return resp.status


async def _keep_asking(ask: Callable[[], Awaitable[int]], answers: Answers) -> None:
    while True:
        sent = time.monotonic()
        status = await ask()
        answers.requests.append((sent, time.monotonic(), status))
        await asyncio.sleep(0.01)  # a steady trickle, not a flood, on a shared machine


@contextlib.asynccontextmanager
async def _running(*loops: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """The loops run as tasks meanwhile; one that failed re-raises its error at the end."""
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome


async def test_both_apps_recover_from_a_killed_master_and_lose_no_acknowledged_link(
    admin: Client, redirector: Client, redis_cluster: RedisCluster
) -> None:
    created: list[str] = []
    for _ in range(LINKS):
        assert await _create(admin, created) == 201
    tapped = created[0]  # its slot's master is the one killed
    taps, creates = Answers(), Answers()

    async def tap() -> int:
        for code in (tapped, created[len(taps.requests) % LINKS]):
            resp = await redirector.get(f"/{code}", allow_redirects=False)
            if resp.status != 302:
                return resp.status
        return 302

    async def both_succeeding_since(moment: float) -> bool:
        return taps.succeeding(moment, 20) and creates.succeeding(moment, 20)

    loops = (_keep_asking(tap, taps), _keep_asking(lambda: _create(admin, created), creates))
    async with _running(*loops):
        await eventually(lambda: both_succeeding_since(0), within=RECOVERY)
        killed = await asyncio.to_thread(redis_cluster.kill_master, link_key(tapped))
        kill = time.monotonic()
        try:
            await asyncio.to_thread(redis_cluster.wait_failover, link_key(tapped))
            await eventually(lambda: both_succeeding_since(kill), within=2 * RECOVERY)
        except BaseException:
            await asyncio.to_thread(redis_cluster.restart, killed)
            raise
    try:
        # A failing request is a 503 (Redis unavailable), never a 500.
        assert taps.statuses() <= {302, 503}
        assert creates.statuses() <= {201, 503}
        assert taps.recovered_after(kill) < RECOVERY
        assert creates.recovered_after(kill) < RECOVERY
        for code in created:
            assert (await redirector.get(f"/{code}", allow_redirects=False)).status == 302, code
    finally:
        await asyncio.to_thread(redis_cluster.restart, killed)
