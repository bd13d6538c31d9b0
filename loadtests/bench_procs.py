"""The processes the benchmark starts and always stops, each in its own session (so that Ctrl-C
reaches the benchmark first, which then stops the process with the workers it forked); the cores
they are pinned to and the CPU they use."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
from redis.asyncio import Redis
from redis.exceptions import RedisError

from redirector.store.keys import REDIS_MEMORY_CONFIG

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = ROOT / "loadtests" / "bench.lua"
_STOP_SECONDS = 10.0
_START_SECONDS = 30.0
# A load generator's run that has not finished this long after its planned duration is killed.
GRACE_SECONDS = 30.0


class StartError(RuntimeError):
    """A server did not come up, or wrk failed; the message ends with what it printed."""


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Pinning:
    """CPU lists for `taskset -c`: the server under test on one core, the load generator (and
    Redis) on the other. None everywhere with fewer than two cores or no taskset."""

    server: str | None
    load: str | None
    both: str | None

    @classmethod
    def plan(cls, cpus: Sequence[int], have_taskset: bool) -> Pinning:
        if len(cpus) < 2 or not have_taskset:
            return cls(None, None, None)
        first, second = sorted(cpus)[:2]
        return cls(str(first), str(second), f"{first},{second}")


def pinned(command: list[str], cpus: str | None) -> list[str]:
    return (["taskset", "-c", cpus] if cpus else []) + command


# The load generators (wrk, h2load) run before anything else on their core, when we may
# raise a priority (root): they stand for visitors on other machines, whose requests cost
# ours nothing, so their clocks and reads must not wait behind Redis or the click worker
# sharing that core. Real-time (SCHED_FIFO, lowest priority), not a niceness: under Linux's
# EEVDF scheduler a woken task of niceness -10 still waits for the running one's slice, and
# the hot row's open-loop p50 was 0.7-1.7 ms at half its maximum (answers waiting for
# h2load to run), 0.16 ms with SCHED_FIFO (bare aiohttp: 0.17 ms either way). Neither
# spins: they sleep on their sockets between events (wrk keeps 0.4-0.6 of the core busy at
# saturation, ahead of Redis and the click worker, whose work then waits: the report says
# how much of it was left for after the run); the kernel keeps 5% of a core from real-time
# tasks regardless. Every row gets the same. Without the privilege (not root, or a
# container without CAP_SYS_NICE) they run at the default priority.
LOAD_PRIORITY = ["chrt", "--fifo", "1"]


# Redis in the server rows: above the load generators, as a server of its own machine whose
# answers wait for nobody's visitors (README, Performance: measured).
REDIS_PRIORITY = 2


@functools.cache
def _may_run_real_time() -> bool:
    try:
        return subprocess.run([*LOAD_PRIORITY, "true"], capture_output=True).returncode == 0
    except OSError:  # no chrt
        return False


def load_generator(command: list[str], cpus: str | None) -> list[str]:
    """`command` pinned to `cpus`, at LOAD_PRIORITY when this process may set it."""
    raised = LOAD_PRIORITY if _may_run_real_time() else []
    return pinned([*raised, *command], cpus)


def ahead_of_load(pid: int) -> bool:
    """Run `pid` (its main thread) ahead of the load generators (SCHED_FIFO REDIS_PRIORITY)
    when this process may raise priorities; whether it does."""
    if not _may_run_real_time():
        return False
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(REDIS_PRIORITY))
    except OSError:
        return False
    return True


class Service:
    """One started server, stopped when its `with` block ends: its log, a wait until it
    answers, and a stop that always finishes (SIGTERM to its session, then SIGKILL to what
    outlives the wait). It gets this process's environment, plus `env`."""

    def __init__(self, name: str, command: list[str], log: Path, env: Mapping[str, str]) -> None:
        self.name, self.log = name, log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                cwd=ROOT,
                start_new_session=True,
            )
        self.pid = self.process.pid

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Its session stopped (SIGSTOP) for the block, from when it is seen stopped (a signal
        lands asynchronously), and continued after however the block ends. A StartError if
        it is gone or not stopped within a second."""
        try:
            try:
                os.killpg(self.pid, signal.SIGSTOP)
                process = psutil.Process(self.pid)
                for _ in range(100):
                    if process.status() == psutil.STATUS_STOPPED:
                        break
                    time.sleep(0.01)
                else:
                    raise self.failure("not stopped a second after SIGSTOP")
            except (ProcessLookupError, psutil.NoSuchProcess):
                raise self.failure("gone when it was to be paused") from None
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGCONT)

    def failure(self, what: str) -> StartError:
        tail = self.log.read_text(errors="replace").strip().splitlines()[-20:]
        return StartError("\n  ".join([f"{self.name}: {what}", *tail]))

    async def wait(self, url: str, status: int = 200) -> None:
        """Until GET `url` answers `status` (redirects never followed), or a redis:// URL PONG."""
        redis = Redis.from_url(url, socket_timeout=1) if url.startswith("redis:") else None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            try:
                async with asyncio.timeout(_START_SECONDS):
                    while True:
                        if self.process.poll() is not None:
                            raise self.failure(f"exited with {self.process.returncode}")
                        with contextlib.suppress(aiohttp.ClientError, RedisError, OSError):
                            if redis is not None and await redis.ping():
                                return
                            if redis is None:
                                async with session.get(url, allow_redirects=False) as response:
                                    if response.status == status:
                                        return
                        await asyncio.sleep(0.05)
            except TimeoutError:
                raise self.failure(f"no answer from {url} in {_START_SECONDS:.0f} s") from None
            finally:
                if redis is not None:
                    await redis.aclose()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *_: object) -> None:
        try:  # the server and the workers it forked
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:  # it exited and wait() reaped it
            tree = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        for process in psutil.wait_procs(tree, timeout=_STOP_SECONDS)[1]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.process.wait(timeout=_STOP_SECONDS)


def redis_command(port: int, directory: Path) -> list[str]:
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory), "--daemonize", "no"]
    for name, value in REDIS_MEMORY_CONFIG.items():
        command += [f"--{name}", str(value)]
    return command


def nginx_command(directory: Path, port: int, location: str) -> list[str]:
    """nginx in the foreground, one worker answering every path with a 302 to `location`, no
    access log, every file it writes inside `directory`. It also sends a 145-byte HTML body,
    which the redirector does not: the ceiling is, if anything, a little low."""
    quoted = location.replace("\\", "\\\\").replace('"', '\\"')
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")  # of its temporary files
    temp = " ".join(f"{kind}_temp_path {directory}/{kind};" for kind in kinds)
    (directory / "nginx.conf").write_text(
        f"worker_processes 1; pid {directory}/nginx.pid; events {{ worker_connections 4096; }}\n"
        f"http {{ access_log off; keepalive_requests 100000000; {temp}\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{\n"
        f'    add_header Cache-Control "private, max-age=0" always; return 302 "{quoted}"; }} }}\n'
        "}\n"
    )
    # -e: the default error log under /var/log is opened before the config is read.
    command = ["nginx", "-p", str(directory), "-c", str(directory / "nginx.conf")]
    return [*command, "-e", str(directory / "error.log"), "-g", "daemon off;"]


def python_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@dataclass(frozen=True, slots=True)
class WrkResult:
    """The JSON line bench.lua's done() prints, and the rate."""

    requests: int  # completed: their response was read
    seconds: float
    p50_ms: float
    p99_ms: float
    socket_errors: int  # connect, read, write and timeout errors
    bad_status: int  # answers with a status of 400 or more
    requests_per_second: float = 0.0

    @classmethod
    def from_json(cls, line: str | bytes) -> WrkResult:
        """Raises StartError (that row's error, not the run's) for a line it cannot read."""
        try:
            values = orjson.loads(line)
            result = cls(**values)  # TypeError: not an object, or other fields
            if not all(isinstance(value, int | float) for value in values.values()):
                raise TypeError("every field must be a number")
        except (ValueError, TypeError) as exc:
            raise StartError(f"wrk printed an unreadable result {line!r}: {exc}") from None
        rate = result.requests / result.seconds if result.seconds > 0 else 0.0
        return replace(result, requests_per_second=rate)

    @property
    def errors(self) -> int:
        return self.socket_errors + self.bad_status


def wrk_command(
    url: str, threads: int, connections: int, seconds: float, cpus: str | None
) -> list[str]:
    """wrk with bench.lua, which is told the number of threads (to spread their walks)."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    command += ["-s", str(WRK_SCRIPT), url, "--", str(threads)]
    return load_generator(command, cpus)


async def run_wrk(command: list[str], paths: Path, user_agents: Path, seconds: float) -> WrkResult:
    """One wrk run tapping the lines of `paths` in turn, each request with a random line of
    `user_agents` as its User-Agent; killed if it overruns its duration."""
    env = {**os.environ, "BENCH_PATHS": str(paths), "BENCH_USER_AGENTS": str(user_agents)}
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    try:
        async with asyncio.timeout(seconds + GRACE_SECONDS):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    results = [line for line in text.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not results:
        raise StartError(f"wrk exited with {process.returncode} and no result:\n{text.strip()}")
    return WrkResult.from_json(results[-1])


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its children (a server and its workers)."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def children_cpu_seconds() -> float:
    """CPU seconds of this process's children that have exited (wrk, once a run is over)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _version(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].partition(" Copyright")[0].strip() if lines else "unknown"


def stolen_share(before: Any, after: Any) -> float:
    """The share of the CPU time between two `psutil.cpu_times()` that the hypervisor gave
    to others (steal): this virtual machine's cores stood still for it."""
    total = sum(after) - sum(before)
    steal = getattr(after, "steal", 0.0) - getattr(before, "steal", 0.0)
    return steal / total if total > 0 else 0.0


def machine_info() -> dict[str, str]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": str(len(os.sched_getaffinity(0))),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis-server": _version(["redis-server", "--version"]),
        "nginx": _version(["nginx", "-v"]),
        "wrk": _version(["wrk", "--version"]),
        "h2load": _version(["h2load", "--version"]),
        # How busy all cores were before the run started anything: others' work competes.
        "busy before start": f"{psutil.cpu_percent(interval=1.0):.0f}%",
    }
