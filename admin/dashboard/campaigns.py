"""The campaigns of the workspace (where signing in lands), a new campaign, and a campaign's
page: its totals, the clicks chart over a picked range, breakdowns, top links, the clickers
(paged), attribution, and the CSV export of its clicks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from admin.access import DASHBOARD_PREFIX
from admin.api import campaign_id_of, rules
from admin.appkeys import campaigns_key, stats_key
from admin.dashboard.audit import record
from admin.dashboard.charts import clicks_chart
from admin.dashboard.forms import checked_form
from admin.dashboard.render import render, see_other
from admin.dashboard.report import Figures, campaign_figures
from admin.dashboard.viewer import viewer
from admin.dashboard.window import picked_range
from admin.export import clicks_csv_response
from admin.models import CampaignIn, ExportQuery, Paging, click_filter, parse, parse_query
from admin.service.campaigns import Campaign
from admin.service.stats import Totals

CLICKERS_PAGE = 50
# What the chart image may do: draw with its own inline styles, and nothing else.
CHART_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


@dataclass(frozen=True, slots=True)
class CampaignRow:
    campaign: Campaign
    totals: Totals | None  # None without stats:read
    figures: Figures | None  # None while there is no report


async def campaign_list(request: web.Request) -> web.StreamResponse:
    principal = viewer(request).principal
    principal.check("campaigns:read")
    page = parse_query(Paging, request.query)
    total, found = await request.config_dict[campaigns_key].list_campaigns(
        principal.workspace, page.offset, page.limit
    )
    ids = [campaign.id for campaign in found]
    totals: list[Totals | None] = [None] * len(found)
    if principal.may("stats:read"):
        totals = list(await request.config_dict[stats_key].campaign_totals(ids))
    figures = await campaign_figures(request, principal.workspace, ids)
    rows = [
        CampaignRow(campaign, counted, figures.get(campaign.id))
        for campaign, counted in zip(found, totals, strict=True)
    ]
    return render(request, "campaigns.html", rows=rows, total=total, page=page)


async def new_campaign(request: web.Request) -> web.StreamResponse:
    viewer(request).principal.check("campaigns:write")
    return render(request, "campaign_new.html", values={})


async def create_campaign(request: web.Request) -> web.StreamResponse:
    principal = viewer(request).principal
    principal.check("campaigns:write")
    fields = await checked_form(request)
    body: dict[str, str] = {"name": fields.get("name", ""), "kind": fields.get("kind", "")}
    for name in ("utm_source", "utm_medium"):
        if fields.get(name, "").strip():  # an empty field: the service's default
            body[name] = fields[name]
    data = parse(CampaignIn, body, rules(request))
    campaign = await request.config_dict[campaigns_key].create_campaign(principal.workspace, data)
    await record(request, "createCampaign", f"campaign:{campaign.id}")
    raise see_other(f"{DASHBOARD_PREFIX}/campaigns/{campaign.id}")


async def campaign_page(request: web.Request) -> web.StreamResponse:
    principal = viewer(request).principal
    principal.check("campaigns:read")
    campaign = await request.config_dict[campaigns_key].get_campaign(
        campaign_id_of(request), principal.workspace
    )
    context: dict[str, Any] = {"campaign": campaign, "stats": None}
    figures = await campaign_figures(request, principal.workspace, [campaign.id])
    context["figures"] = figures.get(campaign.id)
    if principal.may("stats:read"):
        context.update(await _campaign_stats(request, campaign))
    return render(request, "campaign.html", 200, **context)


async def _campaign_stats(request: web.Request, campaign: Campaign) -> dict[str, Any]:
    workspace = viewer(request).principal.workspace
    picked = picked_range(request.query, time.time())
    clickers_at = parse_query(Paging, {"offset": request.query.get("clickers", "0")}).offset
    service = request.config_dict[stats_key]
    stats = await service.campaign_stats(campaign.id, workspace, picked.window)
    sampled, top = await service.top_links(campaign.id, workspace)
    clickers_total, clickers = await service.clickers(
        campaign.id, workspace, clickers_at, CLICKERS_PAGE
    )
    return {
        "stats": stats,
        "range": picked,
        "sampled": sampled,
        "top_links": top,
        "clickers": clickers,
        "clickers_total": clickers_total,
        "clickers_at": clickers_at,
        "clickers_page": CLICKERS_PAGE,
    }


async def campaign_chart(request: web.Request) -> web.StreamResponse:
    principal = viewer(request).principal
    principal.check("stats:read")
    campaign_id = campaign_id_of(request)
    picked = picked_range(request.query, time.time())
    service = request.config_dict[stats_key]
    stats = await service.campaign_stats(campaign_id, principal.workspace, picked.window)
    previous = []
    if picked.previous is not None:
        before = await service.campaign_stats(campaign_id, principal.workspace, picked.previous)
        previous = before.series
    svg = clicks_chart(picked.window, stats.series, previous)
    return web.Response(
        body=svg,
        content_type="image/svg+xml",
        headers={"Content-Security-Policy": CHART_POLICY, "Cache-Control": "private, max-age=60"},
    )


async def campaign_clicks_csv(request: web.Request) -> web.StreamResponse:
    principal = viewer(request).principal
    principal.check("stats:read")
    campaign_id = campaign_id_of(request)
    query = click_filter(parse_query(ExportQuery, request.query))
    service = request.config_dict[stats_key]
    chunks = await service.click_events(campaign_id, principal.workspace, query)
    return await clicks_csv_response(request, campaign_id, chunks)
