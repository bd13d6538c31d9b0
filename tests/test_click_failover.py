"""Click recording on the local Redis Cluster while the master of the redirector's raw-hit
queue is SIGKILLed under taps: every tap answered 302 is counted once, no more, no less."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from redirector.appkeys import clicks_key, flusher_key
from redirector.store.keys import HIT_QUEUES, campaign_stats_key, hit_queue_key, link_key
from redirector.store.record import Link, encode
from tests.conftest import Client
from tests.redis_cluster import RedisCluster
from tests.user_agents import IPHONE
from tests.waiting import eventually

pytestmark = [
    pytest.mark.failover,
    pytest.mark.parametrize("store_kind", ["cluster"], indirect=True),
]


async def _counted(redis: Redis, campaign_id: int) -> int:
    values = await redis.hmget(campaign_stats_key(campaign_id), ["clicks", "bots"])
    return sum(int(value or 0) for value in values)


async def test_no_click_is_lost_or_counted_twice_when_its_queues_master_dies(
    redirector: Client, redis: Redis, redis_cluster: RedisCluster
) -> None:
    await redis.hset(
        link_key("fail001"), "fail001", encode(Link("https://a.example/", 1, campaign_id=9))
    )
    flusher = redirector.app[flusher_key]
    sent = 0

    async def tap(seconds: float) -> None:
        """Taps for `seconds`; the link is cached, so each is a 302 whatever Redis does."""
        nonlocal sent
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            resp = await redirector.get(
                "/fail001", headers={"User-Agent": IPHONE}, allow_redirects=False
            )
            assert resp.status == 302
            sent += 1
            await asyncio.sleep(0.002)

    await tap(1.0)
    queue = hit_queue_key(flusher.queue_index)
    killed = await asyncio.to_thread(redis_cluster.kill_master, queue)
    try:
        flushed = flusher.flushed
        await tap(1.0)
        await asyncio.to_thread(redis_cluster.wait_failover, queue)
        await tap(2.0)

        async def flushing_again() -> bool:
            return flusher.flushed > flushed and not redirector.app[clicks_key].hits

        await eventually(flushing_again, within=20)

        async def all_counted() -> bool:
            queued = sum([await redis.llen(hit_queue_key(i)) for i in range(HIT_QUEUES)])
            return queued == 0 and await _counted(redis, 9) >= sent

        await eventually(all_counted, within=30)
        assert await _counted(redis, 9) == sent
    finally:
        await asyncio.to_thread(redis_cluster.restart, killed)
