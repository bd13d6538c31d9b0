"""The CSV files of the CLI: the recipients of a send (the Send page's format), the rows of an
import, and the links file a send writes, which is also what lets it resume."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from smslinks_cli.errors import CliError

LINKS_HEADER = ("recipient", "code", "short_url")
# What a spreadsheet saves: UTF-8, with or without its byte order mark.
ENCODING = "utf-8-sig"


@dataclass(frozen=True, slots=True)
class Recipient:
    recipient: str
    url: str | None  # None: the send's --url
    line: int  # in the file, for error messages


@dataclass(frozen=True, slots=True)
class Recipients:
    items: list[Recipient]  # each recipient once, in file order
    repeated: int  # lines that named a recipient again (its first line counts)


@dataclass(frozen=True, slots=True)
class Row:
    fields: dict[str, str | int]  # by the header's column names; empty cells left out
    line: int


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each line that is not blank. Cells are kept as written, as
    the Send page does: the API compares recipients byte for byte (and trims URLs itself)."""
    try:
        with path.open(encoding=ENCODING, newline="") as file:
            reader = csv.reader(file, strict=True)
            try:
                for cells in reader:
                    if len(cells) > 1 or (cells and cells[0].strip()):
                        yield reader.line_num, cells
            except csv.Error as exc:
                raise CliError(f"{path} line {reader.line_num}: {exc}") from None
            except UnicodeDecodeError:
                raise CliError(f"{path} after line {reader.line_num}: not UTF-8 text") from None
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None


def read_recipients(path: Path) -> Recipients:
    """Lines `recipient` or `recipient,url`, as on the Send page; a first line whose first
    cell is `recipient` is a header. A recipient given again keeps their first line."""
    items: dict[str, Recipient] = {}
    repeated = 0
    for line, cells in _rows(path):
        if not items and not repeated and cells[0].strip().casefold() == "recipient":
            continue
        if len(cells) > 2:
            raise CliError(f"{path} line {line}: {len(cells)} columns; a line is recipient[,url]")
        if not cells[0].strip():
            raise CliError(f"{path} line {line}: no recipient")
        if cells[0] in items:
            repeated += 1
            continue
        url = cells[1] if len(cells) == 2 and cells[1].strip() else None
        items[cells[0]] = Recipient(cells[0], url, line)
    if not items:
        raise CliError(f"{path}: no recipients")
    return Recipients(list(items.values()), repeated)


def read_rows(path: Path, integers: frozenset[str]) -> list[Row]:
    """The lines after a header that names the API's fields, one column each; the columns of
    `integers` are sent as numbers when they are whole numbers (else as written, for the API
    to refuse by name)."""
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise CliError(f"{path}: empty; its first line names the columns")
    header_line, header = first
    header = [name.strip() for name in header]
    if not all(header) or len(set(header)) != len(header):
        raise CliError(f"{path} line {header_line}: the header needs distinct, non-empty names")
    found = []
    for line, cells in rows:
        if len(cells) != len(header):
            raise CliError(
                f"{path} line {line}: {len(cells)} columns, the header has {len(header)}"
            )
        fields: dict[str, str | int] = {
            name: int(value) if name in integers and value.isascii() and value.isdigit() else value
            for name, value in zip(header, cells, strict=True)
            if value
        }
        found.append(Row(fields, line))
    if not found:
        raise CliError(f"{path}: no lines after the header")
    return found


class LinksFile:
    """The output of a send, `recipient,code,short_url` with that header, appended batch by
    batch and synced to disk, so that after an interruption it holds every link answered
    before it, and a run again finds there which recipients are done."""

    def __init__(self, path: Path, file: IO[str], done: dict[str, str]) -> None:
        self.path = path
        self.done = done  # recipient -> code, of the rows already in the file
        self._file = file
        self._writer = csv.writer(file)

    @classmethod
    def open(cls, path: Path) -> LinksFile:
        """The file continued: rows it holds are kept (a last line cut short by an
        interruption is dropped), a new or empty one gets the header."""
        try:
            kept = _complete_lines(path)
            done = _done(path, kept)
            file = path.open("a", encoding="utf-8", newline="")
        except OSError as exc:
            raise CliError(f"{path}: {exc.strerror}") from None
        links = cls(path, file, done)
        if not kept:
            links.append([LINKS_HEADER])
        return links

    def append(self, rows: Sequence[Sequence[str]]) -> None:
        self._writer.writerows(rows)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _complete_lines(path: Path) -> bytes:
    """The file up to its last line end, cut there on disk (a write the interruption tore)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b""
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with path.open("r+b") as file:
            file.truncate(end)
    return data[:end]


def _done(path: Path, data: bytes) -> dict[str, str]:
    if not data:
        return {}
    reader = csv.reader(data.decode(errors="replace").splitlines())
    if tuple(next(reader)) != LINKS_HEADER:
        raise CliError(
            f"{path} exists and is not the output of a send (its header is not "
            f"{','.join(LINKS_HEADER)}): choose another --out"
        )
    done: dict[str, str] = {}
    for cells in reader:
        if len(cells) != len(LINKS_HEADER) or cells[0] in done:
            raise CliError(
                f"{path} line {reader.line_num}: not a line of a send's output "
                f"({','.join(LINKS_HEADER)}, a recipient once): choose another --out"
            )
        done[cells[0]] = cells[1]
    return done
