"""CSV (RFC 4180, CRLF): a campaign's click events (the API's export and the dashboard's), and
the links a dashboard send made (recipient,code,short_url)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Callable, Sequence

from aiohttp import web
from redis.exceptions import RedisError

from admin.responses import rfc3339_ms
from admin.service.links import Created
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


def links_csv(results: Sequence[Created], short_url: Callable[[str], str]) -> bytes:
    """Rows of a send's links, in its file's order; the recipient guarded as in the export."""
    out = io.StringIO()
    csv.writer(out).writerows(
        (_inert(result.recipient or ""), result.code, short_url(result.code)) for result in results
    )
    return out.getvalue().encode()


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


async def clicks_csv_response(
    request: web.Request, campaign_id: int, chunks: AsyncIterator[list[ClickEvent]]
) -> web.StreamResponse:
    """The campaign's click events streamed as a CSV download (the API's and the
    dashboard's): errors before this are answered as the caller answers them; once the
    response is prepared, a Redis failure cuts the connection."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="campaign-{campaign_id}-clicks.csv"',
        }
    )
    await response.prepare(request)
    if request.method != "HEAD":  # aiohttp would send a HEAD's body too
        await _write_csv(response, chunks)
    await response.write_eof()
    return response


async def _write_csv(response: web.StreamResponse, chunks: AsyncIterator[list[ClickEvent]]) -> None:
    await response.write(clicks_csv([], header=True))
    try:
        async for events in chunks:
            await response.write(clicks_csv(events))  # waits while the client is slow
    except RedisError as exc:
        # Too late for an error status. Dropping the connection leaves the chunked body
        # unterminated, so the client sees a failed download, not a short but complete file.
        raise ConnectionAbortedError(f"click export interrupted: {exc}") from exc
