"""The benchmark's pure parts: wrk output parsing, targets, rendering, options. No load and no
timing assertions here; `make bench` measures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from loadtests.bench import links_needed, parse_args
from loadtests.bench_procs import Pinning, nginx_command, nginx_config, pinned
from loadtests.bench_report import (
    Creation,
    LoadRow,
    Memory,
    Report,
    evaluate,
    load_table,
    ratio,
    render_markdown,
    render_text,
    report_json,
    row_notes,
)
from loadtests.bench_seed import LinkPlan
from loadtests.bench_wrk import (
    WrkOutputError,
    WrkResult,
    lua_script,
    parse_wrk_output,
    to_ms,
    wrk_command,
)

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
        "http://127.0.0.1:1/", Path("s.lua"), threads=2, connections=64, seconds=10, cpus="1"
    )
    assert command[:3] == ["taskset", "-c", "1"]
    assert command[3:8] == ["wrk", "--latency", "-t2", "-c64", "-d10s"]
    assert command[8:] == ["-s", "s.lua", "http://127.0.0.1:1/"]
    unpinned = wrk_command("u", Path("s"), threads=1, connections=1, seconds=0.2, cpus=None)
    assert unpinned[0] == "wrk" and "-d1s" in unpinned


def _result(rps: float, p99: float = 1.0, errors: int = 0) -> WrkResult:
    return WrkResult(rps, 0.5, p99, int(rps * 10), 10.0, bad_status=errors)


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
        LoadRow(
            "hot",
            "hot, 1 worker",
            "1,000 codes",
            _result(25_000, p99=2.5),
            server_cpu=99.6,
            other_cpu=35.2,
            redis_calls={"get": 0.004, "hincrby": 0.006},
        ),
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
    assert checks["hot path p99"].status == "pass"  # 2.5 ms <= 3 ms
    assert checks["batch creation rate"].status == "pass"  # 125,000 links/s
    assert checks["Redis memory per link"].status == "fail"  # 130 B > 120 B
    assert checks["Redis memory per link"].measured == "130.0 B"


def test_targets_are_not_applicable_without_their_conditions() -> None:
    checks = {c.name: c for c in evaluate(_report(nginx=False, connections=128, url_length=60))}
    assert checks["hot path / nginx"].status == "n/a"
    assert "no nginx ceiling" in checks["hot path / nginx"].measured
    assert checks["hot path p99"].status == "n/a"
    assert "128 connections" in checks["hot path p99"].measured
    assert checks["Redis memory per link"].status == "n/a"
    empty = Report("now", "cmd", {}, {"connections": 64})
    assert {c.status for c in evaluate(empty)} == {"n/a"}


def test_load_table_cells() -> None:
    rows = {row[0]: row for row in load_table(_report())}
    assert rows["nginx 302 (ceiling)"][2:7] == ("50,000", "0.50 ms", "1.00 ms", "0", "1.00")
    assert rows["hot, 1 worker"][6:9] == ("0.50", "0.01", "100%")
    assert rows["hot, 1 worker"][-1] == "35%"  # other CPU: processes not of the benchmark
    assert rows["miss, 1 worker"][5] == "3"
    assert rows["hot, 2 workers"][2] == "skipped"
    no_ceiling = {row[0]: row for row in load_table(_report(nginx=False))}
    assert no_ceiling["hot, 1 worker"][6] == "n/a"


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
    assert "| row | setup | req/s | p50 | p99 | errors | vs nginx |" in text
    assert "| hot, 1 worker | 1,000 codes | 25,000 | 0.50 ms | 2.50 ms | 0 | 0.50 | 0.01 |" in text
    assert "| miss path / nginx | >= 0.25 | 0.20 | fail |" in text
    assert "125,000 links/s (8.0 s)" in text
    assert "| Redis memory per link, total (used_memory delta / 1,000,000) | 130.0 B |" in text
    assert "- cpu: test" in text


def test_render_text_and_json() -> None:
    report = _report()
    report.notes.append("a note")
    text = render_text(report)
    assert "hot, 1 worker" in text and "- a note" in text
    data = orjson.loads(orjson.dumps(report_json(report)))
    hot = next(row for row in data["rows"] if row["key"] == "hot")
    assert hot["ratio_to_nginx"] == 0.5 and hot["errors"] == 0
    assert data["creation"]["links_per_second"] == 125_000
    assert data["memory"]["total_per_link"] == 130
    assert [t["status"] for t in data["targets"]] == ["pass", "fail", "pass", "pass", "fail"]


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
    with pytest.raises(SystemExit):
        parse_args(["--only", "hot,bogus"])


def test_links_needed() -> None:
    assert links_needed(parse_args([])) == 1_000_000
    assert links_needed(parse_args(["--only", "hot"])) == 1000
    assert links_needed(parse_args(["--only", "hot,miss", "--quick"])) == 50_000
    assert links_needed(parse_args(["--only", "nginx"])) == 0
