"""Typed application keys of the admin app."""

from __future__ import annotations

from aiohttp import web

from admin.service.campaigns import CampaignService
from admin.service.links import LinkService
from admin.service.stats import StatsService
from admin.settings import AdminSettings
from redirector.store.connection import Store

settings_key = web.AppKey("settings", AdminSettings)
redis_key: web.AppKey[Store] = web.AppKey("redis")
campaigns_key = web.AppKey("campaigns", CampaignService)
links_key = web.AppKey("links", LinkService)
stats_key = web.AppKey("stats", StatsService)
openapi_key = web.AppKey("openapi", bytes)  # the document, serialised at start-up
