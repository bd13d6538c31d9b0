"""`smslinks ...` (the console script) and `python -m smslinks_cli ...`."""

from __future__ import annotations

from smslinks_cli.commands import cli


def main() -> None:
    cli(prog_name="smslinks")


if __name__ == "__main__":
    main()
