"""Thin HTTP handlers of the admin API: parse -> call the service -> respond.

Each handler declares what it takes and answers (`@Operation`), from which, with the routes
below, `admin.openapi` builds the document served at /api/openapi.json.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from admin import responses
from admin.appkeys import (
    campaigns_key,
    conversions_key,
    links_key,
    openapi_key,
    principal_key,
    redis_key,
    reports_key,
    sends_key,
    settings_key,
    stats_key,
)
from admin.auth import audit
from admin.batch_body import parse_batch
from admin.exceptions import CampaignNotFound, ValidationFailed
from admin.export import clicks_csv_response
from admin.metrics import LINKS_CREATED
from admin.models import (
    BatchIn,
    CampaignIn,
    ConversionBatchIn,
    ExportQuery,
    LinkIn,
    LinkPatch,
    Paging,
    SendBatchIn,
    StatsQuery,
    UrlRules,
    click_filter,
    parse,
    parse_query,
    stats_window,
)
from admin.openapi import Operation, document
from admin.qr import MEDIA_TYPES, QrFormat, qr_code
from admin.request_body import read_json
from redirector.store.probe import HEALTH_TIMEOUT, answers
from redirector.store.record import Link

# Every route below that reads or writes Redis may answer 503 (storage_unavailable).
STORED = (503,)
FOUND = (404, 503)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def workspace(request: web.Request) -> str:
    """The workspace of the request's key: the only one whose campaigns and links it sees."""
    return request[principal_key].workspace


def rules(request: web.Request) -> UrlRules:
    settings = request.config_dict[settings_key]  # the dashboard's pages ask too
    return UrlRules(settings.max_url_length, settings.own_host)


def campaign_id_of(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise CampaignNotFound(raw)
    return int(raw)


def _link(request: web.Request, code: str, record: Link) -> responses.Link:
    return responses.link(code, record, request.app[settings_key].short_url(code))


@Operation(
    "createCampaign",
    "campaigns",
    responses.Campaign,
    (201,),
    body=CampaignIn,
    errors=STORED,
    access="campaigns:write",
)
async def create_campaign(request: web.Request) -> web.StreamResponse:
    data = parse(CampaignIn, await read_json(request), rules(request))
    campaign = await request.app[campaigns_key].create_campaign(workspace(request), data)
    audit(request, f"campaign:{campaign.id}")
    return json_response(responses.campaign(campaign), status=201)


@Operation(
    "listCampaigns",
    "campaigns",
    responses.CampaignList,
    query=Paging,
    errors=STORED,
    access="campaigns:read",
)
async def list_campaigns(request: web.Request) -> web.StreamResponse:
    page = parse_query(Paging, request.query)
    service = request.app[campaigns_key]
    total, campaigns = await service.list_campaigns(workspace(request), page.offset, page.limit)
    body: responses.CampaignList = {
        "total": total,
        "campaigns": [responses.campaign(c) for c in campaigns],
    }
    return json_response(body)


@Operation("getCampaign", "campaigns", responses.Campaign, errors=FOUND, access="campaigns:read")
async def get_campaign(request: web.Request) -> web.StreamResponse:
    service = request.app[campaigns_key]
    campaign = await service.get_campaign(campaign_id_of(request), workspace(request))
    return json_response(responses.campaign(campaign))


@Operation(
    "createLink",
    "links",
    responses.Link,
    (201, 200),
    body=LinkIn,
    errors=(409, 503),
    access="links:write",
)
async def create_link(request: web.Request) -> web.StreamResponse:
    data = parse(LinkIn, await read_json(request), rules(request))
    service = request.app[links_key]
    [result] = await service.create_links(
        workspace(request), data.campaign_id, [data], tagged=data.tag, batch=False
    )
    LINKS_CREATED.inc(result.created)
    audit(request, f"link:{result.code}")
    status = 201 if result.created else 200
    return json_response(_link(request, result.code, result.link), status=status)


@Operation(
    "createLinkBatch",
    "links",
    responses.LinkBatch,
    (201,),
    body=BatchIn,
    errors=(409, 503),
    access="links:write",
)
async def create_batch(request: web.Request) -> web.StreamResponse:
    data = parse_batch(await read_json(request), rules(request))
    service = request.app[links_key]
    results = await service.create_links(
        workspace(request), data.campaign_id, data.links, url=data.url, tagged=data.tag
    )
    LINKS_CREATED.inc(sum(r.created for r in results))
    # The batch's campaign: its links are as many as the answer lists.
    where = "links" if data.campaign_id is None else f"campaign:{data.campaign_id}"
    audit(request, f"{where} ({len(results)} links)")
    # Plain dicts, not 10,000 model instances: see admin.responses.
    short_url = request.app[settings_key].short_url
    return json_response(responses.link_batch(results, short_url), status=201)


@Operation("getLink", "links", responses.Link, errors=FOUND, access="links:read")
async def get_link(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    link = await request.app[links_key].get_link(code, workspace(request))
    return json_response(_link(request, code, link))


@Operation(
    "updateLink",
    "links",
    responses.Link,
    body=LinkPatch,
    errors=(404, 409, 503),
    access="links:write",
)
async def update_link(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    patch = parse(LinkPatch, await read_json(request), rules(request))
    link = await request.app[links_key].update_link(code, patch, workspace(request))
    audit(request, f"link:{code}")
    return json_response(_link(request, code, link))


@Operation("deleteLink", "links", statuses=(204,), errors=(404, 409, 503), access="links:write")
async def delete_link(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    await request.app[links_key].delete_link(code, workspace(request))
    audit(request, f"link:{code}")
    return web.Response(status=204)


async def _link_qr(request: web.Request, kind: QrFormat) -> web.StreamResponse:
    code = request.match_info["code"]
    # Read first: another workspace's code, or none, is the 404 of every other link route.
    await request.app[links_key].get_link(code, workspace(request))
    image = qr_code(request.app[settings_key].short_url(code), kind)  # a few ms of CPU
    return web.Response(body=image, content_type=MEDIA_TYPES[kind])


@Operation("getLinkQrSvg", "links", errors=FOUND, media=MEDIA_TYPES["svg"], access="links:read")
async def link_qr_svg(request: web.Request) -> web.StreamResponse:
    return await _link_qr(request, "svg")


@Operation("getLinkQrPng", "links", errors=FOUND, media=MEDIA_TYPES["png"], access="links:read")
async def link_qr_png(request: web.Request) -> web.StreamResponse:
    return await _link_qr(request, "png")


@Operation(
    "getLinkStats", "links", responses.Stats, query=StatsQuery, errors=FOUND, access="stats:read"
)
async def link_stats(request: web.Request) -> web.StreamResponse:
    window = stats_window(parse_query(StatsQuery, request.query), time.time())
    code = request.match_info["code"]
    stats = await request.app[stats_key].link_stats(code, workspace(request), window)
    return json_response(responses.stats(stats))


@Operation(
    "getCampaignStats",
    "campaigns",
    responses.Stats,
    query=StatsQuery,
    errors=FOUND,
    access="stats:read",
)
async def campaign_stats(request: web.Request) -> web.StreamResponse:
    campaign_id = campaign_id_of(request)
    window = stats_window(parse_query(StatsQuery, request.query), time.time())
    stats = await request.app[stats_key].campaign_stats(campaign_id, workspace(request), window)
    return json_response(responses.stats(stats))


@Operation(
    "listCampaignClickers",
    "campaigns",
    responses.ClickerList,
    query=Paging,
    errors=FOUND,
    access="stats:read",
)
async def campaign_clickers(request: web.Request) -> web.StreamResponse:
    campaign_id = campaign_id_of(request)
    page = parse_query(Paging, request.query)
    total, clickers = await request.app[stats_key].clickers(
        campaign_id, workspace(request), page.offset, page.limit
    )
    body: responses.ClickerList = {
        "total": total,
        "clickers": [responses.clicker(c) for c in clickers],
    }
    return json_response(body)


@Operation(
    "exportCampaignClicks",
    "campaigns",
    query=ExportQuery,
    errors=FOUND,
    media="text/csv",
    access="stats:read",
)
async def campaign_clicks_csv(request: web.Request) -> web.StreamResponse:
    campaign_id = campaign_id_of(request)
    query = click_filter(parse_query(ExportQuery, request.query))
    # Errors up to here are JSON; once the response is prepared the status is sent.
    chunks = await request.app[stats_key].click_events(campaign_id, workspace(request), query)
    return await clicks_csv_response(request, campaign_id, chunks)


@Operation(
    "recordSends",
    "attribution",
    responses.SendsAccepted,
    body=SendBatchIn,
    errors=STORED,
    access="events:write",
)
async def record_sends(request: web.Request) -> web.StreamResponse:
    body, service = await read_json(request), request.app[sends_key]
    try:
        data = parse(SendBatchIn, body, rules(request))
    except ValidationFailed as invalid:
        raise await service.with_campaign_errors(workspace(request), body, invalid) from None
    accepted = await service.record(workspace(request), data.sends)
    audit(request, f"sends ({accepted})")
    return json_response(responses.sends_accepted(accepted))


@Operation(
    "recordConversions",
    "attribution",
    responses.ConversionsAccepted,
    body=ConversionBatchIn,
    errors=STORED,
    access="events:write",
)
async def record_conversions(request: web.Request) -> web.StreamResponse:
    data = parse(ConversionBatchIn, await read_json(request), rules(request))
    result = await request.app[conversions_key].ingest(workspace(request), data.conversions)
    audit(request, f"conversions ({len(result.accepted)} new, {result.duplicates} duplicates)")
    return json_response(responses.conversions_accepted(result))


@Operation("getConversion", "attribution", responses.Conversion, errors=FOUND, access="stats:read")
async def get_conversion(request: web.Request) -> web.StreamResponse:
    order_id = request.match_info["order_id"]
    found = await request.app[conversions_key].get(workspace(request), order_id)
    return json_response(responses.conversion(found))


@Operation(
    "getCampaignReport",
    "attribution",
    responses.CampaignReport,
    errors=FOUND,
    access="stats:read",
)
async def campaign_report(request: web.Request) -> web.StreamResponse:
    report = await request.app[reports_key].report(campaign_id_of(request), workspace(request))
    return json_response(responses.campaign_report(report))


@Operation("getOpenAPI", "service", dict[str, Any])
async def openapi(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[openapi_key], content_type="application/json")


@Operation("health", "service", responses.Health, (200, 503))
async def health(request: web.Request) -> web.StreamResponse:
    """Open to anyone, so it says ok or unavailable and nothing about hosts or errors; and
    logs nothing, so that no caller can flood the log (the 503 is counted in the metrics)."""
    # Within HEALTH_TIMEOUT whatever REDIS_TIMEOUT and the client's retries (a Redis that
    # takes connections and runs nothing would hold a plain PING that long); on a cluster,
    # every master.
    if not await answers(request.app[redis_key], HEALTH_TIMEOUT):
        unavailable: responses.Health = {"status": "unavailable"}
        return json_response(unavailable, status=503)
    ok: responses.Health = {"status": "ok"}
    return json_response(ok)


async def _publish_openapi(app: web.Application) -> None:
    # At start-up, when every route (including those added after setup_routes) is registered.
    app[openapi_key] = orjson.dumps(document(app))


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", health)
    r.add_get("/api/openapi.json", openapi)
    r.add_post("/api/campaigns", create_campaign)
    r.add_get("/api/campaigns", list_campaigns)
    r.add_get("/api/campaigns/{id}", get_campaign)
    r.add_get("/api/campaigns/{id}/stats", campaign_stats)
    r.add_get("/api/campaigns/{id}/clickers", campaign_clickers)
    r.add_get("/api/campaigns/{id}/clicks.csv", campaign_clicks_csv)
    r.add_get("/api/campaigns/{id}/report", campaign_report)
    r.add_post("/api/sends", record_sends)
    r.add_post("/api/conversions", record_conversions)
    r.add_get("/api/conversions/{order_id}", get_conversion)
    r.add_post("/api/links", create_link)
    r.add_post("/api/links/batch", create_batch)
    r.add_get("/api/links/{code}", get_link)
    r.add_get("/api/links/{code}/stats", link_stats)
    r.add_get("/api/links/{code}/qr.svg", link_qr_svg)
    r.add_get("/api/links/{code}/qr.png", link_qr_png)
    r.add_patch("/api/links/{code}", update_link)
    r.add_delete("/api/links/{code}", delete_link)
    app.on_startup.append(_publish_openapi)
