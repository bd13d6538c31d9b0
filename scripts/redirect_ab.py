"""Short, indicative A/B runs of the redirect path (issue 9), pinned as `make bench` pins:
server on CPU 0; wrk, Redis (ahead of wrk and h2load once seeded) and (for the rows that record
clicks) a click worker at niceness 10 on CPU 1. Not the benchmark: `make bench` gives the figures.

    .venv/bin/python scripts/redirect_ab.py [--rows aiohttp,hot,hot-notrack,miss]
        [--seconds 5] [--rounds 2] [--tree DIR ...] [--profile DIR] [--open-rate REQ/S]

Rows: aiohttp (bare), hot, miss, and each of hot and miss with `-notrack` (no recording) or
`-noworker` (recording, no click worker: the raw hits only queue up). Every row runs
`--rounds` times, the trees (`--tree`, default this one) interleaved within each round.
`--profile` adds, per redirector row and tree, one py-spy run (not counted) and prints its
top functions by own time (the raw stacks are kept in the given directory).
`--open-rate` follows each wrk run with h2load at that fixed rate, as the bench's open-loop
rows (one rate for every tree, so that their p99s compare).
`--redis-stats` prints, above each run's line, Redis's time by command over its wrk load (and
then over its open loop), and its calls of SLOW_US or more: EVALSHAs by script, this tree's
READ_LINKS, FLUSH_CLICKS and the raw-hit queue's PUSH_HITS, CLAIM_HITS and ACK_HITS by name
(another tree's scripts are "another script").
Honour /work/wt/QUIET before running it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from admin.codes import draw  # noqa: E402
from loadtests import bench_procs as procs  # noqa: E402
from loadtests.bench_open import CLIENT_RPS_MAX, OpenLoopResult, run_open_loop  # noqa: E402
from loadtests.seed import recipient  # noqa: E402
from loadtests.user_agents import load_user_agents  # noqa: E402
from redirector.store.flush import FLUSH_CLICKS  # noqa: E402
from redirector.store.hitqueue import ACK_HITS, CLAIM_HITS, PUSH_HITS, queue_keys  # noqa: E402
from redirector.store.keys import (  # noqa: E402
    HIT_QUEUES,
    destinations_key,
    link_key,
)
from redirector.store.lookup import READ_LINKS  # noqa: E402
from redirector.store.record import Destination, Record, encode, encode_destination  # noqa: E402

LOCATION = (
    "https://shop.example/" + "p" * 60 + "?utm_source=instasent&utm_medium=sms&utm_campaign=bench"
)
PY_SPY = ROOT / ".venv" / "bin" / "py-spy"


async def seed(redis_url: str, links: int) -> list[str]:
    """`links` per-recipient links of campaign 1, sharing its one destination."""
    redis, codes = Redis.from_url(redis_url), draw(links, 7)
    await redis.hset(destinations_key(1), "1", encode_destination(Destination(LOCATION)))
    created = int(time.time())
    for start in range(0, links, 10_000):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + 10_000, links)):
                record = Record(created, "1", campaign_id=1, recipient=recipient(i))
                pipe.hset(link_key(codes[i]), codes[i], encode(record))
            await pipe.execute()
    await redis.aclose()
    return codes


def _cpu_seconds(pid: int) -> float:
    """CPU time of the server and its redirect workers (not its click workers, which run at a
    lower priority): per request, steadier than req/s when other processes share the machine."""
    root = psutil.Process(pid)
    processes = [root, *(p for p in root.children(recursive=True) if p.nice() <= root.nice())]
    return sum(t.user + t.system for t in (p.cpu_times() for p in processes))


def _redirecting(pid: int) -> int:
    """The process that serves: the busiest of the server and its processes at its priority
    (a supervisor's redirect worker, not its click worker nor resource tracker)."""
    root = psutil.Process(pid)
    candidates = [root, *(p for p in root.children(recursive=True) if p.nice() <= root.nice())]
    return max(candidates, key=lambda p: sum(p.cpu_times()[:2])).pid


def server_command(row: str, tree: Path, port: int) -> list[str]:
    if row == "aiohttp":
        command = procs.python_command("loadtests.bare_aiohttp", str(port), LOCATION)
    else:  # -P: the tree's redirector (PYTHONPATH), not the one installed in this venv
        command = [sys.executable, "-P", "-m", "redirector"]
    return procs.pinned(command, "0")


def top_lines(raw: Path, count: int = 15) -> list[str]:
    """py-spy's collapsed stacks summed by the innermost frame (own time), and by any frame."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        frames, weight = stack.split(";"), int(number)
        samples += weight
        own[frames[-1]] += weight
        for frame in set(frames):
            total[frame] += weight
    out = [f"{samples} samples; own% total% function"]
    for frame, weight in own.most_common(count):
        out.append(f"{100 * weight / samples:5.1f} {100 * total[frame] / samples:5.1f} {frame}")
    return out


async def measure(args: argparse.Namespace, tmp: Path, redis_url: str, codes: list[str]) -> None:
    # The bare app taps the hot row's paths, as in the bench: equal work.
    paths = {"aiohttp": tmp / "hot.paths", "hot": tmp / "hot.paths", "miss": tmp / "miss.paths"}
    # The bench's mix of real-world User-Agents, one a line, as bench.lua takes them.
    agents = tmp / "user-agents"
    agents.write_text("".join(f"{agent.string}\n" for agent in load_user_agents()))
    paths["hot"].write_text("".join(f"/{code}\n" for code in codes[:1000]))
    paths["miss"].write_text("".join(f"/{code}\n" for code in codes))
    rates: dict[tuple[str, str], list[tuple[float, float]]] = collections.defaultdict(list)
    for round_number in range(args.rounds):
        trees = list(args.tree)
        random.Random(round_number).shuffle(trees)
        for row in args.rows:
            for tree in trees if row != "aiohttp" else trees[:1]:
                profile = bool(args.profile) and round_number == 0 and row != "aiohttp"
                measured = await one_run(args, tmp, redis_url, codes, row, tree, paths, profile)
                rates[row, str(tree)].append(measured)
    for (row, tree), values in rates.items():
        rate = sorted(value[0] for value in values)[len(values) // 2]
        cpu = sorted(value[1] for value in values)[len(values) // 2]
        shown = ", ".join(f"{value[0]:,.0f}/{value[1]:.1f}" for value in values)
        print(f"{row:12} {tree:24} median {rate:8,.0f} req/s {cpu:5.1f} µs CPU/req  [{shown}]")


async def one_run(
    args: argparse.Namespace,
    tmp: Path,
    redis_url: str,
    codes: list[str],
    row: str,
    tree: Path,
    paths: dict[str, Path],
    profile: bool,
) -> tuple[float, float]:
    port = procs.free_port()
    cache = args.miss_cache if row.startswith("miss") else 100_000
    env = {"PYTHONPATH": str(tree), "REDIS_URL": redis_url, "REDIRECTOR_PORT": str(port)}
    tracking = not row.endswith("-notrack")
    env |= {"CACHE_SIZE": str(cache), "CLICK_TRACKING": str(tracking).lower()}
    # As the bench's one-worker rows: the click worker apart, on the load core at a lower
    # priority; `-noworker` leaves it out (the raw hits only queue up).
    env["CLICK_WORKERS"] = "0"
    tapped = paths[row.split("-")[0]]
    with contextlib.ExitStack() as services:
        server = services.enter_context(
            procs.Service(row, server_command(row, tree, port), tmp / f"{row}.log", env)
        )
        if tracking and not row.endswith("-noworker") and row != "aiohttp":
            clicker = [sys.executable, "-P", "-m", "redirector.clickworker"]
            clicker = procs.pinned(["nice", "-n", "10", *clicker], "1")
            services.enter_context(procs.Service(row, clicker, tmp / f"{row}-clicks.log", env))
        base = f"http://127.0.0.1:{port}"
        await server.wait(f"{base}/{codes[0]}" if row != "aiohttp" else f"{base}/x", 302)
        url = base + "/"
        warm = procs.wrk_command(url, 2, args.connections, 1, "1")
        await procs.run_wrk(warm, tapped, tmp / "user-agents", 1)
        if profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            raw = args.profile / f"{row}-{tree.name}.raw"
            spy = [str(PY_SPY), "record", "--nonblocking", "--function", "-r", "250", "-f", "raw"]
            target = str(_redirecting(server.pid))
            spy += ["-d", str(int(args.seconds)), "-o", str(raw), "-p", target]
            spying = await asyncio.create_subprocess_exec(
                *spy, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            command = procs.wrk_command(url, 2, args.connections, args.seconds, "1")
            await procs.run_wrk(command, tapped, tmp / "user-agents", args.seconds)
            await spying.wait()
            print(f"-- py-spy {row} {tree}:", *top_lines(raw), sep="\n", flush=True)
        command = procs.wrk_command(url, 2, args.connections, args.seconds, "1")
        if args.redis_stats:
            await reset_redis_stats(redis_url)
        cpu_before, redis_before = _cpu_seconds(server.pid), _cpu_seconds(args.redis_pid)
        load_before = psutil.cpu_times(percpu=True)[1]
        result = await procs.run_wrk(command, tapped, tmp / "user-agents", args.seconds)
        cpu = _cpu_seconds(server.pid) - cpu_before
        redis_cpu = _cpu_seconds(args.redis_pid) - redis_before
        load_after = psutil.cpu_times(percpu=True)[1]
        if args.redis_stats:
            await print_redis_stats(redis_url, result.requests)
        if args.open_rate:
            tapped_codes = codes if row.startswith("miss") else codes[:1000]
            if args.redis_stats:
                await reset_redis_stats(redis_url)
            run = await open_loop(args, tmp, base, [f"/{code}" for code in tapped_codes], row, tree)
            if args.redis_stats:
                await print_redis_stats(redis_url, run.requests)
    # How busy the load core was (wrk, Redis, and whatever else runs there): a saturated one
    # holds the server back.
    load_idle = (load_after.idle - load_before.idle) / max(sum(load_after) - sum(load_before), 1e-9)
    errors = f" ({result.errors} errors)" if result.errors else ""
    print(
        f"{row:12} {tree!s:24} {result.requests_per_second:9,.0f} req/s "
        f"p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms "
        f"{cpu / result.requests * 1e6:6.1f} µs CPU/request, Redis "
        f"{redis_cpu / result.requests * 1e6:4.1f} µs, CPU 1 idle {load_idle:4.0%}{errors}",
        flush=True,
    )
    if row.endswith("-noworker"):
        await drop_hit_queues(redis_url)  # else the next row's click worker works them off
    return result.requests_per_second, cpu / result.requests * 1e6


SLOW_US = 250  # `--redis-stats`: Redis calls at least this long are counted, by command
SCRIPT_NAMES = {
    hashlib.sha1(source.encode()).hexdigest().encode(): name
    for name, source in (
        ("READ_LINKS", READ_LINKS),
        ("FLUSH_CLICKS", FLUSH_CLICKS),
        ("PUSH_HITS", PUSH_HITS),
        ("CLAIM_HITS", CLAIM_HITS),
        ("ACK_HITS", ACK_HITS),
    )
}  # the scripts of this tree (ROOT)


async def reset_redis_stats(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    await redis.config_set("slowlog-log-slower-than", SLOW_US)
    await redis.config_set("slowlog-max-len", 100_000)
    await redis.slowlog_reset()
    await redis.config_resetstat()
    await redis.aclose()


async def print_redis_stats(redis_url: str, requests: int) -> None:
    """Redis's time per command over the run (per request, and per call), and how many of its
    calls took SLOW_US or longer: what a lookup may wait behind."""
    redis = Redis.from_url(redis_url)
    stats = await redis.info("commandstats")
    slow = await redis.slowlog_get(100_000)
    await redis.config_set("slowlog-log-slower-than", 10_000)
    await redis.aclose()
    durations: dict[str, list[int]] = collections.defaultdict(list)
    scripts: dict[str, list[int]] = collections.defaultdict(list)  # EVALSHA's, by script
    for entry in slow:
        command, *rest = entry["command"].split(b" ")
        durations[command.decode().lower()].append(entry["duration"])
        if command.lower() == b"evalsha" and rest:
            scripts[SCRIPT_NAMES.get(rest[0], "another script")].append(entry["duration"])
    rows = sorted(stats.items(), key=lambda item: -item[1]["usec"])
    for name, stat in rows[:8]:
        command = name.removeprefix("cmdstat_")
        long = sorted(durations.get(command, []))
        tail = f", {len(long)} of them >= {SLOW_US} µs (max {long[-1]} µs)" if long else ""
        print(
            f"    redis {command:10} {stat['usec'] / requests:5.2f} µs/request, "
            f"{stat['calls']:8,} calls of {stat['usec_per_call']:7.1f} µs{tail}",
            flush=True,
        )
    for name, long in sorted(scripts.items()):
        long.sort()
        print(
            f"      of the EVALSHAs >= {SLOW_US} µs: {len(long):5,} {name}, median "
            f"{long[len(long) // 2]} µs, max {long[-1]} µs",
            flush=True,
        )


async def drop_hit_queues(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    for queue in range(HIT_QUEUES):
        await redis.delete(*queue_keys(queue))
    await redis.aclose()


async def open_loop(
    args: argparse.Namespace, tmp: Path, base: str, paths: list[str], row: str, tree: Path
) -> OpenLoopResult:
    """h2load at `--open-rate` req/s, as the bench's open-loop rows (on the load core)."""
    agents = [agent.string for agent in load_user_agents()]
    run = await run_open_loop(
        base, paths, agents, args.open_rate, args.seconds, tmp, "1", args.client_rps
    )
    print(
        f"{row:12} {tree!s:24} open loop {run.clients} clients "
        f"{run.achieved_rps:7,.0f} of {run.target_rps:,.0f} "
        f"req/s p50 {run.p50_ms:.2f} ms p99 {run.p99_ms:.2f} ms judged {run.p99_server_ms:.2f} ms "
        f"max {run.max_ms:.2f} ms",
        flush=True,
    )
    return run


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        default="aiohttp,hot,hot-notrack,miss",
        help="also miss-notrack, hot-noworker, miss-noworker",
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--miss-cache", type=int, default=2_000)
    parser.add_argument("--tree", type=Path, action="append", help="source trees to compare")
    parser.add_argument("--profile", type=Path, help="profile with py-spy; raw stacks go here")
    parser.add_argument("--redis-stats", action="store_true", help="Redis's time by command")
    parser.add_argument("--connections", type=int, default=64, help="wrk's connections")
    parser.add_argument("--open-rate", type=float, help="then h2load at this rate (open loop)")
    parser.add_argument(
        "--client-rps", type=float, default=CLIENT_RPS_MAX, help="open loop: req/s per h2load"
    )
    args = parser.parse_args()
    args.rows, args.tree = args.rows.split(","), [t.resolve() for t in args.tree or [ROOT]]
    with tempfile.TemporaryDirectory(prefix="redirect-ab-") as tmp:
        port = procs.free_port()
        redis_url = f"redis://127.0.0.1:{port}/0"
        command = procs.pinned(procs.redis_command(port, Path(tmp)), "1")
        with procs.Service("redis", command, Path(tmp) / "redis.log", {}) as redis:
            await redis.wait(redis_url)
            args.redis_pid = redis.pid
            codes = await seed(redis_url, args.links)
            procs.ahead_of_load(redis.pid)  # as in the bench's server rows
            await measure(args, Path(tmp), redis_url, codes)


if __name__ == "__main__":
    asyncio.run(main())
