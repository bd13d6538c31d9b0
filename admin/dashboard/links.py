"""A link's page, found by its code: where it leads, its URL to edit, disabling and enabling
it, its expiry, its QR code (SVG, and both formats to download) and its stats."""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from admin.access import DASHBOARD_PREFIX
from admin.api import rules
from admin.appkeys import links_key, settings_key, stats_key
from admin.dashboard.audit import record
from admin.dashboard.forms import checked_form
from admin.dashboard.render import render, see_other
from admin.dashboard.viewer import viewer
from admin.exceptions import FieldError, LinkNotFound, ValidationFailed
from admin.models import LinkPatch, StatsQuery, parse, parse_query, stats_window
from admin.qr import MEDIA_TYPES, QR_FORMATS, qr_code
from redirector.store.keys import CODE_PATTERN

_CODE = re.compile(CODE_PATTERN)
# What <input type="datetime-local"> sends, read as UTC (the page says so), to the minute.
_LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?")


def _code(request: web.Request) -> str:
    code = request.match_info["code"]
    if not _CODE.fullmatch(code):
        raise LinkNotFound(code)
    return code


async def find_link(request: web.Request) -> web.StreamResponse:
    viewer(request).principal.check("links:read")
    code = request.query.get("code", "").strip()
    if not code:
        return render(request, "link_search.html", code="")
    if not _CODE.fullmatch(code):
        raise ValidationFailed(
            [FieldError("code", "must be 3 to 64 characters from A-Z, a-z, 0-9, '_' and '-'")]
        )
    raise see_other(f"{DASHBOARD_PREFIX}/links/{code}")


async def link_page(request: web.Request) -> web.StreamResponse:
    principal = viewer(request).principal
    principal.check("links:read")
    code = _code(request)
    link = await request.config_dict[links_key].get_link(code, principal.workspace)
    stats = None
    if principal.may("stats:read"):
        window = stats_window(parse_query(StatsQuery, {}), time.time())
        stats = await request.config_dict[stats_key].link_stats(code, principal.workspace, window)
    short_url = request.config_dict[settings_key].short_url(code)
    return render(
        request,
        "link.html",
        code=code,
        link=link,
        short_url=short_url,
        stats=stats,
        gone=link.gone(time.time()),
        saved=request.query.get("saved") == "1",
    )


async def edit_link(request: web.Request) -> web.StreamResponse:
    principal = viewer(request).principal
    principal.check("links:write")
    code = _code(request)
    fields = await checked_form(request)
    patch = parse(LinkPatch, _patch(fields), rules(request))
    await request.config_dict[links_key].update_link(code, patch, principal.workspace)
    await record(request, "updateLink", f"link:{code}")
    raise see_other(f"{DASHBOARD_PREFIX}/links/{code}?saved=1")


def _patch(fields: dict[str, str]) -> dict[str, Any]:
    """The API's patch of what the form's button asks for."""
    action = fields.get("action")
    if action == "url":
        return {"url": fields.get("url", "")}
    if action in ("disable", "enable"):
        return {"disabled": action == "disable"}
    if action == "expiry":
        given = fields.get("expires_at", "").strip()
        if not given:
            return {"expires_at": None}
        if not _LOCAL_TIME.fullmatch(given):
            raise ValidationFailed([FieldError("expires_at", "must be a date and time")])
        seconds = "" if given.count(":") == 2 else ":00"
        return {"expires_at": f"{given}{seconds}Z"}
    raise ValidationFailed([FieldError("action", "must be url, disable, enable or expiry")])


async def link_qr(request: web.Request) -> web.StreamResponse:
    principal = viewer(request).principal
    principal.check("links:read")
    code = _code(request)
    fmt = request.match_info["format"]
    if fmt not in QR_FORMATS:  # the route allows only these
        raise web.HTTPNotFound()
    await request.config_dict[links_key].get_link(code, principal.workspace)
    body = qr_code(request.config_dict[settings_key].short_url(code), fmt)
    headers = {"Cache-Control": "private, max-age=300"}
    if request.query.get("download") == "1":
        headers["Content-Disposition"] = f'attachment; filename="{code}.{fmt}"'
    return web.Response(body=body, content_type=MEDIA_TYPES[fmt], headers=headers)
