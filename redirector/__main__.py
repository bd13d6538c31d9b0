"""`python -m redirector [--workers N]`: the only place that reads the environment."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from redirector.server import click_workers, serve, supervise
from redirector.settings import Settings
from redirector.store.connection import SettingsError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m redirector")
    parser.add_argument("--workers", type=int, help="processes (overrides REDIRECTOR_WORKERS)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        # The flag stands in for the variable, so it gets the same check and error.
        flags = {} if args.workers is None else {"REDIRECTOR_WORKERS": str(args.workers)}
        settings = Settings.from_env(os.environ | flags)
    except SettingsError as exc:
        sys.exit(f"redirector: {exc}")
    where, clickers = f"http://{settings.host}:{settings.port}", click_workers(settings)
    print(
        f"redirector listening on {where} ({settings.workers} worker(s), "
        f"{clickers} click worker(s))",
        flush=True,
    )
    if settings.workers == 1 and clickers == 0:
        serve(settings)
    else:
        sys.exit(supervise(settings))


if __name__ == "__main__":
    main()
