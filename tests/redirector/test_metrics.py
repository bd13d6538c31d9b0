"""Prometheus metrics: counted per answer, and correct totals across worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from redirector.app import create_app
from redirector.appkeys import invalidation_ready_key
from redirector.settings import Settings
from redirector.store.keys import link_key
from redirector.store.record import Link, encode
from tests.conftest import Client, redirector_client
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
        "smslinks_click_calls_sent_back_total",
    ):
        assert name in after


async def test_metrics_have_a_port_of_their_own_when_one_is_set(
    aiohttp_client: AiohttpClient, redirector_settings: Settings, redis: Redis
) -> None:
    port = free_port()
    app = create_app(redirector_settings.model_copy(update={"metrics_port": port}))
    client = await redirector_client(aiohttp_client, app)
    await app[invalidation_ready_key].wait()
    # The public port takes /metrics for a code, as any other unknown one.
    resp = await client.get("/metrics", allow_redirects=False)
    assert (resp.status, await resp.text()) == (404, "This link does not exist.\n")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as scraped:
            assert scraped.status == 200
            assert metric_value(await scraped.text(), 'smslinks_redirects_total{status="404"}')
        async with session.get(f"http://127.0.0.1:{port}/exact01") as other:
            assert other.status == 404


@pytest.mark.parametrize("own_port", [False, True], ids=["public-port", "metrics-port"])
async def test_two_workers_report_the_same_totals(
    redis: Redis, redis_url: str, store_kind: str, own_port: bool
) -> None:
    await redis.hset(link_key("metric2"), "metric2", encode(Link("https://a.example/", 1)))
    port, metrics_port = free_port(), free_port()
    env = os.environ | {"REDIS_URL": redis_url, "REDIRECTOR_PORT": str(port)}
    env["REDIS_CLUSTER"] = str(store_kind == "cluster")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("METRICS_PORT", None)
    if own_port:  # every worker listens on it too, and answers with the sum of all
        env["METRICS_PORT"] = str(metrics_port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "redirector", "--workers", "2", env=env
    )
    url = f"http://127.0.0.1:{port}"
    scraped = f"http://127.0.0.1:{metrics_port if own_port else port}/metrics"
    try:
        await wait_healthy(url)
        # A new connection per request, so the kernel spreads them over both workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(40):
                async with session.get(f"{url}/metric2", allow_redirects=False) as resp:
                    assert resp.status == 302
            # Each worker folds its counts into the shared files every second (and before it
            # answers a scrape); the click worker records the flushed hits: within 10 s every
            # scrape, whoever answers, has them all.
            wanted = dict.fromkeys(("302", "seconds", "lookups", "flushed", "recorded"), 40.0)
            for _ in range(100):
                texts = []
                for _ in range(6):
                    async with session.get(scraped) as resp:
                        texts.append(await resp.text())
                totals = [_totals(text) for text in texts]
                if all(total == wanted for total in totals):
                    break
                await asyncio.sleep(0.1)
        assert totals == [wanted] * 6
        # There, the public port takes /metrics for a code (a miss, counted as one).
        async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
            assert resp.status == (404 if own_port else 200)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0


def _totals(text: str) -> dict[str, float]:
    return {
        "302": metric_value(text, 'smslinks_redirects_total{status="302"}'),
        "seconds": metric_value(text, "smslinks_redirect_seconds_count"),
        "lookups": metric_value(text, 'smslinks_cache_lookups_total{result="hit"}')
        + metric_value(text, 'smslinks_cache_lookups_total{result="miss"}'),
        "flushed": metric_value(text, "smslinks_clicks_flushed_total"),
        # Counted by the click worker, summed in by whichever worker answers.
        "recorded": metric_value(text, "smslinks_clicks_recorded_total"),
    }
