"""`python -m admin`: the only place that reads the environment and runs the admin API;
`python -m admin migrate` moves the data of an older release (admin/migrate.py)."""

from __future__ import annotations

import gc
import logging
import os
import sys

from aiohttp import web

from admin.app import create_app
from admin.settings import AdminSettings
from redirector.store.connection import SettingsError


def main() -> None:
    if sys.argv[1:2] == ["migrate"]:
        from admin.migrate import main as migrate

        sys.exit(migrate(sys.argv[2:], os.environ))
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
    app = create_app(settings)
    # A batch keeps ~50,000 objects alive across its awaits: with the default thresholds the
    # collector runs every 700 allocations and keeps rescanning them and every module loaded
    # by now (frozen: never rescanned). Measured: 80,000 -> 110,000 links/s (loadtests.bench).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    web.run_app(app, host=settings.host, port=settings.port, print=None)


if __name__ == "__main__":
    main()
