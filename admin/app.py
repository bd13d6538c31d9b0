"""The admin application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

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
    redis_key,
    reports_key,
    sends_key,
    settings_key,
    stats_key,
    workspaces_key,
)
from admin.auth import audit_middleware, auth_middleware
from admin.errors import errors_middleware
from admin.metrics import metrics_middleware, metrics_text
from admin.service.audit import AuditService
from admin.service.campaigns import CampaignService
from admin.service.conversions import ConversionService
from admin.service.implied import ImpliedSends
from admin.service.keys import KeyService
from admin.service.links import LinkService
from admin.service.report import ReportService
from admin.service.sends import SendService
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
    app[audit_log_key] = AuditService(redis, settings.durability)
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
    )
    app[settings_key] = settings
    app.cleanup_ctx.append(redis_ctx)
    setup_routes(app)
    setup_access_routes(app)
    app.router.add_get("/metrics", metrics_text)
    return app
