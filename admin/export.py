"""Click events as CSV (RFC 4180, CRLF), for the campaign export."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence

from admin.responses import rfc3339_ms
from admin.service.stats import ClickEvent

CLICKS_CSV_HEADER = (
    "time",
    "code",
    "recipient",
    "bot",
    "referer_host",
    "user_agent",
    "visitor_hash",
)


# What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# A signed number (a phone number in E.164, `-1`) is inert: a spreadsheet reads it as the number
# it is, and a marketer's export keeps its `+34600000001` recipients as they were sent.
_SIGNED_NUMBER = re.compile(r"[+-][0-9]+(?:\.[0-9]+)?")


def _inert(cell: str) -> str:
    """Anyone who taps a link chooses its User-Agent and Referer, and a caller of the API its
    recipient and code: a leading quote keeps a spreadsheet from running a cell such as
    `=HYPERLINK(...)` or `+1+cmd|...` as a formula. A plain signed number is left as it is."""
    if cell.startswith(FORMULA_STARTS) and _SIGNED_NUMBER.fullmatch(cell) is None:
        return "'" + cell
    return cell


def clicks_csv(events: Sequence[ClickEvent], *, header: bool = False) -> bytes:
    """CSV rows of `events`; `time` is when the link was tapped. Every cell is guarded, ours
    too (they never start so), so that no column can be forgotten."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(CLICKS_CSV_HEADER)
    rows = (
        (
            rfc3339_ms(e.at_ms),
            e.code,
            e.recipient or "",
            "1" if e.bot else "0",
            e.referer_host,
            e.user_agent,
            e.visitor_hash,
        )
        for e in events
    )
    writer.writerows(map(_inert, row) for row in rows)
    return out.getvalue().encode()
