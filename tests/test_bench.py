"""The benchmark's pure parts: wrk output parsing, targets, rendering, options. No load and no
timing assertions here; `make bench` measures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from loadtests.bench import (
    Bench,
    RedirectorRow,
    links_needed,
    measured_seconds,
    needs_redis,
    parse_args,
)
from loadtests.bench_clicks import counted_run_seconds, settle
from loadtests.bench_procs import (
    Pinning,
    bare_aiohttp_script,
    nginx_command,
    nginx_config,
    pinned,
)
from loadtests.bench_report import (
    ClickCount,
    Creation,
    LoadRow,
    Memory,
    Report,
    click_notes,
    click_table,
    evaluate,
    framework_notes,
    load_table,
    ratio,
    render_markdown,
    render_text,
    report_json,
    row_notes,
)
from loadtests.bench_seed import LinkPlan
from loadtests.bench_wrk import (
    PHONE_USER_AGENT,
    WrkOutputError,
    WrkResult,
    lua_script,
    parse_wrk_output,
    to_ms,
    wrk_command,
)
from redirector.useragents import classify

# Captured from `wrk --latency -t2 -c64 -d2s` against nginx on this project's 2-core machine.
WRK_OUTPUT = """\
Running 2s test @ http://127.0.0.1:18999/abc
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.46ms    1.37ms  16.57ms   88.32%
    Req/Sec    21.08k     7.31k   36.75k    65.00%
  Latency Distribution
     50%    1.20ms
     75%    1.97ms
     90%    3.01ms
     99%    6.47ms
  84246 requests in 2.02s, 32.62MB read
Requests/sec:  41730.65
Transfer/sec:     16.16MB
"""

# A failing run: socket errors, non-3xx answers, and latencies in other units.
WRK_OUTPUT_ERRORS = """\
Running 10s test @ http://127.0.0.1:8080/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.40us  301.12us   2.00s    91.02%
    Req/Sec     9.50k   800.00     11.00k    70.00%
  Latency Distribution
     50%  740.00us
     75%    0.90ms
     90%    1.10ms
     99%    1.52s
  190000 requests in 10.00s, 25.00MB read
  Socket errors: connect 0, read 3, write 1, timeout 12
  Non-2xx or 3xx responses: 40
Requests/sec:  19000.00
Transfer/sec:      2.50MB
"""


def test_parse_wrk_output() -> None:
    result = parse_wrk_output(WRK_OUTPUT)
    assert result == WrkResult(
        requests_per_second=41730.65, p50_ms=1.2, p99_ms=6.47, requests=84246, seconds=2.02
    )
    assert result.errors == 0


def test_parse_wrk_output_counts_errors_and_converts_units() -> None:
    result = parse_wrk_output(WRK_OUTPUT_ERRORS)
    assert result.p50_ms == pytest.approx(0.74)
    assert result.p99_ms == pytest.approx(1520.0)
    assert (result.socket_errors, result.bad_status, result.errors) == (16, 40, 56)
    assert result.requests == 190_000 and result.seconds == pytest.approx(10.0)


def test_parse_wrk_output_without_latency_names_what_is_missing() -> None:
    without_latency = "\n".join(
        line for line in WRK_OUTPUT.splitlines() if "%" not in line or "Req/Sec" in line
    )
    with pytest.raises(WrkOutputError, match="50% latency"):
        parse_wrk_output(without_latency)
    with pytest.raises(WrkOutputError, match="Requests/sec"):
        parse_wrk_output("unable to connect to 127.0.0.1:8080 Connection refused")


@pytest.mark.parametrize(
    ("value", "unit", "ms"),
    [("250", "us", 0.25), ("1.5", "ms", 1.5), ("2", "s", 2000.0), ("1", "m", 60_000.0)],
)
def test_to_ms(value: str, unit: str, ms: float) -> None:
    assert to_ms(value, unit) == pytest.approx(ms)


def test_lua_script_reads_the_paths_file_and_seeds_each_thread() -> None:
    script = lua_script(Path('/tmp/a "b"/hot.paths'))
    assert 'io.lines("/tmp/a \\"b\\"/hot.paths")' in script
    assert "math.randomseed" in script and "bench_thread" in script
    assert "function request()" in script


def test_wrk_command_pins_when_asked() -> None:
    command = wrk_command(
        "http://127.0.0.1:1/",
        Path("s.lua"),
        threads=2,
        connections=64,
        seconds=10,
        cpus="1",
        headers=(),
    )
    assert command[:3] == ["taskset", "-c", "1"]
    assert command[3:8] == ["wrk", "--latency", "-t2", "-c64", "-d10s"]
    assert command[8:] == ["-s", "s.lua", "http://127.0.0.1:1/"]
    unpinned = wrk_command("u", Path("s"), threads=1, connections=1, seconds=0.2, cpus=None)
    assert unpinned[0] == "wrk" and "-d1s" in unpinned


def test_wrk_sends_the_phone_user_agent_by_default() -> None:
    command = wrk_command("u", Path("s"), threads=1, connections=1, seconds=1, cpus=None)
    header = command[command.index("-H") + 1]
    # wrk splits "Name: value" at the colon and needs exactly one space after it.
    assert header == f"User-Agent: {PHONE_USER_AGENT}"
    agent = classify(PHONE_USER_AGENT)
    assert not agent.bot and agent.device == "mobile" and agent.os == "iOS"


def _result(rps: float, p99: float = 1.0, errors: int = 0) -> WrkResult:
    return WrkResult(rps, 0.5, p99, int(rps * 10), 10.0, bad_status=errors)


def _clicks(
    sent: int = 250_000,
    difference: int = 0,
    *,
    bad_status: int = 0,
    socket_errors: int = 0,
    clicks: int | None = None,
    bots: int = 0,
    settled: bool = True,
) -> ClickCount:
    """A count of `sent` 302s of which `difference` more (or fewer) were recorded."""
    return ClickCount(
        requests=sent + bad_status,
        bad_status=bad_status,
        socket_errors=socket_errors,
        clicks=sent + difference - bots if clicks is None else clicks,
        bots=bots,
        connections=64,
        settled=settled,
    )


def _report(*, nginx: bool = True, connections: int = 64, url_length: int = 90) -> Report:
    report = Report(
        started_at="2026-01-01 00:00 UTC",
        command="python -m loadtests.bench",
        machine={"cpu": "test", "cores": "2"},
        settings={"connections": connections, "threads": 2, "duration": 10.0, "warmup": 2.0},
    )
    if nginx:
        report.rows.append(LoadRow("nginx", "nginx 302 (ceiling)", "1 worker", _result(50_000)))
    report.rows += [
        LoadRow("aiohttp", "bare aiohttp 302 (reference)", "1 process", _result(40_000)),
        LoadRow(
            "hot",
            "hot, 1 worker",
            "1,000 codes",
            _result(25_000, p99=2.5),
            server_cpu=99.6,
            other_cpu=35.2,
            redis_calls={"get": 0.004, "hincrby": 0.006},
            clicks=_clicks(250_000, difference=3),
        ),
        LoadRow("hot-notrack", "hot, no click recording", "1,000 codes", _result(30_000)),
        LoadRow("miss", "miss, 1 worker", "200,000 codes", _result(10_000, p99=9.0, errors=3)),
        LoadRow("hot-2w", "hot, 2 workers", "1,000 codes", skipped="redirector did not start"),
    ]
    report.creation = Creation(links=1_000_000, seconds=8.0, batch_size=10_000, concurrency=4)
    report.memory = Memory(
        links=1_000_000,
        url_length=url_length,
        used_before=1_000_000,
        used_after=131_000_000,
        link_hashes=65_536,
        link_bytes=100_000_000,
        recipient_hashes=65_536,
        recipient_bytes=25_000_000,
    )
    return report


def test_ratio() -> None:
    assert ratio(25_000, 50_000) == 0.5
    assert ratio(25_000, None) is None
    assert ratio(None, 50_000) is None
    assert ratio(25_000, 0.0) is None


def test_evaluate_targets() -> None:
    checks = {check.name: check for check in evaluate(_report())}
    assert checks["hot path / nginx"].status == "pass"  # 0.50 >= 0.40
    assert checks["hot path / nginx"].measured == "0.50"
    assert checks["miss path / nginx"].status == "fail"  # 0.20 < 0.25
    assert checks["hot path with recording / without"].status == "fail"  # 25k / 30k = 0.83
    assert checks["hot path with recording / without"].measured == "0.83"
    assert checks["hot path p99"].status == "pass"  # 2.5 ms <= 3 ms
    assert checks["recorded clicks = sent (hot)"].status == "pass"  # +3, within 64 in flight
    assert checks["recorded clicks = sent (hot)"].measured == "250,000 sent, 250,003 recorded (+3)"
    assert checks["recorded clicks = sent (hot-2w)"].status == "n/a"  # skipped row
    assert checks["batch creation rate"].status == "pass"  # 125,000 links/s
    assert checks["Redis memory per link"].status == "fail"  # 130 B > 120 B
    assert checks["Redis memory per link"].measured == "130.0 B"


def test_targets_are_not_applicable_without_their_conditions() -> None:
    checks = {c.name: c for c in evaluate(_report(nginx=False, connections=128, url_length=60))}
    assert checks["hot path / nginx"].status == "n/a"
    assert "no nginx ceiling" in checks["hot path / nginx"].measured
    assert checks["hot path p99"].status == "n/a"
    assert "128 connections" in checks["hot path p99"].measured
    # The recording ratio needs no ceiling, only its two rows.
    assert checks["hot path with recording / without"].status == "fail"
    assert checks["Redis memory per link"].status == "n/a"
    empty = Report("now", "cmd", {}, {"connections": 64})
    assert {c.status for c in evaluate(empty)} == {"n/a"}


def test_load_table_cells() -> None:
    rows = {row[0]: row for row in load_table(_report())}
    assert rows["nginx 302 (ceiling)"][2:8] == (
        *("50,000", "0.50 ms", "1.00 ms", "0"),
        *("1.00", "1.25"),
    )
    assert rows["bare aiohttp 302 (reference)"][6:8] == ("0.80", "1.00")
    assert rows["hot, 1 worker"][6:10] == ("0.50", "0.62", "0.01", "100%")
    assert rows["hot, 1 worker"][-1] == "35%"  # other CPU: processes not of the benchmark
    assert rows["miss, 1 worker"][5] == "3"
    assert rows["hot, 2 workers"][2] == "skipped"
    no_ceiling = {row[0]: row for row in load_table(_report(nginx=False))}
    assert no_ceiling["hot, 1 worker"][6:8] == ("n/a", "0.62")


def test_row_notes() -> None:
    calls = {"hget": 1.0, "hincrby": 1.0, "exec": 0.25, "multi": 0.25, "get": 0.001}
    row = LoadRow("miss", "miss", "", _result(10_000), load_cpu=95.0, other_cpu=40.0)
    notes = row_notes(replace(row, redis_calls=calls))
    assert (
        notes[0]
        == "miss: Redis commands per request: hget 1.00, hincrby 1.00, exec 0.25, multi 0.25."
    )
    assert "other processes used 40% of a core" in notes[1]
    assert "wrk used 95% of a core" in notes[2]
    assert row_notes(replace(row, load_cpu=10.0, other_cpu=2.0)) == []
    assert row_notes(replace(row, redis_calls={"get": 0.001}, load_cpu=None, other_cpu=None)) == [
        "miss: Redis commands per request: none."
    ]


def test_render_markdown() -> None:
    text = render_markdown(_report())
    assert text.startswith("# smslinks benchmark, 2026-01-01 00:00 UTC\n")
    assert "| row | setup | req/s | p50 | p99 | errors | vs nginx | vs aiohttp |" in text
    assert (
        "| hot, 1 worker | 1,000 codes | 25,000 | 0.50 ms | 2.50 ms | 0 | 0.50 | 0.62 | 0.01 |"
        in text
    )
    assert "## Click accounting (measured run)" in text
    assert (
        "| hot, 1 worker | 250,000 | 0 | 0 | 250,000 | 250,003 | 250,003 | 0 | +3 | pass |" in text
    )
    assert "| miss path / nginx | >= 0.25 | 0.20 | fail |" in text
    assert "125,000 links/s (8.0 s)" in text
    assert "| Redis memory per link, total (used_memory delta / 1,000,000) | 130.0 B |" in text
    assert "- cpu: test" in text


def test_render_text_and_json() -> None:
    report = _report()
    report.notes.append("a note")
    text = render_text(report)
    assert "hot, 1 worker" in text and "- a note" in text
    assert "250,003" in text  # the click accounting table
    data = orjson.loads(orjson.dumps(report_json(report)))
    hot = next(row for row in data["rows"] if row["key"] == "hot")
    assert hot["ratio_to_nginx"] == 0.5 and hot["errors"] == 0
    assert hot["ratio_to_aiohttp"] == 0.625
    assert hot["clicks"]["sent"] == 250_000 and hot["clicks"]["recorded"] == 250_003
    assert (hot["clicks"]["difference"], hot["clicks"]["status"]) == (3, "pass")
    notrack = next(row for row in data["rows"] if row["key"] == "hot-notrack")
    assert notrack["clicks"] is None
    assert data["creation"]["links_per_second"] == 125_000
    assert data["memory"]["total_per_link"] == 130
    assert [t["status"] for t in data["targets"]] == [
        *("pass", "fail", "fail", "pass"),
        *("pass", "n/a", "pass", "fail"),
    ]


def test_click_count() -> None:
    exact = _clicks(120_000)
    assert (exact.sent, exact.recorded, exact.difference, exact.status) == (
        *(120_000, 120_000, 0),
        "pass",
    )
    # wrk's 4xx/5xx answers are not 302s; bot hits are recorded hits too.
    mixed = ClickCount(120_000, 10, 0, clicks=119_980, bots=10, connections=64, settled=True)
    assert (mixed.sent, mixed.recorded, mixed.difference) == (119_990, 119_990, 0)
    # Up to one request per connection (and per socket error) can be served but not counted.
    assert _clicks(difference=64).status == "pass"
    assert _clicks(difference=65).status == "fail"
    assert _clicks(difference=66, socket_errors=2).status == "pass"
    assert _clicks(difference=-1).status == "fail"  # a lost click
    assert _clicks(99_999).status == "n/a"  # too small a test to judge


def test_clicks_check_states_the_count_of_a_short_run() -> None:
    report = _report()
    report.rows[2] = replace(report.rows[2], clicks=_clicks(45_000, settled=False))
    check = next(c for c in evaluate(report) if c.name == "recorded clicks = sent (hot)")
    assert check.status == "n/a"
    assert check.measured == (
        "45,000 sent, 45,000 recorded; under 100,000 requests; counters still changing"
    )


def test_click_notes() -> None:
    assert click_notes("hot", _clicks(150_000)) == [
        "hot: clicks: wrk got 150,000 302s (150,000 requests, 0 non-3xx, 0 socket errors); "
        "Redis recorded 150,000 (150,000 clicks, 0 bot hits)."
    ]
    in_flight = click_notes("hot", _clicks(difference=5))
    assert "5 more recorded than wrk counted, within the 64 connections" in in_flight[1]
    assert "Not a loss." in in_flight[1]
    assert "3 clicks sent were not recorded" in click_notes("hot", _clicks(difference=-3))[1]
    assert "counted twice" in click_notes("hot", _clicks(difference=5_000))[1]
    short = click_notes("hot-2w", _clicks(50_000, bots=2, settled=False))
    assert any("2 hits were recorded as bots" in note for note in short)
    assert any("covers 50,000 requests, fewer than the 100,000" in note for note in short)
    assert short[-1] == "hot-2w: the click counters were still changing when the wait gave up."


def test_framework_notes() -> None:
    (note,) = framework_notes(_report())
    assert "reaches 0.80 of nginx" in note
    assert "the hot row reaches 0.62 of it (hot / bare aiohttp)" in note
    assert "without click recording 0.75" in note
    report = _report()
    report.rows = [row for row in report.rows if row.key != "aiohttp"]
    assert framework_notes(report) == []


def test_click_table_lists_only_counted_rows() -> None:
    (row,) = click_table(_report())
    assert row[0] == "hot, 1 worker" and row[-2:] == ("+3", "pass")


async def test_settle_waits_for_the_value_to_stop_changing() -> None:
    values = iter([1, 5, 9, 9, 12, 12, 12, 12])

    async def read() -> int:
        return next(values)

    assert await settle(read, poll_seconds=0, quiet_polls=3, max_polls=20) == (12, True)

    async def rising() -> int:
        return next(counter)

    counter = iter(range(100))
    value, settled = await settle(rising, poll_seconds=0, quiet_polls=3, max_polls=10)
    assert (value, settled) == (10, False)


def test_counted_run_seconds() -> None:
    # 100,000 requests at 5,000 req/s, with a 25% margin: 25 s.
    assert counted_run_seconds(10.0, 5_000.0, 100_000) == 25.0
    assert counted_run_seconds(10.0, 50_000.0, 100_000) == 10.0  # --duration is enough
    assert counted_run_seconds(10.0, 500.0, 100_000) == 60.0  # bounded
    assert counted_run_seconds(3.0, 5_000.0, 0) == 3.0  # --quick: no minimum
    assert counted_run_seconds(10.0, None, 100_000) == 10.0  # no warm-up, no rate


def test_hot_notrack_repeats_the_hot_rows_run(tmp_path: Path) -> None:
    bench = Bench(parse_args([]), tmp_path, Pinning(None, None, None), _report())
    hot = RedirectorRow("hot", "hot", 1, 100, tmp_path, [0], count_clicks=True)
    notrack = RedirectorRow("hot-notrack", "hot", 1, 100, tmp_path, [0], click_tracking=False)
    miss = RedirectorRow("miss", "miss", 1, 100, tmp_path, [0])
    warmup = _result(5_000)
    assert measured_seconds(bench, hot, warmup) == 25.0
    assert measured_seconds(bench, notrack, warmup) == 10.0  # no hot row before it
    bench.hot_seconds = 25.0
    assert measured_seconds(bench, notrack, warmup) == 25.0
    assert measured_seconds(bench, miss, warmup) == 10.0


def test_bare_aiohttp_script() -> None:
    location = 'https://shop.example/p?a="1"'
    script = bare_aiohttp_script(8999, location)
    compile(script, "bare_aiohttp.py", "exec")
    assert f"LOCATION = {location!r}" in script
    assert 'app.router.add_get("/{code}", redirect)' in script
    assert 'web.Response(status=302, headers={"Location": LOCATION})' in script
    assert "uvloop.install()" in script
    assert 'host="127.0.0.1", port=8999, access_log=None' in script


def test_pinning_plan() -> None:
    assert Pinning.plan([0, 1], have_taskset=True) == Pinning("0", "1", "0,1")
    assert Pinning.plan([3, 2, 5], have_taskset=True) == Pinning("2", "3", "2,3")
    assert not Pinning.plan([0], have_taskset=True).active
    assert not Pinning.plan([0, 1], have_taskset=False).active
    assert pinned(["redis-server"], "1") == ["taskset", "-c", "1", "redis-server"]
    assert pinned(["redis-server"], None) == ["redis-server"]


def test_nginx_config_is_self_contained() -> None:
    config = nginx_config(Path("/tmp/n"), 8999, "https://shop.example/p?a=1")
    assert "listen 127.0.0.1:8999;" in config
    assert 'return 302 "https://shop.example/p?a=1";' in config
    assert "worker_processes 1;" in config and "access_log off;" in config
    assert "pid /tmp/n/nginx.pid;" in config
    assert nginx_command(Path("/tmp/n"))[-2:] == ["-g", "daemon off;"]


@pytest.mark.parametrize("length", [90, 120, 200])
def test_destinations_have_the_requested_length(length: int) -> None:
    plan = LinkPlan(length)
    assert {len(plan.destination(i)) for i in (0, 9, 12_345, 999_999)} == {length}
    assert plan.destination(7).startswith(plan.url(7))


def test_options() -> None:
    quick = parse_args(["--quick"])
    assert (quick.duration, quick.warmup, quick.links) == (3.0, 1.0, 50_000)
    full = parse_args([])
    assert (full.duration, full.connections, full.links, full.url_length) == (10.0, 64, 10**6, 90)
    assert parse_args(["--quick", "--links", "7"]).links == 7
    assert (full.click_requests, quick.click_requests) == (100_000, 0)
    assert parse_args(["--quick", "--click-requests", "500"]).click_requests == 500
    assert parse_args(["--only", "aiohttp,hot-notrack"]).only == ("aiohttp", "hot-notrack")
    with pytest.raises(SystemExit):
        parse_args(["--only", "hot,bogus"])
    with pytest.raises(SystemExit):
        parse_args(["--click-requests", "-1"])


def test_links_needed() -> None:
    assert links_needed(parse_args([])) == 1_000_000
    assert links_needed(parse_args(["--only", "hot"])) == 1000
    assert links_needed(parse_args(["--only", "hot,miss", "--quick"])) == 50_000
    assert links_needed(parse_args(["--only", "nginx"])) == 0
    assert links_needed(parse_args(["--only", "hot-notrack"])) == 1000
    assert not needs_redis(parse_args(["--only", "nginx,aiohttp"]))
    assert needs_redis(parse_args(["--only", "aiohttp,hot-notrack"]))
