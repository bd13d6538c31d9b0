"""The CLI's errors: each is one line for the user (click prints `Error: <message>`), never
a traceback; the exit status says what kind."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import click

# Exit statuses beyond click's own (1: a ClickException, 2: a usage error).
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C


class CliError(click.ClickException):
    """Something the user can act on, said in one line."""

    def __init__(self, message: str) -> None:
        # One line even when a server or a file put a newline in it.
        super().__init__(" ".join(message.split()))


class ApiError(CliError):
    """The admin API answered with an error: `status` and the JSON error's `code`."""

    def __init__(self, status: int, code: str, message: str, detail: dict[str, Any]) -> None:
        super().__init__(f"{message} (HTTP {status} {code})")
        self.status = status
        self.code = code
        self.detail = detail  # the whole `error` object: fields, index


class Interrupted(CliError):
    """Ctrl-C: said in one line, with what was done and how to go on."""

    exit_code = EXIT_INTERRUPTED


def at_line(error: ApiError, items: str, source: str, lines: Sequence[int]) -> CliError:
    """A batch's error (a 422 names `items[3].field`, a 409 `index`), said of the line of
    `source` that the item came from: `lines[i]` is item i's."""
    problems = error.detail.get("fields") or [error.detail]
    first = problems[0]
    index = first.get("index")
    if not isinstance(index, int) or not 0 <= index < len(lines):
        return error
    field = re.sub(rf"^{items}\[\d+\]\.?", "", str(first.get("field", "")))
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return CliError(
        f"{source} line {lines[index]}: {field + ': ' if field else ''}{first['message']}"
        f"{more} (HTTP {error.status} {error.code})"
    )
