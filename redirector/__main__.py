"""`python -m redirector [--workers N]`: the only place that reads the environment and runs
the server, in one process or in N that share the port with SO_REUSEPORT."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from dataclasses import replace
from types import FrameType

from aiohttp import web

from redirector.app import create_app
from redirector.settings import Settings, SettingsError

log = logging.getLogger("redirector")


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return
    uvloop.install()


def serve(settings: Settings) -> None:
    _install_uvloop()
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        reuse_port=settings.workers > 1,
        print=None,
    )


def supervise(settings: Settings) -> int:
    """Run `settings.workers` processes; stop them all on SIGTERM/SIGINT, or when one dies
    (a half-dead pool would silently serve with less capacity)."""
    # fork, not spawn: the children start at once and nothing (no event loop, no Redis
    # connection) exists yet in the parent to be inherited by mistake.
    ctx = multiprocessing.get_context("fork")
    workers = [
        ctx.Process(target=serve, args=(settings,), name=f"redirector-{i}", daemon=False)
        for i in range(settings.workers)
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for w in workers:
            if w.is_alive() and w.pid is not None:
                os.kill(w.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for w in workers:
        w.start()
    sentinels = {w.sentinel: w for w in workers}
    while sentinels:
        for ready in multiprocessing.connection.wait(list(sentinels)):
            worker = sentinels.pop(ready)  # type: ignore[arg-type]  # sentinels are ints
            if not stopping:
                log.error("%s exited with %s; stopping the others", worker.name, worker.exitcode)
                stop(signal.SIGTERM, None)
    return 0 if all(w.exitcode == 0 for w in workers) else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m redirector")
    parser.add_argument("--workers", type=int, help="processes (overrides REDIRECTOR_WORKERS)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = Settings.from_env(os.environ)
        if args.workers is not None:
            settings = replace(settings, workers=args.workers)
            settings.validate()
    except SettingsError as exc:
        sys.exit(f"redirector: {exc}")
    where = f"http://{settings.host}:{settings.port}"
    print(f"redirector listening on {where} ({settings.workers} worker(s))", flush=True)
    if settings.workers == 1:
        serve(settings)
    else:
        sys.exit(supervise(settings))


if __name__ == "__main__":
    main()
