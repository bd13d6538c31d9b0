"""Attribution figures of the campaigns (issue 11: sends, conversions, revenue), for the
campaigns list and a campaign's page.

ATTRIBUTION PENDING: the report (`GET /api/campaigns/{id}/report` and the service behind it)
is being built on another branch. Until it is merged, `campaign_figures` finds no report,
and every figure that comes from it (sends, CTR, conversions, revenue, AOV, EPM) is shown as
"—": never a number made up in its place. Once the report service exists, this module is the
one place that reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web


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
    """The report of each campaign that has one (ATTRIBUTION PENDING: none yet)."""
    return {}
