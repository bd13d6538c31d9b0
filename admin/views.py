"""Shapes of API responses: campaigns, links and stats as JSON, click events as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from admin.service.campaigns import Campaign
from admin.service.stats import Clicker, ClickEvent, Stats
from admin.settings import AdminSettings
from redirector.store.record import Link


def rfc3339(ts: int | None) -> str | None:
    return None if ts is None else _rfc3339(ts)


@lru_cache(maxsize=4096)
def _rfc3339(ts: int) -> str:
    # Cached: every link of a batch shares its creation second.
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_ms(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def link_view(code: str, link: Link, settings: AdminSettings) -> dict[str, Any]:
    return {
        "code": code,
        "short_url": settings.short_url(code),
        "url": link.url,
        "destination": link.destination,
        "campaign_id": link.campaign_id,
        "recipient": link.recipient,
        "created_at": rfc3339(link.created_at),
        "expires_at": rfc3339(link.expires_at),
        "disabled": link.disabled,
        "tag": link.tagged,
    }


def campaign_view(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "kind": campaign.kind,
        "utm_source": campaign.utm_source,
        "utm_medium": campaign.utm_medium,
        "created_at": rfc3339(campaign.created_at),
        "links": campaign.links,
    }


def stats_view(stats: Stats) -> dict[str, Any]:
    return {
        "clicks": stats.clicks,
        "unique_clicks": stats.unique_clicks,
        "bot_hits": stats.bot_hits,
        "recipients_clicked": stats.recipients_clicked,
        "from": rfc3339(stats.window.start),
        "to": rfc3339(stats.window.end),
        "granularity": stats.window.granularity,
        "series": [
            {"t": rfc3339(b.start), "clicks": b.clicks, "bot_hits": b.bot_hits}
            for b in stats.series
        ],
        "breakdowns": stats.breakdowns,
    }


def clicker_view(clicker: Clicker) -> dict[str, Any]:
    return {
        "recipient": clicker.recipient,
        "first_click_at": rfc3339_ms(clicker.first_click_ms),
        "code": clicker.code,
    }


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
    """CSV rows (RFC 4180, CRLF) of `events`; `time` is when the link was tapped."""
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
