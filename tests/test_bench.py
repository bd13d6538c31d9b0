"""The benchmark's logic: wrk's results, click accounting, targets, ratios and options. No load
and no timing assertions here; `make bench` measures."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import math
import os
import re
import shutil
import statistics
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from pytest_aiohttp import AiohttpServer
from redis.asyncio import Redis

from loadtests import bench as bench_module
from loadtests import bench_open
from loadtests import bench_procs as procs
from loadtests import bench_report as results
from loadtests import bench_rows as rows
from loadtests import bench_store as store
from loadtests.bench import parse_args, run_rows
from loadtests.bench_open import OpenLoopResult
from loadtests.bench_procs import Pinning, WrkResult, pinned, run_wrk, wrk_command
from loadtests.bench_report import ClickCount, Cpu, Growth, LoadRow, Recorded, Report, evaluate
from loadtests.seed import recipient
from redirector import metrics
from redirector.store.keys import hit_queue_key, link_key
from redirector.store.record import decode
from tests.redis_server import RedisServer
from tests.user_agents import ANDROID, IPHONE, WINDOWS

# What bench.lua's done() printed for a run with socket errors and 4xx answers.
WRK_JSON = (
    '{"requests": 190000, "seconds": 10.0, "p50_ms": 0.74, "p99_ms": 1520.0, '
    '"socket_errors": 16, "bad_status": 40}'
)


def test_wrk_reports_one_json_line() -> None:
    result = WrkResult.from_json(WRK_JSON)
    assert (result.requests, result.requests_per_second) == (190_000, 19_000.0)
    assert (result.p50_ms, result.p99_ms) == (0.74, 1520.0)
    assert (result.socket_errors, result.bad_status, result.errors) == (16, 40, 56)


def test_wrk_command_pins_and_runs_whole_seconds() -> None:
    command = wrk_command("http://127.0.0.1:1/", threads=2, connections=64, seconds=10, cpus="1")
    # Before Redis and the click worker on its core, when we may raise its priority.
    raised = procs.LOAD_PRIORITY if procs._may_run_real_time() else []
    assert command[: 4 + len(raised)] == ["taskset", "-c", "1", *raised, "wrk"]
    assert "-d10s" in command
    assert command[-2:] == ["--", "2"]  # bench.lua spreads the threads' walks over the paths
    unpinned = wrk_command("u", threads=1, connections=1, seconds=0.2, cpus=None)
    assert unpinned[len(raised)] == "wrk" and "-d1s" in unpinned  # wrk needs at least a second
    assert "-d3s" in wrk_command("u", threads=1, connections=1, seconds=2.6, cpus=None)


@pytest.mark.parametrize("line", ["{", "[1]", '{"requests": 1}', WRK_JSON.replace("10.0", '"10"')])
def test_an_unreadable_wrk_result_is_a_start_error(line: str) -> None:
    with pytest.raises(procs.StartError, match="unreadable result"):
        WrkResult.from_json(line)


@pytest.mark.parametrize("script", [f"print({WRK_JSON!r}); raise SystemExit(3)", "pass"])
async def test_wrk_exiting_or_printing_nothing_is_a_start_error(
    script: str, tmp_path: Path
) -> None:
    with pytest.raises(procs.StartError, match=r"wrk exited with [03] and no result"):
        await run_wrk([sys.executable, "-c", script], tmp_path / "paths", tmp_path / "agents", 1)


async def test_a_row_with_an_unreadable_wrk_result_is_skipped_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (wrk := tmp_path / "bin" / "wrk").parent.mkdir()
    wrk.write_text('#!/bin/sh\necho \'{"requests": "many"}\'\n')
    wrk.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrk.parent}{os.pathsep}{os.environ['PATH']}")
    options = parse_args(["--only", "aiohttp", "--warmup", "0"])
    bench = rows.Bench(options, tmp_path, Pinning(None, None, None), Report("", "", {}, {}))
    async with contextlib.AsyncExitStack() as stack:
        await run_rows(bench, stack)
    [row] = bench.report.rows
    assert (row.key, row.result) == ("aiohttp", None) and "unreadable result" in str(row.skipped)


def test_reference_servers_listen_on_loopback_only(tmp_path: Path) -> None:
    # The benchmark only ever loads 127.0.0.1.
    procs.nginx_command(tmp_path, 8999, "https://shop.example/p?a=1")
    listens = re.findall(r"\blisten\s+([^;]+);", (tmp_path / "nginx.conf").read_text())
    assert listens == ["127.0.0.1:8999"]
    redis = procs.redis_command(7000, tmp_path)
    assert redis[redis.index("--bind") + 1] == "127.0.0.1"


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
async def test_wrk_taps_the_paths_in_turn_with_the_user_agents_of_the_mix(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    seen: list[tuple[str, str]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers["User-Agent"]))
        return web.Response(status=302 if request.path == "/known" else 404)

    (app := web.Application()).router.add_get("/{code}", answer)
    url = str((await aiohttp_server(app)).make_url("/"))
    (tmp_path / "paths").write_text("/known\n/unknown\n")
    (tmp_path / "agents").write_text(f"{IPHONE}\n{ANDROID}\n{WINDOWS}\n")
    command = wrk_command(url, threads=1, connections=2, seconds=1, cpus=None)
    result = await run_wrk(command, tmp_path / "paths", tmp_path / "agents", 1)
    # Requests in flight when wrk stops were served but not counted.
    assert 0 < result.requests <= len(seen) <= result.requests + 2
    assert 0 < result.bad_status < result.requests and result.socket_errors == 0
    paths, agents = Counter(path for path, _ in seen), Counter(agent for _, agent in seen)
    # In turn, not at random: the two paths are tapped as often, give or take those in flight.
    assert set(paths) == {"/known", "/unknown"} and abs(paths["/known"] - paths["/unknown"]) <= 2
    assert set(agents) == {IPHONE, ANDROID, WINDOWS}  # drawn at random for every request


def test_open_loop_plan_and_percentiles() -> None:
    # No client above 500 req/s: few busy h2load processes, each one client.
    assert bench_open.plan(12_345.0) == (25, 12_345.0 / 25)
    assert bench_open.plan(40.0) == (1, 40.0)
    assert bench_open.plan(5_000.0, 100.0) == (50, 100.0)
    ordered = [float(value) for value in range(1, 101)]
    assert (
        bench_open.percentile(ordered, 0.5) == 50.0 and bench_open.percentile(ordered, 0.99) == 99.0
    )
    assert bench_open.percentile([3.0], 0.99) == 3.0 and bench_open.percentile([], 0.5) == 0.0
    logs = [
        "1700000000000000\t302\t800\n1700000000010000\t302\t1200\n",
        "1\t-1\t5000\n1\t404\t300\n",
    ]
    run = bench_open.read_logs(logs, target_rps=0.5, clients=2, seconds=4.0)
    assert (run.requests, run.achieved_rps, run.errors) == (4, 1.0, 2)  # a failure and a 404
    assert (run.p50_ms, run.p99_ms, run.max_ms) == (0.8, 5.0, 5.0)


def test_open_loop_latency_from_when_each_request_was_due() -> None:
    # One client at 1,000 req/s: due at 0, 1, 2, 3 ms. The second answer took 2.5 ms, so the
    # third went out 1.5 ms late: 0.1 ms from its sending, 1.6 ms from when it was due.
    log = "1000000\t302\t100\n1001000\t302\t2500\n1003500\t302\t100\n1003600\t302\t100\n"
    run = bench_open.read_logs([log], target_rps=1000.0, clients=1, seconds=1.0)
    assert run.p99_ms == 2.5 and run.max_ms == 2.5
    # Due at 1003 ms: sent 0.5 ms late, answered 0.1 ms later -> 0.6 ms; the last, 0.7 ms.
    assert run.p99_scheduled_ms == 2.5
    late = bench_open.read_logs(
        ["1000000\t302\t100\n1004000\t302\t100\n"], target_rps=1000.0, clients=1, seconds=1.0
    )
    assert late.p99_ms == 0.1 and late.p99_scheduled_ms == 3.1  # due at 1001 ms, done at 1004.1
    # Nothing held that one back: h2load itself sent it 3 ms late, which is not judged.
    assert late.p99_server_ms == 0.1 and late.generator_late_p99_ms == 3.0


def test_open_loop_judged_latency_leaves_out_h2loads_own_stalls_not_the_servers() -> None:
    # Due at 0, 1, 2, 3 ms. h2load stalls 4 ms before the second (nothing outstanding), then
    # sends its backlog as fast as answers come: from when due 4.1, 3.2 and 2.3 ms, but the
    # server answered each in 0.1 ms.
    stalled = "1000000\t302\t100\n1005000\t302\t100\n1005100\t302\t100\n1005200\t302\t100\n"
    run = bench_open.read_logs([stalled], target_rps=1000.0, clients=1, seconds=1.0)
    assert run.p99_scheduled_ms == 4.1 and run.generator_late_p99_ms == 4.0
    assert run.p99_server_ms == 0.1
    # The server holds the second answer 2.5 ms; the third goes out at once when it arrives:
    # its wait behind that answer is the server's and counts (1.6 ms from its due time).
    blocked = "1000000\t302\t100\n1001000\t302\t2500\n1003500\t302\t100\n"
    run = bench_open.read_logs([blocked], target_rps=1000.0, clients=1, seconds=1.0)
    assert run.generator_late_p99_ms == 0.0
    assert sorted([run.p99_server_ms, run.p99_ms]) == [2.5, 2.5]


def test_open_loop_judged_latency_still_counts_a_wait_behind_an_answer_after_a_stall() -> None:
    # h2load stalls 4 ms early on and catches up; later the server holds one answer 3 ms, and
    # the request behind it waits 2 ms for it (due at 7 ms, sent at 9 ms): counted in full.
    log = "".join(
        f"{start}\t302\t{micros}\n"
        for start, micros in [
            (1_000_000, 100), (1_005_000, 100), (1_005_100, 100), (1_005_200, 100),
            (1_005_300, 100), (1_005_400, 100), (1_006_000, 3_000), (1_009_000, 100),
        ]
    )  # fmt: skip
    run = bench_open.read_logs([log], target_rps=1000.0, clients=1, seconds=1.0)
    # Replayed: due at 6 ms, answered at 9; the next, due at 7 ms, sent at 9 and answered at
    # 9.1: 2.1 ms from when it was due (the p99 of 8 is the largest: the 3 ms answer).
    assert run.p99_server_ms == 3.0
    # The same with that next answer taking 1.5 ms: 3.5 ms from when it was due, the 2 ms it
    # waited included (forgiving it for the earlier stall would give 1.5 ms).
    slower = log.replace("1009000\t302\t100", "1009000\t302\t1500")
    run = bench_open.read_logs([slower], target_rps=1000.0, clients=1, seconds=1.0)
    assert run.p99_server_ms == 3.5 and run.generator_late_p99_ms == 4.0


async def test_every_rows_open_loop_has_the_same_clients_and_reads_the_handlers_p99(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: dict[str, tuple[float, float]] = {}

    async def fake_open_loop(*args: Any, **kwargs: Any) -> OpenLoopResult:
        call = inspect.signature(bench_open.run_open_loop).bind(*args, **kwargs)
        call.apply_defaults()
        given = call.arguments  # req/s in all, at most a client, however they were passed
        asked[given["base_url"]] = (given["rate"], given["client_rps_max"])
        return _open_loop(100, 100, p99=1.0)

    scrapes = iter([{0.001: 0.0, math.inf: 0.0}, {0.001: 99.0, math.inf: 100.0}] * 3)

    async def latency_buckets(base_url: str) -> dict[float, float]:
        return next(scrapes)

    monkeypatch.setattr(rows, "run_open_loop", fake_open_loop)
    monkeypatch.setattr(rows, "latency_buckets", latency_buckets)
    bench = rows.Bench(parse_args([]), tmp_path, Pinning(None, None, None), Report("", "", {}, {}))
    (tmp_path / "paths").write_text("/a\n/b\n")
    for key, port in (("hot", 1), ("miss", 2), ("miss-2w", 3)):
        row = rows.ServerRow(key, "", ["true"], port, [], tmp_path / "paths", open_loop=True)
        measured = await rows.open_loop(bench, row, LoadRow(key, "", _result(1_000)))
        assert measured.open_loop is not None and measured.open_loop.handler_p99_ms == 1.0
    # Half of wrk's rate, every row's clients alike: the miss rows' too (fewer, busier
    # processes, bench_open.py).
    assert asked == dict.fromkeys(
        ("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"),
        (500.0, bench_open.CLIENT_RPS_MAX),
    )


async def test_the_redirectors_own_p99_comes_from_its_latency_histogram(
    aiohttp_server: AiohttpServer,
) -> None:
    """The open loop also reads the redirector's histogram before and after: the bound of the
    bucket holding the 99th percentile of what it answered meanwhile."""
    counts = metrics.RedirectCounts()
    registry = CollectorRegistry()
    registry.register(metrics.RedirectCollector(counts))

    async def exposition(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry))

    app = web.Application()
    app.router.add_get("/metrics", exposition)
    server = await aiohttp_server(app)
    base_url = f"http://127.0.0.1:{server.port}"
    for _ in range(1_000):  # answered before the run: not counted
        counts.observe(0.02)
    before = await rows.latency_buckets(base_url)
    for seconds in [0.0003] * 900 + [0.0014] * 95 + [0.0027] * 5:
        counts.observe(seconds)
    after = await rows.latency_buckets(base_url)
    assert bench_open.bucket_quantile(before, after, 0.99) == 0.0015
    assert bench_open.bucket_quantile(before, after, 0.999) == 0.003
    assert bench_open.bucket_quantile(before, after, 0.5) == 0.0005
    assert bench_open.bucket_quantile(after, after, 0.99) is None  # nothing answered
    counts.observe(2.0)
    assert bench_open.bucket_quantile(after, await rows.latency_buckets(base_url), 0.99) == (
        math.inf
    )


async def test_a_recording_row_waits_until_its_click_work_is_applied(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    redis = Redis.from_url(own_redis.url)
    bench = rows.Bench(parse_args([]), tmp_path, Pinning(None, None, None), Report("", "", {}, {}))
    bench.store = redis
    row = rows.ServerRow("hot", "", ["true"], 1, [], tmp_path, {"CLICK_TRACKING": "true"})
    await redis.rpush(hit_queue_key(3), b"[]")  # a chunk not applied yet
    waiting = asyncio.create_task(rows.drained(bench, row))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    await redis.delete(hit_queue_key(3))  # applied and trimmed
    await asyncio.wait_for(waiting, timeout=5)
    # A row that records nothing has nothing to wait for.
    await redis.rpush(hit_queue_key(3), b"[]")
    silent = replace(row, env={"CLICK_TRACKING": "false"})
    await asyncio.wait_for(rows.drained(bench, silent), timeout=0.5)
    await redis.aclose()


def test_h2load_command_is_one_paced_http1_client() -> None:
    command = bench_open.h2load_command(Path("u"), 99.5, 10, IPHONE, Path("l"), "1")
    # Before Redis and the click worker on its core, when we may raise its priority.
    raised = procs.LOAD_PRIORITY if procs._may_run_real_time() else []
    assert command[: 4 + len(raised)] == ["taskset", "-c", "1", *raised, "h2load"]
    assert {"--h1", "-c1", "--rps=99.500", "-D10", "--log-file=l"} <= set(command)
    assert command[-2:] == ["-H", f"User-Agent: {IPHONE}"]


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load is not installed")
async def test_open_loop_sends_the_rate_each_client_its_codes_and_user_agent(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    seen: list[tuple[str, str]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers["User-Agent"]))
        return web.Response(status=302)

    (app := web.Application()).router.add_get("/{code}", answer)
    base_url = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    agents = [IPHONE, ANDROID, WINDOWS]
    paths = [f"/c{i}" for i in range(2000)]
    run = await bench_open.run_open_loop(base_url, paths, agents, 750.0, 1.0, tmp_path, None)
    assert (run.clients, run.target_rps, run.errors) == (2, 750.0, 0)
    assert 250 <= run.requests <= 800 and 0 < run.p50_ms <= run.p99_ms <= run.max_ms
    assert run.p99_ms <= run.p99_scheduled_ms
    # Client 0 taps the even codes with the first User-Agent, client 1 the odd ones with another.
    by_agent = {agent: {int(path[2:]) % 2 for path, ua in seen if ua == agent} for agent in agents}
    assert by_agent == {IPHONE: {0}, ANDROID: {1}, WINDOWS: set()}
    assert len({path for path, _ in seen}) == len(seen)  # each code once: misses stay misses
    seen.clear()  # fewer paths than clients (the reference rows' one path): each taps one
    await bench_open.run_open_loop(base_url, ["/x"], agents, 750.0, 1.0, tmp_path, None)
    assert {path for path, _ in seen} == {"/x"} and {ua for _, ua in seen} == {IPHONE, ANDROID}


def _result(rps: float, p99: float = 1.0, bad_status: int = 0) -> WrkResult:
    return WrkResult(int(rps * 10), 10.0, 0.5, p99, 0, bad_status, requests_per_second=rps)


def _clicks(sent: int = 250_000, difference: int = 0, **kwargs: Any) -> ClickCount:
    """`sent` 302s of which `difference` more (or fewer) were recorded, within 64 in flight."""
    count = ClickCount(sent, clicks=sent + difference, bots=0, slack=64, settled=True)
    return replace(count, **kwargs)


def _open_loop(target: float, achieved: float, p99: float, errors: int = 0) -> OpenLoopResult:
    """`p99` the judged one (h2load's stalls out); from when due, twice that."""
    requests = int(achieved * 10)
    return OpenLoopResult(
        target, 100, requests, 10.0, achieved, 0.4, p99 / 2, p99 * 3, errors, p99 * 2, p99, 0.5
    )


def _report(*, nginx: bool = True, url_length: int = 135) -> Report:
    settings: dict[str, str | int | float] = {"connections": 64, "workers": 2}
    report = Report("2026-01-01 00:00 UTC", "python -m loadtests.bench", {}, settings)
    if nginx:
        report.rows.append(LoadRow("nginx", "", _result(50_000)))
    report.rows += [
        LoadRow("aiohttp", "", _result(40_000)),
        LoadRow(
            "hot",
            "",
            _result(25_000, p99=2.5),
            clicks=_clicks(difference=3),
            open_loop=_open_loop(12_500, 12_400, p99=1.8),
        ),
        LoadRow("hot-notrack", "", _result(30_000)),
        # Its fixed rate was not held: its p99 says nothing.
        LoadRow(
            "miss",
            "",
            _result(10_000, p99=9.0, bad_status=3),
            open_loop=_open_loop(5_000, 4_000, p99=2.0),
        ),
        LoadRow("hot-2w", "", skipped="redirector did not start"),
    ]
    report.pipe = results.Creation(links=1_000_000, seconds=1.6, links_per_second=625_000.0)
    report.creation = results.Creation(links=1_000_000, seconds=8.0, links_per_second=125_000.0)
    report.memory = results.Memory(1_000_000, url_length, 85.0, 60.0)
    report.sends = results.Creation(500_000, 8.0, 62_500.0)
    report.conversions = results.Creation(500_000, 50.0, 10_000.0)
    return report


def test_evaluate_targets() -> None:
    # aiohttp 40k; hot 25k, no recording 30k; miss 10k; open loop: hot p99 1.8 ms at its rate,
    # miss 2.0 ms at 4,000 of 5,000 req/s; clicks +3 within 64 in flight; hot-2w skipped;
    # 625,000 records/s piped, 125,000 links/s through the API; 85 B per link.
    checks = evaluate(_report())
    assert checks[0][1:] == (">= 1", "0.62", "fail")  # 25k / 40k, rounded
    assert checks[2][1:] == (">= 0.9", "0.83", "fail")  # 25k / 30k
    assert checks[3][1:] == ("<= 2 ms", "1.80 ms at 12,400 of 12,500 req/s", "pass")
    assert checks[8][1:] == (">= 0.17", "0.20", "pass")  # 125k / 625k
    assert [(c.name, c.status) for c in checks] == [
        ("hot path / bare aiohttp", "fail"),
        ("miss path / hot path", "fail"),
        ("hot path with recording / without", "fail"),
        ("hot path p99, open loop at half its maximum", "pass"),
        ("miss path p99, open loop at half its maximum", "fail"),
        ("recorded clicks = sent (hot)", "pass"),
        ("recorded clicks = sent (miss)", "n/a"),  # not counted here
        ("recorded clicks = sent (hot-2w)", "n/a"),
        ("batch creation / redis-cli --pipe", "pass"),
        ("batch creation rate", "pass"),
        ("Redis memory per link (135-byte URL)", "fail"),
        ("sends ingest rate", "pass"),  # 62,500 >= 50,000
        ("conversions ingest rate", "fail"),  # 10,000 < 20,000
        # No catch-up measured here: shown as not measured, never judged.
        ("hot path with recording / without, its click work's catch-up included (shown)", "n/a"),
        ("miss path / hot path, their click work's catch-up included (shown)", "n/a"),
    ]
    report = _report()
    report.rows[4] = replace(report.rows[4], open_loop=_open_loop(5_000, 4_800, p99=2.0))
    report.rows[2] = replace(report.rows[2], open_loop=_open_loop(12_500, 12_400, p99=2.1))
    report.pipe = replace(report.pipe, links_per_second=750_000.0)  # type: ignore[type-var]
    report.memory = replace(report.memory, total_per_link=80.0)  # type: ignore[type-var]
    assert [check.status for check in evaluate(report)[3:5]] == ["fail", "pass"]
    assert [check.status for check in evaluate(report)[8:11]] == ["fail", "pass", "pass"]
    report.rows[4] = replace(report.rows[4], open_loop=_open_loop(5_000, 4_800, 2.0, errors=1))
    assert evaluate(report)[4].status == "fail"  # an error answer is not a latency


def _again(*values: float | None) -> tuple[LoadRow, ...]:
    """Further rounds of a row: their req/s, None for one that failed."""
    return tuple(
        LoadRow("x", "", _result(value)) if value else LoadRow("x", "", skipped="no server")
        for value in values
    )


def test_ratios_are_judged_on_the_median_of_each_rounds_ratio() -> None:
    report = _report()
    report.rows[1] = replace(report.rows[1], again=_again(31_000, 45_000))  # aiohttp
    report.rows[2] = replace(report.rows[2], again=_again(41_000, 39_000))  # hot
    report.rows[3] = replace(report.rows[3], again=_again(None, 36_000))  # hot-notrack
    # hot / aiohttp by round: 25/40, 41/31, 39/45 -> 0.625, 1.32, 0.87; median 0.87 (the
    # ratio of the medians would be 39/40). A round that failed (or was not run) counts as
    # 0: miss measured once, 10k / 25k then nothing; recording 25/30, failed, 39/36.
    checks = evaluate(report)
    assert [check.measured for check in checks[:3]] == [
        "0.87, the median of rounds 0.62, 1.32, 0.87",
        "0.00, the median of rounds 0.40, failed, failed",
        "0.83, the median of rounds 0.83, failed, 1.08",
    ]
    assert [check.status for check in checks[:3]] == ["fail", "fail", "fail"]
    table = results.render_markdown(report).split("| rounds |", 1)[1].split("\n\n", 1)[0]
    assert "| hot | 25,000 | 41,000 | 39,000 | 39,000 |" in table
    assert "| hot-notrack | 30,000 | failed: no server | 36,000 | 33,000 |" in table
    assert "miss" not in table  # measured once: no rounds to show
    # Two rounds: the lower ratio, not the mean of a pass (1.32) and a fail (0.625).
    report.rows[1] = replace(report.rows[1], again=_again(31_000))
    report.rows[2] = replace(report.rows[2], again=_again(41_000))
    assert evaluate(report)[0].measured == "0.62, the median of rounds 0.62, 1.32"
    # Recording on/off over the load and its click work's catch-up (shown, not judged):
    # 250,000 requests in 10 s + 2.5 s -> 20,000 req/s, against 30,000 without recording.
    hot = report.rows[2]
    report.rows[2] = replace(hot, catch_up_seconds=2.5, again=())
    report.rows[3] = replace(report.rows[3], again=())
    shown = evaluate(report)[-2]
    assert (shown.measured, shown.status) == ("0.67", "n/a")
    # Miss/hot, both over their load and catch-up: 100,000 requests in 10 s + 2.5 s -> 8,000
    # req/s, against the hot row's 20,000; without the miss row's catch-up, not measured.
    assert evaluate(report)[-1].measured == "not measured"
    report.rows[4] = replace(report.rows[4], catch_up_seconds=2.5)
    shown = evaluate(report)[-1]
    assert (shown.measured, shown.status) == ("0.40", "n/a")


async def test_rounds_interleave_the_ratio_rows_and_keep_a_failed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = parse_args(["--only", "aiohttp,hot,miss", "--rounds", "3", "--duration", "7"])
    bench = rows.Bench(options, tmp_path, Pinning(None, None, None), Report("", "", {}, {}))
    row_specs = [
        rows.ServerRow(key, "", ["true"], 1, [], tmp_path, open_loop=True, count_clicks=True)
        for key in ("aiohttp", "hot", "miss")
    ]
    bench.report.rows = [LoadRow(spec.key, "", _result(1_000)) for spec in row_specs]
    calls: list[tuple[int, list[str]]] = []

    async def sliced(bench: rows.Bench, order: list[rows.ServerRow], number: int) -> list[LoadRow]:
        calls.append((number, [row.key for row in order]))
        if number == 2:
            return [LoadRow(row.key, "", skipped="did not start") for row in order]
        return [
            LoadRow(row.key, "", _result(1_000 * i), slices=(1.0,)) for i, row in enumerate(order)
        ]

    monkeypatch.setattr(bench_module, "sliced_round", sliced)
    await bench_module.run_rounds(bench, row_specs)
    # Round 2 in reverse, round 3 in order; each row's results where they belong.
    assert calls == [(2, ["miss", "hot", "aiohttp"]), (3, ["aiohttp", "hot", "miss"])]
    assert [[one.skipped or _rps(one) for one in row.again] for row in bench.report.rows] == [
        ["did not start", 0.0],
        ["did not start", 1_000.0],
        ["did not start", 2_000.0],
    ]


class _FakeService:
    """Stands for a started click worker: `paused` holds the names of those paused now."""

    def __init__(self, name: str, paused: set[str]) -> None:
        self.name, self.pid, self._paused = name, 0, paused

    @contextlib.contextmanager
    def paused(self) -> Any:
        assert self.name not in self._paused  # never paused twice: the inner end resumes
        self._paused.add(self.name)
        yield
        self._paused.remove(self.name)


async def test_a_sliced_round_takes_turns_each_row_beside_its_own_click_work_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = parse_args(["--only", "aiohttp,hot,miss", "--duration", "7"])
    bench = rows.Bench(options, tmp_path, Pinning(None, None, None), Report("", "", {}, {}))
    tracking = {"CLICK_TRACKING": "true"}
    aiohttp_row = rows.ServerRow("aiohttp", "", [], 1, [], tmp_path / "hot.paths")
    hot = replace(aiohttp_row, key="hot", env=tracking, open_loop=True, pause_clicker=True)
    samples = (tmp_path / "miss-round-2.paths", tmp_path / "miss-round-3.paths")
    miss = replace(hot, key="miss", paths=tmp_path, round_paths=samples, pause_clicker=False)
    broken = replace(aiohttp_row, key="broken")
    paused: set[str] = set()
    events: list[tuple[str, str, frozenset[str]]] = []  # what, row, click workers paused

    @contextlib.contextmanager
    def started(bench: rows.Bench, row: rows.ServerRow) -> Any:
        clicker = _FakeService(row.key, paused) if row.key in ("hot", "miss") else None
        yield _FakeService(f"{row.key} server", paused), clicker
        events.append(("stop", row.key, frozenset()))

    async def ready(bench: rows.Bench, row: rows.ServerRow, server: Any) -> None:
        events.append(("ready", row.key, frozenset(paused)))
        assert row.paths == (samples[1] if row.key == "miss" else row.paths)
        if row.key == "broken":
            raise procs.StartError("broken: exited with 1")

    async def measured_load(
        bench: rows.Bench, row: rows.ServerRow, server: Any, seconds: float
    ) -> tuple[WrkResult, None]:
        events.append(("load", row.key, frozenset(paused)))
        assert seconds == 2.0  # 7 / 3 s, in whole seconds
        assert row.paths == (samples[1] if row.key == "miss" else tmp_path / "hot.paths")
        number = sum(event[0] == "load" for event in events)
        rps = {"aiohttp": 1_000.0, "hot": 900.0, "miss": 600.0}[row.key] + number
        return WrkResult(int(rps * 2), 2.0, 0.5, number, 0, 0, rps), None

    async def drained(bench: rows.Bench, row: rows.ServerRow) -> float | None:
        events.append(("drained", row.key, frozenset(paused)))
        return 0.5 if row.key == "hot" else None

    async def open_loop(bench: rows.Bench, row: rows.ServerRow, done: LoadRow) -> LoadRow:
        events.append(("open loop", row.key, frozenset(paused)))
        assert done.result is not None
        rate = done.result.requests_per_second / 2
        return replace(done, open_loop=_open_loop(rate, rate, p99=1.0))

    for name, fake in [("_started", started), ("_ready", ready), ("drained", drained)]:
        monkeypatch.setattr(rows, name, fake)
    monkeypatch.setattr(rows, "measured_load", measured_load)
    monkeypatch.setattr(rows, "open_loop", open_loop)
    done = await rows.sliced_round(bench, [aiohttp_row, hot, broken, miss], 3)
    # Every server up first (the warm-ups' click work applied with every worker running),
    # then three turns, every other one reversed; the broken row is left out.
    loads = [key for what, key, _ in events if what == "load"]
    assert loads == ["aiohttp", "hot", "miss", "miss", "hot", "aiohttp", "aiohttp", "hot", "miss"]
    assert not events[0][2] and all(not paused for what, _, paused in events if what == "ready")
    # Only the row's own click worker runs beside its load and after it; the hot row's not
    # even beside its load (as in round 1, where it is the only one).
    alone = {
        ("load", "aiohttp"): {"hot", "miss"},
        ("drained", "aiohttp"): {"hot", "miss"},
        ("load", "hot"): {"hot", "miss"},
        ("open loop", "hot"): {"hot", "miss"},
        ("drained", "hot"): {"miss"},
        ("load", "miss"): {"hot"},
        ("open loop", "miss"): {"hot"},
        ("drained", "miss"): {"hot"},
    }
    first = next(i for i, event in enumerate(events) if event[0] == "load")
    assert all(what == "drained" and not now for what, _, now in events[4:first])  # warm-ups'
    measured = [event for event in events[first:] if event[0] != "stop"]
    assert all(alone[what, key] == paused_now for what, key, paused_now in measured), measured
    after = [measured[i + 1][:2] for i, event in enumerate(measured) if event[0] == "load"]
    assert after == [("drained", key) for key in loads]  # its click work, before the next
    assert not paused
    aiohttp_done, hot_done, broken_done, miss_done = done
    assert broken_done.skipped and "exited with 1" in broken_done.skipped
    assert aiohttp_done.slices == (1_001.0, 1_006.0, 1_007.0)
    assert miss_done.slices == (603.0, 604.0, 609.0)
    assert hot_done.result is not None and hot_done.result.requests == sum(
        int(rps * 2) for rps in hot_done.slices
    )
    assert (hot_done.catch_up_seconds, aiohttp_done.catch_up_seconds) == (1.5, None)
    assert hot_done.open_loop is not None and aiohttp_done.open_loop is None
    assert hot_done.open_loop.target_rps == hot_done.result.requests_per_second / 2
    # A round's ratio is the median of its slices' ratios.
    report = Report("", "", {}, {})
    report.rows = [replace(one, again=(one,)) for one in done]
    _, ratios = report.round_ratio("miss", "hot")
    assert ratios[1] == statistics.median_low([603 / 902, 604 / 905, 609 / 908])


async def test_a_round_whose_servers_do_not_start_says_so_for_each_of_its_rows(
    tmp_path: Path,
) -> None:
    bench = rows.Bench(parse_args([]), tmp_path, Pinning(None, None, None), Report("", "", {}, {}))
    one = rows.ServerRow("aiohttp", "", [sys.executable, "-c", "pass"], 1, [("/x", "")], tmp_path)
    two = replace(one, key="hot")
    done = await rows.sliced_round(bench, [one, two], 2)  # both exit at once
    assert [row.key for row in done] == ["aiohttp", "hot"]
    assert all(row.skipped and "exited with 0" in row.skipped for row in done)


def _rps(row: LoadRow) -> float | None:
    return row.result.requests_per_second if row.result else None


def test_the_open_loop_p99_is_the_median_of_the_rounds_and_a_round_without_fails() -> None:
    report = _report()
    hot = report.rows[2]
    spiky = (_open_loop(12_500, 12_500, p99=39.0), _open_loop(12_500, 12_450, p99=0.9))
    again = tuple(LoadRow("hot", "", _result(25_000), open_loop=run) for run in spiky)
    report.rows[2] = replace(hot, again=again)  # 1.8 (first round), 39, 0.9
    check = evaluate(report)[3]
    assert (check.measured, check.status) == (
        "1.80 ms, the median of 3 rounds (1.80 ms, 39.00 ms, 0.90 ms)",
        "pass",
    )
    report.rows[2] = replace(hot, again=again[:1])  # two rounds, 1.8 and 39: the higher
    assert evaluate(report)[3].status == "fail"
    not_held = LoadRow("hot", "", _result(25_000), open_loop=_open_loop(12_500, 9_000, p99=0.5))
    not_run = LoadRow("hot", "", skipped="did not start")
    report.rows[2] = replace(hot, again=(not_held, not_run))  # 1.8, not held, not run
    check = evaluate(report)[3]
    assert (check.measured, check.status) == (
        "none held, the median of 3 rounds (1.80 ms, 0.50 ms (rate not held), not run)",
        "fail",
    )
    table = results.render_markdown(report)
    assert "| hot, round 2 | 12,500 | 9,000 |" in table
    assert "| hot, round 3 | skipped: did not start |" in table
    # One round whose rate was not held: its own p99, said to be not judged.
    report.rows[2] = replace(hot, open_loop=_open_loop(12_500, 9_000, p99=0.5))
    check = evaluate(report)[3]
    assert check.measured == "0.50 ms at 9,000 of 12,500 req/s, rate not held"
    assert check.status == "fail"


def test_targets_are_not_applicable_without_their_conditions() -> None:
    report = _report(nginx=False, url_length=90)
    report.rows[1] = replace(report.rows[1], clicks=_clicks(45_000, settled=False), open_loop=None)
    report.pipe, report.sends = None, None
    # The ratios need no ceiling, only their rows; the rate no pipe row.
    statuses = ["fail", "fail", "fail", "n/a", "fail", "n/a", "n/a", "n/a", "n/a", "pass"]
    statuses += ["n/a", "n/a", "fail", "n/a", "n/a"]
    assert [check.status for check in evaluate(report)] == statuses
    assert evaluate(report)[5].measured.endswith("; counters still changing")
    empty = Report("now", "cmd", {}, {"connections": 64})
    assert {check.status for check in evaluate(empty)} == {"n/a"}


def test_the_report_shows_1_against_2_workers_and_what_limits_them() -> None:
    report = _report()
    report.rows[-1] = LoadRow("hot-2w", "", _result(30_000), cpu=Cpu(1.3, 0.5, 0.2))
    report.rows.append(LoadRow("miss-2w", "", _result(15_000)))
    text = results.render_markdown(report)
    assert (
        "| hot | 25,000 | 30,000 | 1.20 |" in text and "| miss | 10,000 | 15,000 | 1.50 |" in text
    )
    report.machine["cores"] = "2"
    note = results.workers_note(report)
    assert note is not None and "servers kept 1.30 cores busy, wrk 0.50 and Redis 0.20" in note
    report.machine["cores"] = "8"
    assert results.workers_note(report) is None  # cores to spare: nothing to explain


def test_a_server_that_did_not_get_its_core_is_noted() -> None:
    report = _report()
    assert results.starved_note(report) is None  # no CPU measured
    report.rows[2] = replace(report.rows[2], cpu=Cpu(0.95, 0.4, 0.1))
    report.rows[3] = replace(report.rows[3], cpu=Cpu(0.45, 0.4, 0.1))
    report.rows[-1] = replace(report.rows[-1], cpu=Cpu(0.6, 0.4, 0.1))  # 2 workers: not judged
    note = results.starved_note(report)
    assert note is not None and "(hot-notrack 0.45 cores)" in note


def _growth(links: int, p99: float | None) -> Growth:
    creation = results.Creation(links, 1.0, float(links))
    miss = LoadRow("miss", "", _result(10_000, p99) if p99 else None, "wrk failed")
    return Growth(creation, results.Memory(links, 135, 70.0, 60.0), miss)


@pytest.mark.parametrize(
    ("p99s", "measured", "status"),
    [
        ((4.0, 5.0, 6.0), "1.50", "pass"),  # the most links over the fewest
        ((4.0, 6.1), "1.52", "fail"),
        ((4.0, None), "not measured", "n/a"),
        ((4.0,), "not measured", "n/a"),  # one row: nothing to compare
    ],
)
def test_growth_judges_the_miss_p99_of_the_most_links_against_the_fewest(
    p99s: tuple[float | None, ...], measured: str, status: str
) -> None:
    report = Report("now", "cmd", {}, {})
    report.growth = [_growth(10**4 * 10**i, p99) for i, p99 in enumerate(p99s)]
    [check] = evaluate(report)  # a growth report is judged on growth alone
    assert (check.goal, check.measured, check.status) == ("<= 1.5", measured, status)
    data = orjson.loads(orjson.dumps(results.report_json(report)))
    assert data["growth"][0]["creation"]["links"] == 10_000


def test_report_json() -> None:
    data = orjson.loads(orjson.dumps(results.report_json(_report())))
    hot = next(row for row in data["rows"] if row["key"] == "hot")
    assert (hot["ratio_to_nginx"], hot["ratio_to_aiohttp"]) == (0.5, 0.625)
    assert hot["clicks"]["sent"] == 250_000 and hot["clicks"]["clicks"] == 250_003
    assert next(row for row in data["rows"] if row["key"] == "hot-2w")["ratio_to_nginx"] is None
    assert data["creation"]["links_per_second"] == 125_000
    assert results.ratio(25_000, 0.0) is results.ratio(None, 50_000) is None


def test_click_count() -> None:
    # wrk's 4xx/5xx answers are not 302s; a socket error may hide one more in flight.
    before, after = Recorded(1_000, 5, True), Recorded(120_980, 15, True)
    result = replace(_result(0), requests=120_000, bad_status=10, socket_errors=2)
    count = ClickCount.over(result, before, after, 64)
    assert (count.sent, count.clicks, count.bots, count.slack) == (119_990, 119_980, 10, 66)
    assert count.difference == 0
    assert not ClickCount.over(_result(0), before, Recorded(1_000, 5, False), 64).settled
    assert _clicks(difference=0).status == "pass"
    # Up to one request per connection (and per socket error) can be served but not counted.
    assert _clicks(difference=64).status == "pass"
    assert _clicks(difference=65).status == "fail"
    assert _clicks(difference=66, slack=66).status == "pass"
    assert _clicks(difference=-1).status == "fail"  # a lost click
    assert _clicks(99_999).status == "n/a"  # too small a test to judge
    # What the run left for later: recorded by the time wrk stopped, and the rest's delay.
    late = Recorded(120_980, 15, True, at_first=101_005, caught_up_seconds=2.5)
    count = ClickCount.over(result, before, late, 64)
    assert (count.at_stop, count.caught_up_seconds) == (100_000, 2.5)
    report = _report()
    report.rows[2] = replace(report.rows[2], clicks=replace(_clicks(), at_stop=100_000))
    measured = [check.measured for check in evaluate(report) if "(hot)" in check.name]
    assert "100,000 of them recorded when wrk stopped, the rest within 0.0 s" in measured[0]


async def test_settle_waits_for_the_value_to_stop_changing() -> None:
    values = iter([1, 5, 9, 9, 12, 12, 12, 12])

    async def read() -> int:
        return next(values)

    assert await rows.settle(read, poll_seconds=0, quiet_polls=3, max_polls=20) == (12, True)
    values = iter(range(100))  # never settles
    assert await rows.settle(read, poll_seconds=0, quiet_polls=3, max_polls=10) == (10, False)


def test_counted_run_seconds() -> None:
    # 100,000 requests at 5,000 req/s, with a 25% margin: 25 s.
    assert rows.counted_run_seconds(10.0, 5_000.0, 100_000) == 25.0
    assert rows.counted_run_seconds(10.0, 50_000.0, 100_000) == 10.0  # --duration is enough
    assert rows.counted_run_seconds(10.0, 500.0, 100_000) == 60.0  # bounded
    assert rows.counted_run_seconds(3.0, 5_000.0, 0) == 3.0  # --quick: no minimum
    assert rows.counted_run_seconds(10.0, None, 100_000) == 10.0  # no warm-up, no rate


def test_hot_notrack_repeats_the_hot_rows_run(tmp_path: Path) -> None:
    bench = rows.Bench(parse_args([]), tmp_path, Pinning(None, None, None), _report())

    hot = rows.ServerRow("hot", "", [], 1, [], tmp_path, count_clicks=True)
    notrack, miss = (replace(hot, key=key, count_clicks=False) for key in ("hot-notrack", "miss"))
    warmup = _result(5_000)
    assert rows.measured_seconds(bench, hot, warmup) == 25.0
    assert rows.measured_seconds(bench, notrack, warmup) == 10.0  # no hot row before it
    bench.hot_seconds = 25.0
    assert rows.measured_seconds(bench, notrack, warmup) == 25.0
    assert rows.measured_seconds(bench, miss, warmup) == 10.0


def test_the_miss_row_taps_other_links_in_each_round(tmp_path: Path) -> None:
    options = parse_args(["--only", "hot,miss,miss-2w", "--miss-links", "100", "--links", "1000"])
    bench = rows.Bench(options, tmp_path, Pinning(None, None, None), Report("", "", {}, {}))
    codes, hot = [f"c{i:04d}" for i in range(1000)], ["shared1", "shared2"]
    made = {row.key: row for row in rows.redirector_rows(bench, codes, hot, "redis://127.0.0.1:1")}
    miss = made["miss"]
    assert made["miss-2w"].paths == miss.paths and made["miss-2w"].round_paths == ()
    assert made["hot"].round_paths == ()
    assert made["hot"].paths.read_text().split() == ["/shared1", "/shared2"]  # no recipient's
    # Only the hot row pauses its click worker during a load; the miss row's lookups share
    # Redis with the worker's scripts, as they do in production.
    assert made["hot"].pause_clicker and not made["miss"].pause_clicker
    assert not made["miss-2w"].pause_clicker
    assert made["hot"].count_clicks and made["miss"].count_clicks
    tapped = [set(path.read_text().split()) for path in (miss.paths, *miss.round_paths)]
    assert [len(paths) for paths in tapped] == [100, 100, 100]
    assert len(set.union(*tapped)) == 300  # three samples, no link in two
    # Fewer links than rounds need: the samples wrap around, each still 100 links.
    bench.options = replace(options, links=150)
    few = {
        row.key: row for row in rows.redirector_rows(bench, codes[:150], hot, "redis://127.0.0.1:1")
    }
    again = [set(path.read_text().split()) for path in few["miss"].round_paths]
    assert [len(paths) for paths in again] == [100, 100]


def test_the_share_of_cpu_time_the_host_stole() -> None:
    Times = collections.namedtuple("Times", "user system idle steal")
    before, after = Times(10.0, 5.0, 80.0, 5.0), Times(40.0, 15.0, 120.0, 25.0)
    assert procs.stolen_share(before, after) == 20 / 100
    NoSteal = collections.namedtuple("NoSteal", "user idle")  # another OS: none reported
    assert procs.stolen_share(NoSteal(1.0, 1.0), NoSteal(2.0, 3.0)) == 0.0
    assert procs.stolen_share(before, before) == 0.0


def test_a_run_the_host_stole_from_says_so(tmp_path: Path) -> None:
    def notes(stolen: float) -> list[str]:
        bench = rows.Bench(
            parse_args([]), tmp_path, Pinning(None, None, None), Report("", "", {}, {})
        )
        bench_module.add_notes(bench, stolen)
        return [note for note in bench.report.notes if "(steal)" in note]

    assert notes(0.01) == []
    [note] = notes(0.12)
    assert note.startswith("The host took 12% of this machine's CPU time during the run")


def test_a_pinned_run_says_its_click_worker_is_paused_while_a_load_runs(tmp_path: Path) -> None:
    def notes(pinning: Pinning) -> list[str]:
        bench = rows.Bench(parse_args([]), tmp_path, pinning, Report("", "", {}, {}))
        bench_module.add_notes(bench)
        return [note for note in bench.report.notes if "paused while a load runs" in note]

    assert len(notes(Pinning("0", "1", "0,1"))) == 1
    assert notes(Pinning(None, None, None)) == []  # unpinned: no click worker apart


def test_a_run_with_sliced_rounds_says_which_rows_were_sliced(tmp_path: Path) -> None:
    def notes(sliced: tuple[str, ...]) -> list[str]:
        report = _report()
        report.rows = [
            replace(row, again=(LoadRow(row.key, "", _result(1.0), slices=(1.0,)),))
            if row.key in sliced
            else row
            for row in report.rows
        ]
        bench = rows.Bench(parse_args([]), tmp_path, Pinning(None, None, None), report)
        bench_module.add_notes(bench)
        return [note for note in bench.report.notes if "slices" in note]

    [note] = notes(("aiohttp", "hot"))
    assert note.startswith("Rounds 2 to 3: the servers of aiohttp, hot up together")
    assert notes(()) == []


def test_pinning_plan() -> None:
    assert Pinning.plan([0, 1], have_taskset=True) == Pinning("0", "1", "0,1")
    assert Pinning.plan([3, 2, 5], have_taskset=True) == Pinning("2", "3", "2,3")
    assert Pinning.plan([0], have_taskset=True).server is None
    assert Pinning.plan([0, 1], have_taskset=False).server is None
    assert pinned(["redis-server"], "1") == ["taskset", "-c", "1", "redis-server"]
    assert pinned(["redis-server"], None) == ["redis-server"]


def test_options() -> None:
    quick, full = parse_args(["--quick"]), parse_args([])
    assert (quick.duration, quick.warmup, quick.links) == (3.0, 1.0, 50_000)
    assert (full.duration, full.connections, full.links, full.url_length) == (10.0, 64, 10**6, 135)
    assert (full.scale, full.only[-5:]) == (
        (),
        ("pipe", "create", "memory", "sends", "conversions"),
    )
    assert (quick.events, full.events) == (50_000, 500_000)
    # The miss rows: 100,000 per-recipient links tapped in turn, a cache of 2,000.
    assert (full.miss_links, full.miss_cache) == (100_000, 2000)
    assert parse_args(["--quick", "--links", "7"]).links == 7
    assert (full.click_requests, quick.click_requests) == (100_000, 0)
    assert parse_args(["--quick", "--click-requests", "500"]).click_requests == 500
    assert parse_args(["--only", "aiohttp,hot-notrack"]).only == ("aiohttp", "hot-notrack")
    assert (full.rounds, quick.rounds, parse_args(["--rounds", "5"]).rounds) == (3, 1, 5)
    wrongs = [["--only", "hot,bogus"], ["--click-requests", "-1"], ["--duration", "-1"]]
    wrongs.append(["--rounds", "-2"])
    for wrong in [*wrongs, ["--miss-cache", "0"]]:
        with pytest.raises(SystemExit):
            parse_args(wrong)


def test_scale_options_load_the_miss_path_with_a_small_cache() -> None:
    scale = parse_args(["--scale", "10000, 10000000"])
    assert (scale.scale, scale.only, scale.links) == ((10_000, 10**7), ("miss",), 10**7)
    assert scale.miss_cache == 2000
    assert parse_args(["--scale", "10000", "--miss-cache", "500"]).miss_cache == 500
    for wrong in (["--scale", "many"], ["--scale", "10000,0"]):
        with pytest.raises(SystemExit):
            parse_args(wrong)


def test_links_needed() -> None:
    assert rows.links_needed(parse_args([])) == 1_000_000
    assert rows.links_needed(parse_args(["--only", "hot"])) == 1  # its campaign (hot: shared links)
    assert rows.links_needed(parse_args(["--only", "hot,miss", "--quick"])) == 50_000
    assert rows.links_needed(parse_args(["--only", "nginx"])) == 0
    assert rows.links_needed(parse_args(["--only", "pipe"])) == 0  # its own records, its own Redis
    assert not rows.needs_redis(parse_args(["--only", "pipe"]))
    assert rows.links_needed(parse_args(["--only", "hot-notrack"])) == 1
    # The miss row taps other links each round; miss-2w runs once.
    assert rows.links_needed(parse_args(["--only", "miss"])) == 300_000
    assert rows.links_needed(parse_args(["--only", "miss", "--rounds", "1"])) == 100_000
    assert rows.links_needed(parse_args(["--only", "miss-2w"])) == 100_000
    assert not rows.needs_redis(parse_args(["--only", "nginx,aiohttp"]))
    assert rows.needs_redis(parse_args(["--only", "aiohttp,hot-notrack"]))


async def test_piped_records_are_link_records_of_the_campaigns_recipients(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    path = tmp_path / "records.resp"
    store.write_pipe_records(path, 5, created_at=1_700_000_000)
    assert await store.redis_pipe(own_redis.url, path, 5) > 0
    records = []
    async with Redis.from_url(own_redis.url, decode_responses=True) as redis:
        async for key in redis.scan_iter("l:*"):
            for code, raw in (await redis.hgetall(key)).items():
                assert (key, len(code)) == (link_key(str(code)), store.CODE_LENGTH)  # its bucket
                records.append(raw)
    decoded = sorted((decode(raw) for raw in records), key=lambda record: str(record.recipient))
    assert [record.recipient for record in decoded] == [recipient(i) for i in range(5)]
    for record in decoded:
        assert (record.campaign_id, record.destination) == (1, store.DESTINATION_ID)
        assert record.created_at == 1_700_000_000 and record.live


async def test_resp_is_binary_safe_and_a_failed_command_fails_the_pipe(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    value = "é\r\n$3\r\n*".encode()
    (path := tmp_path / "commands.resp").write_bytes(store.resp(b"SET", b"k", value))
    await store.redis_pipe(own_redis.url, path, 1)
    async with Redis.from_url(own_redis.url) as redis:
        assert await redis.get("k") == value
    path.write_bytes(store.resp(b"SET", b"k", value) + store.resp(b"HSET", b"k", b"f", b"v"))
    with pytest.raises(procs.StartError, match="errors: 1, replies: 2"):
        await store.redis_pipe(own_redis.url, path, 2)


def test_a_paused_service_is_stopped_for_the_block_and_continued_after(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with procs.Service("sleeper", sleeper, tmp_path / "log", {}) as service:
        process = psutil.Process(service.pid)
        seen = []
        with contextlib.suppress(RuntimeError), service.paused():
            seen.append(process.status())
            raise RuntimeError("the block failed")  # continued all the same
        assert seen == [psutil.STATUS_STOPPED]
        assert process.status() != psutil.STATUS_STOPPED


def test_redis_runs_ahead_of_the_load_generators_where_priorities_may_be_raised(
    tmp_path: Path,
) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with procs.Service("redis stand-in", sleeper, tmp_path / "log", {}) as service:
        raised = procs.ahead_of_load(service.pid)
        policy = os.sched_getscheduler(service.pid)
        if raised:
            assert policy == os.SCHED_FIFO
            assert os.sched_getparam(service.pid).sched_priority == procs.REDIS_PRIORITY
            assert int(procs.LOAD_PRIORITY[-1]) < procs.REDIS_PRIORITY
        else:  # not root: it says so and leaves the process as it was
            assert policy == os.SCHED_OTHER


def test_pausing_a_service_that_is_gone_is_a_start_error(tmp_path: Path) -> None:
    quick = [sys.executable, "-c", "pass"]
    with procs.Service("gone", quick, tmp_path / "log", {}) as service:
        service.process.wait()
        with pytest.raises(procs.StartError, match="gone when it"), service.paused():
            pytest.fail("the block must not run")
