"""The benchmark's storage rows: a fresh Redis; `redis-cli --pipe` inserting link records (the
`pipe` row, what the API's rate is judged against); the links created through the admin API
with the one seeder (`create`) and the Redis memory they took (`memory`)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

from redis.asyncio import Redis

from admin.codes import draw
from admin.settings import AdminSettings
from loadtests import bench_procs as procs
from loadtests import bench_report as results
from loadtests.bench_rows import CAMPAIGN_NAME, Bench
from loadtests.seed import recipient, seed, shared_links
from redirector.store.connection import resp as command_parts
from redirector.store.keys import link_hashes
from redirector.store.record import Record, encoder

CODE_LENGTH: int = AdminSettings.model_fields["code_length"].default
# What the create row's campaign and its one destination get in a fresh Redis: the pipe's
# records refer to them, so they are as long as the admin's.
CAMPAIGN_ID, DESTINATION_ID = 1, "1"
# The admin creates links with this many workers on both CPUs (`bench.pinning.both`), as the
# -2w redirector rows run: the admin and Redis share the machine's 2 cores.
ADMIN_WORKERS = 2
_PIPE_CHUNK = 10_000  # records generated and written at a time
_PIPE_REPLIES = re.compile(rb"errors: (\d+), replies: (\d+)")


@contextlib.asynccontextmanager
async def fresh_redis(bench: Bench, name: str) -> AsyncIterator[str]:
    """A redis-server of its own with the link store's settings, beside the load generator;
    yields its URL, with `bench.store` a client of it until it stops."""
    port, directory = procs.free_port(), bench.tmp / name
    url = f"redis://127.0.0.1:{port}/0"
    directory.mkdir()
    command = procs.pinned(procs.redis_command(port, directory), bench.pinning.load)
    with procs.Service(name, command, bench.tmp / f"{name}.log", {}) as redis:
        await redis.wait(url)
        bench.store, bench.redis_pid = Redis.from_url(url), redis.pid
        try:
            yield url
        finally:
            await bench.store.aclose()
            bench.store = bench.redis_pid = None


def redis_ahead_of_load(bench: Bench) -> None:
    """The bench's Redis ahead of the load generators from now on (for the server rows; the
    store rows keep it at the default priority), noted in the report."""
    if bench.redis_pid is None or not procs.ahead_of_load(bench.redis_pid):
        return
    note = (
        f"Redis runs ahead of the load generators on their core in the server rows (SCHED_FIFO "
        f"{procs.REDIS_PRIORITY}, theirs {procs.LOAD_PRIORITY[-1]}), as a server of its own "
        "would: the miss rows' answers wait for Redis, not Redis for wrk or h2load."
    )
    if note not in bench.report.notes:
        bench.report.notes.append(note)


def resp(*args: bytes) -> bytes:
    """One command in RESP, the protocol `redis-cli --pipe` sends as it reads it."""
    return b"".join(command_parts(*args))


def write_pipe_records(path: Path, links: int, created_at: int) -> None:
    """`links` HSETs shaped as the admin writes a campaign's per-recipient links: a random
    code's field in its bucket, holding recipient(i)'s record of the campaign's destination."""
    record = encoder(Record(created_at, DESTINATION_ID, campaign_id=CAMPAIGN_ID))
    with path.open("wb") as out:
        for start in range(0, links, _PIPE_CHUNK):
            indices = range(start, min(start + _PIPE_CHUNK, links))
            codes = draw(len(indices), CODE_LENGTH)
            keys = link_hashes(codes)
            out.write(
                b"".join(
                    resp(b"HSET", key.encode(), code.encode(), record(recipient(i)).encode())
                    for i, code, key in zip(indices, codes, keys, strict=True)
                )
            )


async def pipe_rate(bench: Bench, links: int) -> results.Creation:
    """The `pipe` row: `redis-cli --pipe` (on the servers' CPU, Redis on the other) inserting
    `links` records into a fresh Redis."""
    path = bench.tmp / "pipe.resp"
    write_pipe_records(path, links, int(time.time()))
    async with fresh_redis(bench, "redis-pipe") as url, asyncio.timeout(bench.options.seed_timeout):
        seconds = await redis_pipe(url, path, links, bench.pinning.server)
    path.unlink()
    return results.Creation(links, seconds, links / seconds)


async def redis_pipe(url: str, path: Path, commands: int, cpus: str | None = None) -> float:
    """Seconds `redis-cli --pipe` took from its start to the last reply of the `commands`
    commands in `path`; StartError unless every one succeeded."""
    command = procs.pinned(["redis-cli", "-u", url, "--pipe"], cpus)
    with path.open("rb") as stdin:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *command, stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            output, _ = await process.communicate()
        finally:  # cancelled: it is not left running
            if process.returncode is None:
                process.kill()
                await process.wait()
        seconds = time.perf_counter() - started
    replies = _PIPE_REPLIES.search(output)
    if process.returncode != 0 or replies is None or replies.groups() != (b"0", b"%d" % commands):
        text = output.decode(errors="replace").strip()
        raise procs.StartError(f"redis-cli --pipe exited with {process.returncode}:\n{text}")
    return seconds


class Created(NamedTuple):
    codes: list[str]  # the per-recipient links', codes[i] recipient(i)'s
    shared: list[str]  # the campaign's links without recipient (the hot rows tap these)
    creation: results.Creation
    memory: results.Memory


async def create_links(bench: Bench, redis_url: str, links: int, shared: int = 0) -> Created:
    """Create `links` per-recipient links through a freshly started admin (ADMIN_WORKERS
    workers on both CPUs): their codes, the rate, the memory; then, neither timed nor
    measured, `shared` links of the same campaign and URL without recipient."""
    options, store, port, key = bench.options, bench.store, procs.free_port(), secrets.token_hex(24)
    assert store is not None, "the links are created in the bench's Redis"
    note = f"The admin creates the links with {ADMIN_WORKERS} workers" + (
        f" on CPUs {bench.pinning.both}, beside Redis and this script."
        if bench.pinning.both
        else "."
    )
    if note not in bench.report.notes:  # once, however many --scale sizes
        bench.report.notes.append(note)
    with admin_service(bench, redis_url, port, key) as admin:
        await admin.wait(f"http://127.0.0.1:{port}/healthz")
        before = int((await store.info("memory"))["used_memory"])
        print(f"creating {links:,} links through the admin API ...", flush=True)
        async with asyncio.timeout(options.seed_timeout):
            seeded = await seed(
                f"http://127.0.0.1:{port}",
                key,
                links,
                concurrency=options.concurrency,
                campaign_name=CAMPAIGN_NAME,
                url_length=options.url_length,
                out=None,
            )
        used = int((await store.info("memory"))["used_memory"]) - before
        records = await keys_memory(store, "l:*")
        url, admin_url = bench.plan.url, f"http://127.0.0.1:{port}"
        hot = await shared_links(admin_url, key, seeded.campaign_id, url, shared) if shared else []
    bench.campaign_id = seeded.campaign_id
    creation = results.Creation(links, seeded.seconds, seeded.links_per_second)
    memory = results.Memory(links, options.url_length, used / links, records / links)
    return Created(seeded.codes, hot, creation, memory)


def admin_service(bench: Bench, redis_url: str, port: int, key: str) -> procs.Service:
    """The admin on `redis_url` (ADMIN_WORKERS workers on both CPUs), its only key `key`."""
    env = {"REDIS_URL": redis_url, "ADMIN_HOST": "127.0.0.1", "ADMIN_PORT": str(port)}
    env |= {"ADMIN_API_KEYS": key, "PUBLIC_BASE_URL": "http://127.0.0.1:8080"}
    # No rate limit: the bench measures how fast links are made, not how fast a key may ask.
    env |= {"ADMIN_WORKERS": str(ADMIN_WORKERS), "ADMIN_RATE_LIMIT": "0"}
    command = procs.pinned(procs.python_command("admin"), bench.pinning.both)
    return procs.Service("admin", command, bench.tmp / "admin.log", env)


async def keys_memory(redis: Redis, pattern: str) -> int:
    """MEMORY USAGE of every key matching `pattern`, summed: exact (SAMPLES 0) and cheap, as
    links are bucketed into at most 65,536 hashes."""
    async with redis.pipeline(transaction=False) as pipe:
        async for key in redis.scan_iter(match=pattern, count=10_000):
            pipe.memory_usage(key, samples=0)
        return sum(int(size or 0) for size in await pipe.execute())
