"""Click recording against a real Redis, through the redirector app and a click worker: exact
counts, outages, the cap, SIGTERM, and no classification in the redirect process."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import ua_parser
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

import redirector.clickbatch
import redirector.useragents
from redirector.app import create_app
from redirector.appkeys import clicks_key, flusher_key, invalidation_ready_key
from redirector.clicks import ClickBuffer, Hit
from redirector.settings import Settings
from redirector.store.keys import (
    campaign_breakdowns_key,
    campaign_stats_key,
    click_stream_key,
    clickers_key,
    link_breakdowns_key,
    link_key,
    link_stats_key,
    link_uniques_key,
)
from redirector.store.record import Link, encode
from tests.conftest import Client, running_click_worker
from tests.redis_server import RedisServer, free_port
from tests.user_agents import ANDROID, IPHONE, WINDOWS
from tests.waiting import eventually, wait_healthy

PREVIEWS = ["WhatsApp/2.23.20.0 A", "facebookexternalhit/1.1", "TelegramBot (like TwitterBot)", ""]


async def _put(redis: Redis, code: str, link: Link) -> None:
    await redis.hset(link_key(code), code, encode(link))


async def _count(redis: Redis, key: str, field: str) -> int:
    value = await redis.hget(key, field)
    return int(value or 0)


async def _events(redis: Redis, campaign_id: int | None) -> list[dict[bytes, bytes]]:
    entries: Any = await redis.xrange(click_stream_key(campaign_id))
    return [fields for _, fields in entries]


async def _tap(client: Client, code: str, ua: str, method: str = "GET", **headers: str) -> None:
    resp = await client.request(
        method, f"/{code}", headers={"User-Agent": ua, **headers}, allow_redirects=False
    )
    assert resp.status == 302


def test_buffer_is_bounded_and_counts_drops() -> None:
    buffer = ClickBuffer(max_buffered=3, flush_size=2)
    hit = Hit("c", None, None, 1, 0.0, False, "ua", "", "1.2.3.4")
    buffer.add(hit)
    assert not buffer.ready.is_set()
    buffer.add(hit)
    assert buffer.ready.is_set()  # a full batch is waiting: flush now, not at the tick
    buffer.add(hit)
    buffer.add(hit)
    buffer.add(hit)
    assert len(buffer.hits) == 3
    assert buffer.dropped == 2


async def test_browser_taps_are_clicks_previews_and_heads_are_bot_hits(
    redirector: Client, redis: Redis
) -> None:
    await _put(redis, "promo01", Link("https://a.example/", 1, campaign_id=7))
    browsers, previews, heads = 9, len(PREVIEWS) * 2, 3
    for i in range(browsers):
        await _tap(redirector, "promo01", [IPHONE, ANDROID, WINDOWS][i % 3])
    for ua in PREVIEWS * 2:
        await _tap(redirector, "promo01", ua)
    for _ in range(heads):
        await _tap(redirector, "promo01", IPHONE, method="HEAD")

    total = browsers + previews + heads

    async def all_flushed() -> bool:
        return await redis.xlen(click_stream_key(7)) == total

    await eventually(all_flushed)
    for key, breakdowns in (
        (link_stats_key(7, "promo01"), link_breakdowns_key(7, "promo01")),
        (campaign_stats_key(7), campaign_breakdowns_key(7)),
    ):
        assert await _count(redis, key, "clicks") == browsers
        assert await _count(redis, key, "bots") == previews + heads
        assert await _count(redis, breakdowns, "dev:mobile") == 6
        assert await _count(redis, breakdowns, "dev:desktop") == 3
        assert await _count(redis, breakdowns, "os:iOS") == 3
        fields: Any = await redis.hkeys(key)
        assert not [f for f in fields if f.startswith(b"dev:")]
        hour = int(time.time()) // 3600
        hours = await _count(redis, key, f"h:{hour}") + await _count(redis, key, f"h:{hour - 1}")
        assert hours == browsers
    # Three distinct user agents from one address: three people as far as the hash can tell.
    assert await redis.pfcount(link_uniques_key(7, "promo01")) == 3
    events = await _events(redis, 7)
    assert sum(e[b"bot"] == b"1" for e in events) == previews + heads
    assert all(b"." not in e[b"h"] and len(e[b"h"]) == 16 for e in events)  # no raw IPs


async def test_per_recipient_uniques_are_exact(redirector: Client, redis: Redis) -> None:
    for i in range(20):
        await _put(redis, f"rcp{i:04d}", Link("https://a.example/", 1, None, 3, f"+3460{i:07d}"))
    taps = 0
    for i in range(12):  # 12 of the 20 recipients tap, some of them several times
        for _ in range(1 + i % 3):
            await _tap(redirector, f"rcp{i:04d}", IPHONE)
            taps += 1
    await _tap(redirector, "rcp0019", PREVIEWS[0])  # a preview is not a recipient clicking

    async def all_flushed() -> bool:
        return await _count(redis, campaign_stats_key(3), "clicks") == taps

    await eventually(all_flushed)
    assert await redis.zcard(clickers_key(3)) == 12
    first = await redis.zscore(clickers_key(3), "+34600000000")
    assert first is not None and abs(first / 1000 - time.time()) < 60


async def test_referer_host_is_kept_not_the_url(redirector: Client, redis: Redis) -> None:
    await _put(redis, "refer01", Link("https://a.example/", 1))
    await _tap(redirector, "refer01", IPHONE, Referer="https://Mail.Example.com/inbox?id=secret")

    async def flushed() -> bool:
        return await redis.xlen(click_stream_key(None)) == 1

    await eventually(flushed)
    [event] = await _events(redis, None)
    assert event[b"ref"] == b"mail.example.com"
    assert await _count(redis, link_breakdowns_key(None, "refer01"), "ref:mail.example.com") == 1


async def test_unknown_and_gone_links_record_nothing(redirector: Client, redis: Redis) -> None:
    await _put(redis, "gone001", Link("https://a.example/", 1, disabled=True))
    assert (await redirector.get("/gone001", allow_redirects=False)).status == 410
    assert (await redirector.get("/nothing", allow_redirects=False)).status == 404
    assert redirector.app[clicks_key].hits == []


# -- Redis outages -------------------------------------------------------------------------


@asynccontextmanager
async def _app_on(
    aiohttp_client: AiohttpClient, server: RedisServer, **settings: Any
) -> AsyncIterator[Client]:
    """A redirector on `server`, and a click worker beside it."""
    config = Settings(redis_url=server.url, redis_timeout=0.2, **settings)
    app = create_app(config)
    client = await aiohttp_client(app)
    await app[invalidation_ready_key].wait()
    async with running_click_worker(config):
        yield client


async def test_clicks_wait_for_redis_and_are_flushed_when_it_is_back(
    aiohttp_client: AiohttpClient, own_redis: RedisServer
) -> None:
    redis = Redis.from_url(own_redis.url)
    await _put(redis, "hot0001", Link("https://a.example/", 1))
    async with _app_on(aiohttp_client, own_redis, click_salt="fixed") as client:
        await _tap(client, "hot0001", IPHONE)  # now cached
        await eventually(lambda: _has_clicks(redis, "hot0001", 1))

        own_redis.stop()
        for _ in range(50):
            await _tap(client, "hot0001", IPHONE)  # served from the cache meanwhile
        flusher = client.app[flusher_key]
        errors = flusher.errors
        await eventually(lambda: _true(flusher.errors > errors))
        assert len(client.app[clicks_key].hits) == 50

        own_redis.start()  # a fresh, empty server on the same port
        await redis.aclose()
        redis = Redis.from_url(own_redis.url)
        await eventually(lambda: _has_clicks(redis, "hot0001", 50))
        assert client.app[clicks_key].dropped == 0
    await redis.aclose()


async def test_beyond_the_cap_clicks_are_dropped_and_counted(
    aiohttp_client: AiohttpClient, own_redis: RedisServer
) -> None:
    redis = Redis.from_url(own_redis.url)
    await _put(redis, "hot0002", Link("https://a.example/", 1))
    async with _app_on(aiohttp_client, own_redis, click_buffer_max=10, click_salt="x") as client:
        await _tap(client, "hot0002", IPHONE)
        await eventually(lambda: _has_clicks(redis, "hot0002", 1))
        own_redis.stop()
        for _ in range(25):
            await _tap(client, "hot0002", IPHONE)
        assert client.app[clicks_key].dropped == 15
        own_redis.start()
        await redis.aclose()
        redis = Redis.from_url(own_redis.url)
        await eventually(lambda: _has_clicks(redis, "hot0002", 10))
    await redis.aclose()


async def _has_clicks(redis: Redis, code: str, n: int) -> bool:
    try:
        return await _count(redis, link_stats_key(None, code), "clicks") == n
    except OSError:
        return False


async def _true(value: bool) -> bool:
    return value


async def test_sigterm_flushes_the_buffer_before_exit(own_redis: RedisServer) -> None:
    redis = Redis.from_url(own_redis.url)
    await _put(redis, "term001", Link("https://a.example/", 1))
    port = free_port()
    env = os.environ | {
        "REDIS_URL": own_redis.url,
        "REDIRECTOR_PORT": str(port),
        # Far longer than the test: only the shutdown flush can record these clicks.
        "CLICK_FLUSH_INTERVAL": "10",
    }
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "redirector", env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url)
        async with aiohttp.ClientSession() as session:
            for _ in range(20):
                async with session.get(
                    f"{url}/term001", allow_redirects=False, headers={"User-Agent": IPHONE}
                ) as resp:
                    assert resp.status == 302
        assert await _count(redis, link_stats_key(None, "term001"), "clicks") == 0
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert await _count(redis, link_stats_key(None, "term001"), "clicks") == 20
    await redis.aclose()


# -- what the redirect process does not do -------------------------------------------------

_CLICK_WORK = (
    str(Path(redirector.useragents.__file__)),
    str(Path(redirector.clickbatch.__file__)),
    str(Path(ua_parser.__file__).parent),
)


@contextmanager
def _click_work_seen() -> Iterator[set[str]]:
    """The names of what ran, in this thread, of classifying user agents and hashing
    visitors: Python functions of their modules, and blake2b digests."""
    seen: set[str] = set()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(_CLICK_WORK):
            seen.add(frame.f_code.co_name)
        elif event == "c_call" and "blake2" in type(getattr(arg, "__self__", None)).__name__:
            seen.add(arg.__name__)

    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(None)


async def test_the_redirect_process_neither_classifies_nor_hashes(
    aiohttp_client: AiohttpClient, redirector_settings: Settings, redis: Redis
) -> None:
    await _put(redis, "prof001", Link("https://a.example/", 1, campaign_id=7))
    app = create_app(redirector_settings)
    client = await aiohttp_client(app)
    await app[invalidation_ready_key].wait()
    # User agents never seen before in this process: classify's cache cannot answer them.
    agents = [f"{IPHONE} {secrets.token_hex(8)}" for _ in range(5)] + PREVIEWS
    with _click_work_seen() as in_redirector:
        for ua in agents:
            await _tap(client, "prof001", ua)
        await eventually(lambda: _true(app[flusher_key].flushed == len(agents)))
    assert in_redirector == set()
    # The same watch sees that work where it happens, in a click worker.
    with _click_work_seen() as in_worker:
        async with running_click_worker(redirector_settings):
            await eventually(lambda: _has_count(redis, 7, len(agents)))
    assert {"classify", "hexdigest"} <= in_worker


async def _has_count(redis: Redis, campaign_id: int, n: int) -> bool:
    values = await redis.hmget(campaign_stats_key(campaign_id), ["clicks", "bots"])
    return sum(int(value or 0) for value in values) == n
