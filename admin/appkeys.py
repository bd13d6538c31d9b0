"""Typed application keys of the admin app."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from admin.service import LinkService
from admin.settings import AdminSettings
from admin.stats import StatsService

settings_key = web.AppKey("settings", AdminSettings)
redis_key = web.AppKey("redis", Redis)
service_key = web.AppKey("service", LinkService)
stats_key = web.AppKey("stats", StatsService)
openapi_key = web.AppKey("openapi", bytes)  # the document, serialised at start-up
