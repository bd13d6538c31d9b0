"""`python -m admin [--workers N]`: the only place that reads the environment and runs the
admin API; `python -m admin migrate` moves the data of an older release (admin/migrate.py);
`python -m admin keys create ...` makes an API key (admin/keys_cli.py)."""

from __future__ import annotations

import argparse
import os
import sys

from admin.server import configure_logging, serve, supervise
from admin.settings import AdminSettings
from redirector.store.connection import SettingsError


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["migrate"]:
        from admin.migrate import main as migrate

        sys.exit(migrate(arguments[1:], os.environ))
    if arguments[:1] == ["keys"]:
        from admin.keys_cli import main as keys

        sys.exit(keys(arguments[1:], os.environ))
    parser = argparse.ArgumentParser(
        prog="python -m admin",
        epilog="python -m admin migrate --help: upgrading a store; "
        "python -m admin keys create --help: making an API key",
    )
    parser.add_argument("--workers", type=int, help="processes (overrides ADMIN_WORKERS)")
    args = parser.parse_args(arguments)
    configure_logging()
    try:
        # The flag stands in for the variable, so it gets the same check and error.
        flags = {} if args.workers is None else {"ADMIN_WORKERS": str(args.workers)}
        settings = AdminSettings.from_env(os.environ | flags)
    except SettingsError as exc:
        sys.exit(f"admin: {exc}")
    where = f"http://{settings.host}:{settings.port}"
    print(f"admin API listening on {where} ({settings.workers} worker(s))", flush=True)
    if settings.workers == 1:
        serve(settings)
    else:
        sys.exit(supervise(settings))


if __name__ == "__main__":
    main()
