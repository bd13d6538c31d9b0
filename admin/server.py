"""Running the admin API: one process, or N that share the port (SO_REUSEPORT).

The admin may import only `redirector.store` from the redirector, so this is its own small
pool; it behaves as `redirector/server.py` does: started together, stopped together."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import tempfile
from multiprocessing.synchronize import Barrier
from types import FrameType

from aiohttp import web

from admin.app import create_app
from admin.settings import AdminSettings

log = logging.getLogger(__name__)


def configure_logging() -> None:
    """In the entry point, and again in each spawned worker (a fresh interpreter)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def serve(settings: AdminSettings, ready: Barrier | None = None) -> None:
    """One process of the admin API: the only one, or a worker of the pool, which listens
    once every worker is `ready`."""
    configure_logging()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        pass
    app = create_app(settings)
    # A batch keeps ~50,000 objects alive across its awaits: with the default thresholds the
    # collector runs every 700 allocations and keeps rescanning them and every module loaded
    # by now (frozen: never rescanned). Measured: 80,000 -> 110,000 links/s (loadtests.bench).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # The kernel spreads connections over the sockets listening: a worker that listened first
    # would keep every keep-alive connection made meanwhile (a client reconnecting at once).
    if ready is not None:
        ready.wait()
    web.run_app(
        app, host=settings.host, port=settings.port, reuse_port=settings.workers > 1, print=None
    )


def supervise(settings: AdminSettings) -> int:
    """Run `settings.workers` processes; stop them all on SIGTERM/SIGINT, or when one dies
    (exit 1, for the orchestrator to restart the whole: a pool restarting its own workers
    would hide a crash loop). Each worker bounds its own graceful stop (aiohttp's
    shutdown_timeout), so no deadline is kept here."""
    if settings.metrics_dir is not None:
        return _run_pool(settings)
    # Workers add their metrics up through files in a shared directory; prometheus-client
    # reads PROMETHEUS_MULTIPROC_DIR when it is imported, so the workers are spawned (fresh
    # interpreters that inherit the variable), not forked from this already-importing one.
    with tempfile.TemporaryDirectory(prefix="smslinks-admin-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        return _run_pool(settings.model_copy(update={"metrics_dir": directory}))


def _run_pool(settings: AdminSettings) -> int:
    return _Pool(settings).run()


class _Pool:
    """N spawned workers, started together, stopped together."""

    def __init__(self, settings: AdminSettings) -> None:
        spawn = multiprocessing.get_context("spawn")
        # Kept while the pool lives: the workers open its semaphore once they have started.
        self.ready = spawn.Barrier(settings.workers)
        self.workers = [
            spawn.Process(target=serve, args=(settings, self.ready), name=f"admin-{number}")
            for number in range(settings.workers)
        ]
        self.asked = False  # by a signal
        self.stopping = False  # SIGTERM sent to the workers

    def stop(self) -> None:
        if not self.stopping:  # once: a second SIGTERM would cut aiohttp's graceful stop short
            for worker in self.workers:
                if worker.is_alive():
                    worker.terminate()
        self.stopping = True

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.asked = True
        self.stop()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        for worker in self.workers:
            worker.start()
            if self.stopping:  # a signal came while starting them: stop() passed this one by
                worker.terminate()
        running = {worker.sentinel: worker for worker in self.workers}
        while running:
            for sentinel in multiprocessing.connection.wait(list(running)):
                worker = running.pop(sentinel)  # type: ignore[arg-type]  # sentinels are ints
                worker.join()  # the sentinel can fire a moment before the exit code is known
                if not self.stopping:
                    log.error(
                        "%s exited with %s; stopping the others", worker.name, worker.exitcode
                    )
                    self.stop()
        codes = [worker.exitcode for worker in self.workers]
        log.info("workers exited: %s", codes)
        # A worker still starting when asked to stop dies of the SIGTERM itself: a clean stop too.
        return 0 if self.asked and all(code in {0, -signal.SIGTERM} for code in codes) else 1
