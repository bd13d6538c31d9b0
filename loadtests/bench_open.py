"""Open-loop latency of the benchmark's hot and miss rows: h2load sending requests at a fixed
rate (half the row's closed-loop maximum) whatever the answers take, and the percentiles of
its per-request log (h2load itself prints only min, max, mean and sd).

wrk keeps 64 requests in flight, so its p99 at saturation is mostly queueing (Little's law:
connections / throughput), not what a person waits for. Here each h2load process is one
HTTP/1.1 client sending at most CLIENT_RPS_MAX req/s, with its own share of the codes (the
clients of one process walk the same URI list, which would tap each code once per client:
hits, not misses) and its own User-Agent of the mix. Few busy processes, not many idle
ones: measured against bare aiohttp at 10,000 req/s, 10 to 20 processes gave a p99 of
0.3-0.7 ms where 100 processes at 100 req/s each gave 6-17 ms, the load generator's own
scheduling on its shared core (a process of several clients sends them in bursts, as their
timers tick together). The miss rows' clients send as fast as the hot rows', though
their answers wait for Redis: from 2026-11-30 they sent at most 100 req/s each, because at
5,000 req/s on a slower machine, with the click worker running beside Redis, a client at
500 req/s queued its next requests behind slow answers (judged p99 121-486 ms, against
7.8-9.1 ms at 100). On a machine that answers 35,000 misses a second, half of that took 175
processes at 100 req/s, and the load generator measured itself again
(`scripts/redirect_ab.py --rows hot-noworker,miss-noworker --open-rate 17500 --client-rps
N`, 2026-12-01): the HOT path's judged p99 was 5.85 ms with 175 processes and 0.59 ms with
35; the miss path's 8.2-160 ms with 175, 7.97 ms with 70 and 1.95-2.54 ms with 35. A
client's wait behind its own previous answer still counts in full (the judged p99 below),
so fewer, busier clients judge the server more strictly on that score, not less.

Three latencies per request: from when h2load sent it (`p99_ms`); from when it was due
(`p99_scheduled_ms`): a client with an answer still outstanding sends its next request late,
and only this counts that wait (coordinated omission, as wrk2 corrects it), request k of a
client being due k / rps after its first; and the judged one, `p99_server_ms`: the same
answers' times replayed by a client that never stalls itself, which sends each request when
it is due or as soon as the answer before it arrived, whichever is later, and counts from
when it was due. wrk2's correction assumes a load generator that keeps its schedule; h2load
shares its core with Redis and the click worker, and a request it sends late on its own
(nothing outstanding) would otherwise count its own delay, and that of the requests queued
behind it, as the server's. Every wait behind an answer still counts in full; h2load's own
lateness is reported apart (`generator_late_p99_ms`).
"""

from __future__ import annotations

import asyncio
import math
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests import bench_procs as procs

CLIENT_RPS_MAX = 500.0  # every row's (see the docstring)
WARMUP_SECONDS = 1.0  # connections made and timers running before the measured seconds
H2LOAD_MISSING = "h2load is not installed (apt-get install -y nghttp2-client): no open-loop rows"


@dataclass(frozen=True, slots=True)
class OpenLoopResult:
    target_rps: float
    clients: int
    requests: int  # answered within the measured seconds
    seconds: float
    achieved_rps: float
    p50_ms: float
    p99_ms: float  # from when each request was sent
    max_ms: float
    errors: int  # answers of 400 or more, and requests that failed
    p99_scheduled_ms: float = 0.0  # from when each request was due (see the docstring)
    p99_server_ms: float = 0.0  # from when due, replayed without h2load's stalls (judged)
    generator_late_p99_ms: float = 0.0  # how late h2load sent what nothing held back
    # The redirector's own p99 over the run, inside its handler (`bucket_quantile` of its
    # smslinks_redirect_seconds): a bucket's upper bound; None for a server without it.
    handler_p99_ms: float | None = None


def plan(rate: float, client_rps_max: float = CLIENT_RPS_MAX) -> tuple[int, float]:
    """(clients, req/s each) sending `rate` req/s in all, none above `client_rps_max`."""
    clients = max(1, math.ceil(rate / client_rps_max))
    return clients, rate / clients


def percentile(ordered: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value with at least `share` of the values at or below it."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def bucket_quantile(
    before: dict[float, float], after: dict[float, float], share: float
) -> float | None:
    """Of a Prometheus histogram's cumulative buckets (upper bound -> count) read before and
    after a run: the bound of the first bucket holding `share` of the run's observations (inf
    past the last bound); None without any."""
    counts = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return None
    return next(bound for bound, count in counts if count >= share * total)


def read_logs(
    texts: Iterable[str], target_rps: float, clients: int, seconds: float
) -> OpenLoopResult:
    """h2load's `--log-file` lines (start in µs since the epoch, status or -1 for a failed
    request, µs until the end of the answer), one text per client, summed up."""
    times_ms, scheduled_ms, server_ms, late_ms, errors = [], [], [], [], 0
    step_us = 1e6 * clients / target_rps if target_rps > 0 else 0.0  # between a client's
    for text in texts:
        rows = sorted(
            (int(start), int(status), int(micros))
            for start, status, micros in (line.split("\t") for line in text.splitlines())
        )
        first = rows[0][0] if rows else 0
        answered = replayed = float(first)  # the last answer: as h2load got it, as replayed
        for k, (start, status, micros) in enumerate(rows):
            errors += not 0 < status < 400
            times_ms.append(micros / 1000)
            due = first + k * step_us
            scheduled_ms.append(max(micros, start + micros - due) / 1000)
            # h2load's own lateness: sent after it was due and after the answer before it.
            late_ms.append(max(0.0, start - max(due, answered)) / 1000)
            answered = start + micros
            # A client that never stalls sends it when due or once the previous answer is in.
            sent = max(due, replayed)
            replayed = sent + micros
            server_ms.append((replayed - due) / 1000)
    times_ms.sort()
    scheduled_ms.sort()
    server_ms.sort()
    late_ms.sort()
    return OpenLoopResult(
        target_rps=target_rps,
        clients=clients,
        requests=len(times_ms),
        seconds=seconds,
        achieved_rps=len(times_ms) / seconds,
        p50_ms=percentile(times_ms, 0.50),
        p99_ms=percentile(times_ms, 0.99),
        max_ms=times_ms[-1] if times_ms else 0.0,
        errors=errors,
        p99_scheduled_ms=percentile(scheduled_ms, 0.99),
        p99_server_ms=percentile(server_ms, 0.99),
        generator_late_p99_ms=percentile(late_ms, 0.99),
    )


def h2load_command(
    uris: Path, rps: float, seconds: float, user_agent: str, log: Path, cpus: str | None
) -> list[str]:
    """One HTTP/1.1 client sending `rps` req/s for `seconds` after the warm-up, logging each."""
    command = ["h2load", "--h1", "-c1", "-t1", f"--rps={rps:.3f}", "-i", str(uris)]
    command += [f"-D{seconds:g}", f"--warm-up-time={WARMUP_SECONDS:g}", f"--log-file={log}"]
    return procs.load_generator([*command, "-H", f"User-Agent: {user_agent}"], cpus)


async def run_open_loop(
    base_url: str,
    paths: Sequence[str],
    user_agents: Sequence[str],
    rate: float,
    seconds: float,
    tmp: Path,
    cpus: str | None,
    client_rps_max: float = CLIENT_RPS_MAX,
) -> OpenLoopResult:
    """`rate` req/s in all for `seconds`, over as many h2load processes as `plan` says; each
    taps its share of `paths` in turn. StartError if h2load is missing or one of them fails."""
    if shutil.which("h2load") is None:
        raise procs.StartError(H2LOAD_MISSING)
    clients, rps = plan(rate, client_rps_max)
    logs, processes = [], []
    try:
        for client in range(clients):
            uris, log = tmp / f"open-{client}.uris", tmp / f"open-{client}.log"
            share = paths[client::clients] or [paths[client % len(paths)]]  # fewer paths
            uris.write_text("".join(f"{base_url}{path}\n" for path in share))
            log.unlink(missing_ok=True)  # h2load appends
            user_agent = user_agents[client * len(user_agents) // clients]
            command = h2load_command(uris, rps, seconds, user_agent, log, cpus)
            processes.append(
                await asyncio.create_subprocess_exec(
                    *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
                )
            )
            logs.append(log)
        async with asyncio.timeout(seconds + WARMUP_SECONDS + procs.GRACE_SECONDS):
            outputs = await asyncio.gather(*(process.communicate() for process in processes))
    finally:  # failed, cancelled or overrun: none is left running
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    for process, (output, _) in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            text = output.decode(errors="replace").strip()
            raise procs.StartError(f"h2load exited with {process.returncode}:\n{text}")
    texts = [log.read_text() if log.exists() else "" for log in logs]
    return read_logs(texts, rate, clients, seconds)
