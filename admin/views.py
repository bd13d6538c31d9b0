"""JSON shapes of campaigns and links in API responses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from admin.service import Campaign
from admin.settings import AdminSettings
from redirector.links import Link


def rfc3339(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
