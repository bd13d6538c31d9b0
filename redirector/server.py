"""Running the redirector: one process, or N that share the port (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
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


async def _serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    access_log = logging.getLogger("aiohttp.access") if settings.access_log else None
    # run_app's keep-alive (web.Server's own default is an hour).
    runner = RedirectorRunner(create_app(settings), access_log=access_log, keepalive_timeout=75)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=settings.workers > 1)
        await site.start()
        await stop.wait()
    finally:
        await runner.cleanup()


def supervise(settings: Settings) -> int:
    """Run `settings.workers` processes; stop them all on SIGTERM/SIGINT, or when one dies
    (a half-dead pool would silently serve with less capacity)."""
    if settings.metrics_dir is not None:
        return _Pool(settings).run()
    # Workers add their metrics up through files in a shared directory; prometheus-client
    # reads PROMETHEUS_MULTIPROC_DIR when it is imported, so the workers are spawned (fresh
    # interpreters that inherit the variable), not forked from this already-importing one.
    with tempfile.TemporaryDirectory(prefix="smslinks-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        return _Pool(settings.model_copy(update={"metrics_dir": directory})).run()


class _Pool:
    """N spawned workers: started together, stopped together."""

    def __init__(self, settings: Settings) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.workers = [
            ctx.Process(target=serve, args=(settings,), name=f"redirector-{i}")
            for i in range(settings.workers)
        ]
        self.stopping = False
        # A worker gets this long to finish its requests and flush its clicks before SIGKILL.
        self.grace = settings.click_drain_timeout + 10.0
        self.deadline = float("inf")

    def stop(self, signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        if not self.stopping:
            self.deadline = time.monotonic() + self.grace
        self.stopping = True
        for w in self.workers:
            if w.is_alive():
                w.terminate()  # SIGTERM

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for w in self.workers:
            w.start()
        waiting = {w.sentinel: w for w in self.workers}
        while waiting:
            if time.monotonic() > self.deadline:
                for worker in waiting.values():
                    log.error("%s did not stop within %.0f s; killing it", worker.name, self.grace)
                    worker.kill()
                self.deadline = float("inf")
            for ready in multiprocessing.connection.wait(list(waiting), timeout=1.0):
                self._reap(waiting.pop(ready))  # type: ignore[arg-type]  # sentinels are ints
        # A worker still starting when asked to stop dies of the SIGTERM itself: that is a
        # clean stop too, as we sent it.
        clean = {0, -signal.SIGTERM} if self.stopping else {0}
        log.info("workers exited: %s", [w.exitcode for w in self.workers])
        return 0 if all(w.exitcode in clean for w in self.workers) else 1

    def _reap(self, worker: BaseProcess) -> None:
        worker.join()  # the sentinel can fire a moment before the exit code is known
        if worker.pid is not None:
            mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
        if not self.stopping:
            log.error("%s exited with %s; stopping the others", worker.name, worker.exitcode)
            self.stop()
