"""Attribution figures of the campaigns (issue 11: sends, conversions, revenue), for the
campaigns list and a campaign's page.

ATTRIBUTION BRIDGE: the report (`GET /api/campaigns/{id}/report`, the `ReportService` under
`admin.appkeys.reports_key`) is built on another branch. Until it is on main there is no report
service, `campaign_figures` finds none, and every figure that comes from it (sends, CTR,
conversions, revenue, AOV, EPM) shows "—": never a number made up in its place. Once it is
merged, the same code reads it; the import below then becomes a plain one.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from admin.exceptions import NotFound

# ATTRIBUTION BRIDGE: the report service's key, once issue 11 is merged (None until then).
REPORTS_KEY: Any = getattr(importlib.import_module("admin.appkeys"), "reports_key", None)


@dataclass(frozen=True, slots=True)
class Figures:
    """A campaign's report, as the pages show it."""

    sends: int
    conversions: int
    click_conversions: int
    view_conversions: int
    revenue: dict[str, int] = field(default_factory=dict)  # currency -> minor units
    orders: dict[str, int] = field(default_factory=dict)  # currency -> conversions in it

    def aov(self, currency: str) -> float | None:
        """Average order value, in minor units."""
        orders = self.orders.get(currency, 0)
        return self.revenue.get(currency, 0) / orders if orders else None

    def epm(self, currency: str) -> float | None:
        """Earnings per mille: revenue per 1,000 sends, in minor units."""
        return 1000 * self.revenue.get(currency, 0) / self.sends if self.sends else None


async def campaign_figures(
    request: web.Request, workspace: str, campaign_ids: Sequence[int]
) -> dict[int, Figures]:
    """The report of each campaign that has one (none while there is no report service)."""
    service: Any = None if REPORTS_KEY is None else request.config_dict.get(REPORTS_KEY)
    if service is None:
        return {}
    found = await asyncio.gather(
        *(service.report(campaign_id, workspace) for campaign_id in campaign_ids),
        return_exceptions=True,
    )
    figures = {}
    for campaign_id, report in zip(campaign_ids, found, strict=True):
        if isinstance(report, NotFound):
            continue
        if isinstance(report, BaseException):
            raise report
        figures[campaign_id] = Figures(
            report.sends,
            report.conversions,
            report.click_conversions,
            report.view_conversions,
            dict(report.revenue),
            dict(report.orders),
        )
    return figures
