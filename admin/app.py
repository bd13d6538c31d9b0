"""The admin application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web
from redis.exceptions import RedisError

from admin.access_api import setup_access_routes
from admin.api import setup_routes
from admin.appkeys import (
    api_keys_key,
    audit_log_key,
    campaigns_key,
    conversions_key,
    links_key,
    rate_limiter_key,
    redis_key,
    reports_key,
    send_jobs_key,
    sends_key,
    sessions_key,
    settings_key,
    stats_key,
    workspaces_key,
)
from admin.auth import audit_middleware, auth_middleware, send_quota
from admin.dashboard.app import setup_dashboard
from admin.errors import errors_middleware
from admin.export import links_csv
from admin.metrics import metrics_middleware, metrics_text
from admin.request_body import READ_AS_SENT
from admin.service.audit import AuditService
from admin.service.campaigns import CampaignService
from admin.service.conversions import ConversionService
from admin.service.implied import ImpliedSends
from admin.service.keys import KeyService
from admin.service.links import LinkService
from admin.service.ratelimit import RateLimiter
from admin.service.report import ReportService
from admin.service.send_jobs import SendJobService
from admin.service.sends import SendService
from admin.service.sessions import SessionService
from admin.service.stats import StatsService
from admin.service.workspaces import WorkspaceService
from admin.settings import AdminSettings
from redirector.store.attribution import AttributionScripts
from redirector.store.connection import Store, connect
from redirector.store.counts import LinkCounts
from redirector.store.keys import REDIS_MEMORY_CONFIG
from redirector.store.lookup import LinkReader

log = logging.getLogger(__name__)


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    app[redis_key] = redis = connect(
        settings.redis_url, timeout=settings.redis_timeout, cluster=settings.redis_cluster
    )
    # The services hold no resource of their own: they live as long as the client.
    app[campaigns_key] = campaigns = CampaignService(
        redis, settings.code_length, settings.durability
    )
    app[links_key] = links = LinkService(redis, campaigns, settings)
    app[stats_key] = StatsService(redis, campaigns, links)
    scripts = AttributionScripts(redis, settings.durability)
    implied = ImpliedSends(LinkReader(redis))
    link_counts = LinkCounts(redis)
    windows = settings.windows
    app[sends_key] = SendService(scripts, campaigns, links, implied, link_counts, windows)
    app[conversions_key] = ConversionService(redis, scripts, campaigns, links, implied, windows)
    app[reports_key] = ReportService(redis, campaigns, link_counts)
    app[workspaces_key] = WorkspaceService(redis, settings.durability)
    app[api_keys_key] = KeyService(redis, settings.api_keys, settings.durability)
    app[audit_log_key] = audit_log = AuditService(redis, settings.durability)
    app[sessions_key] = SessionService(redis, settings.dashboard_session_ttl, settings.durability)
    app[send_jobs_key] = SendJobService(
        redis, links, audit_log, partial(links_csv, short_url=settings.short_url)
    )
    app[rate_limiter_key] = RateLimiter(redis, settings.rate_limit)
    await warn_about_memory_config(redis)
    yield
    await redis.aclose()


async def warn_about_memory_config(redis: Store) -> None:
    """The link store is compact only with listpack-friendly hash limits; a server set up
    otherwise still works, but uses about twice the memory per link, so say so at start."""
    try:
        config = await redis.config_get("hash-max-listpack-*")
    except RedisError:  # CONFIG may be disabled (managed Redis) or Redis not up yet
        return
    values = {(k.decode() if isinstance(k, bytes) else k): v for k, v in config.items()}
    for name, wanted in REDIS_MEMORY_CONFIG.items():
        have = int(values.get(name) or 0)
        if have < wanted:
            log.warning("redis %s is %d; set it to %d for compact links", name, have, wanted)


def create_app(settings: AdminSettings) -> web.Application:
    # Errors outside auth, so that a refused key also gets the JSON error shape; the audit
    # inside it, where the key is known, and outside the handler, whose errors it lets by.
    app = web.Application(
        middlewares=[metrics_middleware, errors_middleware, auth_middleware, audit_middleware],
        client_max_size=settings.max_body_bytes,
        handler_args=READ_AS_SENT,
    )
    app[settings_key] = settings
    app.cleanup_ctx.append(redis_ctx)
    app.on_response_prepare.append(send_quota)
    setup_routes(app)
    setup_access_routes(app)
    app.router.add_get("/metrics", metrics_text)
    setup_dashboard(app)
    return app
