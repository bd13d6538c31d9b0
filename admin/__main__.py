"""`python -m admin`: the only place that reads the environment and runs the admin API."""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web

from admin.app import create_app
from admin.settings import AdminSettings
from redirector.store.connection import SettingsError


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = AdminSettings.from_env(os.environ)
    except SettingsError as exc:
        sys.exit(f"admin: {exc}")
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        pass
    print(f"admin API listening on http://{settings.host}:{settings.port}", flush=True)
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None)


if __name__ == "__main__":
    main()
