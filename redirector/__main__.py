"""`python -m redirector`: the only place that reads the environment and runs the server."""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web

from redirector.app import create_app
from redirector.settings import Settings, SettingsError


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


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        sys.exit(f"redirector: {exc}")
    print(f"redirector listening on http://{settings.host}:{settings.port}", flush=True)
    serve(settings)


if __name__ == "__main__":
    main()
