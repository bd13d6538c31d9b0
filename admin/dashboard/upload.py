"""The Send page's CSV, checked as it streams in: `recipient[,url]` per line, an optional header
line (`recipient` in its first cell), at most MAX_ROWS rows and MAX_UPLOAD_BYTES bytes. Each
group of MAX_BATCH rows is checked by the API's own batch parser (`parse_batch`: the same rules
and messages as `POST /api/links/batch`), and the rows are spooled to a temporary file, so that
memory holds one group whatever the file's size. A bad file is refused before any link is made,
with the lines at fault; the send then reads the spooled rows back a batch at a time.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from admin.batch_body import Batch, parse_batch
from admin.exceptions import FieldError, ValidationFailed
from admin.models import MAX_BATCH, UrlRules

MAX_ROWS = 1_000_000
# 1,000,000 rows of a recipient and a URL of ~500 bytes; the file goes to disk, not memory.
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
READ_CHUNK = 256 * 1024
HEADER = "recipient"
PROBLEMS_SHOWN = 10


@dataclass(frozen=True, slots=True)
class Spooled:
    path: Path  # one JSON array [recipient, url or null] per line
    rows: int


class TooLarge(web.HTTPRequestEntityTooLarge):
    def __init__(self, what: str) -> None:
        super().__init__(max_size=MAX_UPLOAD_BYTES, actual_size=0, text=what)


def refused(line: int | None, message: str) -> ValidationFailed:
    return ValidationFailed([FieldError("file" if line is None else f"line {line}", message)])


class _Rows:
    """Lines in, checked rows out to the spool file."""

    def __init__(
        self, out: Any, campaign_id: int, url: str | None, rules: UrlRules, max_rows: int
    ) -> None:
        self._out = out
        self._campaign_id, self._url, self._rules = campaign_id, url, rules
        self._max_rows = max_rows
        self.line = 0  # lines read, blank and header included: what an editor numbers
        self.rows = 0
        self._first = True
        self._group: list[tuple[int, str, str | None]] = []  # line, recipient, url

    def feed(self, lines: list[str]) -> None:
        for text in lines:
            self.line += 1
            if not text.strip():
                continue
            try:
                [cells] = csv.reader([text], strict=True)
            except (csv.Error, ValueError):
                raise refused(self.line, "is not a CSV row") from None
            first, self._first = self._first, False
            if first and cells and cells[0].strip().lower() == HEADER:
                continue
            self._row(cells)

    def _row(self, cells: list[str]) -> None:
        if len(cells) > 2:
            raise refused(self.line, f"has {len(cells)} columns: give recipient[,url]")
        url = cells[1] if len(cells) == 2 and cells[1] else None
        if url is None and self._url is None:
            raise refused(self.line, "has no url, and the form gives none for every row")
        self.rows += 1
        if self.rows > self._max_rows:
            raise TooLarge(f"the file has more than {self._max_rows:,} rows")
        self._group.append((self.line, cells[0], url))
        if len(self._group) == MAX_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._group:
            return
        items = [_item(recipient, url) for _, recipient, url in self._group]
        try:
            parse_batch(_body(self._campaign_id, self._url, items), self._rules)
        except ValidationFailed as exc:
            raise ValidationFailed(self._problems(exc.errors)) from None
        self._out.write(
            b"".join(orjson.dumps([recipient, url]) + b"\n" for _, recipient, url in self._group)
        )
        self._group = []

    def _problems(self, errors: list[FieldError]) -> list[FieldError]:
        """The batch's errors as the file's: `links[3].url` is line N's url."""
        problems = []
        for error in errors[:PROBLEMS_SHOWN]:
            if error.index is None:  # the form's url
                problems.append(FieldError("url", error.message))
                continue
            column = error.field.rpartition(".")[2]
            line = self._group[error.index][0]
            problems.append(FieldError(f"line {line}", f"{column}: {error.message}"))
        return problems


async def spool(
    part: BodyPartReader,
    campaign_id: int,
    url: str | None,
    rules: UrlRules,
) -> Spooled:
    """Reads, checks and spools the uploaded file; the caller removes the spool when done."""
    descriptor, name = tempfile.mkstemp(prefix="smslinks-send-", suffix=".jsonl")
    path = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as out:
            rows = _Rows(out, campaign_id, url, rules, MAX_ROWS)
            await _read(part, rows)
        return Spooled(path, rows.rows)
    except BaseException:
        remove(Spooled(path, 0))  # refused, or the upload was cut: nothing is kept
        raise


async def _read(part: BodyPartReader, rows: _Rows) -> None:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()  # a spreadsheet's BOM is no text
    pending, size = "", 0
    while chunk := await part.read_chunk(READ_CHUNK):
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise TooLarge(f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
        lines = (pending + _decoded(decoder, chunk, rows.line)).split("\n")
        pending = lines.pop()
        rows.feed(lines)
    rows.feed([pending + _decoded(decoder, b"", rows.line, final=True)])
    rows.flush()


def _decoded(
    decoder: codecs.IncrementalDecoder, chunk: bytes, line: int, *, final: bool = False
) -> str:
    try:
        return decoder.decode(chunk, final)
    except UnicodeDecodeError as exc:
        at = line + 1 + chunk[: exc.start].count(b"\n")  # the lines before are fed yet
        raise refused(at, "is not UTF-8 text (save the file as CSV UTF-8)") from None


def read_batches(
    spooled: Spooled, campaign_id: int, url: str | None, rules: UrlRules
) -> Iterator[Batch]:
    """The spooled rows, MAX_BATCH at a time, parsed as the batch route parses its body."""
    with spooled.path.open("rb") as rows:
        while True:
            items = [_item(*orjson.loads(line)) for line in _take(rows, MAX_BATCH)]
            if not items:
                return
            yield parse_batch(_body(campaign_id, url, items), rules)


def _take(rows: Any, count: int) -> list[bytes]:
    taken = []
    for line in rows:
        taken.append(line)
        if len(taken) == count:
            break
    return taken


def _item(recipient: str, url: str | None) -> dict[str, str]:
    return {"recipient": recipient} if url is None else {"recipient": recipient, "url": url}


def _body(campaign_id: int, url: str | None, items: list[dict[str, str]]) -> dict[str, Any]:
    body: dict[str, Any] = {"campaign_id": campaign_id, "links": items}
    if url is not None:
        body["url"] = url
    return body


def remove(spooled: Spooled) -> None:
    with contextlib.suppress(OSError):
        spooled.path.unlink()
