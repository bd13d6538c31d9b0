"""How each server row of the benchmark (`loadtests/bench.py`) is measured: a server started,
checked, warmed up and loaded with wrk; the clicks recorded counted against the 302s wrk got."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import NamedTuple, TypeVar

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from redis.exceptions import RedisError

from loadtests import bench_procs as procs
from loadtests import bench_report as results
from loadtests.bench_open import bucket_quantile, run_open_loop
from loadtests.seed import LinkPlan
from redirector.metrics import LATENCY
from redirector.store.hitqueue import queue_lengths
from redirector.store.keys import BOTS, CLICKS, HIT_QUEUES, campaign_stats_key

Value = TypeVar("Value")
REDIRECTOR_ROWS = ("hot", "hot-notrack", "miss", "hot-2w", "miss-2w")
STORE_ROWS = ("create", "memory", "sends", "conversions")
ALL_ROWS = ("nginx", "aiohttp", *REDIRECTOR_ROWS, "pipe", *STORE_ROWS)
CAMPAIGN_NAME = "bench"
# A click-counted run lasts long enough for this many times the requests it needs at the
# warm-up's rate (throughput varies from run to run), but never longer than the bound.
RUN_MARGIN, MAX_COUNTED_SECONDS = 1.25, 60.0
# The flusher writes every 100 ms and retries a failed flush after 0.5 s: counters unchanged
# for a second have nothing left to flush. Give up after about 10 s.
POLL_SECONDS, QUIET_POLLS, MAX_POLLS = 0.1, 10, 100
# Rounds after the first: each ratio row loaded in this many slices, the rows taking turns.
SLICES = 3


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
    scale: tuple[int, ...] = ()  # `make bench-scale`: the growth rows' numbers of links
    events: int = 500_000  # sends, then conversions, of the attribution rows
    rounds: int = 1  # of the rows whose ratios are judged (bench.py ROUND_ROWS)


def needs_redis(options: Options) -> bool:
    return bool(set(options.only) & {*REDIRECTOR_ROWS, *STORE_ROWS})


def links_needed(options: Options) -> int:
    """All `--links` when creation or memory is measured, else just enough to tap."""
    if set(options.only) & set(STORE_ROWS):
        return options.links
    # The hot rows tap links without recipient, made apart (`create_links`): one
    # per-recipient link makes their campaign.
    needed = 1 if {"hot", "hot-notrack", "hot-2w"} & set(options.only) else 0
    if {"miss", "miss-2w"} & set(options.only):
        # The miss row taps other links in each round (`redirector_rows`).
        rounds = options.rounds if "miss" in options.only else 1
        needed = max(needed, options.miss_links * rounds)
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
    open_loop: bool = False  # then h2load at half wrk's rate, for latency
    # A click worker started beside the server (which then runs none of its own), pinned
    # apart from it: where the counting of the clicks the server ships is done.
    clicker: list[str] | None = None
    pause_clicker: bool = False  # stopped while a load runs, working off its backlog after
    # What rounds 2, 3, ... tap instead (`round_paths`): the miss row's other links, so that
    # each round repeats the first (a link's later taps cost Redis more than its first).
    round_paths: tuple[Path, ...] = ()


@dataclass(slots=True)
class Bench:
    """One run's state: options, temporary directory, pinning, and the report it fills."""

    options: Options
    tmp: Path
    pinning: procs.Pinning
    report: results.Report
    user_agents: list[str] = field(default_factory=list)  # what the requests carry
    store: Redis | None = None  # a client of that Redis
    redis_pid: int | None = None  # that Redis's process
    campaign_id: int = 0  # the seeded links' campaign, whose clicks are counted
    hot_seconds: float | None = None  # the hot row's measured run, which hot-notrack repeats

    @property
    def plan(self) -> LinkPlan:
        return LinkPlan(self.options.url_length, CAMPAIGN_NAME)

    @property
    def user_agents_file(self) -> Path:
        """The mix's strings, one a line, for bench.lua."""
        return self.tmp / "user-agents"


def measured_seconds(bench: Bench, row: ServerRow, warmup: procs.WrkResult | None) -> float:
    """--duration, longer for a click-counted row; hot-notrack repeats the hot row's run."""
    if row.key == "hot-notrack" and bench.hot_seconds is not None:
        return bench.hot_seconds
    if not row.count_clicks:
        return bench.options.duration
    rate = warmup.requests_per_second if warmup else None
    return counted_run_seconds(bench.options.duration, rate, bench.options.click_requests)


async def counters(bench: Bench) -> tuple[int, int]:
    """The campaign's clicks and bot hits now."""
    assert bench.store is not None, "click-counted rows run only with Redis"
    key = campaign_stats_key(bench.campaign_id)
    clicks, bots = await bench.store.hmget(key, [CLICKS, BOTS])
    return int(clicks or 0), int(bots or 0)


async def recorded(bench: Bench) -> results.Recorded:
    """The campaign's click counters once the redirector has flushed what it buffered."""
    seen: list[int] = []  # clicks + bots at each read

    async def read() -> tuple[int, int]:
        now = await counters(bench)
        seen.append(sum(now))
        return now

    started = time.monotonic()
    (clicks, bots), settled = await settle(read)
    # What was recorded when asked, and how long the rest took to be (the settling wait's
    # quiet reads not counted): work the click worker left for after the run shows here.
    caught_up = max(0.0, time.monotonic() - started - POLL_SECONDS * QUIET_POLLS)
    return results.Recorded(clicks, bots, settled, seen[0], caught_up)


# A row's click workers get this long to work off the raw-hit queues between its loads.
DRAIN_SECONDS = 60.0


async def drained(bench: Bench, row: ServerRow) -> float | None:
    """Wait until the raw-hit queues are empty (the redirector flushed its buffer and the
    click workers applied every chunk) for QUIET_POLLS polls in a row (a second: longer
    than a flush interval, and than the redirector's pause after a failed flush), for a row
    that records clicks; at most DRAIN_SECONDS. Returns the seconds until the queues were
    first found empty, None for a row that records nothing."""
    store = bench.store
    if store is None or row.env.get("CLICK_TRACKING") != "true":
        return None
    started, empty, emptied = time.monotonic(), 0, None
    while empty < QUIET_POLLS and time.monotonic() - started < DRAIN_SECONDS:
        if any(await queue_lengths(store, range(HIT_QUEUES))):
            empty, emptied = 0, None
        else:
            empty += 1
            emptied = emptied or time.monotonic() - started
        await asyncio.sleep(POLL_SECONDS)
    waited = time.monotonic() - started if emptied is None else emptied
    if waited > 1.0:
        print(f"  {row.key}: click work left over, {waited:.1f} s to apply it", flush=True)
    return waited


async def load(bench: Bench, row: ServerRow, seconds: float) -> procs.WrkResult:
    options = bench.options
    cpus = bench.pinning.load if row.workers == 1 else bench.pinning.both
    url = f"http://127.0.0.1:{row.port}/"
    command = procs.wrk_command(url, options.threads, options.connections, seconds, cpus)
    return await procs.run_wrk(command, row.paths, bench.user_agents_file, seconds)


async def redis_cpu_seconds(bench: Bench) -> float | None:
    if bench.store is None:
        return None
    info = await bench.store.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measured_load(
    bench: Bench,
    row: ServerRow,
    server: procs.Service,
    seconds: float,
    clicker: procs.Service | None = None,
) -> tuple[procs.WrkResult, results.Cpu]:
    """The measured wrk run, and the cores that the server, wrk, Redis and the click worker
    apart (if any) kept busy."""
    redis_before = await redis_cpu_seconds(bench)
    server_before, load_before = procs.tree_cpu_seconds(server.pid), procs.children_cpu_seconds()
    clicker_before = procs.tree_cpu_seconds(clicker.pid) if clicker else 0.0
    result = await load(bench, row, seconds)
    load_used = procs.children_cpu_seconds() - load_before
    server_used = procs.tree_cpu_seconds(server.pid) - server_before
    clicker_used = procs.tree_cpu_seconds(clicker.pid) - clicker_before if clicker else None
    redis_after = await redis_cpu_seconds(bench)
    redis_used = None if redis_before is None or redis_after is None else redis_after - redis_before
    wall = result.seconds or seconds
    redis_cores = None if redis_used is None else redis_used / wall
    clicker_cores = None if clicker_used is None else clicker_used / wall
    cores = results.Cpu(server_used / wall, load_used / wall, redis_cores, clicker_cores)
    return result, cores


async def server_row(bench: Bench, row: ServerRow) -> results.LoadRow:
    """The row measured, or skipped (a server that fails to start, a failed wrk run) saying
    why: the run goes on."""
    print(f"row {row.key} ...", flush=True)
    try:
        return await _measured(bench, row)
    except (procs.StartError, aiohttp.ClientError, TimeoutError, RedisError) as exc:
        return results.LoadRow(row.key, row.setup, skipped=repr(exc))


async def _measured(bench: Bench, row: ServerRow) -> results.LoadRow:
    """Start the server, check its answers, warm it up, load it; count the clicks if asked."""
    options = bench.options
    with _started(bench, row) as (server, clicker):
        up = _Up(row, server, clicker)
        alone = partial(_alone, [up], up)  # its own click worker alone, paused as it asks
        warmup = await _ready(bench, row, server)
        seconds = measured_seconds(bench, row, warmup)
        # Each load starts with no click work left over from the one before (the warm-up's,
        # the closed loop's): a row measures its own load only, and the next row, started
        # once this one is stopped, none of it.
        await drained(bench, row)
        # Read once the warm-up's hits are flushed and once the run's are: the difference is
        # what the measured run recorded, nothing else.
        before = await recorded(bench) if row.count_clicks else None
        with alone(True):
            result, cpu = await measured_load(bench, row, server, seconds, clicker)
        # What was recorded as wrk stopped; then, every queued hit applied (a paused worker's
        # backlog may outlast the settling wait), the count.
        at_stop = sum(await counters(bench)) if row.count_clicks else 0
        catch_up = await drained(bench, row)
        after = await recorded(bench) if row.count_clicks else None
        if after is not None:
            after = after._replace(at_first=at_stop, caught_up_seconds=catch_up or 0.0)
        measured = results.LoadRow(row.key, row.setup, result, cpu=cpu, catch_up_seconds=catch_up)
        if row.open_loop:
            measured = await _open_loop_of(bench, row, measured, alone)
    if row.key == "hot":
        bench.hot_seconds = seconds
    if before is not None and after is not None:
        clicks = results.ClickCount.over(result, before, after, options.connections)
        measured = replace(measured, clicks=clicks)
    setup = row.setup + (f"; {seconds:.0f} s run" if seconds != options.duration else "")
    return replace(measured, setup=setup)


@contextlib.contextmanager
def _started(bench: Bench, row: ServerRow) -> Iterator[tuple[procs.Service, procs.Service | None]]:
    """The row's server and its click worker apart (if any), stopped when the block ends."""
    with contextlib.ExitStack() as services:
        log = bench.tmp / f"{row.key}.log"
        server = services.enter_context(procs.Service(row.key, row.command, log, row.env))
        clicker = None
        if row.clicker is not None:
            clicker_log = bench.tmp / f"{row.key}-clickworker.log"
            clicker = procs.Service(f"{row.key} click worker", row.clicker, clicker_log, row.env)
            services.enter_context(clicker)
        yield server, clicker


async def _ready(bench: Bench, row: ServerRow, server: procs.Service) -> procs.WrkResult | None:
    """Once the server answers: its answers checked, its warm paths fetched, and the
    warm-up's load (None without one)."""
    base_url = f"http://127.0.0.1:{row.port}"
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
    warmup = bench.options.warmup
    return await load(bench, row, warmup) if warmup > 0 else None


# Pauses the click workers a row's load must not run beside (True), or beside the work its
# load left (False).
Pausing = Callable[[bool], contextlib.AbstractContextManager[None]]


async def _open_loop_of(
    bench: Bench, row: ServerRow, measured: results.LoadRow, pausing: Pausing
) -> results.LoadRow:
    """`open_loop`, then its click work applied."""
    with pausing(True):
        measured = await open_loop(bench, row, measured)
    with pausing(False):
        await drained(bench, row)
    return measured


class _Up(NamedTuple):
    """A row with its server and click worker (if any) up."""

    row: ServerRow
    server: procs.Service
    clicker: procs.Service | None


async def sliced_round(
    bench: Bench, rows: Sequence[ServerRow], number: int
) -> list[results.LoadRow]:
    """Round `number` (2, 3, ...) of the ratio rows: their servers started together and
    warmed up, then each row loaded in SLICES slices of --duration / SLICES seconds, the
    rows taking turns (every other turn in reverse order), each row's click work applied
    after each of its slices; then each row's open loop at half its rate over its slices.
    The miss row taps the round's own sample of links throughout. Only the loaded row's
    click worker runs, as in round 1, where no other exists (`_alone`). One LoadRow per
    row, in `rows`' order, its slices' rates in `slices`; a row whose server or load fails
    says why, and the others go on."""
    seconds = float(max(1, round(bench.options.duration / SLICES)))
    keys = ", ".join(row.key for row in rows)
    print(f"round {number}: {keys}, {SLICES} slices of {seconds:.0f} s each ...", flush=True)
    failed: dict[str, str] = {}
    measured: dict[str, results.LoadRow] = {}
    with contextlib.ExitStack() as stack:
        started = await _start_all(bench, rows, number, stack, failed)
        loads = await _in_turns(bench, started, seconds, failed)
        for up in started:
            if up.row.key not in failed:
                measured[up.row.key] = await _round_row(bench, started, up, *loads[up.row.key])
    return [
        measured.get(row.key) or results.LoadRow(row.key, row.setup, skipped=failed[row.key])
        for row in rows
    ]


async def _start_all(
    bench: Bench,
    rows: Sequence[ServerRow],
    number: int,
    stack: contextlib.ExitStack,
    failed: dict[str, str],
) -> list[_Up]:
    """Each row's server started and warmed up on the round's paths (kept up by `stack`),
    then the warm-ups' click work applied; a row that fails is noted in `failed`."""
    started = []
    for row in rows:
        row = replace(row, paths=round_paths(row, number))
        try:
            server, clicker = stack.enter_context(_started(bench, row))
            await _ready(bench, row, server)
        except _ROW_ERRORS as exc:
            failed[row.key] = repr(exc)
            continue
        started.append(_Up(row, server, clicker))
    for up in started:
        await drained(bench, up.row)
    return started


async def _in_turns(
    bench: Bench, started: list[_Up], seconds: float, failed: dict[str, str]
) -> dict[str, tuple[list[procs.WrkResult], float]]:
    """Each row's slices and the seconds its click work took after them, the rows taking
    turns; a row whose load fails is noted in `failed` and loaded no more."""
    loads: dict[str, tuple[list[procs.WrkResult], float]] = {}
    for turn in range(SLICES):
        for up in started if turn % 2 == 0 else started[::-1]:
            key = up.row.key
            if key in failed:
                continue
            done, catch_up = loads.get(key, ([], 0.0))
            try:
                with _alone(started, up, True):
                    result, _ = await measured_load(bench, up.row, up.server, seconds)
                with _alone(started, up, False):
                    catch_up += await drained(bench, up.row) or 0.0
            except _ROW_ERRORS as exc:
                failed[key] = repr(exc)
                continue
            loads[key] = ([*done, result], catch_up)
    return loads


async def _round_row(
    bench: Bench, started: list[_Up], up: _Up, slices: list[procs.WrkResult], catch_up: float
) -> results.LoadRow:
    """The row's round from its slices, then its open loop if it has one."""
    done = _summed(up.row, slices, catch_up)
    if not up.row.open_loop:
        return done
    try:
        return await _open_loop_of(bench, up.row, done, partial(_alone, started, up))
    except _ROW_ERRORS as exc:
        return replace(done, open_loop_skipped=repr(exc))


# What fails a row of a round (a server that does not start or answer, a failed load).
_ROW_ERRORS = (procs.StartError, aiohttp.ClientError, TimeoutError, RedisError, OSError)


@contextlib.contextmanager
def _alone(started: Sequence[_Up], up: _Up, loaded: bool) -> Iterator[None]:
    """Every other row's click worker paused (all of them read every raw-hit queue), and
    the row's own too while `loaded` if the row pauses it: only its own click work goes on."""
    with contextlib.ExitStack() as stack:
        for other in started:
            own = other is up
            if other.clicker is not None and (not own or (loaded and up.row.pause_clicker)):
                stack.enter_context(other.clicker.paused())
        yield


def round_paths(row: ServerRow, number: int) -> Path:
    """What round `number` taps: the miss row's own sample of links, else `paths`."""
    index = number - 2
    return row.round_paths[index] if index < len(row.round_paths) else row.paths


def _summed(row: ServerRow, slices: list[procs.WrkResult], catch_up: float) -> results.LoadRow:
    """One round's row from its slices: their requests over their seconds (each slice's own
    rate kept), the median of their p50s and p99s."""
    requests, seconds = sum(one.requests for one in slices), sum(one.seconds for one in slices)
    result = procs.WrkResult(
        requests,
        seconds,
        statistics.median(one.p50_ms for one in slices),
        statistics.median(one.p99_ms for one in slices),
        sum(one.socket_errors for one in slices),
        sum(one.bad_status for one in slices),
        requests / seconds if seconds > 0 else 0.0,
    )
    rates = tuple(one.requests_per_second for one in slices)
    tracking = row.env.get("CLICK_TRACKING") == "true"
    return results.LoadRow(
        row.key, row.setup, result, slices=rates, catch_up_seconds=catch_up if tracking else None
    )


async def open_loop(bench: Bench, row: ServerRow, measured: results.LoadRow) -> results.LoadRow:
    """The row again at half the rate wrk reached, from h2load at a fixed rate; a failure
    there is noted and leaves the closed-loop result standing."""
    assert measured.result is not None
    rate = measured.result.requests_per_second / 2
    paths = row.paths.read_text().split()
    base_url, cpus = f"http://127.0.0.1:{row.port}", bench.pinning.load
    # The redirector's own latency beside h2load's: a reading that fails leaves it out.
    before = await _latency_or_none(base_url) if row.key in REDIRECTOR_ROWS else None
    try:
        run = await run_open_loop(
            base_url,
            paths,
            bench.user_agents,
            rate,
            bench.options.duration,
            bench.tmp,
            cpus,
        )
    except (procs.StartError, TimeoutError) as exc:
        return replace(measured, open_loop_skipped=str(exc) or repr(exc))
    after = await _latency_or_none(base_url) if before is not None else None
    if before is not None and after is not None:
        p99 = bucket_quantile(before, after, 0.99)
        run = replace(run, handler_p99_ms=None if p99 is None else p99 * 1000)
    return replace(measured, open_loop=run)


async def _latency_or_none(base_url: str) -> dict[float, float] | None:
    try:
        return await latency_buckets(base_url)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def latency_buckets(base_url: str) -> dict[float, float]:
    """The redirector's smslinks_redirect_seconds buckets now (upper bound -> count), from
    its /metrics (served on its port when METRICS_PORT is not set, as in the bench)."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{base_url}/metrics") as response,
    ):
        response.raise_for_status()
        text = await response.text()
    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == LATENCY[0]
        for sample in family.samples
        if sample.name == f"{LATENCY[0]}_bucket"
    }


def reference_rows(bench: Bench) -> list[ServerRow]:
    """nginx and bare aiohttp, answering every path with a 302 to a Location as long as a
    destination; they tap the hot row's paths, for equal work."""
    location, rows = bench.plan.destination, []
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
        row = ServerRow(key, setup, command, port, [("/x", location)], paths)
        # The framework's own open-loop latency: what the hot path's is measured against.
        rows.append(replace(row, open_loop=key == "aiohttp"))
    return rows


def redirector_rows(
    bench: Bench, codes: list[str], hot_codes: list[str], redis_url: str
) -> list[ServerRow]:
    """The redirector's rows: the hot ones tap `hot_codes` (links without recipient, each
    tapped again and again), the miss ones `codes` (per-recipient links, each tapped once)."""
    options, plan, rows = bench.options, bench.plan, []
    # Per-recipient links tapped in turn (bench.lua walks them), far more than the cache
    # holds; another sample of them for each further round of the miss row, as far as the
    # links go (then the samples wrap around).
    count = min(options.miss_links, len(codes))
    rounds = options.rounds
    drawn = random.Random(0).sample(range(len(codes)), min(count * rounds, len(codes)))
    samples = [(drawn * rounds)[n * count : (n + 1) * count] for n in range(rounds)]
    if hot_codes:  # else the reference rows' "/x"
        (bench.tmp / "hot.paths").write_text("".join(f"/{code}\n" for code in hot_codes))
    miss_codes = [codes[i] for i in samples[0]]
    (bench.tmp / "miss.paths").write_text("".join(f"/{code}\n" for code in miss_codes))
    miss_rounds = []
    for number, indices in enumerate(samples[1:], 2):
        path = bench.tmp / f"miss-round-{number}.paths"
        path.write_text("".join(f"/{codes[i]}\n" for i in indices))
        miss_rounds.append(path)
    specs = [  # key, workers, codes tapped, cache size, click recording
        ("hot", 1, "hot", options.hot_cache, True),
        ("hot-notrack", 1, "hot", options.hot_cache, False),
        ("miss", 1, "miss", options.miss_cache, True),
        ("hot-2w", options.workers, "hot", options.hot_cache, True),
        ("miss-2w", options.workers, "miss", options.miss_cache, True),
    ]
    for key, workers, tapped, cache_size, tracking in specs:
        tapped_codes = hot_codes if tapped == "hot" else miss_codes
        if not tapped_codes:
            continue
        port = procs.free_port()
        env = {"REDIS_URL": redis_url, "REDIRECTOR_HOST": "127.0.0.1", "REDIRECTOR_PORT": str(port)}
        env |= {"REDIRECTOR_WORKERS": str(workers), "CACHE_SIZE": str(cache_size)}
        env |= {"ACCESS_LOG": "false", "CLICK_TRACKING": str(tracking).lower()}
        cpus = bench.pinning.server if workers == 1 else bench.pinning.both
        command = procs.pinned(procs.python_command("redirector"), cpus)
        clicker = None
        if tracking and workers == 1 and bench.pinning.load is not None:
            # Apart, on the load core, as on another machine, below wrk's priority; paused in
            # the hot row's loads (README, Performance: what recording costs the redirect
            # process). The miss row's runs: its lookups share Redis with the worker's scripts.
            env["CLICK_WORKERS"] = "0"
            worker = ["nice", "-n", "10", *procs.python_command("redirector.clickworker")]
            clicker = procs.pinned(worker, bench.pinning.load)
        checks = [(f"/{code}", plan.destination) for code in tapped_codes[:5]]
        warm = [f"/{code}" for code in tapped_codes] if tapped == "hot" else []
        setup = f"{workers} worker(s), {len(tapped_codes):,} codes, cache {cache_size:,}"
        paths = bench.tmp / f"{tapped}.paths"
        counted, open_loop = key in ("hot", "miss", "hot-2w"), key in ("hot", "miss")
        row = ServerRow(key, setup, command, port, checks, paths, env, workers, warm, counted)
        row = replace(row, open_loop=open_loop, clicker=clicker, pause_clicker=key == "hot")
        if key == "miss":
            row = replace(row, round_paths=tuple(miss_rounds))
        rows += [row] if key in options.only else []
    return rows
