"""`python -m redirector [--workers N]`: the only place that reads the environment."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace

from redirector.server import serve, supervise
from redirector.settings import Settings, SettingsError


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
