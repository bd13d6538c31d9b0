"""Typed application keys of the redirector app."""

from __future__ import annotations

import asyncio

from aiohttp import web

from redirector.cache import LinkCache
from redirector.clicks import ClickBuffer, ClickFlusher
from redirector.resolver import LinkResolver
from redirector.settings import Settings
from redirector.store.connection import Store

settings_key = web.AppKey("settings", Settings)
redis_key: web.AppKey[Store] = web.AppKey("redis")
cache_key = web.AppKey("cache", LinkCache)
resolver_key = web.AppKey("resolver", LinkResolver)
clicks_key = web.AppKey("clicks", ClickBuffer)
flusher_key = web.AppKey("flusher", ClickFlusher)
# Set while the invalidation feed is subscribed (tests wait for it before tapping).
invalidation_ready_key = web.AppKey("invalidation_ready", asyncio.Event)
