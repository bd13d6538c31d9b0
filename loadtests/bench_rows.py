"""How each row of the benchmark (`loadtests/bench.py`) is measured: a server started, checked,
warmed up and loaded with wrk; the links created with the one seeder; the clicks recorded
counted against the 302s wrk got."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
from redis.asyncio import Redis

from loadtests import bench_procs as procs
from loadtests import bench_report as results
from loadtests.seed import LinkPlan, seed
from redirector.store.keys import BOTS, CLICKS, campaign_stats_key

Value = TypeVar("Value")
REDIRECTOR_ROWS = ("hot", "hot-notrack", "miss", "hot-2w", "miss-2w")
STORE_ROWS = ("create", "memory")
ALL_ROWS = ("nginx", "aiohttp", *REDIRECTOR_ROWS, *STORE_ROWS)
CAMPAIGN_NAME = "bench"
# A click-counted run lasts long enough for this many times the requests it needs at the
# warm-up's rate (throughput varies from run to run), but never longer than the bound.
RUN_MARGIN, MAX_COUNTED_SECONDS = 1.25, 60.0
# The flusher writes every 100 ms and retries a failed flush after 0.5 s: counters unchanged
# for a second have nothing left to flush. Give up after about 10 s.
POLL_SECONDS, QUIET_POLLS, MAX_POLLS = 0.1, 10, 100


@dataclass(frozen=True, slots=True)
class Options:
    duration: float
    warmup: float
    connections: int
    threads: int
    links: int
    url_length: int
    out_dir: Path
    only: tuple[str, ...]
    hot_links: int
    hot_cache: int
    miss_links: int
    miss_cache: int
    workers: int
    concurrency: int
    seed_timeout: float
    click_requests: int  # requests a click-counted run should exceed; 0: just --duration


def needs_redis(options: Options) -> bool:
    return bool(set(options.only) & {*REDIRECTOR_ROWS, *STORE_ROWS})


def links_needed(options: Options) -> int:
    """All `--links` when creation or memory is measured, else just enough to tap."""
    if set(options.only) & set(STORE_ROWS):
        return options.links
    needed = 0
    if {"hot", "hot-notrack", "hot-2w"} & set(options.only):
        needed = options.hot_links
    if {"miss", "miss-2w"} & set(options.only):
        needed = max(needed, options.miss_links)
    return min(needed, options.links)


def counted_run_seconds(duration: float, warmup_rate: float | None, min_requests: int) -> float:
    """Seconds a run needs to exceed `min_requests` at `warmup_rate` req/s, with a margin:
    never shorter than `duration` nor longer than the bound; without a rate or a minimum,
    `duration`."""
    if min_requests <= 0 or not warmup_rate:
        return duration
    needed = float(math.ceil(min_requests * RUN_MARGIN / warmup_rate))
    return max(duration, min(MAX_COUNTED_SECONDS, needed))


async def settle(
    read: Callable[[], Awaitable[Value]],
    *,
    poll_seconds: float = POLL_SECONDS,
    quiet_polls: int = QUIET_POLLS,
    max_polls: int = MAX_POLLS,
) -> tuple[Value, bool]:
    """Read until `quiet_polls` reads in a row found the same value: (value, True); after
    `max_polls` reads, (the last value, False)."""
    value, unchanged = await read(), 0
    for _ in range(max_polls):
        if unchanged >= quiet_polls:
            return value, True
        await asyncio.sleep(poll_seconds)
        latest = await read()
        unchanged = unchanged + 1 if latest == value else 0
        value = latest
    return value, unchanged >= quiet_polls


@dataclass(frozen=True, slots=True)
class ServerRow:
    """One throughput row: the server it starts and how it is checked, warmed and loaded."""

    key: str
    setup: str
    command: list[str]
    port: int
    checks: list[tuple[str, str]]  # (path, Location): up once the first answers, then checked
    paths: Path  # wrk taps random lines of it
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    warm: list[str] = field(default_factory=list)  # paths fetched once (hot codes cached)
    count_clicks: bool = False  # compare the 302s wrk got with the clicks recorded


@dataclass(slots=True)
class Bench:
    """One run's state: options, temporary directory, pinning, and the report it fills."""

    options: Options
    tmp: Path
    pinning: procs.Pinning
    report: results.Report
    store: Redis | None = None  # a client of that Redis
    campaign_id: int = 0  # the seeded links' campaign, whose clicks are counted
    hot_seconds: float | None = None  # the hot row's measured run, which hot-notrack repeats

    @property
    def plan(self) -> LinkPlan:
        return LinkPlan(self.options.url_length, CAMPAIGN_NAME)


def measured_seconds(bench: Bench, row: ServerRow, warmup: procs.WrkResult | None) -> float:
    """--duration, longer for a click-counted row; hot-notrack repeats the hot row's run."""
    if row.key == "hot-notrack" and bench.hot_seconds is not None:
        return bench.hot_seconds
    if not row.count_clicks:
        return bench.options.duration
    rate = warmup.requests_per_second if warmup else None
    return counted_run_seconds(bench.options.duration, rate, bench.options.click_requests)


async def recorded(bench: Bench) -> results.Recorded:
    """The campaign's click counters once the redirector has flushed what it buffered."""
    store, key = bench.store, campaign_stats_key(bench.campaign_id)
    assert store is not None, "click-counted rows run only with Redis"

    async def read() -> tuple[int, int]:
        clicks, bots = await store.hmget(key, [CLICKS, BOTS])
        return int(clicks or 0), int(bots or 0)

    (clicks, bots), settled = await settle(read)
    return results.Recorded(clicks, bots, settled)


async def load(bench: Bench, row: ServerRow, seconds: float) -> procs.WrkResult:
    options = bench.options
    cpus = bench.pinning.load if row.workers == 1 else bench.pinning.both
    url = f"http://127.0.0.1:{row.port}/"
    command = procs.wrk_command(url, options.threads, options.connections, seconds, cpus)
    return await procs.run_wrk(command, row.paths, seconds)


async def server_row(bench: Bench, row: ServerRow) -> results.LoadRow:
    """Start the server, check its answers, warm it up, load it; count the clicks if asked."""
    options, base_url = bench.options, f"http://127.0.0.1:{row.port}"
    log = bench.tmp / f"{row.key}.log"
    with procs.Service(row.key, row.command, log, row.env) as server:
        await server.wait(base_url + row.checks[0][0], 302)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            for path, location in row.checks:
                async with session.get(base_url + path, allow_redirects=False) as response:
                    got = (response.status, response.headers.get("Location"))
                if got != (302, location):
                    raise procs.StartError(f"GET {path}: {got}, expected (302, {location!r})")
            for path in row.warm:
                async with session.get(base_url + path, allow_redirects=False) as response:
                    await response.read()
        warmup = await load(bench, row, options.warmup) if options.warmup > 0 else None
        seconds = measured_seconds(bench, row, warmup)
        # Read once the warm-up's hits are flushed and once the run's are: the difference is
        # what the measured run recorded, nothing else.
        before = await recorded(bench) if row.count_clicks else None
        result = await load(bench, row, seconds)
        after = await recorded(bench) if row.count_clicks else None
    if row.key == "hot":
        bench.hot_seconds = seconds
    clicks = None
    if before is not None and after is not None:
        clicks = results.ClickCount.over(result, before, after, options.connections)
    setup = row.setup + (f"; {seconds:.0f} s run" if seconds != options.duration else "")
    return results.LoadRow(row.key, setup, result, clicks=clicks)


def reference_rows(bench: Bench) -> list[ServerRow]:
    """nginx and bare aiohttp, answering every path with a 302 to a Location as long as a
    destination; they tap the hot row's paths, for equal work."""
    location, rows = bench.plan.destination(0), []
    for key in ("nginx", "aiohttp"):
        if key not in bench.options.only or (key == "nginx" and not shutil.which("nginx")):
            continue
        port = procs.free_port()
        if key == "nginx":
            (bench.tmp / "nginx").mkdir()
            command = procs.nginx_command(bench.tmp / "nginx", port, location)
        else:
            command = procs.python_command("loadtests.bare_aiohttp", str(port), location)
        command = procs.pinned(command, bench.pinning.server)
        setup, paths = f"Location {len(location)} B", bench.tmp / "hot.paths"
        rows.append(ServerRow(key, setup, command, port, [("/x", location)], paths))
    return rows


def redirector_rows(bench: Bench, codes: list[str], redis_url: str) -> list[ServerRow]:
    options, plan, rows = bench.options, bench.plan, []
    hot = list(range(min(options.hot_links, len(codes))))
    miss = sorted(random.Random(0).sample(range(len(codes)), min(options.miss_links, len(codes))))
    for name, indices in (("hot", hot), ("miss", miss)):
        (bench.tmp / f"{name}.paths").write_text("".join(f"/{codes[i]}\n" for i in indices))
    specs = [  # key, workers, codes tapped, cache size, click recording
        ("hot", 1, "hot", options.hot_cache, True),
        ("hot-notrack", 1, "hot", options.hot_cache, False),
        ("miss", 1, "miss", options.miss_cache, True),
        ("hot-2w", options.workers, "hot", options.hot_cache, True),
        ("miss-2w", options.workers, "miss", options.miss_cache, True),
    ]
    for key, workers, tapped, cache_size, tracking in specs:
        indices, port = hot if tapped == "hot" else miss, procs.free_port()
        env = {"REDIS_URL": redis_url, "REDIRECTOR_HOST": "127.0.0.1", "REDIRECTOR_PORT": str(port)}
        env |= {"REDIRECTOR_WORKERS": str(workers), "CACHE_SIZE": str(cache_size)}
        env |= {"ACCESS_LOG": "false", "CLICK_TRACKING": str(tracking).lower()}
        cpus = bench.pinning.server if workers == 1 else bench.pinning.both
        command = procs.pinned(procs.python_command("redirector"), cpus)
        checks = [(f"/{codes[i]}", plan.destination(i)) for i in indices[:5]]
        warm = [f"/{codes[i]}" for i in indices] if tapped == "hot" else []
        setup = f"{workers} worker(s), {len(indices):,} codes, cache {cache_size:,}"
        paths = bench.tmp / f"{tapped}.paths"
        counted = key in ("hot", "hot-2w")
        row = ServerRow(key, setup, command, port, checks, paths, env, workers, warm, counted)
        rows += [row] if key in options.only else []
    return rows


async def create_links(bench: Bench, redis_url: str, links: int) -> list[str]:
    """Create the links through a freshly started admin; fill the creation and memory rows."""
    options, store, port, key = bench.options, bench.store, procs.free_port(), secrets.token_hex(24)
    assert store is not None
    env = {"REDIS_URL": redis_url, "ADMIN_HOST": "127.0.0.1", "ADMIN_PORT": str(port)}
    env |= {"ADMIN_API_KEYS": key, "PUBLIC_BASE_URL": "http://127.0.0.1:8080"}
    command = procs.pinned(procs.python_command("admin"), bench.pinning.server)
    with procs.Service("admin", command, bench.tmp / "admin.log", env) as admin:
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
    if "create" in options.only:
        bench.report.creation = results.Creation(links, seeded.seconds, seeded.links_per_second)
    if "memory" in options.only:
        records, recipients = await keys_memory(store, "l:*"), await keys_memory(store, "r:*")
        per_link = (used / links, records / links, recipients / links)
        bench.report.memory = results.Memory(links, options.url_length, *per_link)
    bench.campaign_id = seeded.campaign_id
    return seeded.codes


async def keys_memory(redis: Redis, pattern: str) -> int:
    """MEMORY USAGE of every key matching `pattern`, summed: exact (SAMPLES 0) and cheap, as
    links are bucketed into at most 65,536 hashes."""
    async with redis.pipeline(transaction=False) as pipe:
        async for key in redis.scan_iter(match=pattern, count=10_000):
            pipe.memory_usage(key, samples=0)
        return sum(int(size or 0) for size in await pipe.execute())


async def run_rows(bench: Bench, stack: contextlib.AsyncExitStack) -> None:
    """Start Redis and create the links if any row needs them, then measure row by row; a
    server that fails to start or a failed wrk run skips that row only."""
    options, codes, redis_url = bench.options, [], ""
    if needs_redis(options):
        port = procs.free_port()
        redis_url = f"redis://127.0.0.1:{port}/0"
        (bench.tmp / "redis").mkdir()
        command = procs.pinned(procs.redis_command(port, bench.tmp / "redis"), bench.pinning.load)
        log = bench.tmp / "redis.log"
        redis = stack.enter_context(procs.Service("redis", command, log, {}))
        await redis.wait(redis_url)
        bench.store = Redis.from_url(redis_url)
        stack.push_async_callback(bench.store.aclose)
        codes = await create_links(bench, redis_url, links_needed(options))
    if "nginx" in options.only and not shutil.which("nginx"):
        why = "nginx is not installed (apt-get install -y nginx-light): no ceiling"
        bench.report.rows.append(results.LoadRow("nginx", "", skipped=why))
    (bench.tmp / "hot.paths").write_text("/x\n")  # the reference rows', when no link is tapped
    for row in reference_rows(bench) + (redirector_rows(bench, codes, redis_url) if codes else []):
        print(f"row {row.key} ...", flush=True)
        try:
            bench.report.rows.append(await server_row(bench, row))
        except (procs.StartError, aiohttp.ClientError, TimeoutError) as exc:
            bench.report.rows.append(results.LoadRow(row.key, row.setup, skipped=repr(exc)))
