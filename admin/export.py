"""Click events as CSV (RFC 4180, CRLF), for the campaign export."""

from __future__ import annotations

import csv
import io
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


def _inert(cell: str) -> str:
    """Anyone who taps a link chooses its User-Agent (and Referer): a leading quote keeps a
    spreadsheet from running a cell such as `=HYPERLINK(...)` as a formula."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def clicks_csv(events: Sequence[ClickEvent], *, header: bool = False) -> bytes:
    """CSV rows of `events`; `time` is when the link was tapped."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(CLICKS_CSV_HEADER)
    writer.writerows(
        (
            rfc3339_ms(e.at_ms),
            e.code,
            e.recipient or "",
            "1" if e.bot else "0",
            _inert(e.referer_host),
            _inert(e.user_agent),
            e.visitor_hash,
        )
        for e in events
    )
    return out.getvalue().encode()
