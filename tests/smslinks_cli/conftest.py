"""The smslinks CLI against a real admin (the `admin` fixture's server, on a real Redis): run
in a thread through click's CliRunner, so that the admin keeps serving in the test's loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from click.testing import CliRunner, Result

from smslinks_cli.commands import cli
from tests.conftest import API_KEY, Client


@dataclass(frozen=True)
class Smslinks:
    """`await smslinks("campaigns", "list")`: the command's result, its stdout and stderr
    apart; with `key=` another key than the root key, with `url=` another admin."""

    url: str
    key: str

    async def __call__(self, *args: str, key: str | None = None, url: str | None = None) -> Result:
        env = {
            "SMSLINKS_URL": self.url if url is None else url,
            "SMSLINKS_KEY": self.key if key is None else key,
        }
        runner = CliRunner()
        return await asyncio.to_thread(runner.invoke, cli, list(args), env=env)


@pytest.fixture
def smslinks(admin: Client) -> Smslinks:
    return Smslinks(str(admin.make_url("")), API_KEY)


def one_error_line(result: Result) -> str:
    """The error of a failed command: one line on stderr, no traceback."""
    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0].removeprefix("Error: ")
