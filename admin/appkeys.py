"""Typed keys of the admin app, and of each request (what the middlewares hand on)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from admin.access import Principal
from admin.service.audit import AuditService
from admin.service.campaigns import CampaignService
from admin.service.conversions import ConversionService
from admin.service.keys import KeyService
from admin.service.links import LinkService
from admin.service.ratelimit import Quota, RateLimiter
from admin.service.report import ReportService
from admin.service.send_jobs import SendJobService
from admin.service.sends import SendService
from admin.service.sessions import SessionService
from admin.service.stats import StatsService
from admin.service.workspaces import WorkspaceService
from admin.settings import AdminSettings
from redirector.store.connection import Store

settings_key = web.AppKey("settings", AdminSettings)
redis_key: web.AppKey[Store] = web.AppKey("redis")
campaigns_key = web.AppKey("campaigns", CampaignService)
links_key = web.AppKey("links", LinkService)
stats_key = web.AppKey("stats", StatsService)
sends_key = web.AppKey("sends", SendService)
conversions_key = web.AppKey("conversions", ConversionService)
reports_key = web.AppKey("reports", ReportService)
workspaces_key = web.AppKey("workspaces", WorkspaceService)
api_keys_key = web.AppKey("api_keys", KeyService)
audit_log_key = web.AppKey("audit_log", AuditService)
sessions_key = web.AppKey("sessions", SessionService)  # the dashboard's
send_jobs_key = web.AppKey("send_jobs", SendJobService)  # the dashboard's
rate_limiter_key = web.AppKey("rate_limiter", RateLimiter)
openapi_key = web.AppKey("openapi", bytes)  # the document, serialised at start-up


@dataclass(frozen=True, slots=True)
class AuditTarget:
    """What a write request wrote, as its handler says for the audit log; `workspace` when
    that is not the caller's own (a root key's write in another workspace)."""

    target: str
    workspace: str | None = None


# The key the request was authenticated with (admin.auth), on every /api/ request.
principal_key = web.RequestKey("principal", Principal)
audit_target_key = web.RequestKey("audit_target", AuditTarget)
# Where the request's key stands in its rate-limit window (absent when there is no limit).
quota_key = web.RequestKey("quota", Quota)
