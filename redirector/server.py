"""Running the redirector: one process, or N that share the port (SO_REUSEPORT), with the
click workers that turn their raw hits into counters (redirector/clickworker.py)."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import tempfile
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from aiohttp import web
from prometheus_client.multiprocess import mark_process_dead

from redirector.app import create_app
from redirector.clickworker import serve_clicks
from redirector.orphaned import stop_when_orphaned
from redirector.runner import RedirectorRunner
from redirector.settings import Settings

log = logging.getLogger("redirector")


def serve(settings: Settings) -> None:
    """One process serving until SIGTERM or SIGINT, then stopping as aiohttp's run_app does:
    no new connections, requests in flight answered, then every resource torn down (what was
    tapped is recorded)."""
    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(settings))


# Net allocations between collections of the youngest generation (Python: 700): a redirect
# leaves no cyclic garbage, so fewer, larger collections (README, Redirector: measured).
YOUNG_COLLECTION_THRESHOLD = 10_000


def settle_collector() -> None:
    """Once the server is up: what is alive now (modules, the app: ~60,000 objects) lives as
    long as the process, so out of the collector's sight (a full collection walked it: 20-35
    ms, 2026-11-30); young objects collected every YOUNG_COLLECTION_THRESHOLD."""
    gc.collect()  # what startup left unreachable is freed, not frozen
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, oldest)


# Files a worker opens besides its visitors' connections: Redis connections, the listeners,
# the metrics files.
OTHER_FILES = 1024


def allow_open_files(wanted: int) -> int:
    """Raise this process's soft limit of open files to `wanted` (each connection is one), as
    far as the hard limit allows (often 1,024 soft under a hard of 500,000: the connection cap
    would never be reached, accept() would fail first). Returns the limit now in force."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if raised > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    return max(raised, soft)


async def _serve(settings: Settings) -> None:
    wanted = settings.max_connections + OTHER_FILES
    if allow_open_files(wanted) < wanted:
        log.warning(
            "open files limited to fewer than %d: REDIRECTOR_MAX_CONNECTIONS=%d cannot be "
            "reached (raise the hard limit, ulimit -Hn)",
            wanted,
            settings.max_connections,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    stop_when_orphaned(stop)
    access_log = logging.getLogger("aiohttp.access") if settings.access_log else None
    # run_app's keep-alive (web.Server's own default is an hour).
    runner = RedirectorRunner(create_app(settings), access_log=access_log, keepalive_timeout=75)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=settings.workers > 1)
        await site.start()
        settle_collector()
        await stop.wait()
    finally:
        await runner.cleanup()


def supervise(settings: Settings) -> int:
    """Run `settings.workers` redirect processes and `click_workers(settings)` click workers;
    stop them all on SIGTERM/SIGINT, or when a redirect worker dies (a half-dead pool would
    silently serve with less capacity). A click worker that dies is started again."""
    if settings.metrics_dir is not None:
        return _Pool(settings).run()
    # Workers add their metrics up through files in a shared directory; prometheus-client
    # reads PROMETHEUS_MULTIPROC_DIR when it is imported, so the workers are spawned (fresh
    # interpreters that inherit the variable), not forked from this already-importing one.
    with tempfile.TemporaryDirectory(prefix="smslinks-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        return _Pool(settings.model_copy(update={"metrics_dir": directory})).run()


def click_workers(settings: Settings) -> int:
    """Click worker processes to run beside the redirect workers (none without recording)."""
    return settings.click_workers if settings.click_tracking else 0


# A click worker that died is started again after RESTART_DELAY seconds, twice that if it
# had lived less than STEADY seconds, and so on up to RESTART_DELAY_MAX: a worker that
# cannot start (Redis away) is retried without spinning.
RESTART_DELAY, RESTART_DELAY_MAX, STEADY = 1.0, 30.0, 10.0


class _Pool:
    """N redirect workers, started together and stopped together, and the click workers,
    each restarted when it dies and stopped last, once the redirect workers have flushed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ctx = multiprocessing.get_context("spawn")
        self.redirectors = [
            self.ctx.Process(target=serve, args=(settings,), name=f"redirector-{i}")
            for i in range(settings.workers)
        ]
        self.clickers: list[BaseProcess] = [
            self._click_worker(slot) for slot in range(click_workers(settings))
        ]
        self.started = [0.0] * len(self.clickers)
        self.delays = [RESTART_DELAY] * len(self.clickers)
        self.restart_at: dict[int, float] = {}
        self.waiting: dict[int, BaseProcess] = {}
        self.stopping = False
        self.clickers_stopping = False
        # A worker gets this long to finish its requests and flush its clicks (a click worker:
        # to drain the queues) before SIGKILL.
        self.grace = settings.click_drain_timeout + 10.0
        self.deadline = float("inf")

    def _click_worker(self, slot: int) -> BaseProcess:
        return self.ctx.Process(
            target=serve_clicks,
            args=(self.settings,),
            kwargs={"supervised": True},
            name=f"clickworker-{slot}",
        )

    def stop(self, signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        if not self.stopping:
            self.deadline = time.monotonic() + self.grace
        self.stopping = True
        self.restart_at.clear()
        for w in self.redirectors:
            if w.is_alive():
                w.terminate()  # SIGTERM

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for w in self.redirectors:
            self._start(w)
        for slot, clicker in enumerate(self.clickers):
            self._start(clicker)
            self.started[slot] = time.monotonic()
        while self.waiting or self.restart_at:
            now = time.monotonic()
            if now > self.deadline:
                # Those asked to stop: the redirect workers, then the click workers.
                asked = self.clickers if self.clickers_stopping else self.redirectors
                for worker in asked:
                    if worker.sentinel in self.waiting:
                        log.error("%s did not stop in %.0f s; killing it", worker.name, self.grace)
                        worker.kill()
                self.deadline = float("inf")
            if self.stopping and not self.clickers_stopping and not self._redirectors_alive():
                self._stop_clickers()
            self._restart_due(now)
            pause = min([1.0, *(when - now for when in self.restart_at.values())])
            for ready in multiprocessing.connection.wait(list(self.waiting), timeout=pause):
                self._reap(self.waiting.pop(ready))  # type: ignore[arg-type]  # ints
        # A worker still starting when asked to stop dies of the SIGTERM itself: that is a
        # clean stop too, as we sent it.
        clean = {0, -signal.SIGTERM} if self.stopping else {0}
        processes = self.redirectors + self.clickers
        log.info("workers exited: %s", [w.exitcode for w in processes])
        return 0 if all(w.exitcode in clean for w in processes) else 1

    def _start(self, worker: BaseProcess) -> None:
        worker.start()
        self.waiting[worker.sentinel] = worker

    def _redirectors_alive(self) -> bool:
        return any(w.sentinel in self.waiting for w in self.redirectors)

    def _stop_clickers(self) -> None:
        self.clickers_stopping = True
        self.deadline = time.monotonic() + self.grace
        for w in self.clickers:
            if w.is_alive():
                w.terminate()

    def _restart_due(self, now: float) -> None:
        for slot, when in list(self.restart_at.items()):
            # stop() may have emptied restart_at since (a signal handler runs between lines).
            if now >= when and self.restart_at.pop(slot, None) is not None and not self.stopping:
                self.clickers[slot] = self._click_worker(slot)
                self._start(self.clickers[slot])
                self.started[slot] = now

    def _reap(self, worker: BaseProcess) -> None:
        worker.join()  # the sentinel can fire a moment before the exit code is known
        if worker.pid is not None:
            mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
        if self.stopping:
            return
        if worker in self.clickers:
            slot = self.clickers.index(worker)
            lived = time.monotonic() - self.started[slot]
            delay = (
                RESTART_DELAY if lived > STEADY else min(self.delays[slot] * 2, RESTART_DELAY_MAX)
            )
            self.delays[slot] = delay
            log.error(
                "%s exited with %s; starting it again in %.0f s",
                worker.name,
                worker.exitcode,
                delay,
            )
            self.restart_at[slot] = time.monotonic() + delay
            return
        log.error("%s exited with %s; stopping the others", worker.name, worker.exitcode)
        self.stop()
