"""The benchmark's results, the issue's targets checked against them, and `latest.{json,md}`.
Pure: no I/O."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, NamedTuple

from loadtests.bench_open import OpenLoopResult
from loadtests.bench_procs import WrkResult

# The issues' targets.
HOT_AIOHTTP_RATIO_MIN = 1.0  # hot path / bare aiohttp
MISS_HOT_RATIO_MIN = 0.8  # miss path / hot path
TRACKING_RATIO_MIN = 0.90  # hot path with click recording / without
# p99 at a fixed rate, half the row's closed-loop maximum; the rate must be held to judge it.
OPEN_P99_MAX_MS = {"hot": 2.0, "miss": 3.0}
OPEN_RATE_HELD = 0.95
CLICKS_MIN_REQUESTS = 100_000  # recorded clicks equal clicks sent over at least this many
STARVED_CORES = 0.8  # a saturated one-process server below this did not have its core
CREATE_PIPE_RATIO_MIN = 0.17  # batch API / redis-cli --pipe inserting as many records
CREATE_RATE_MIN = 100_000.0  # links/s through the batch API
# Bytes per per-recipient link, all sharing one destination of this many bytes.
MEMORY_PER_LINK_MAX, MEMORY_URL_LENGTH = 80.0, 135
GROWTH_P99_RATIO_MAX = 1.5  # miss p99 with the most links / with the fewest: flat
SENDS_RATE_MIN = 50_000.0  # sends/s through the batch API (issue 11)
CONVERSIONS_RATE_MIN = 20_000.0  # conversions/s through the batch API (issue 11)

Status = Literal["pass", "fail", "n/a"]


class Recorded(NamedTuple):
    """A campaign's click counters at one moment, and whether they had stopped changing."""

    clicks: int
    bots: int
    settled: bool
    at_first: int = 0  # clicks + bots at the first read, when the run had just ended
    caught_up_seconds: float = 0.0  # from then until the counters stopped changing


@dataclass(frozen=True, slots=True)
class ClickCount:
    """A run's click accounting: the 302s wrk got against the increase of the campaign's
    `clicks` + `bots` counters, read once they stopped changing.

    wrk counts a request once it has read the response, so requests in flight when it stops
    (one per connection at most) or cut by a socket error may have been served and recorded
    without being counted: that much more recorded than sent (`slack`) is not a loss."""

    sent: int  # wrk's completed requests less its 4xx/5xx answers
    clicks: int
    bots: int  # 0 when every request carries the phone's User-Agent
    slack: int  # connections + socket errors
    settled: bool  # the counters stopped changing within the wait
    # Of those, recorded by the time wrk stopped, and how long the rest took: the click work
    # that the run left for later (the click worker shares the load generator's core).
    at_stop: int | None = None
    caught_up_seconds: float = 0.0

    @classmethod
    def over(
        cls, result: WrkResult, before: Recorded, after: Recorded, connections: int
    ) -> ClickCount:
        clicks, bots = after.clicks - before.clicks, after.bots - before.bots
        sent, slack = result.requests - result.bad_status, connections + result.socket_errors
        settled = before.settled and after.settled
        at_stop = after.at_first - before.clicks - before.bots
        return cls(sent, clicks, bots, slack, settled, at_stop, after.caught_up_seconds)

    @property
    def difference(self) -> int:
        return self.clicks + self.bots - self.sent

    @property
    def status(self) -> Status:
        if self.sent < CLICKS_MIN_REQUESTS:
            return "n/a"
        return "pass" if 0 <= self.difference <= self.slack else "fail"


@dataclass(frozen=True, slots=True)
class Cpu:
    """Cores busy during a measured run (CPU seconds over its seconds), by who used them."""

    server: float  # the server under test, its workers included
    load: float  # wrk
    redis: float | None  # None where no Redis runs
    clicks: float | None = None  # the click worker, where it runs apart from the server


@dataclass(frozen=True, slots=True)
class LoadRow:
    key: str  # what --only names: nginx, aiohttp, hot, hot-notrack, miss, hot-2w, miss-2w
    setup: str  # e.g. "1 worker, 1,000 codes, cache 100,000"
    result: WrkResult | None = None
    skipped: str | None = None  # why there is no result
    clicks: ClickCount | None = None  # the click-counted rows: hot, hot-2w
    cpu: Cpu | None = None
    open_loop: OpenLoopResult | None = None  # hot and miss: half the maximum, at a fixed rate
    open_loop_skipped: str | None = None  # why they have none
    # The row's further rounds (`--rounds`), each measured as this one (server started,
    # warmed, loaded; open loop where the row has one), interleaved with the other ratio
    # rows' (bench.py ROUND_ROWS); a round that failed says why (`skipped`).
    again: tuple[LoadRow, ...] = ()
    # Rounds 2, 3, ...: the req/s of each slice of the round (bench_rows.sliced_round), which
    # `result` sums up.
    slices: tuple[float, ...] = ()
    # Seconds the click workers took, once the load stopped, to apply what it left (rows
    # that record clicks; the bench waits for it before the next load: bench_rows.drained).
    catch_up_seconds: float | None = None

    @property
    def rounds(self) -> tuple[LoadRow, ...]:
        """This measurement (round 1) and the further ones, in order."""
        return (self, *self.again)


@dataclass(frozen=True, slots=True)
class Creation:
    """Links created through the API, or records inserted by `redis-cli --pipe`."""

    links: int
    seconds: float
    links_per_second: float


@dataclass(frozen=True, slots=True)
class Memory:
    """Bytes per link: the increase of INFO used_memory (everything the links added), and
    the MEMORY USAGE of the link records' hashes (l:*)."""

    links: int
    url_length: int
    total_per_link: float
    record_per_link: float


@dataclass(frozen=True, slots=True)
class Growth:
    """One row of `make bench-scale`: a fresh Redis holding `creation.links` links."""

    creation: Creation
    memory: Memory
    miss: LoadRow


@dataclass(slots=True)
class Report:
    started_at: str
    command: str
    machine: dict[str, str]
    settings: dict[str, str | int | float]
    rows: list[LoadRow] = field(default_factory=list)
    pipe: Creation | None = None
    creation: Creation | None = None
    memory: Memory | None = None
    sends: Creation | None = None  # sends posted (`links`: how many)
    conversions: Creation | None = None  # conversions posted
    growth: list[Growth] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, key: str) -> LoadRow | None:
        return next((row for row in self.rows if row.key == key), None)

    def rps(self, key: str) -> float | None:
        return _rps(self.row(key))

    def round_ratio(
        self, key: str, reference: str, sustained: bool = False
    ) -> tuple[float | None, list[float | None]]:
        """`key`'s req/s over `reference`'s in each round (None where either failed), and
        their median, a failed round counted as 0 (as a latency target counts it as over):
        a round pairs two rows run a minute apart at most (after the first, slice by slice),
        so a drift of the machine's speed cancels out of each ratio. None when no round
        measured both. `sustained`: each row's rate over its load and the catch-up of the
        click work it left (`catch_up_seconds`; a row that records none: its load's)."""
        row, other = self.row(key), self.row(reference)
        if row is None or other is None:
            return None, []
        ratios = [
            _round_ratio(mine, theirs, sustained)
            for mine, theirs in itertools.zip_longest(row.rounds, other.rounds)
        ]
        if all(value is None for value in ratios):
            return None, ratios
        # The lower of the middle two for an even number of rounds: a target is not passed
        # on the mean of a pass and a fail.
        return statistics.median_low(value or 0.0 for value in ratios), ratios


class Check(NamedTuple):
    name: str
    goal: str
    measured: str
    status: Status


def ratio(rps: float | None, reference: float | None) -> float | None:
    return None if rps is None or not reference else rps / reference


def _round_ratio(mine: LoadRow | None, theirs: LoadRow | None, sustained: bool) -> float | None:
    """One round's ratio: of a sliced round, the median of its slices' ratios, each slice
    against its counterpart; else (the first round, or `sustained`) of the rows' rates."""
    if mine and theirs and mine.slices and len(mine.slices) == len(theirs.slices) and not sustained:
        pairs = zip(mine.slices, theirs.slices, strict=True)
        return statistics.median_low(rps / other if other else 0.0 for rps, other in pairs)
    if not sustained:
        return ratio(_rps(mine), _rps(theirs))
    # The reference too, if it records clicks (hot-notrack left no click work).
    reference = _sustained_rps(theirs) if theirs and theirs.catch_up_seconds is not None else None
    return ratio(_sustained_rps(mine), reference or _rps(theirs))


def _rps(row: LoadRow | None) -> float | None:
    return row.result.requests_per_second if row and row.result else None


def _sustained_rps(row: LoadRow | None) -> float | None:
    """The rate over the load and the time its click work took to be applied after it."""
    if row is None or row.result is None or row.catch_up_seconds is None:
        return None
    return row.result.requests / (row.result.seconds + row.catch_up_seconds)


def _ratio_check(
    report: Report, name: str, key: str, reference: str, goal: float, sustained: bool = False
) -> Check:
    """A ratio target, judged on the median of the rounds' ratios (all of them shown)."""
    median, ratios = report.round_ratio(key, reference, sustained)
    check = _check(name, median, goal)
    if median is None or len(ratios) < 2:
        return check
    shown = ", ".join("failed" if value is None else f"{value:.2f}" for value in ratios)
    return check._replace(measured=f"{median:.2f}, the median of rounds {shown}")


def _check(
    name: str, value: float | None, goal: float, unit: str = "", at_most: bool = False
) -> Check:
    wanted = f"{'<=' if at_most else '>='} {goal:,g}{unit}"
    if value is None:
        return Check(name, wanted, "not measured", "n/a")
    passed = value <= goal if at_most else value >= goal
    return Check(name, wanted, f"{value:,.2f}{unit}", "pass" if passed else "fail")


def _clicks_check(report: Report, key: str) -> Check:
    name, goal = f"recorded clicks = sent ({key})", f"equal, over >= {CLICKS_MIN_REQUESTS:,}"
    count = row.clicks if (row := report.row(key)) else None
    if count is None:
        return Check(name, goal, "not measured", "n/a")
    measured = f"{count.sent:,} sent, {count.clicks + count.bots:,} recorded"
    if 0 < count.difference <= count.slack:
        measured += f" (in flight when wrk stopped: up to {count.slack})"
    measured += f"; {count.bots:,} as bots" if count.bots else ""
    if count.at_stop is not None:
        measured += (
            f"; {count.at_stop:,} of them recorded when wrk stopped, the rest within "
            f"{count.caught_up_seconds:.1f} s"
        )
    measured += "" if count.settled else "; counters still changing"
    return Check(name, goal, measured, count.status)


def _open_loop_check(report: Report, key: str) -> Check:
    """The row's open-loop p99, the median over its rounds: a round whose open loop did not
    run, or whose fixed rate was not held (or that had errors), counts as over the goal."""
    goal = OPEN_P99_MAX_MS[key]
    row = report.row(key)
    check = _check(f"{key} path p99, open loop at half its maximum", None, goal, " ms", True)
    runs = [measured.open_loop for measured in row.rounds] if row else []
    if not any(runs):
        return check
    # From when each request was due, h2load's own stalls not counted (bench_open.py).
    judged = [run.p99_server_ms if run and _held(run) else math.inf for run in runs]
    p99 = statistics.median_high(judged)  # the higher of the middle two, as above
    if len(runs) == 1 and runs[0] is not None:
        run = runs[0]
        measured = f"{run.p99_server_ms:.2f} ms at {run.achieved_rps:,.0f} of "
        measured += f"{run.target_rps:,.0f} req/s" + ("" if _held(run) else ", rate not held")
    else:
        shown = ", ".join(_open_loop_shown(run) for run in runs)
        median = "none held" if p99 == math.inf else f"{p99:.2f} ms"
        measured = f"{median}, the median of {len(runs)} rounds ({shown})"
    return check._replace(measured=measured, status="pass" if p99 <= goal else "fail")


def _open_loop_shown(run: OpenLoopResult | None) -> str:
    if run is None:
        return "not run"
    return f"{run.p99_server_ms:.2f} ms" + ("" if _held(run) else " (rate not held)")


def _held(run: OpenLoopResult) -> bool:
    return run.achieved_rps >= OPEN_RATE_HELD * run.target_rps and not run.errors


def evaluate(report: Report) -> list[Check]:
    """Each target; n/a when not measured, or measured where it does not apply (another URL
    length). A `make bench-scale` report has its own."""
    if report.growth:
        return [_growth_check(report.growth)]
    memory = report.memory
    per_link = memory.total_per_link if memory else None
    name = f"Redis memory per link ({MEMORY_URL_LENGTH}-byte URL)"
    memory_check = _check(name, per_link, MEMORY_PER_LINK_MAX, " B", at_most=True)
    if memory is not None and memory.url_length != MEMORY_URL_LENGTH:
        memory_check = memory_check._replace(status="n/a")
    rate = report.creation.links_per_second if report.creation else None
    pipe = report.pipe.links_per_second if report.pipe else None
    return [
        _ratio_check(report, "hot path / bare aiohttp", "hot", "aiohttp", HOT_AIOHTTP_RATIO_MIN),
        _ratio_check(report, "miss path / hot path", "miss", "hot", MISS_HOT_RATIO_MIN),
        _ratio_check(
            report, "hot path with recording / without", "hot", "hot-notrack", TRACKING_RATIO_MIN
        ),
        _open_loop_check(report, "hot"),
        _open_loop_check(report, "miss"),
        _clicks_check(report, "hot"),
        _clicks_check(report, "miss"),  # per-recipient links: their counters
        _clicks_check(report, "hot-2w"),
        _check("batch creation / redis-cli --pipe", ratio(rate, pipe), CREATE_PIPE_RATIO_MIN),
        _check("batch creation rate", rate, CREATE_RATE_MIN, " links/s"),
        memory_check,
        _check("sends ingest rate", _rate(report.sends), SENDS_RATE_MIN, " sends/s"),
        _check(
            "conversions ingest rate",
            _rate(report.conversions),
            CONVERSIONS_RATE_MIN,
            " conversions/s",
        ),
        # Shown, not judged: recording on/off, and miss/hot, with each recording row's rate
        # taken over its load and the catch-up of the click work left when it stopped.
        _ratio_check(
            report,
            "hot path with recording / without, its click work's catch-up included (shown)",
            "hot",
            "hot-notrack",
            TRACKING_RATIO_MIN,
            sustained=True,
        )._replace(status="n/a"),
        _ratio_check(
            report,
            "miss path / hot path, their click work's catch-up included (shown)",
            "miss",
            "hot",
            MISS_HOT_RATIO_MIN,
            sustained=True,
        )._replace(status="n/a"),
    ]


def _rate(run: Creation | None) -> float | None:
    return None if run is None else run.links_per_second


def workers_note(report: Report) -> str | None:
    """What limits the -2w rows on this machine, from the cores each party kept busy."""
    row, cores = report.row("hot-2w"), int(report.machine.get("cores", 0))
    if row is None or row.cpu is None or cores != 2:
        return None
    cpu, workers = row.cpu, report.settings.get("workers", 2)
    return (
        f"Workers: this machine has {cores} cores. The 1-worker rows give one core to the server "
        f"and the other to wrk and Redis; the {workers}-worker rows share both cores among the "
        f"workers, wrk and Redis, so {workers} workers cannot reach {workers} times one here: in "
        f"hot-2w the servers kept {cpu.server:.2f} cores busy, wrk {cpu.load:.2f} and Redis "
        f"{_cores(cpu.redis)}. More workers pay off on a machine with cores to spare for them."
    )


def starved_note(report: Report) -> str | None:
    """Rows whose one-worker server did not get its core: something else ran on it."""
    starved = [
        f"{row.key} {row.cpu.server:.2f}"
        for row in report.rows
        if row.cpu is not None and "2w" not in row.key and row.cpu.server < STARVED_CORES
    ]
    if not starved:
        return None
    return (
        f"The server under test kept less than {STARVED_CORES} of its core busy ("
        + ", ".join(starved)
        + " cores): other work ran on this machine, and these rows are low."
    )


def _growth_check(growth: Sequence[Growth]) -> Check:
    """The miss path's p99 with the most links over that with the fewest."""
    fewest, most = growth[0], growth[-1]
    name = f"miss p99 at {most.creation.links:,} / at {fewest.creation.links:,} links"
    p99s = [row.miss.result.p99_ms if row.miss.result else None for row in (fewest, most)]
    measured = ratio(p99s[1], p99s[0]) if len(growth) > 1 else None
    return _check(name, measured, GROWTH_P99_RATIO_MAX, at_most=True)


def _cells(row: LoadRow, report: Report) -> list[str]:
    if row.result is None:
        return [row.key, row.setup, f"skipped: {row.skipped}"]
    rps = row.result.requests_per_second
    ratios = (ratio(rps, report.rps(reference)) for reference in ("nginx", "aiohttp"))
    cpu = row.cpu
    return [
        *(row.key, row.setup, f"{rps:,.0f}", f"{row.result.p50_ms:.2f} ms"),
        *(f"{row.result.p99_ms:.2f} ms", f"{row.result.errors:,}"),
        *("n/a" if value is None else f"{value:.2f}" for value in ratios),
        ""
        if cpu is None
        else f"{cpu.server:.2f} / {cpu.load:.2f} / {_cores(cpu.redis)} / {_cores(cpu.clicks)}",
    ]


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _open_loop_table(report: Report) -> list[str]:
    """The hot and miss paths at a fixed rate, half their closed-loop maximum."""
    rows = []
    for row in report.rows:
        rounds = row.rounds if any(one.open_loop for one in row.rounds) else ()
        for number, one in enumerate(rounds, 1):
            name = row.key if len(rounds) == 1 else f"{row.key}, round {number}"
            if (run := one.open_loop) is None:
                why = one.open_loop_skipped or one.skipped or "not run"
                rows.append([name, f"skipped: {why}", *[""] * 10])
                continue
            rows.append([name, f"{run.target_rps:,.0f}", f"{run.achieved_rps:,.0f}"])
            rows[-1] += [f"{run.clients}", f"{run.p50_ms:.2f} ms", f"{run.p99_ms:.2f} ms"]
            rows[-1] += [
                f"{run.p99_scheduled_ms:.2f} ms",
                f"{run.p99_server_ms:.2f} ms",
                f"{run.generator_late_p99_ms:.2f} ms",
                _bound(run.handler_p99_ms),
                f"{run.max_ms:.2f} ms",
                f"{run.errors:,}",
            ]
        if not rounds and row.open_loop_skipped:
            rows.append([row.key, f"skipped: {row.open_loop_skipped}", *[""] * 10])
    headers = ["open loop", "req/s asked", "req/s answered", "clients", "p50", "p99"]
    headers += ["p99 from when due", "p99 judged: due, h2load's stalls out"]
    headers += ["h2load late p99", "p99 inside the redirector's handler", "max", "errors"]
    return _table(headers, rows) if rows else []


def _bound(p99_ms: float | None) -> str:
    """A histogram's p99: at most its bucket's bound ("-": not read, or nothing answered)."""
    if p99_ms is None:
        return "-"
    return "over 1 s" if p99_ms == math.inf else f"<= {p99_ms:g} ms"


def _rounds_table(report: Report) -> list[str]:
    """The ratio rows' req/s in each round (or why a round failed), and their medians."""
    measured = [row for row in report.rows if row.again]
    if not measured:
        return []
    count = max(len(row.rounds) for row in measured)
    rows = []
    for row in measured:
        rates = [_rps(one) for one in row.rounds]
        cells = [
            f"{rps:,.0f}" if rps is not None else f"failed: {one.skipped}"
            for one, rps in zip(row.rounds, rates, strict=True)
        ]
        values = [rps for rps in rates if rps is not None]
        median = f"{statistics.median(values):,.0f}" if values else ""
        rows.append([row.key, *cells, *[""] * (count - len(cells)), median])
    headers = ["rounds", *(f"req/s round {n}" for n in range(1, count + 1)), "median"]
    return _table(headers, rows)


def _workers_table(report: Report) -> list[str]:
    """1 against 2 workers (whatever --workers says) for the hot and miss paths."""
    rows = []
    for key in ("hot", "miss"):
        one, more = report.rps(key), report.rps(f"{key}-2w")
        if one is not None and more is not None:
            multiple = ratio(more, one)
            rows.append([key, f"{one:,.0f}", f"{more:,.0f}", f"{multiple:.2f}" if multiple else ""])
    workers = report.settings.get("workers", 2)
    headers = ["path", "1 worker req/s", f"{workers} workers req/s", f"{workers} / 1"]
    return _table(headers, rows) if rows else []


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(headers), "|" + "---|" * len(headers), *map(line, rows), ""]


def _creation_table(report: Report) -> list[str]:
    """The pipe and create rows, the API's rate as a ratio of the pipe's."""
    pipe = report.pipe.links_per_second if report.pipe else None
    rows = []
    runs = [("pipe", report.pipe), ("create", report.creation)]
    runs += [("sends", report.sends), ("conversions", report.conversions)]
    for key, run in runs:
        if run is not None:
            vs_pipe = ratio(run.links_per_second, pipe)
            rows.append([key, f"{run.links:,}", f"{run.seconds:.2f} s"])
            rows[-1] += [
                f"{run.links_per_second:,.0f}",
                "n/a" if vs_pipe is None else f"{vs_pipe:.2f}",
            ]
    headers = ["row", "links (or events)", "seconds", "per second", "vs pipe"]
    return _table(headers, rows) if rows else []


def _growth_table(growth: Sequence[Growth]) -> list[str]:
    rows = []
    for row in growth:
        cells = [f"{row.creation.links:,}", f"{row.creation.links_per_second:,.0f}"]
        cells += [f"{row.memory.total_per_link:.1f} B", row.miss.setup]
        if (miss := row.miss.result) is None:
            cells += [f"skipped: {row.miss.skipped}", "", ""]
        else:
            cells += [f"{miss.requests_per_second:,.0f}", f"{miss.p50_ms:.2f} ms"]
            cells.append(f"{miss.p99_ms:.2f} ms")
        rows.append(cells)
    headers = ["links", "links/s", "memory per link", "miss row", "req/s", "p50", "p99"]
    return _table(headers, rows) if rows else []


def render_markdown(report: Report) -> str:
    headers = ["row", "setup", "req/s", "p50", "p99", "errors", "vs nginx", "vs aiohttp"]
    headers.append("CPU cores: server / wrk / Redis / click worker")
    lines = [f"# smslinks benchmark, {report.started_at}", "", f"`{report.command}`", ""]
    if report.rows:
        lines += _table(headers, [_cells(row, report) for row in report.rows])
        lines += _rounds_table(report) + _open_loop_table(report) + _workers_table(report)
    lines += _growth_table(report.growth) if report.growth else _creation_table(report)
    checks: list[Sequence[str]] = list(evaluate(report))
    if memory := report.memory:
        checks.append(("  of which link records", "", f"{memory.record_per_link:.1f} B", ""))
    lines += _table(("target", "goal", "measured", "result"), checks)
    lines += [f"- {name}: {value}" for name, value in {**report.machine, **report.settings}.items()]
    lines += ["", *(f"- {note}" for note in report.notes)]
    return "\n".join(lines).rstrip() + "\n"


def report_json(report: Report) -> dict[str, object]:
    data = asdict(report) | {"targets": [check._asdict() for check in evaluate(report)]}
    for row, row_data in zip(report.rows, data["rows"], strict=True):
        rps = row.result.requests_per_second if row.result else None
        row_data["ratio_to_nginx"] = ratio(rps, report.rps("nginx"))
        row_data["ratio_to_aiohttp"] = ratio(rps, report.rps("aiohttp"))
    return data
