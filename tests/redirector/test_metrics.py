"""Prometheus metrics: counted per answer, and correct totals across worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
from redis.asyncio import Redis

from redirector.store.keys import link_key
from redirector.store.record import Link, encode
from tests.conftest import Client
from tests.prometheus import growth, metric_value, scrape
from tests.redis_server import free_port
from tests.waiting import wait_healthy


async def test_answers_and_cache_are_counted(redirector: Client, redis: Redis) -> None:
    await redis.hset(link_key("metric1"), "metric1", encode(Link("https://a.example/", 1)))
    before = await scrape(redirector)
    for _ in range(5):
        await redirector.get("/metric1", allow_redirects=False)
    for _ in range(2):
        await redirector.get("/missing", allow_redirects=False)
    after = await scrape(redirector)
    delta = growth(before, after)
    assert delta('smslinks_redirects_total{status="302"}') == 5
    assert delta('smslinks_redirects_total{status="404"}') == 2
    assert delta('smslinks_cache_lookups_total{result="miss"}') == 2  # one each, then cached
    assert delta('smslinks_cache_lookups_total{result="hit"}') == 5
    assert delta("smslinks_redirect_seconds_count") == 7
    for name in (
        "smslinks_clicks_buffered",
        "smslinks_clicks_dropped_total",
        "smslinks_clicks_recorded_total",
        "smslinks_bot_hits_total",
    ):
        assert name in after


async def test_two_workers_report_the_same_totals(
    redis: Redis, redis_url: str, store_kind: str
) -> None:
    await redis.hset(link_key("metric2"), "metric2", encode(Link("https://a.example/", 1)))
    port = free_port()
    env = os.environ | {"REDIS_URL": redis_url, "REDIRECTOR_PORT": str(port)}
    env["REDIS_CLUSTER"] = str(store_kind == "cluster")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "redirector", "--workers", "2", env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url)
        # A new connection per request, so the kernel spreads them over both workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(40):
                async with session.get(f"{url}/metric2", allow_redirects=False) as resp:
                    assert resp.status == 302
            for _ in range(100):  # 10 s of sleeps at most, for both workers to flush
                texts = []
                for _ in range(6):
                    async with session.get(f"{url}/metrics") as resp:
                        texts.append(await resp.text())
                flushed = {metric_value(t, "smslinks_clicks_flushed_total") for t in texts}
                # Counted by the click worker, summed in by whichever worker answers.
                recorded = {metric_value(t, "smslinks_clicks_recorded_total") for t in texts}
                if flushed == recorded == {40.0}:
                    break
                await asyncio.sleep(0.1)
        assert {metric_value(t, 'smslinks_redirects_total{status="302"}') for t in texts} == {40.0}
        assert flushed == recorded == {40.0}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
