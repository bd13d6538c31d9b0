"""`python -m admin` with several workers: real processes on one port, a real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
from prometheus_client.multiprocess import MultiProcessCollector

from redirector.store.connection import Store
from tests.admin.helpers import admin_process, bearer
from tests.conftest import AUTH
from tests.prometheus import metric_value
from tests.redis_server import RedisServer
from tests.waiting import eventually


def metrics_dirs(tmp: Path) -> list[Path]:
    """The supervisor's metrics directory, made under TMPDIR (set to `tmp`)."""
    return list(tmp.glob("smslinks-admin-metrics-*"))


def counter_files(tmp: Path) -> list[Path]:
    """Each worker's counters file there, made when it imports admin.metrics, named by its pid."""
    return [file for directory in metrics_dirs(tmp) for file in directory.glob("counter_*.db")]


async def worker_files(tmp: Path) -> list[Path]:
    """Both workers' counters files, once both exist."""
    files: list[Path] = []

    async def both_up() -> bool:
        files[:] = counter_files(tmp)
        return len(files) == 2

    await eventually(both_up, within=20)
    return files


def pid_of(counters: Path) -> int:
    return int(counters.stem.removeprefix("counter_"))


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_two_workers_serve_one_port_share_the_code_key_and_sum_their_metrics(
    redis_url: str, store_kind: str, redis: Store, tmp_path: Path
) -> None:
    env = {"ADMIN_WORKERS": "2", "REDIS_URL": redis_url, "TMPDIR": str(tmp_path)}
    env["REDIS_CLUSTER"] = str(store_kind == "cluster")
    async with admin_process([], env) as (proc, url):
        files = await worker_files(tmp_path)
        # A new connection per request, so the kernel spreads them over both workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(url, connector=connector, headers=AUTH) as session:
            codes: dict[int, set[str]] = {}
            for attempt, status in ((1, 201), (2, 200)):  # made, then found again
                for number in range(20):
                    body = {"url": "https://shop.example/p", "recipient": f"+346{number:08d}"}
                    async with session.post("/api/links", json=body) as resp:
                        assert resp.status == status, (attempt, await resp.text())
                        codes.setdefault(number, set()).add((await resp.json())["code"])
            scrapes = []
            for _ in range(6):
                async with session.get("/metrics") as resp:
                    scrapes.append(await resp.text())
        # Whichever worker answered, a recipient has one code: both use one cfg:code_key.
        assert all(len(found) == 1 for found in codes.values()), codes
        totals = {metric_value(text, "smslinks_links_created_total") for text in scrapes}
        assert totals == {20.0}
        # ... and that total adds up links made by both processes.
        for counters in files:
            [created] = [
                sample.value
                for family in MultiProcessCollector.merge([str(counters)])  # type: ignore[no-untyped-call]
                for sample in family.samples
                if sample.name == "smslinks_links_created_total"
            ]
            assert 0 < created < 20, counters.name
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    assert all(gone(pid_of(counters)) for counters in files)
    assert metrics_dirs(tmp_path) == []  # removed on the way out


async def test_a_worker_that_dies_stops_the_other(own_redis: RedisServer, tmp_path: Path) -> None:
    env = {"REDIS_URL": own_redis.url, "TMPDIR": str(tmp_path)}
    async with admin_process(["--workers", "2"], env) as (proc, _):
        dead, other = (pid_of(counters) for counters in await worker_files(tmp_path))
        os.kill(dead, signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 1
    assert gone(other)


async def test_a_deleted_key_is_refused_by_every_worker_within_a_second(
    redis_url: str, store_kind: str, redis: Store, tmp_path: Path
) -> None:
    env = {"ADMIN_WORKERS": "2", "REDIS_URL": redis_url, "TMPDIR": str(tmp_path)}
    env["REDIS_CLUSTER"] = str(store_kind == "cluster")
    async with admin_process([], env) as (_, url), aiohttp.ClientSession(url, headers=AUTH) as root:
        await worker_files(tmp_path)  # both workers serve
        body = {"name": "to revoke", "scopes": ["campaigns:read"]}
        async with root.post("/api/workspaces/default/keys", json=body) as resp:
            made = await resp.json()
        # A new connection per request, so the kernel spreads them over both workers.
        connector = aiohttp.TCPConnector(force_close=True)
        headers = bearer(made["key"])
        async with aiohttp.ClientSession(url, connector=connector, headers=headers) as session:
            for _ in range(20):  # each worker reads the key, and keeps it a while
                async with session.get("/api/campaigns") as resp:
                    assert resp.status == 200
            async with root.delete(f"/api/workspaces/default/keys/{made['id']}") as resp:
                assert resp.status == 204
            deleted = time.monotonic()
            seen = []
            while (since := time.monotonic() - deleted) < 1.5:
                async with session.get("/api/campaigns") as resp:
                    seen.append((since, resp.status))
    assert {status for _, status in seen} <= {200, 401}
    late = [status for since, status in seen if since >= 1.0]
    assert len(late) >= 10 and set(late) == {401}, seen


def requests_served(counters: Path) -> float:
    """The API requests one worker answered, from its counters file."""
    return sum(
        sample.value
        for family in MultiProcessCollector.merge([str(counters)])  # type: ignore[no-untyped-call]
        for sample in family.samples
        if sample.name == "smslinks_admin_requests_total"
    )


async def test_the_rate_limit_holds_across_two_workers(
    redis_url: str, store_kind: str, redis: Store, tmp_path: Path
) -> None:
    env = {"ADMIN_WORKERS": "2", "REDIS_URL": redis_url, "TMPDIR": str(tmp_path)}
    env |= {"REDIS_CLUSTER": str(store_kind == "cluster"), "ADMIN_RATE_LIMIT": "30"}
    async with admin_process([], env) as (_, url):
        files = await worker_files(tmp_path)
        # A new connection per request, so the kernel spreads them over both workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(url, connector=connector, headers=AUTH) as session:
            answers = []
            for _ in range(60):
                async with session.get("/api/campaigns") as resp:
                    answers.append((resp.status, resp.headers["RateLimit-Remaining"]))
        served = [requests_served(counters) for counters in files]
    # One budget of 30 for the key, whichever process answered (each counting its own would
    # have let up to 60 through).
    assert answers == [(200, str(left)) for left in range(29, -1, -1)] + [(429, "0")] * 30
    assert all(count > 0 for count in served), served  # both workers answered
