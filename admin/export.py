"""Click events as CSV (RFC 4180, CRLF), for the campaign export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence

from aiohttp import web
from redis.exceptions import RedisError

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
