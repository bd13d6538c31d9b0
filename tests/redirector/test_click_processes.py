"""The click pipeline as it runs: `python -m redirector` with its own click worker (started
again when killed; all of its workers stopping when it is killed), and a `python -m
redirector.clickworker` killed with SIGKILL mid-chunk."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from typing import Any

import aiohttp
import psutil
import pytest
from redis.asyncio import Redis

from redirector.clickbatch import PARTS_PER_CHUNK, part_flusher
from redirector.settings import Settings
from redirector.store.keys import flush_key, hit_chunk_key, link_key
from redirector.store.record import Link, encode
from tests.redirector.clicks_helpers import SALT, counted, flusher, hits, push, queued
from tests.redis_server import free_port
from tests.user_agents import IPHONE
from tests.waiting import eventually, wait_healthy


def _env(redis_url: str, store_kind: str, **variables: str) -> dict[str, str]:
    env = os.environ | {"REDIS_URL": redis_url, "REDIS_CLUSTER": str(store_kind == "cluster")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env | {"CLICK_SALT": SALT.decode()} | variables


async def _stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), timeout=30)


def _workers(supervisor: int) -> list[psutil.Process]:
    """The supervisor's children that are workers (spawned), redirect and click alike."""
    children = psutil.Process(supervisor).children()
    return [child for child in children if "--multiprocessing-fork" in child.cmdline()]


def _click_worker(supervisor: int, port: int) -> psutil.Process:
    """The supervisor's worker that does not listen on the port."""
    (clicker,) = [
        worker
        for worker in _workers(supervisor)
        if not any(c.laddr.port == port for c in worker.net_connections("tcp"))
    ]
    return clicker


async def test_python_m_redirector_records_clicks_and_restarts_its_click_worker(
    redis: Redis, redis_url: str, store_kind: str
) -> None:
    await redis.hset(
        link_key("proc001"), "proc001", encode(Link("https://a.example/", 1, campaign_id=7))
    )
    port = free_port()
    env = _env(redis_url, store_kind, REDIRECTOR_PORT=str(port), REDIRECTOR_WORKERS="2")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "redirector", env=env)
    url = f"http://127.0.0.1:{port}"

    async def tap(times: int) -> None:
        # A new connection per request, so the kernel spreads them over both workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(times):
                headers = {"User-Agent": IPHONE}
                async with session.get(
                    f"{url}/proc001", headers=headers, allow_redirects=False
                ) as resp:
                    assert resp.status == 302

    async def recorded(n: int) -> bool:
        return await counted(redis, 7) == n

    try:
        await wait_healthy(url)
        await tap(30)
        await eventually(lambda: recorded(30), within=20)
        clicker = _click_worker(proc.pid, port)
        clicker.kill()
        await tap(30)
        await eventually(lambda: recorded(60), within=30)
        assert _click_worker(proc.pid, port).pid != clicker.pid
    finally:
        assert await _stop(proc) == 0


async def test_the_workers_stop_when_their_supervisor_is_killed(
    redis: Redis, redis_url: str, store_kind: str
) -> None:
    """SIGKILL gives the supervisor no chance to stop its workers: they see it gone and stop
    by themselves (redirector/orphaned.py), as on SIGTERM, freeing the port, instead of
    serving on. A tap's hit, which only a stop flushes here, is not lost."""
    await redis.hset(
        link_key("orph001"), "orph001", encode(Link("https://a.example/", 1, campaign_id=7))
    )
    port = free_port()
    env = _env(
        redis_url,
        store_kind,
        REDIRECTOR_PORT=str(port),
        REDIRECTOR_WORKERS="2",
        CLICK_FLUSH_INTERVAL="10",
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "redirector", env=env)
    workers: list[psutil.Process] = []
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url)
        workers = _workers(proc.pid)
        assert len(workers) == 3  # two redirect workers and a click worker
        async with aiohttp.ClientSession() as session:
            headers = {"User-Agent": IPHONE}
            async with session.get(f"{url}/orph001", headers=headers, allow_redirects=False) as r:
                assert r.status == 302
        proc.kill()
        await proc.wait()
        _, alive = await asyncio.to_thread(psutil.wait_procs, workers, timeout=30)
        assert not alive, alive
        # Flushed as the redirect worker stopped: applied, or queued for the next click worker.
        assert await counted(redis, 7) == 1 or await queued(redis) == 1
    finally:
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _applied_unacked(redis: Redis, campaigns: list[int]) -> int | None:
    """The number of the chunk of queue 0 that is claimed, not trimmed, and applied (a part
    of it) for at least one campaign; else None."""
    state: list[Any] = await redis.hmget(hit_chunk_key(0), ["number", "size", "epoch"])
    number, size, epoch = state
    if not size or int(size) == 0 or epoch is None:
        return None
    async with redis.pipeline(transaction=False) as pipe:
        for campaign in campaigns:
            pipe.hget(flush_key(campaign), part_flusher(f"h0:{epoch.decode()}"))
        applied = await pipe.execute()
    # FLUSH_CLICKS records the number of a chunk's part (clickbatch.part_number).
    chunks = {int(part) // PARTS_PER_CHUNK for part in applied if part is not None}
    return int(number) if int(number) in chunks else None


async def _kill_mid_chunk(redis: Redis, env: dict[str, str], campaigns: list[int]) -> int:
    """Start click workers until one is caught (SIGSTOP) with a chunk applied in part or in
    whole but not trimmed, and SIGKILL it there; the chunk's number."""
    for _ in range(3):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "redirector.clickworker", env=env
        )
        deadline = time.monotonic() + 30
        while proc.returncode is None and time.monotonic() < deadline:
            number = await _applied_unacked(redis, campaigns)
            if number is None:
                continue
            proc.send_signal(signal.SIGSTOP)
            if await _applied_unacked(redis, campaigns) == number:
                proc.kill()
                await proc.wait()
                # A command it had sent just before may still have landed: check again.
                if await _applied_unacked(redis, campaigns) == number:
                    return number
                break
            proc.send_signal(signal.SIGCONT)
        await _stop(proc)
    pytest.fail("never caught a click worker between applying a chunk and trimming it")


async def test_a_click_worker_killed_mid_chunk_loses_and_recounts_nothing(
    redis: Redis, redis_url: str, store_kind: str, redirector_settings: Settings
) -> None:
    campaigns = list(range(1, 41))
    flush = flusher(redis, redirector_settings, 0)
    for _ in range(30):  # 30,000 hits; a chunk is ~5 flushes, each of every campaign
        await push(flush, [hit for campaign in campaigns for hit in hits(campaign, 25)])
    env = _env(redis_url, store_kind, CLICK_WORKER_LEASE="0.5")

    number = await _kill_mid_chunk(redis, env, campaigns)
    assert number > 0
    survivor = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "redirector.clickworker", env=env
    )
    try:

        async def all_done() -> bool:
            return await queued(redis) == 0

        await eventually(all_done, within=60)
        assert [await counted(redis, campaign) for campaign in campaigns] == [750] * 40
    finally:
        assert await _stop(survivor) == 0
