"""Both apps on the local Redis Cluster while a master is SIGKILLed under load: links keep
being tapped and created, one at a time and in batches of a campaign's recipients (each batch
sent again until acknowledged, as a client would), the replica takes over, both apps answer
again within 5 s of the kill by themselves, every link whose creation was acknowledged is still
there, each recipient has one link (the one first answered), and the campaign counts them
exactly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from admin.service import as_text
from redirector.settings import Settings
from redirector.store.connection import Store
from redirector.store.keys import link_key
from redirector.store.record import decode
from tests.admin.helpers import URL
from tests.conftest import Client
from tests.redis_cluster import RedisCluster
from tests.waiting import eventually

pytestmark = [
    pytest.mark.failover,
    pytest.mark.parametrize("store_kind", ["cluster"], indirect=True),
]
RECOVERY = 5.0
LINKS = 30
BATCH = 25  # recipients per batch
# A batch's client waits this long for an answer, then sends the batch again (the first
# request may still be running: the two must agree); 599 records that it gave up.
BATCH_PATIENCE, GAVE_UP = aiohttp.ClientTimeout(total=1.0), 599


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


@dataclass
class Batches:
    """A client sending a campaign's recipients in batches: each batch sent, and the code of
    each recipient in every answer that acknowledged it."""

    campaign_id: int
    sent: list[dict[str, Any]] = field(default_factory=list)
    codes: dict[str, set[str]] = field(default_factory=dict)

    def next(self) -> dict[str, Any]:
        number = len(self.sent)
        links = [{"recipient": f"+34{number:05d}{i:03d}"} for i in range(BATCH)]
        self.sent.append({"campaign_id": self.campaign_id, "url": URL, "links": links})
        return self.sent[-1]

    async def send(self, admin: Client, body: dict[str, Any]) -> int:
        try:
            resp = await admin.post("/api/links/batch", json=body, timeout=BATCH_PATIENCE)
        except TimeoutError:
            return GAVE_UP
        if resp.status == 201:
            for link in (await resp.json())["links"]:
                self.codes.setdefault(link["recipient"], set()).add(link["code"])
        return resp.status


async def _send_batches(admin: Client, batches: Batches, answers: Answers) -> None:
    """Batch after batch; one that fails is sent again until acknowledged, as a client would."""
    while True:
        body = batches.next()
        status = 503
        while status >= 500:
            sent = time.monotonic()
            status = await batches.send(admin, body)
            answers.requests.append((sent, time.monotonic(), status))
            await asyncio.sleep(0.01)


async def _live_links(redis: Store, campaign_id: int) -> dict[str, list[str]]:
    """Each recipient's live links of the campaign, as the store holds them."""
    found: dict[str, list[str]] = {}
    async for key in redis.scan_iter("l:*"):
        for code, raw in (await redis.hgetall(key)).items():
            record = decode(raw)
            if record.live and record.campaign_id == campaign_id and record.recipient:
                found.setdefault(record.recipient, []).append(as_text(code))
    return found


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
    admin: Client, redirector: Client, redis_cluster: RedisCluster, redis: Store
) -> None:
    created: list[str] = []
    for _ in range(LINKS):
        assert await _create(admin, created) == 201
    tapped = created[0]  # its slot's master is the one killed
    resp = await admin.post("/api/campaigns", json={"name": "Failover"})
    batches = Batches((await resp.json())["id"])
    taps, creates, sends = Answers(), Answers(), Answers()

    async def tap() -> int:
        for code in (tapped, created[len(taps.requests) % LINKS]):
            resp = await redirector.get(f"/{code}", allow_redirects=False)
            if resp.status != 302:
                return resp.status
        return 302

    async def all_succeeding_since(moment: float) -> bool:
        return all(
            (
                taps.succeeding(moment, 20),
                creates.succeeding(moment, 20),
                sends.succeeding(moment, 3),
            )
        )

    loops = (
        _keep_asking(tap, taps),
        _keep_asking(lambda: _create(admin, created), creates),
        _send_batches(admin, batches, sends),
    )
    async with _running(*loops):
        await eventually(lambda: all_succeeding_since(0), within=RECOVERY)
        killed = await asyncio.to_thread(redis_cluster.kill_master, link_key(tapped))
        kill = time.monotonic()
        try:
            await asyncio.to_thread(redis_cluster.wait_failover, link_key(tapped))
            await eventually(lambda: all_succeeding_since(kill), within=2 * RECOVERY)
        except BaseException:
            await asyncio.to_thread(redis_cluster.restart, killed)
            raise
    try:
        # A failing request is a 503 (Redis unavailable), never a 500.
        assert taps.statuses() <= {302, 503}
        assert creates.statuses() <= {201, 503}
        assert sends.statuses() <= {201, 503, GAVE_UP}
        assert sends.statuses() & {503, GAVE_UP}  # some batches were sent again
        assert taps.recovered_after(kill) < RECOVERY
        assert creates.recovered_after(kill) < RECOVERY
        assert sends.recovered_after(kill) < RECOVERY
        for code in created:
            assert (await redirector.get(f"/{code}", allow_redirects=False)).status == 302, code
        await _check_batches(admin, redis, batches)
    finally:
        await asyncio.to_thread(redis_cluster.restart, killed)


async def _check_batches(admin: Client, redis: Store, batches: Batches) -> None:
    """No acknowledged link was lost and no recipient got a second one: each was always
    answered one code, its one live link. Sent again, every batch (the one the end of the test
    cut short too) is answered the same codes, and the campaign counts its links exactly."""
    acknowledged = {recipient: sorted(codes) for recipient, codes in batches.codes.items()}
    assert all(len(codes) == 1 for codes in acknowledged.values()), acknowledged
    live = await _live_links(redis, batches.campaign_id)
    assert {recipient: live.get(recipient) for recipient in acknowledged} == acknowledged
    for body in batches.sent:
        assert await batches.send(admin, body) == 201
    answered = {recipient: sorted(codes) for recipient, codes in batches.codes.items()}
    assert all(len(codes) == 1 for codes in answered.values()), answered
    assert len(answered) == len(batches.sent) * BATCH
    assert await _live_links(redis, batches.campaign_id) == answered
    campaign = await (await admin.get(f"/api/campaigns/{batches.campaign_id}")).json()
    assert campaign["links"] == len(answered)
