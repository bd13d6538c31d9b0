"""`python -m loadtests.bench` (`make bench`): one run, on this machine only, that measures

  1. the ceiling: nginx answering `return 302` with a Location as long as a destination;
  2. the framework: the smallest aiohttp + uvloop server answering the same 302 (`aiohttp`);
  3. the redirector's hot path: every code tapped is in the in-process cache; then the same
     with click recording off (`hot-notrack`, CLICK_TRACKING=false), right after it;
  4. its miss path: codes drawn uniformly from a set far larger than the cache (Redis reads);
  5. hot and miss again with 2 worker processes sharing the port (SO_REUSEPORT);
  6. link creation through the admin batch API (10,000 links per request);
  7. Redis memory per link (INFO memory before and after creating them);

prints a table, checks the issue's targets, and writes `latest.json` and `latest.md` into
`--out-dir`. Everything it starts (its own redis-server, nginx, the bare aiohttp server, the
redirector, the admin) listens on 127.0.0.1 only and is stopped when it ends, Ctrl-C included;
load comes from wrk, each run bounded by `--duration`. Large files (the paths wrk taps) go to a
temporary directory.

Every request carries an iPhone's User-Agent, so each hit is recorded as a click. For the `hot`
and `hot-2w` rows the 302s wrk got are compared with the clicks recorded in Redis over the
measured run, which lasts long enough (judged from the warm-up's rate, at most 60 s) for
`--click-requests` requests.

`--url-length` is the length of the stored, tagged destination (URL plus the UTM parameters the
admin adds), which is what the redirector serves and Redis stores: 90 bytes by default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import aiohttp
import orjson
from redis.asyncio import Redis

from loadtests.bench_clicks import Recorded, counted_run_seconds, read_recorded, settle
from loadtests.bench_procs import (
    ROOT,
    Pinning,
    Service,
    StartError,
    bare_aiohttp_script,
    free_port,
    group_cpu_seconds,
    group_pids,
    machine_busy_seconds,
    machine_info,
    nginx_command,
    nginx_config,
    pinned,
    python_command,
    python_env,
    redis_command,
    running,
    wait_http,
    wait_redis,
)
from loadtests.bench_report import (
    BUSY_PERCENT,
    CLICKS_MIN_REQUESTS,
    ClickCount,
    Creation,
    LoadRow,
    Memory,
    Report,
    fmt_int,
    framework_notes,
    print_report,
    render_markdown,
    report_json,
    row_notes,
)
from loadtests.bench_seed import (
    BATCH_SIZE,
    LinkPlan,
    Seeded,
    SeedError,
    keys_memory,
    redis_command_calls,
    seed_links,
    used_memory,
)
from loadtests.bench_wrk import WrkOutputError, WrkResult, lua_script, run_wrk, wrk_command

# Rows that need neither Redis nor the links, then the redirector's, in the order they run.
REFERENCE_ROWS = ("nginx", "aiohttp")
REDIRECTOR_ROWS = ("hot", "hot-notrack", "miss", "hot-2w", "miss-2w")
LOAD_ROWS = REFERENCE_ROWS + REDIRECTOR_ROWS
STORE_ROWS = ("create", "memory")
DEFAULT_OUT_DIR = ROOT / "loadtests" / "results"
# Below this many links most bucket hashes hold a few links (see the memory note).
_FULL_BUCKETS_LINKS = 500_000
# How many codes of each row are checked with a plain GET before the load.
_VERIFY_CODES = 5


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
    click_requests: int  # requests a click-counted run should exceed; 0: --duration


@dataclass(frozen=True, slots=True)
class RedirectorRow:
    key: str
    title: str
    workers: int
    cache_size: int
    paths: Path
    indices: list[int]  # link indices in the paths file, for the pre-load check
    click_tracking: bool = True
    count_clicks: bool = False  # compare the 302s wrk got with the clicks recorded


@dataclass(slots=True)
class Bench:
    """State of one run: options, temporary directory, pinning, and the report it fills."""

    options: Options
    tmp: Path
    pinning: Pinning
    report: Report
    redis: Service | None = None
    redis_url: str = ""
    campaign_id: int | None = None  # the seeded links' campaign, whose clicks are counted
    miss_set: int = 0  # codes the miss rows tap
    hot_seconds: float | None = None  # the hot row's measured run, which hot-notrack repeats

    @property
    def plan(self) -> LinkPlan:
        return LinkPlan(self.options.url_length)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench",
        description="Measure nginx, the redirector and the admin on 127.0.0.1 (see the docstring).",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s rows, 50,000 links")
    parser.add_argument("--duration", type=float, help="seconds per row (default 10; quick 3)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per row (default 2; quick 1)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--links", type=int, help="links to create (1,000,000; quick 50,000)")
    parser.add_argument(
        "--url-length", type=int, default=90, help="bytes of the stored tagged destination (90)"
    )
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="results directory")
    parser.add_argument(
        "--only",
        default=",".join(LOAD_ROWS + STORE_ROWS),
        help=f"comma-separated rows to run, of {', '.join(LOAD_ROWS + STORE_ROWS)}",
    )
    parser.add_argument("--hot-links", type=int, default=1000, help="codes of the hot rows")
    parser.add_argument("--hot-cache", type=int, default=100_000, help="CACHE_SIZE, hot rows")
    parser.add_argument("--miss-links", type=int, default=200_000, help="codes of the miss rows")
    parser.add_argument("--miss-cache", type=int, default=1000, help="CACHE_SIZE, miss rows")
    parser.add_argument("--workers", type=int, default=2, help="workers of the -2w rows (2)")
    parser.add_argument("--concurrency", type=int, default=4, help="batch requests in flight (4)")
    parser.add_argument("--seed-timeout", type=float, default=900, help="bound on creation (s)")
    parser.add_argument(
        "--click-requests",
        type=int,
        help=f"requests the click-counted rows (hot, hot-2w) run for, at most 60 s "
        f"({CLICKS_MIN_REQUESTS:,}; quick 0: just --duration)",
    )
    args = parser.parse_args(argv)
    only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    unknown = sorted(set(only) - set(LOAD_ROWS + STORE_ROWS))
    if unknown:
        parser.error(f"--only: unknown rows {', '.join(unknown)}")
    options = Options(
        duration=args.duration or (3.0 if args.quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0),
        connections=args.connections,
        threads=min(args.threads, args.connections),
        links=args.links or (50_000 if args.quick else 1_000_000),
        url_length=args.url_length,
        out_dir=args.out_dir,
        only=only,
        hot_links=args.hot_links,
        hot_cache=args.hot_cache,
        miss_links=args.miss_links,
        miss_cache=args.miss_cache,
        workers=args.workers,
        concurrency=args.concurrency,
        seed_timeout=args.seed_timeout,
        click_requests=(
            args.click_requests
            if args.click_requests is not None
            else (0 if args.quick else CLICKS_MIN_REQUESTS)
        ),
    )
    for name in ("duration", "connections", "threads", "links", "hot_links", "miss_links"):
        if getattr(options, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if options.click_requests < 0:
        parser.error("--click-requests must not be negative")
    return options


def needs_redis(options: Options) -> bool:
    return bool(set(options.only) & set(REDIRECTOR_ROWS + STORE_ROWS))


def links_needed(options: Options) -> int:
    """Create all `--links` when creation or memory is measured, else just enough to tap."""
    if set(options.only) & set(STORE_ROWS):
        return options.links
    needed = 0
    if {"hot", "hot-notrack", "hot-2w"} & set(options.only):
        needed = max(needed, options.hot_links)
    if {"miss", "miss-2w"} & set(options.only):
        needed = max(needed, options.miss_links)
    return min(needed, options.links)


def write_paths(bench: Bench, name: str, codes: list[str], indices: list[int]) -> Path:
    path = bench.tmp / f"{name}.paths"
    path.write_text("".join(f"/{codes[i]}\n" for i in indices), encoding="ascii")
    (bench.tmp / f"{name}.lua").write_text(lua_script(path), encoding="utf-8")
    return path


async def check_redirect(base_url: str, path: str, expected: str | None, length: int) -> None:
    """One plain GET: a 302 whose Location is `expected` (or, for nginx, `length` long)."""
    timeout = aiohttp.ClientTimeout(total=5)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(base_url + path, allow_redirects=False) as response,
    ):
        location = response.headers.get("Location", "")
        if response.status != 302:
            raise StartError(f"GET {path}: {response.status}, expected 302")
        if expected is not None and location != expected:
            raise StartError(f"GET {path}: Location {location!r}, expected {expected!r}")
        if len(location) != length:
            raise StartError(f"GET {path}: Location is {len(location)} bytes, expected {length}")


async def warm(base_url: str, codes: Sequence[str]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for code in codes:
            async with session.get(f"{base_url}/{code}", allow_redirects=False) as response:
                await response.read()


class Shares(NamedTuple):
    """CPU used during a measured run, in percent of one core."""

    server: float
    load: float  # wrk
    redis: float | None
    other: float  # everything else on the machine: other people's work competing with the row
    # Redis commands per request by name: none on a cache hit, one read per miss, plus whatever
    # else the redirector sends (click counts).
    redis_calls: dict[str, float] | None


async def run_load(
    bench: Bench, base_url: str, script: Path, cpus: str | None, seconds: float
) -> tuple[WrkResult, float]:
    """One wrk run, every request carrying the phone's User-Agent (bench_wrk.PHONE_HEADERS)."""
    o = bench.options
    command = wrk_command(
        base_url + "/",
        script,
        threads=o.threads,
        connections=o.connections,
        seconds=seconds,
        cpus=cpus,
    )
    return await run_wrk(command, seconds)


async def warm_up(bench: Bench, base_url: str, script: Path, cpus: str | None) -> WrkResult | None:
    if bench.options.warmup <= 0:
        return None
    result, _ = await run_load(bench, base_url, script, cpus, bench.options.warmup)
    return result


async def measure(
    bench: Bench, base_url: str, script: Path, server: Service, cpus: str | None, seconds: float
) -> tuple[WrkResult, Shares]:
    """The measured run, with each process group's CPU share over it."""
    redis_pgid = bench.redis.pgid if bench.redis else None
    server_before = group_cpu_seconds(server.pgid)
    redis_before = group_cpu_seconds(redis_pgid) if redis_pgid else 0.0
    calls_before = await redis_command_calls(bench.redis_url) if redis_pgid else Counter[str]()
    machine_before = machine_busy_seconds()
    started = time.monotonic()
    result, wrk_cpu = await run_load(bench, base_url, script, cpus, seconds)
    elapsed = time.monotonic() - started
    calls_after = await redis_command_calls(bench.redis_url) if redis_pgid else None
    machine = 100 * (machine_busy_seconds() - machine_before) / elapsed
    server_cpu = 100 * (group_cpu_seconds(server.pgid) - server_before) / elapsed
    redis_cpu = (
        100 * (group_cpu_seconds(redis_pgid) - redis_before) / elapsed if redis_pgid else None
    )
    load_cpu = 100 * wrk_cpu / elapsed
    other = max(0.0, machine - server_cpu - load_cpu - (redis_cpu or 0.0))
    calls = None
    if calls_after is not None:
        calls = {
            name: n / max(1, result.requests) for name, n in (calls_after - calls_before).items()
        }
    return result, Shares(server_cpu, load_cpu, redis_cpu, other, calls)


NGINX_TITLE = "nginx 302 (ceiling)"
AIOHTTP_TITLE = "bare aiohttp 302 (reference)"


async def reference_row(
    bench: Bench,
    key: str,
    title: str,
    setup: str,
    command: list[str],
    env: Mapping[str, str],
    port: int,
    script: Path,
) -> LoadRow:
    """A server that answers every path with a 302 to a Location as long as a destination:
    start it pinned like the redirector, check it, load it like the redirector."""
    location = bench.plan.destination(0)
    with running(key, command, bench.tmp / f"{key}.log", env) as server:
        base_url = f"http://127.0.0.1:{port}"
        await wait_http(base_url + "/x", server, status=302)  # every path is a 302
        await check_redirect(base_url, "/x", None, len(location))
        await warm_up(bench, base_url, script, bench.pinning.load)
        result, cpu = await measure(
            bench, base_url, script, server, bench.pinning.load, bench.options.duration
        )
    return LoadRow(
        key,
        title,
        setup,
        result,
        server_cpu=cpu.server,
        load_cpu=cpu.load,
        other_cpu=cpu.other,
        processes=None,
    )


async def nginx_row(bench: Bench, script: Path) -> LoadRow:
    setup = f"1 worker, Location {bench.options.url_length} B"
    if shutil.which("nginx") is None:
        reason = "nginx is not installed (apt-get install -y nginx-light): no ceiling, ratios n/a"
        bench.report.notes.append(reason)
        return LoadRow("nginx", NGINX_TITLE, setup, skipped=reason)
    directory = bench.tmp / "nginx"
    directory.mkdir()
    port = free_port()
    (directory / "nginx.conf").write_text(nginx_config(directory, port, bench.plan.destination(0)))
    command = pinned(nginx_command(directory), bench.pinning.server)
    return await reference_row(
        bench, "nginx", NGINX_TITLE, setup, command, os.environ, port, script
    )


async def aiohttp_row(bench: Bench, script: Path) -> LoadRow:
    setup = f"1 process, uvloop, Location {bench.options.url_length} B"
    port = free_port()
    server = bench.tmp / "bare_aiohttp.py"
    server.write_text(bare_aiohttp_script(port, bench.plan.destination(0)), encoding="utf-8")
    # The interpreter running this benchmark: the venv's, with aiohttp and uvloop.
    command = pinned([sys.executable, str(server)], bench.pinning.server)
    env = python_env({})
    return await reference_row(bench, "aiohttp", AIOHTTP_TITLE, setup, command, env, port, script)


def _single_path_script(bench: Bench) -> Path:
    path = bench.tmp / "one.paths"
    path.write_text("/aaaaaaa\n", encoding="ascii")
    script = path.with_suffix(".lua")
    script.write_text(lua_script(path), encoding="utf-8")
    return script


async def settled_clicks(bench: Bench, campaign_id: int) -> tuple[Recorded, bool]:
    """The campaign's click counters once the redirector has flushed what it had buffered."""
    redis = Redis.from_url(bench.redis_url)
    try:
        return await settle(lambda: read_recorded(redis, campaign_id))
    finally:
        await redis.aclose()


def measured_seconds(bench: Bench, row: RedirectorRow, warmup: WrkResult | None) -> float:
    """--duration, or longer for a click-counted row; hot-notrack repeats the hot row's run."""
    o = bench.options
    if row.key == "hot-notrack" and bench.hot_seconds is not None:
        return bench.hot_seconds
    if not row.count_clicks:
        return o.duration
    rate = warmup.requests_per_second if warmup else None
    return counted_run_seconds(o.duration, rate, o.click_requests)


async def redirector_row(bench: Bench, row: RedirectorRow, codes: list[str]) -> LoadRow:
    o, pin = bench.options, bench.pinning
    cpus = pin.server if row.workers == 1 else pin.both
    load_cpus = pin.load if row.workers == 1 else pin.both
    setup = f"{fmt_int(len(row.indices))} codes, cache {fmt_int(row.cache_size)}"
    port = free_port()
    env = python_env(
        {
            "REDIS_URL": bench.redis_url,
            "REDIRECTOR_HOST": "127.0.0.1",
            "REDIRECTOR_PORT": str(port),
            "REDIRECTOR_WORKERS": str(row.workers),
            "CACHE_SIZE": str(row.cache_size),
            "ACCESS_LOG": "false",
            "CLICK_TRACKING": "true" if row.click_tracking else "false",
        }
    )
    command = pinned(python_command("redirector"), cpus)
    base_url = f"http://127.0.0.1:{port}"
    script = row.paths.with_suffix(".lua")
    counted = bench.campaign_id if row.count_clicks else None
    with running(f"redirector ({row.key})", command, bench.tmp / f"{row.key}.log", env) as server:
        await wait_http(base_url + "/healthz", server)
        for i in row.indices[:_VERIFY_CODES]:
            expected = bench.plan.destination(i)
            await check_redirect(base_url, f"/{codes[i]}", expected, len(expected))
        if row.key.startswith("hot"):
            await warm(base_url, [codes[i] for i in row.indices])
        processes = len(group_pids(server.pgid))
        warmup = await warm_up(bench, base_url, script, load_cpus)
        seconds = measured_seconds(bench, row, warmup)
        # Read before the run once the warm-up's hits are flushed, and after it once the
        # run's are: the difference is what the measured run recorded, nothing else.
        before = await settled_clicks(bench, counted) if counted is not None else None
        result, cpu = await measure(bench, base_url, script, server, load_cpus, seconds)
        after = await settled_clicks(bench, counted) if counted is not None else None
    if row.key == "hot":
        bench.hot_seconds = seconds
    if seconds != o.duration:
        setup += f"; {seconds:.0f} s run"
    if row.workers > 1 and processes < row.workers:
        bench.report.notes.append(
            f"{row.key}: REDIRECTOR_WORKERS={row.workers} started only {processes} process(es)"
        )
    clicks = None
    if before is not None and after is not None:
        (clicks_before, bots_before), settled_before = before
        (clicks_after, bots_after), settled_after = after
        clicks = ClickCount(
            requests=result.requests,
            bad_status=result.bad_status,
            socket_errors=result.socket_errors,
            clicks=clicks_after - clicks_before,
            bots=bots_after - bots_before,
            connections=o.connections,
            settled=settled_before and settled_after,
        )
    return LoadRow(
        row.key,
        row.title,
        setup,
        result,
        server_cpu=cpu.server,
        load_cpu=cpu.load,
        redis_cpu=cpu.redis,
        other_cpu=cpu.other,
        redis_calls=cpu.redis_calls,
        processes=processes,
        clicks=clicks,
    )


async def seed(bench: Bench, links: int) -> Seeded:
    """Create the links through a freshly started admin; record the rate and memory rows."""
    o = bench.options
    port, key = free_port(), secrets.token_hex(24)
    env = python_env(
        {
            "REDIS_URL": bench.redis_url,
            "ADMIN_HOST": "127.0.0.1",
            "ADMIN_PORT": str(port),
            "ADMIN_API_KEYS": key,
            "PUBLIC_BASE_URL": "http://127.0.0.1:8080",
        }
    )
    command = pinned(python_command("admin"), bench.pinning.server)
    admin_url = f"http://127.0.0.1:{port}"
    redis = Redis.from_url(bench.redis_url)
    try:
        with running("admin", command, bench.tmp / "admin.log", env) as admin:
            await wait_http(admin_url + "/healthz", admin)
            before = await used_memory(redis)
            print(f"creating {fmt_int(links)} links through the admin API ...", flush=True)
            async with asyncio.timeout(o.seed_timeout):
                seeded = await seed_links(
                    admin_url, key, plan=bench.plan, links=links, concurrency=o.concurrency
                )
            after = await used_memory(redis)
        link_hashes, link_bytes = await keys_memory(redis, "l:*")
        recipient_hashes, recipient_bytes = await keys_memory(redis, "r:*")
    finally:
        await redis.aclose()
    if "create" in o.only:
        bench.report.creation = Creation(links, seeded.seconds, BATCH_SIZE, o.concurrency)
    if "memory" in o.only:
        bench.report.memory = Memory(
            links,
            o.url_length,
            before,
            after,
            link_hashes,
            link_bytes,
            recipient_hashes,
            recipient_bytes,
        )
    return seeded


def redirector_rows(bench: Bench, codes: list[str]) -> list[RedirectorRow]:
    o = bench.options
    hot = list(range(min(o.hot_links, len(codes))))
    miss = sorted(random.Random(0).sample(range(len(codes)), min(o.miss_links, len(codes))))
    if {"miss", "miss-2w"} & set(o.only):
        bench.miss_set = len(miss)
    hot_paths = write_paths(bench, "hot", codes, hot)
    miss_paths = write_paths(bench, "miss", codes, miss)
    w = o.workers
    rows = [
        RedirectorRow("hot", "hot, 1 worker", 1, o.hot_cache, hot_paths, hot, count_clicks=True),
        RedirectorRow(
            "hot-notrack",
            "hot, 1 worker, no click recording",
            *(1, o.hot_cache, hot_paths, hot),
            click_tracking=False,
        ),
        RedirectorRow("miss", "miss, 1 worker", 1, o.miss_cache, miss_paths, miss),
        RedirectorRow(
            "hot-2w", f"hot, {w} workers", w, o.hot_cache, hot_paths, hot, count_clicks=True
        ),
        RedirectorRow("miss-2w", f"miss, {w} workers", w, o.miss_cache, miss_paths, miss),
    ]
    return [row for row in rows if row.key in o.only]


async def add_row(bench: Bench, key: str, title: str, measured: Awaitable[LoadRow]) -> None:
    """Run one row; a server that fails to start or a wrk run that fails skips the row only."""
    print(f"row {key} ...", flush=True)
    try:
        bench.report.rows.append(await measured)
    except (StartError, WrkOutputError, aiohttp.ClientError, TimeoutError) as exc:
        bench.report.notes.append(f"{key}: not measured: {exc!r}")
        bench.report.rows.append(LoadRow(key, title, "", skipped=str(exc)))


async def run_rows(bench: Bench, stack: contextlib.ExitStack) -> None:
    o = bench.options
    codes: list[str] = []
    if needs_redis(o):
        port = free_port()
        bench.redis_url = f"redis://127.0.0.1:{port}/0"
        directory = bench.tmp / "redis"
        directory.mkdir()
        command = pinned(redis_command(port, directory), bench.pinning.load)
        bench.redis = stack.enter_context(
            running("redis-server", command, bench.tmp / "redis.log", os.environ)
        )
        await wait_redis(bench.redis_url, bench.redis)
        seeded = await seed(bench, links_needed(o))
        codes, bench.campaign_id = seeded.codes, seeded.campaign_id
    rows = redirector_rows(bench, codes) if codes else []
    # The reference servers answer any path: they get the hot row's requests, for equal work.
    reference_script = bench.tmp / "hot.lua" if codes else _single_path_script(bench)
    if "nginx" in o.only:
        await add_row(bench, "nginx", NGINX_TITLE, nginx_row(bench, reference_script))
    if "aiohttp" in o.only:
        await add_row(bench, "aiohttp", AIOHTTP_TITLE, aiohttp_row(bench, reference_script))
    for row in rows:
        await add_row(bench, row.key, row.title, redirector_row(bench, row, codes))


def add_notes(bench: Bench) -> None:
    """How the run was set up, then what each row's numbers may owe to something else."""
    o, pin, report = bench.options, bench.pinning, bench.report
    report.notes.append(
        f"--url-length {o.url_length}: the stored destination, UTM parameters included, is "
        f"{o.url_length} bytes; the nginx ceiling redirects to a Location of the same length."
    )
    report.notes.append(
        "Every request carries an iPhone Safari User-Agent (wrk -H), so the redirector records "
        "each hit as a click, its realistic and dearer path (device, OS and browser counters), "
        "not as a bot hit; nginx and bare aiohttp get the same requests."
    )
    if pin.active:
        report.notes.append(
            f"Pinned with taskset: nginx, bare aiohttp, the redirector and the admin on CPU "
            f"{pin.server}; wrk, "
            f"redis-server and this script on CPU {pin.load}. The {o.workers}-worker rows run "
            f"the workers and wrk on CPUs {pin.both}, sharing them with each other and Redis."
        )
    else:
        report.notes.append("Not pinned (fewer than two cores or no taskset): numbers are noisier.")
    if bench.miss_set:
        share = min(1.0, o.miss_cache / bench.miss_set)
        report.notes.append(
            f"Miss rows tap codes drawn uniformly from {fmt_int(bench.miss_set)} with CACHE_SIZE "
            f"{fmt_int(o.miss_cache)}: at most {share:.1%} of taps can be cache hits."
        )
    if report.ceiling is not None:
        report.notes.append(
            "nginx adds a 145-byte HTML body to its 302; the redirector sends none."
        )
    if report.framework is not None:
        report.notes.append(
            "Bare aiohttp sends its 302 with a Location and no Cache-Control header (the "
            "redirector and nginx send one), and no body."
        )
    report.notes += framework_notes(report)
    if report.rps("hot-notrack") is not None:
        report.notes.append(
            "hot-notrack runs right after hot with the same codes, cache, connections and run "
            "length, with CLICK_TRACKING=false: the ratio of the two is the cost of recording."
        )
    if o.click_requests and any(row.clicks for row in report.rows):
        report.notes.append(
            "Click-counted rows (hot, hot-2w) run long enough for "
            f"{fmt_int(o.click_requests)} requests at their warm-up's rate (at most 60 s): the "
            "setup column gives the length when it is not --duration."
        )
    if report.memory is not None and report.memory.links < _FULL_BUCKETS_LINKS:
        report.notes.append(
            f"Memory with only {fmt_int(report.memory.links)} links: most of the 65,536 "
            "bucket hashes hold a few links, so per-key overhead dominates; the target is for "
            "1,000,000 links."
        )
    busy = report.machine.get("busy before start", "")
    if busy and float(busy.rstrip("%")) >= BUSY_PERCENT:
        report.notes.append(
            f"The machine was {busy} busy (all cores) before the run: other processes compete "
            "with every row, and the numbers are lower than on an idle machine."
        )
    for row in report.rows:
        report.notes += row_notes(row)


def save(report: Report, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "latest.json", out_dir / "latest.md"
    json_path.write_bytes(orjson.dumps(report_json(report), option=orjson.OPT_INDENT_2) + b"\n")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return json_path, md_path


def require_tools(options: Options) -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed: apt-get install -y wrk (or brew install wrk)")
    if needs_redis(options) and shutil.which("redis-server") is None:
        sys.exit("bench: redis-server is not installed: apt-get install -y redis-server")


async def run(options: Options, command: str) -> Report:
    pinning = Pinning.plan(sorted(os.sched_getaffinity(0)), shutil.which("taskset") is not None)
    o = options
    report = Report(
        started_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=command,
        machine=machine_info(),
        settings={
            "connections": o.connections,
            "threads": o.threads,
            "duration": o.duration,
            "warmup": o.warmup,
            "links": o.links,
            "url_length": o.url_length,
            "workers (-2w rows)": o.workers,
            "batch requests in flight": o.concurrency,
            "click-counted requests (hot, hot-2w)": o.click_requests,
        },
    )
    # SIGTERM stops the run like Ctrl-C does: the task is cancelled and every `finally` that
    # stops a server runs.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    if pinning.load is not None:
        # This script (the creation client) stays off the server's core.
        os.sched_setaffinity(0, {int(pinning.load)})
    with tempfile.TemporaryDirectory(prefix="smslinks-bench-") as tmp, contextlib.ExitStack() as s:
        bench = Bench(options, Path(tmp), pinning, report)
        await run_rows(bench, s)
        add_notes(bench)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(arguments)
    require_tools(options)
    command = shlex.join(["python", "-m", "loadtests.bench", *arguments])
    try:
        report = asyncio.run(run(options, command))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("bench: interrupted; every server it started has been stopped")
    except (StartError, SeedError, WrkOutputError) as exc:
        sys.exit(f"bench: {exc}")
    except TimeoutError:
        sys.exit(
            f"bench: creating the links took over {options.seed_timeout:.0f} s (--seed-timeout)"
        )
    print_report(report)
    json_path, md_path = save(report, options.out_dir)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
