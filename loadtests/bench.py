"""`python -m loadtests.bench` (`make bench`): one run, on 127.0.0.1 only, of these rows (`--only`):

  nginx        nginx answering `return 302` with a Location as long as a destination: the ceiling
  aiohttp      the smallest aiohttp + uvloop server answering the same 302: the framework
  hot          the redirector, every code tapped in its cache: `--hot-links` links of the campaign
               without recipient (links sent to everyone, tapped by many); `hot-notrack` right
               after it, the same with click recording off (CLICK_TRACKING=false)
  miss         100,000 per-recipient links tapped in turn with a cache of 2,000 (Redis reads)
  hot-2w       hot and miss with 2 worker processes sharing the port (`miss-2w`)
  pipe         `redis-cli --pipe` inserting as many link records into a fresh Redis
  create       per-recipient links of one campaign and one URL created through the admin
               batch API, 10,000 per request (a ratio of `pipe`)
  memory       Redis memory per link (INFO memory before and after creating them)
  sends        `--events` sends to the create row's recipients through the admin's batch API,
               10,000 per request (bench_events.py)
  conversions  then as many conversions of those recipients, each credited to its send

Every request carries a User-Agent drawn from `loadtests/user_agents.txt` (500 real-world
browsers, 80% phones). For `hot` and `hot-2w` the clicks recorded in Redis are checked against
the 302s wrk got. `aiohttp`, `hot` and `miss` are then loaded again at a fixed rate, half
what wrk reached, by h2load (`bench_open.py`): their latency, open loop. Then `aiohttp`, `hot`,
`hot-notrack` and `miss` run `--rounds` - 1 more rounds, each with their four servers up at
once and loaded in turns, 3 slices of a third of `--duration` each (the miss row on another
sample of the links each round), then each row's open loop (bench_rows.sliced_round): this
machine's speed drifts by ±15% and more within a minute, more than the differences judged, so
a round's ratio is the median of its slices' ratios, each slice seconds from its counterpart.
The ratio and latency targets take the median over the rounds.

`--scale 10000,10000000` (`make bench-scale`) measures growth instead: for each number of
links, a fresh Redis, the links created, their memory, and the miss path tapping a sample of
them with a small cache; written to `scale.{json,md}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psutil

from loadtests import bench_procs as procs
from loadtests import bench_report as results
from loadtests.bench_events import event_rates
from loadtests.bench_report import CLICKS_MIN_REQUESTS, Report, render_markdown, report_json
from loadtests.bench_rows import (
    ALL_ROWS,
    SLICES,
    Bench,
    Options,
    ServerRow,
    links_needed,
    needs_redis,
    redirector_rows,
    reference_rows,
    server_row,
    sliced_round,
)
from loadtests.bench_store import create_links, fresh_redis, pipe_rate, redis_ahead_of_load
from loadtests.seed import SeedError
from loadtests.user_agents import load_user_agents

# Below this many links most of the 65,536 bucket hashes hold a few links each.
FULL_BUCKETS_LINKS = 500_000


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench",
        description="Measure nginx, the redirector and the admin on 127.0.0.1 (see the docstring).",
    )
    option = parser.add_argument
    option("--quick", action="store_true", help="smoke run: 3 s rows, 50,000 links")
    option("--duration", type=float, help="seconds per row (default 10; quick 3)")
    option("--warmup", type=float, help="warm-up seconds per row (default 2; quick 1)")
    option("--connections", type=int, default=64, help="wrk connections (64)")
    option("--threads", type=int, default=2, help="wrk threads (2)")
    option("--links", type=int, help="links to create (1,000,000; quick 50,000)")
    option("--url-length", type=int, default=135, help="bytes of the tagged destination")
    option("--out-dir", type=Path, default=procs.ROOT / "loadtests" / "results")
    option("--only", default=",".join(ALL_ROWS), help=f"rows of {', '.join(ALL_ROWS)}")
    option(
        "--hot-links", type=int, default=1000, help="links without recipient, the hot rows' (1,000)"
    )
    option("--hot-cache", type=int, default=100_000, help="CACHE_SIZE, hot rows")
    option("--miss-links", type=int, default=100_000, help="codes of the miss rows (100,000)")
    option("--miss-cache", type=int, default=2000, help="CACHE_SIZE, miss rows (2,000)")
    option("--workers", type=int, default=2, help="workers of the -2w rows (2)")
    option("--rounds", type=int, help="rounds of the ratio rows, interleaved (3; quick 1)")
    option("--concurrency", type=int, default=4, help="batch requests in flight (4)")
    option("--events", type=int, help="sends and conversions posted (500,000; quick 50,000)")
    option("--seed-timeout", type=float, default=900, help="bound on creation (s)")
    option(
        "--click-requests",
        type=int,
        help=f"requests of the click-counted rows, at most 60 s ({CLICKS_MIN_REQUESTS:,}; "
        "quick 0: just --duration)",
    )
    option("--scale", help="growth rows at these numbers of links instead (e.g. 10000,10000000)")
    args = parser.parse_args(argv)
    try:
        args.scale = tuple(int(links) for links in (args.scale or "").split(",") if links.strip())
    except ValueError:
        parser.error("--scale: comma-separated numbers of links")
    if args.scale:  # the growth rows load the miss path only
        args.only, args.links = "miss", max(args.scale)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = (1.0 if args.quick else 2.0) if args.warmup is None else args.warmup
    args.links = args.links or (50_000 if args.quick else 1_000_000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.events = min(args.events or (50_000 if args.quick else 500_000), args.links)
    if args.click_requests is None:
        args.click_requests = 0 if args.quick else CLICKS_MIN_REQUESTS
    args.threads = min(args.threads, args.connections)
    args.only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    if unknown := sorted(set(args.only) - set(ALL_ROWS)):
        parser.error(f"--only: unknown rows {', '.join(unknown)}")
    positive = (
        *("duration", "connections", "threads", "links", "hot_links", "miss_links"),
        *("events", "rounds", "miss_cache"),
    )
    for name in positive:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if any(links <= 0 for links in args.scale):
        parser.error("--scale: numbers of links must be positive")
    if args.click_requests < 0:
        parser.error("--click-requests must not be negative")
    return Options(**{option.name: getattr(args, option.name) for option in fields(Options)})


# Steal above this share of the run's CPU time is noted: this virtual machine's cores stood
# still that long, and absolute rates (links/s, req/s) are low by about as much or more.
STOLEN_NOTED = 0.02


def add_notes(bench: Bench, stolen: float = 0.0) -> None:
    """How the run was set up, before what the rows noted."""
    options, pin, report = bench.options, bench.pinning, bench.report
    notes = ["Not pinned (fewer than two cores or no taskset): numbers are noisier."]
    if pin.server is not None:
        notes[0] = (
            f"Pinned with taskset: the servers under test on CPU {pin.server}; wrk, Redis and this "
            f"script on CPU {pin.load}; the {options.workers}-worker rows share CPUs {pin.both}."
        )
        notes.append(
            f"The one-worker rows that record clicks run their click worker apart, on CPU "
            f"{pin.load}. In the hot row it is paused while a load runs (its CPU shows as 0) "
            "and applies the raw hits queued in Redis after it: that row judges what "
            "recording costs the redirect process; recorded = sent is checked once it caught "
            "up, and the rates over load and catch-up are shown. The miss row runs its click "
            "worker throughout: its lookups share Redis with the worker's scripts, as they do "
            "in production. The 2-worker rows run their click workers throughout."
        )
    notes.append(
        "Closed-loop p99 (wrk, 64 connections at saturation) is mostly queueing, Little's law: "
        "the latency targets are judged on the open-loop rows, at half the row's maximum."
    )
    if sliced := [row.key for row in report.rows if any(one.slices for one in row.again)]:
        notes.append(
            f"Rounds 2 to {options.rounds}: the servers of {', '.join(sliced)} up together, "
            f"loaded in turns, {SLICES} slices each (bench_rows.sliced_round); a round's ratio "
            "is the median of its slices' ratios. The first round measures one row at a "
            "time, and counts the clicks."
        )
    notes += [note for note in (results.workers_note(report), results.starved_note(report)) if note]
    counts = [report.memory.links] if report.memory else []
    counts += [row.creation.links for row in report.growth]
    if counts and min(counts) < FULL_BUCKETS_LINKS:
        notes.append(
            f"Memory with only {min(counts):,} links: most bucket hashes hold a few links, so "
            "per-key overhead dominates; the target is for 1,000,000 links."
        )
    if stolen > STOLEN_NOTED:
        notes.append(
            f"The host took {stolen:.0%} of this machine's CPU time during the run (steal): "
            "other tenants were busy, so absolute rates are low and noisy in this run; the "
            "ratios, measured in interleaved rounds, are less affected."
        )
    report.notes[:0] = notes


async def run_rows(bench: Bench, stack: contextlib.AsyncExitStack) -> None:
    """The pipe row first, in a Redis of its own; then, in one Redis, the links created if
    any row needs them, and the server rows measured one by one."""
    options, report, redis_url = bench.options, bench.report, ""
    codes: list[str] = []
    hot_codes: list[str] = []
    if "pipe" in options.only:
        print(f"inserting {options.links:,} records with redis-cli --pipe ...", flush=True)
        report.pipe = await pipe_rate(bench, options.links)
    if needs_redis(options):
        redis_url = await stack.enter_async_context(fresh_redis(bench, "redis"))
        hot_rows = {"hot", "hot-notrack", "hot-2w"} & set(options.only)
        shared = options.hot_links if hot_rows else 0
        created = await create_links(bench, redis_url, links_needed(options), shared)
        codes, hot_codes, creation, memory = created
        report.creation = creation if "create" in options.only else None
        report.memory = memory if "memory" in options.only else None
        if {"sends", "conversions"} & set(options.only):
            report.sends, report.conversions = await event_rates(
                bench, redis_url, bench.campaign_id, options.events
            )
    redis_ahead_of_load(bench)
    if "nginx" in options.only and not shutil.which("nginx"):
        why = "nginx is not installed (apt-get install -y nginx-light): no ceiling"
        report.rows.append(results.LoadRow("nginx", "", skipped=why))
    (bench.tmp / "hot.paths").write_text("/x\n")  # the reference rows', when no link is tapped
    served = redirector_rows(bench, codes, hot_codes, redis_url) if codes else []
    rows = reference_rows(bench) + served
    for row in rows:
        report.rows.append(await server_row(bench, row))
    await run_rounds(bench, [row for row in rows if row.key in ROUND_ROWS])


# The rows whose ratios are judged (bench_report.evaluate), measured in rounds.
ROUND_ROWS = ("aiohttp", "hot", "hot-notrack", "miss")


async def run_rounds(bench: Bench, rows: list[ServerRow]) -> None:
    """Rounds 2 to --rounds of `rows` (measured once already), each a `sliced_round` (every
    other round in reverse order), its rows' results added to theirs as they came out (a
    failed round too, saying why; clicks are counted in the first round only)."""
    report = bench.report
    measured = [row for row in rows if report.row(row.key)]
    for number in range(2, bench.options.rounds + 1):
        order = measured if number % 2 else measured[::-1]
        for row, again in zip(order, await sliced_round(bench, order, number), strict=True):
            index = next(i for i, done in enumerate(report.rows) if done.key == row.key)
            done = report.rows[index]
            report.rows[index] = replace(done, again=(*done.again, again))


async def run_growth(bench: Bench) -> None:
    """`--scale`: for each number of links a fresh Redis, the links created, the miss row."""
    for links in bench.options.scale:
        async with fresh_redis(bench, f"redis-{links}") as redis_url:
            codes, _, creation, memory = await create_links(bench, redis_url, links)
            redis_ahead_of_load(bench)
            [row] = redirector_rows(bench, codes, [], redis_url)
            row = replace(row, open_loop=False)  # growth is judged on the closed-loop p99
            del codes  # the next size's creation has no use for these
            miss = await server_row(bench, row)
        bench.report.growth.append(results.Growth(creation, memory, miss))


async def run(options: Options, command: str) -> Report:
    pinning = procs.Pinning.plan(sorted(os.sched_getaffinity(0)), bool(shutil.which("taskset")))
    report = Report(
        started_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=command,
        machine=procs.machine_info(),
        settings={k: v for k, v in asdict(options).items() if isinstance(v, int | float)},
    )
    # SIGTERM stops the run as Ctrl-C does: the task is cancelled, every server stopped.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    if pinning.load is not None:  # this script (the creation client) stays off the server's core
        os.sched_setaffinity(0, {int(pinning.load)})
    cpu_times = psutil.cpu_times()
    with tempfile.TemporaryDirectory(prefix="smslinks-bench-") as tmp:
        bench = Bench(options, Path(tmp), pinning, report)
        bench.user_agents = [user_agent.string for user_agent in load_user_agents()]
        bench.user_agents_file.write_text("".join(f"{ua}\n" for ua in bench.user_agents))
        async with contextlib.AsyncExitStack() as stack:
            await (run_growth(bench) if options.scale else run_rows(bench, stack))
        stolen = procs.stolen_share(cpu_times, psutil.cpu_times())
        report.machine["CPU time taken by the host during the run (steal)"] = f"{stolen:.1%}"
        add_notes(bench, stolen)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(arguments)
    pipe = "pipe" in options.only
    tools = ["wrk", *(["redis-server"] if pipe or needs_redis(options) else [])]
    for tool in tools + (["redis-cli"] if pipe else []):
        if shutil.which(tool) is None:
            package = "redis-tools" if tool == "redis-cli" else tool
            sys.exit(f"bench: {tool} is not installed: apt-get install -y {package}")
    command = shlex.join(["python", "-m", "loadtests.bench", *arguments])
    try:
        report = asyncio.run(run(options, command))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("bench: interrupted; every server it started has been stopped")
    except (procs.StartError, SeedError) as exc:
        sys.exit(f"bench: {exc}")
    except TimeoutError:
        sys.exit(f"bench: creating the links took over {options.seed_timeout:.0f} s")
    options.out_dir.mkdir(parents=True, exist_ok=True)
    stem = options.out_dir / ("scale" if options.scale else "latest")
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_bytes(orjson.dumps(report_json(report), option=orjson.OPT_INDENT_2) + b"\n")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    print(f"{render_markdown(report)}\nwrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
