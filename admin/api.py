"""Thin HTTP handlers of the admin API: parse -> call the service -> respond."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from admin.appkeys import campaigns_key, links_key, redis_key, settings_key, stats_key
from admin.exceptions import CampaignNotFound, FieldError, ValidationFailed
from admin.metrics import LINKS_CREATED
from admin.models import (
    BatchIn,
    CampaignIn,
    LinkIn,
    LinkPatch,
    UrlRules,
    click_filter,
    parse,
    stats_window,
)
from admin.openapi import SPEC
from admin.service.stats import ClickEvent
from admin.views import (
    campaign_view,
    clicker_view,
    clicks_csv,
    link_view,
    stats_view,
)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"malformed JSON: {exc}") from None


def _rules(request: web.Request) -> UrlRules:
    settings = request.app[settings_key]
    return UrlRules(settings.max_url_length, settings.own_host)


def _campaign_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise CampaignNotFound(raw)
    return int(raw)


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        message = f"must be a whole number from {low} to {high}"
        raise ValidationFailed([FieldError(name, message)])
    return int(raw)


async def create_campaign(request: web.Request) -> web.StreamResponse:
    data = parse(CampaignIn, await _body(request), _rules(request))
    campaign = await request.app[campaigns_key].create_campaign(data)
    return _json(campaign_view(campaign), status=201)


async def list_campaigns(request: web.Request) -> web.StreamResponse:
    offset = _query_int(request, "offset", 0, 0, 2**31)
    limit = _query_int(request, "limit", 100, 1, 1000)
    total, campaigns = await request.app[campaigns_key].list_campaigns(offset, limit)
    return _json({"total": total, "campaigns": [campaign_view(c) for c in campaigns]})


async def get_campaign(request: web.Request) -> web.StreamResponse:
    campaign = await request.app[campaigns_key].get_campaign(_campaign_id(request))
    return _json(campaign_view(campaign))


async def create_link(request: web.Request) -> web.StreamResponse:
    data = parse(LinkIn, await _body(request), _rules(request))
    service, settings = request.app[links_key], request.app[settings_key]
    [result] = await service.create_links(data.campaign_id, [data], tagged=data.tag, batch=False)
    LINKS_CREATED.inc(result.created)
    status = 201 if result.created else 200
    return _json(link_view(result.code, result.link, settings), status=status)


async def create_batch(request: web.Request) -> web.StreamResponse:
    data = parse(BatchIn, await _body(request), _rules(request))
    service, settings = request.app[links_key], request.app[settings_key]
    results = await service.create_links(data.campaign_id, data.links, tagged=data.tag)
    LINKS_CREATED.inc(sum(r.created for r in results))
    return _json({"links": [link_view(r.code, r.link, settings) for r in results]}, status=201)


async def get_link(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    link = await request.app[links_key].get_link(code)
    return _json(link_view(code, link, request.app[settings_key]))


async def update_link(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    patch = parse(LinkPatch, await _body(request), _rules(request))
    link = await request.app[links_key].update_link(code, patch)
    return _json(link_view(code, link, request.app[settings_key]))


async def delete_link(request: web.Request) -> web.StreamResponse:
    await request.app[links_key].delete_link(request.match_info["code"])
    return web.Response(status=204)


async def link_stats(request: web.Request) -> web.StreamResponse:
    window = stats_window(request.query, time.time())
    stats = await request.app[stats_key].link_stats(request.match_info["code"], window)
    return _json(stats_view(stats))


async def campaign_stats(request: web.Request) -> web.StreamResponse:
    campaign_id = _campaign_id(request)
    window = stats_window(request.query, time.time())
    stats = await request.app[stats_key].campaign_stats(campaign_id, window)
    return _json(stats_view(stats))


async def campaign_clickers(request: web.Request) -> web.StreamResponse:
    campaign_id = _campaign_id(request)
    offset = _query_int(request, "offset", 0, 0, 2**31)
    limit = _query_int(request, "limit", 100, 1, 1000)
    total, clickers = await request.app[stats_key].clickers(campaign_id, offset, limit)
    return _json({"total": total, "clickers": [clicker_view(c) for c in clickers]})


async def campaign_clicks_csv(request: web.Request) -> web.StreamResponse:
    campaign_id = _campaign_id(request)
    query = click_filter(request.query)
    # Errors up to here are JSON; once the response is prepared the status is sent.
    chunks = await request.app[stats_key].click_events(campaign_id, query)
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


async def openapi(request: web.Request) -> web.StreamResponse:
    return _json(SPEC)


async def health(request: web.Request) -> web.StreamResponse:
    try:
        await request.app[redis_key].ping()
    except RedisError as exc:
        return _json({"status": "unavailable", "error": str(exc)}, status=503)
    return _json({"status": "ok"})


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
    r.add_post("/api/links", create_link)
    r.add_post("/api/links/batch", create_batch)
    r.add_get("/api/links/{code}", get_link)
    r.add_get("/api/links/{code}/stats", link_stats)
    r.add_patch("/api/links/{code}", update_link)
    r.add_delete("/api/links/{code}", delete_link)
