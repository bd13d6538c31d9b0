"""A campaign's attribution report, from its counters: a few reads whatever the number of its
sends, clicks or conversions (one MULTI of the campaign's keys, and the sum of its
per-recipient links over the 256 link tags). No HTTP.

sends = reported sends (failed ones too) + implied sends (per-recipient links) that no
reported send replaced; delivered = reported delivered + those implied sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from admin.service import as_text
from admin.service.campaigns import CampaignService
from redirector.store.connection import Store
from redirector.store.counts import LinkCounts
from redirector.store.keys import (
    CLICKS,
    CONVERSIONS_PREFIX,
    REPORT_CLICK,
    REPORT_CONVERSIONS,
    REPORT_DELIVERED,
    REPORT_FAILED,
    REPORT_REPLACED,
    REPORT_SENDS,
    REPORT_VIEW,
    REVENUE_PREFIX,
    campaign_stats_key,
    campaign_uniques_key,
    clickers_key,
    recipient_links_field,
    report_key,
)


@dataclass(frozen=True, slots=True)
class Report:
    sends: int
    delivered: int
    failed: int
    clicks: int
    unique_clicks: int
    conversions: int
    click_conversions: int
    view_conversions: int
    revenue: dict[str, int]  # currency -> minor units
    orders: dict[str, int]  # currency -> attributed conversions in it


class ReportService:
    def __init__(self, redis: Store, campaigns: CampaignService, link_counts: LinkCounts) -> None:
        self._redis = redis
        self._campaigns = campaigns
        self._link_counts = link_counts

    async def report(self, campaign_id: int, workspace: str) -> Report:
        await self._campaigns.get_campaign(campaign_id, workspace, count_links=False)
        # One slot: the campaign's keys share its tag.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(report_key(campaign_id))
            pipe.hget(campaign_stats_key(campaign_id), CLICKS)
            pipe.zcard(clickers_key(campaign_id))
            pipe.execute_command("PFCOUNT", campaign_uniques_key(campaign_id))
            raw, clicks, clickers, visitors = await pipe.execute()
        [links] = await self._link_counts.fields([recipient_links_field(campaign_id)])
        counters = _counters(raw)
        implied = max(0, links - counters.get(REPORT_REPLACED, 0))
        return Report(
            sends=counters.get(REPORT_SENDS, 0) + implied,
            delivered=counters.get(REPORT_DELIVERED, 0) + implied,
            failed=counters.get(REPORT_FAILED, 0),
            clicks=int(clicks or 0),
            unique_clicks=int(clickers) + int(visitors),
            conversions=counters.get(REPORT_CONVERSIONS, 0),
            click_conversions=counters.get(REPORT_CLICK, 0),
            view_conversions=counters.get(REPORT_VIEW, 0),
            revenue=_by_currency(counters, REVENUE_PREFIX),
            orders=_by_currency(counters, CONVERSIONS_PREFIX),
        )


def _counters(raw: Mapping[bytes, bytes]) -> dict[str, int]:
    return {as_text(field): int(value) for field, value in raw.items()}


def _by_currency(counters: dict[str, int], prefix: str) -> dict[str, int]:
    return {
        field[len(prefix) :]: value
        for field, value in sorted(counters.items())
        if field.startswith(prefix)
    }
