"""The benchmark's results, the issue's targets checked against them, and their renderings:
a terminal table (rich when installed), Markdown and JSON. Pure: no I/O but `print_report`.

    Report                  everything one run measured, and how
    ClickCount              a row's click accounting: 302s wrk got, clicks Redis recorded
    ratio(rps, ceiling)     rps as a share of the nginx ceiling, None without a ceiling
    evaluate(report)        -> [Check]: pass, fail or n/a for every target
    render_markdown(report) the `latest.md` text;  report_json(report): the `latest.json` data
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from loadtests.bench_wrk import WrkResult

# The targets.
HOT_RATIO_MIN = 0.40
MISS_RATIO_MIN = 0.25
# "The hot path with click recording on keeps at least 90% of its throughput with it off."
TRACKING_RATIO_MIN = 0.90
# "Recorded clicks equal clicks sent in a load test of at least 100,000 requests."
CLICKS_MIN_REQUESTS = 100_000
HOT_P99_MAX_MS = 3.0
HOT_P99_CONNECTIONS = 64
CREATE_RATE_MIN = 100_000.0
MEMORY_PER_LINK_MAX = 120.0
MEMORY_URL_LENGTH = 90

# CPU used by others (percent of one core) above which a row, or the run, is flagged as busy.
BUSY_PERCENT = 10.0
# wrk's CPU share above which a row may be measuring wrk rather than the server.
LOAD_BOUND_PERCENT = 90.0

Status = Literal["pass", "fail", "n/a"]
LOAD_HEADERS = (
    *("row", "setup", "req/s", "p50", "p99", "errors", "vs nginx", "vs aiohttp"),
    *("Redis cmd/req", "server CPU", "wrk CPU", "redis CPU", "other CPU"),
)
CLICK_HEADERS = (
    *("row", "wrk requests", "non-3xx", "socket errors", "302s sent", "recorded"),
    *("clicks", "bots", "recorded - sent", "result"),
)


@dataclass(frozen=True, slots=True)
class ClickCount:
    """One row's click accounting over its measured run: the 302s wrk got against the increase
    of the campaign's `clicks` and `bots` counters in Redis, read once they stopped changing.

    wrk counts a request when its response has been read (src/wrk.c, response_complete), so
    `requests` minus the 4xx/5xx answers are the 302s it got; a socket error is not in
    `requests`. Requests in flight when wrk stops (at most one per connection) or cut by a
    socket error may have been served and recorded without being counted: that much more
    recorded than sent (`slack`) is not a loss."""

    requests: int  # wrk's completed requests
    bad_status: int  # of which 4xx/5xx
    socket_errors: int
    clicks: int  # increase of the campaign stats field `clicks`
    bots: int  # increase of `bots`; 0 when every request carries the phone's User-Agent
    connections: int
    settled: bool  # the counters stopped changing within the wait

    @property
    def sent(self) -> int:
        return self.requests - self.bad_status

    @property
    def recorded(self) -> int:
        return self.clicks + self.bots

    @property
    def difference(self) -> int:
        return self.recorded - self.sent

    @property
    def slack(self) -> int:
        return self.connections + self.socket_errors

    @property
    def status(self) -> Status:
        if self.sent < CLICKS_MIN_REQUESTS:
            return "n/a"
        return "pass" if 0 <= self.difference <= self.slack else "fail"


@dataclass(frozen=True, slots=True)
class LoadRow:
    key: str  # what --only names: nginx, aiohttp, hot, hot-notrack, miss, hot-2w, miss-2w
    title: str
    setup: str  # e.g. "1,000 codes, cache 100,000"
    result: WrkResult | None = None
    skipped: str | None = None  # why there is no result
    server_cpu: float | None = None  # percent of one core, over the measured run
    load_cpu: float | None = None
    redis_cpu: float | None = None
    other_cpu: float | None = None  # the rest of the machine: processes not of this run
    redis_calls: dict[str, float] | None = None  # Redis commands per request, by command
    processes: int | None = None  # processes in the server's group
    clicks: ClickCount | None = None  # the rows whose clicks are counted: hot, hot-2w


@dataclass(frozen=True, slots=True)
class Creation:
    links: int
    seconds: float
    batch_size: int
    concurrency: int

    @property
    def links_per_second(self) -> float:
        return self.links / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Memory:
    links: int
    url_length: int
    used_before: int  # INFO memory used_memory, bytes
    used_after: int
    link_hashes: int  # l:* keys
    link_bytes: int  # their MEMORY USAGE, summed
    recipient_hashes: int  # r:* keys
    recipient_bytes: int

    @property
    def total_per_link(self) -> float:
        return (self.used_after - self.used_before) / self.links

    @property
    def record_per_link(self) -> float:
        return self.link_bytes / self.links

    @property
    def recipient_per_link(self) -> float:
        return self.recipient_bytes / self.links


@dataclass(slots=True)
class Report:
    started_at: str
    command: str
    machine: dict[str, str]
    settings: dict[str, str | int | float]
    rows: list[LoadRow] = field(default_factory=list)
    creation: Creation | None = None
    memory: Memory | None = None
    notes: list[str] = field(default_factory=list)

    def row(self, key: str) -> LoadRow | None:
        return next((row for row in self.rows if row.key == key), None)

    def rps(self, key: str) -> float | None:
        row = self.row(key)
        return row.result.requests_per_second if row and row.result else None

    @property
    def ceiling(self) -> float | None:
        return self.rps("nginx")

    @property
    def framework(self) -> float | None:
        """The bare aiohttp + uvloop reference: what the framework alone does here."""
        return self.rps("aiohttp")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    goal: str
    measured: str
    status: Status


def ratio(rps: float | None, ceiling: float | None) -> float | None:
    if rps is None or not ceiling:
        return None
    return rps / ceiling


def _at_least(value: float | None, goal: float) -> Status:
    return "n/a" if value is None else "pass" if value >= goal else "fail"


def _at_most(value: float | None, goal: float) -> Status:
    return "n/a" if value is None else "pass" if value <= goal else "fail"


def _ratio_check(report: Report, key: str, name: str, goal: float) -> Check:
    rps = report.rps(key)
    value = ratio(rps, report.ceiling)
    measured = fmt_ratio(value) if value is not None else _why_no_ratio(rps, "no nginx ceiling")
    return Check(name, f">= {goal:.2f}", measured, _at_least(value, goal))


def _why_no_ratio(rps: float | None, missing: str) -> str:
    if rps is None:
        return "not measured"
    return f"{fmt_int(rps)} req/s, {missing}"


def _tracking_check(report: Report) -> Check:
    name = "hot path with recording / without"
    rps = report.rps("hot")
    value = ratio(rps, report.rps("hot-notrack"))
    measured = fmt_ratio(value) if value is not None else _why_no_ratio(rps, "no hot-notrack row")
    goal = f">= {TRACKING_RATIO_MIN:.2f}"
    return Check(name, goal, measured, _at_least(value, TRACKING_RATIO_MIN))


def _clicks_check(report: Report, key: str) -> Check:
    name = f"recorded clicks = sent ({key})"
    goal = f"equal, over >= {fmt_int(CLICKS_MIN_REQUESTS)} requests"
    row = report.row(key)
    if row is None or row.clicks is None:
        return Check(name, goal, "not measured", "n/a")
    count = row.clicks
    measured = f"{fmt_int(count.sent)} sent, {fmt_int(count.recorded)} recorded"
    if count.difference:
        measured += f" ({count.difference:+,})"
    if count.sent < CLICKS_MIN_REQUESTS:
        measured += f"; under {fmt_int(CLICKS_MIN_REQUESTS)} requests"
    if not count.settled:
        measured += "; counters still changing"
    return Check(name, goal, measured, count.status)


def _p99_check(report: Report) -> Check:
    row = report.row("hot")
    goal = f"<= {HOT_P99_MAX_MS:g} ms at {HOT_P99_CONNECTIONS} connections"
    if row is None or row.result is None:
        return Check("hot path p99", goal, "not measured", "n/a")
    measured = fmt_ms(row.result.p99_ms)
    if report.settings.get("connections") != HOT_P99_CONNECTIONS:
        return Check(
            "hot path p99",
            goal,
            f"{measured} at {report.settings.get('connections')} connections",
            "n/a",
        )
    return Check("hot path p99", goal, measured, _at_most(row.result.p99_ms, HOT_P99_MAX_MS))


def _creation_check(report: Report) -> Check:
    goal = f">= {fmt_int(CREATE_RATE_MIN)} links/s"
    if report.creation is None:
        return Check("batch creation rate", goal, "not measured", "n/a")
    rate = report.creation.links_per_second
    measured = f"{fmt_int(rate)} links/s ({fmt_int(report.creation.links)} links)"
    return Check("batch creation rate", goal, measured, _at_least(rate, CREATE_RATE_MIN))


def _memory_check(report: Report) -> Check:
    goal = f"<= {MEMORY_PER_LINK_MAX:g} B per link ({MEMORY_URL_LENGTH}-byte URL)"
    memory = report.memory
    if memory is None:
        return Check("Redis memory per link", goal, "not measured", "n/a")
    measured = fmt_bytes(memory.total_per_link)
    if memory.url_length != MEMORY_URL_LENGTH:
        return Check(
            "Redis memory per link", goal, f"{measured} ({memory.url_length}-byte URL)", "n/a"
        )
    return Check(
        "Redis memory per link",
        goal,
        measured,
        _at_most(memory.total_per_link, MEMORY_PER_LINK_MAX),
    )


def evaluate(report: Report) -> list[Check]:
    return [
        _ratio_check(report, "hot", "hot path / nginx", HOT_RATIO_MIN),
        _ratio_check(report, "miss", "miss path / nginx", MISS_RATIO_MIN),
        _tracking_check(report),
        _p99_check(report),
        _clicks_check(report, "hot"),
        _clicks_check(report, "hot-2w"),
        _creation_check(report),
        _memory_check(report),
    ]


def row_notes(row: LoadRow) -> list[str]:
    """What a row's numbers may owe to something other than the server under test."""
    notes = []
    if row.redis_calls:
        busiest = sorted(row.redis_calls.items(), key=lambda item: -item[1])[:5]
        calls = ", ".join(f"{name} {n:.2f}" for name, n in busiest if n >= 0.005)
        notes.append(f"{row.key}: Redis commands per request: {calls or 'none'}.")
    if row.other_cpu is not None and row.other_cpu >= BUSY_PERCENT:
        notes.append(
            f"{row.key}: other processes used {row.other_cpu:.0f}% of a core during the row "
            "(column 'other CPU'): its numbers are lower than on an idle machine."
        )
    if row.load_cpu is not None and row.load_cpu >= LOAD_BOUND_PERCENT:
        notes.append(
            f"{row.key}: wrk used {row.load_cpu:.0f}% of a core: this row may be limited by "
            "the load generator rather than the server."
        )
    if row.clicks is not None:
        notes += click_notes(row.key, row.clicks)
    return notes


def click_notes(key: str, count: ClickCount) -> list[str]:
    """What a row's click accounting shows beyond pass or fail."""
    notes = [
        f"{key}: clicks: wrk got {fmt_int(count.sent)} 302s ({fmt_int(count.requests)} "
        f"requests, {fmt_int(count.bad_status)} non-3xx, {fmt_int(count.socket_errors)} socket "
        f"errors); Redis recorded {fmt_int(count.recorded)} ({fmt_int(count.clicks)} clicks, "
        f"{fmt_int(count.bots)} bot hits)."
    ]
    difference = count.difference
    if difference < 0:
        notes.append(f"{key}: {fmt_int(-difference)} clicks sent were not recorded.")
    elif 0 < difference <= count.slack:
        notes.append(
            f"{key}: {fmt_int(difference)} more recorded than wrk counted, within the "
            f"{count.connections} connections (+ {count.socket_errors} socket errors): requests "
            "in flight when wrk stopped were served and recorded, but wrk counts a request only "
            "once it has read the response. Not a loss."
        )
    elif difference > count.slack:
        notes.append(
            f"{key}: {fmt_int(difference)} more recorded than sent, beyond the "
            f"{count.slack} requests that can be in flight: clicks were counted twice."
        )
    if count.bots:
        notes.append(
            f"{key}: {fmt_int(count.bots)} hits were recorded as bots although every request "
            "carried the phone's User-Agent."
        )
    if count.sent < CLICKS_MIN_REQUESTS:
        notes.append(
            f"{key}: the click count covers {fmt_int(count.sent)} requests, fewer than the "
            f"{fmt_int(CLICKS_MIN_REQUESTS)} the target asks for."
        )
    if not count.settled:
        notes.append(f"{key}: the click counters were still changing when the wait gave up.")
    return notes


def framework_notes(report: Report) -> list[str]:
    """How much of the gap to nginx is aiohttp's, and how much is ours."""
    framework, hot = report.framework, report.rps("hot")
    if framework is None:
        return []
    parts = []
    if report.ceiling:
        parts.append(f"reaches {fmt_ratio(ratio(framework, report.ceiling))} of nginx")
    if hot is not None:
        parts.append(
            f"the hot row reaches {fmt_ratio(ratio(hot, framework))} of it (hot / bare aiohttp)"
        )
    notrack = report.rps("hot-notrack")
    if notrack is not None:
        parts.append(f"without click recording {fmt_ratio(ratio(notrack, framework))}")
    if not parts:
        return []
    return [
        "Bare aiohttp + uvloop (one `/{code}` route answering a 302, no access log) "
        + "; ".join(parts)
        + ": what the framework costs on this machine, and what our code adds on top."
    ]


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def fmt_ms(value: float) -> str:
    return f"{value:.2f} ms"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def fmt_percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}%"


def fmt_bytes(value: float) -> str:
    return f"{value:.1f} B"


def load_table(report: Report) -> list[tuple[str, ...]]:
    """The throughput rows as text cells, in LOAD_HEADERS order."""
    rows: list[tuple[str, ...]] = []
    for row in report.rows:
        if row.result is None:
            rows.append((row.title, row.setup, "skipped", *[""] * (len(LOAD_HEADERS) - 3)))
            continue
        r = row.result
        share = ratio(r.requests_per_second, report.ceiling)
        framework = ratio(r.requests_per_second, report.framework)
        calls = "" if row.redis_calls is None else f"{sum(row.redis_calls.values()):.2f}"
        rows.append(
            (
                *(row.title, row.setup, fmt_int(r.requests_per_second)),
                *(fmt_ms(r.p50_ms), fmt_ms(r.p99_ms), fmt_int(r.errors)),
                *(fmt_ratio(share), fmt_ratio(framework), calls),
                *map(fmt_percent, (row.server_cpu, row.load_cpu, row.redis_cpu, row.other_cpu)),
            )
        )
    return rows


def click_table(report: Report) -> list[tuple[str, ...]]:
    """The click accounting of the rows that have one, in CLICK_HEADERS order."""
    rows: list[tuple[str, ...]] = []
    for row in report.rows:
        c = row.clicks
        if c is None:
            continue
        rows.append(
            (
                *(row.title, fmt_int(c.requests), fmt_int(c.bad_status), fmt_int(c.socket_errors)),
                *(fmt_int(c.sent), fmt_int(c.recorded), fmt_int(c.clicks), fmt_int(c.bots)),
                *(f"{c.difference:+,}", c.status),
            )
        )
    return rows


def store_table(report: Report) -> list[tuple[str, str]]:
    """Creation rate and memory as (measure, value) text cells."""
    rows = []
    if report.creation is not None:
        c = report.creation
        rows.append(
            (
                f"batch creation via the admin API ({fmt_int(c.links)} links, "
                f"{fmt_int(c.batch_size)} per request, {c.concurrency} concurrent)",
                f"{fmt_int(c.links_per_second)} links/s ({c.seconds:.1f} s)",
            )
        )
    if report.memory is not None:
        m = report.memory
        rows += [
            (
                f"Redis memory per link, total (used_memory delta / {fmt_int(m.links)})",
                fmt_bytes(m.total_per_link),
            ),
            (
                f"  link records (MEMORY USAGE of {fmt_int(m.link_hashes)} l:* hashes)",
                fmt_bytes(m.record_per_link),
            ),
            (
                f"  recipient index (MEMORY USAGE of {fmt_int(m.recipient_hashes)} r:* hashes)",
                fmt_bytes(m.recipient_per_link),
            ),
        ]
    return rows


def target_table(report: Report) -> list[tuple[str, str, str, str]]:
    return [(c.name, c.goal, c.measured, c.status) for c in evaluate(report)]


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(headers), "|" + "|".join("---" for _ in headers) + "|", *map(line, rows)]


def render_markdown(report: Report) -> str:
    s = report.settings
    lines = [
        f"# smslinks benchmark, {report.started_at}",
        "",
        f"`{report.command}`",
        "",
        f"## Redirects (wrk: {s.get('connections')} connections, {s.get('threads')} threads, "
        f"{s.get('duration')} s per row after {s.get('warmup')} s of warm-up; a longer run "
        "where the setup says so)",
        "",
        *_markdown_table(LOAD_HEADERS, load_table(report)),
        "",
    ]
    clicks = click_table(report)
    if clicks:
        lines += ["## Click accounting (measured run)", "", *_markdown_table(CLICK_HEADERS, clicks)]
        lines.append("")
    store = store_table(report)
    if store:
        lines += ["## Link creation and memory", "", *_markdown_table(("measure", "value"), store)]
        lines.append("")
    lines += ["## Targets", ""]
    lines += _markdown_table(("target", "goal", "measured", "result"), target_table(report))
    lines += ["", "## Machine", ""]
    lines += [f"- {name}: {value}" for name, value in report.machine.items()]
    lines += [f"- {name}: {value}" for name, value in s.items()]
    if report.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in report.notes)]
    return "\n".join(lines) + "\n"


def report_json(report: Report) -> dict[str, object]:
    rows = []
    for row in report.rows:
        data = asdict(row)
        if row.result is not None:
            data["errors"] = row.result.errors
            data["ratio_to_nginx"] = ratio(row.result.requests_per_second, report.ceiling)
            data["ratio_to_aiohttp"] = ratio(row.result.requests_per_second, report.framework)
        if row.clicks is not None and isinstance(data["clicks"], dict):
            c = row.clicks
            data["clicks"].update(
                sent=c.sent, recorded=c.recorded, difference=c.difference, status=c.status
            )
        rows.append(data)
    creation = asdict(report.creation) if report.creation else None
    if report.creation and creation is not None:
        creation["links_per_second"] = report.creation.links_per_second
    memory = asdict(report.memory) if report.memory else None
    if report.memory and memory is not None:
        memory["total_per_link"] = report.memory.total_per_link
        memory["record_per_link"] = report.memory.record_per_link
        memory["recipient_per_link"] = report.memory.recipient_per_link
    return {
        "started_at": report.started_at,
        "command": report.command,
        "machine": report.machine,
        "settings": report.settings,
        "rows": rows,
        "creation": creation,
        "memory": memory,
        "targets": [asdict(check) for check in evaluate(report)],
        "notes": report.notes,
    }


def render_text(report: Report) -> str:
    """Plain-text tables, for terminals without rich."""
    parts = [
        _text_table(LOAD_HEADERS, load_table(report)),
        _text_table(CLICK_HEADERS, click_table(report)),
        _text_table(("measure", "value"), store_table(report)),
        _text_table(("target", "goal", "measured", "result"), target_table(report)),
    ]
    notes = "\n".join(f"- {note}" for note in report.notes)
    return "\n\n".join(part for part in [*parts, notes] if part) + "\n"


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return ""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def print_report(report: Report) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(render_text(report))
        return
    console = Console()
    if not console.is_terminal:  # a pipe or a log file: wide enough not to wrap the cells
        console = Console(width=160)
    for title, headers, rows in (
        ("Redirects", LOAD_HEADERS, load_table(report)),
        ("Click accounting (measured run)", CLICK_HEADERS, click_table(report)),
        ("Link creation and memory", ("measure", "value"), store_table(report)),
        ("Targets", ("target", "goal", "measured", "result"), target_table(report)),
    ):
        if not rows:
            continue
        table = Table(title=title)
        for header in headers:
            table.add_column(header)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for note in report.notes:
        console.print(f"- {note}", highlight=False, markup=False)
