"""The processes the benchmark starts and always stops: redis-server, nginx, a bare aiohttp
server, the redirector and the admin, each in its own session (process group) so that stopping
it also stops the workers it forked, and so that Ctrl-C reaches the benchmark first, which then
stops them in order.

Also: which cores to pin what to, CPU time used by a process group, and the versions of the
tools for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from redirector.store.keys import REDIS_MEMORY_CONFIG

ROOT = Path(__file__).resolve().parent.parent
_STOP_SECONDS = 10.0
_START_SECONDS = 30.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class StartError(RuntimeError):
    """A server did not come up; the message ends with the tail of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Pinning:
    """CPU lists for `taskset -c`: the server under test on one core, the load generator (and
    Redis) on the other. None everywhere when there are fewer than two cores or no taskset."""

    server: str | None
    load: str | None
    both: str | None

    @classmethod
    def plan(cls, cpus: Sequence[int], have_taskset: bool) -> Pinning:
        if len(cpus) < 2 or not have_taskset:
            return cls(None, None, None)
        first, second = sorted(cpus)[:2]
        return cls(str(first), str(second), f"{first},{second}")

    @property
    def active(self) -> bool:
        return self.server is not None


def pinned(command: list[str], cpus: str | None) -> list[str]:
    return (["taskset", "-c", cpus] if cpus else []) + command


class Service:
    """One started server: its log file, its process group, and a stop that always finishes."""

    def __init__(self, name: str, command: list[str], log: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.command = command
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=ROOT,
                start_new_session=True,
            )

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session: the leader's pid is the group id

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise StartError(f"{self.name} exited with {self.process.returncode}{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return ""
        return "\n  " + "\n  ".join(text) if text else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=_STOP_SECONDS)
        # Workers the leader forked may outlive it for a moment; they share its group.
        if group_pids(self.pgid):
            self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signum)


@contextlib.contextmanager
def running(name: str, command: list[str], log: Path, env: Mapping[str, str]) -> Iterator[Service]:
    service = Service(name, command, log, env)
    try:
        yield service
    finally:
        service.stop()


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # Fields after the parenthesised command name, which may itself contain spaces.
    return stat[stat.rfind(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    """Live processes of a process group (zombies excluded)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields and fields[2] == str(pgid) and fields[0] != "Z":
                pids.append(int(entry))
    return pids


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds used so far by the live processes of a process group."""
    ticks = 0
    for pid in group_pids(pgid):
        fields = _stat_fields(str(pid))
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / _CLOCK_TICKS


async def wait_http(url: str, service: Service, *, status: int = 200) -> None:
    """Wait until GET `url` answers `status` (the servers' /healthz). Redirects are never
    followed: nothing but 127.0.0.1 is ever contacted."""

    async def answered() -> bool:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(url, allow_redirects=False) as response:
                return response.status == status
        return False

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        await _poll(service, f"{url} answering {status}", answered)


async def wait_redis(url: str, service: Service) -> None:
    client = Redis.from_url(url, socket_timeout=1)

    async def answered() -> bool:
        with contextlib.suppress(OSError, RedisError, TimeoutError):
            return bool(await client.ping())
        return False

    try:
        await _poll(service, "PONG", answered)
    finally:
        await client.aclose()


async def _poll(service: Service, what: str, ready: Callable[[], Awaitable[bool]]) -> None:
    try:
        async with asyncio.timeout(_START_SECONDS):
            while not await ready():
                service.check_alive()
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise StartError(
            f"{service.name}: no {what} in {_START_SECONDS:.0f} s{service.log_tail()}"
        ) from None


def redis_command(port: int, directory: Path) -> list[str]:
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory), "--daemonize", "no"]
    for name, value in REDIS_MEMORY_CONFIG.items():
        command += [f"--{name}", str(value)]
    return command


def nginx_config(directory: Path, port: int, location: str) -> str:
    """One worker answering every path with a 302 to `location`, no access log, every path it
    writes inside `directory`. nginx also sends a 145-byte HTML body with the 302, which the
    redirector does not: the ceiling is, if anything, a little low."""
    quoted = location.replace("\\", "\\\\").replace('"', '\\"')
    return f"""# Generated by loadtests/bench.py: the ceiling row's static redirect.
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            add_header Cache-Control "private, max-age=0" always;
            return 302 "{quoted}";
        }}
    }}
}}
"""


def nginx_command(directory: Path) -> list[str]:
    """nginx in the foreground with its own prefix, config and error log (the default error
    log under /var/log is opened before the config is read)."""
    command = ["nginx", "-p", str(directory), "-c", str(directory / "nginx.conf")]
    return [*command, "-e", str(directory / "error.log"), "-g", "daemon off;"]


def bare_aiohttp_script(port: int, location: str) -> str:
    """The reference row's server: the least aiohttp + uvloop can do to answer GET /{code}
    with a 302 to `location`, started the way the redirector starts (uvloop.install(), then
    web.run_app without an access log). Its throughput is the framework's cost on this
    machine, the part of the gap to nginx that our code does not add."""
    return f'''"""Generated by loadtests/bench.py: the bare aiohttp reference row."""

import uvloop
from aiohttp import web

LOCATION = {location!r}


async def redirect(request: web.Request) -> web.StreamResponse:
    return web.Response(status=302, headers={{"Location": LOCATION}})


app = web.Application()
app.router.add_get("/{{code}}", redirect)
uvloop.install()
web.run_app(app, host="127.0.0.1", port={port}, access_log=None, print=None)
'''


def python_env(values: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(values, PYTHONUNBUFFERED="1")
    return env


def python_command(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def _version(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(n) for n in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot."""
    return _cpu_times()[0] / _CLOCK_TICKS


def busy_percent(seconds: float = 1.0) -> str:
    """How busy all cores are over `seconds`, before this run starts anything."""
    try:
        busy, total = _cpu_times()
        time.sleep(seconds)
        busy_after, total_after = _cpu_times()
    except (OSError, ValueError, IndexError):
        return ""
    return f"{100 * (busy_after - busy) / max(1, total_after - total):.0f}%"


def _first_words(text: str) -> str:
    return text.partition(" Copyright")[0]


def machine_info() -> dict[str, str]:
    return {
        "cpu": cpu_model(),
        "cores": str(len(os.sched_getaffinity(0))),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis-server": _version(["redis-server", "--version"]),
        "nginx": _version(["nginx", "-v"]),
        "wrk": _first_words(_version(["wrk", "--version"])),
        "busy before start": busy_percent(),
    }
