"""Code -> Link: the in-process cache first, then Redis."""

from __future__ import annotations

import re
import time

from redis.asyncio import Redis

from redirector.cache import ABSENT, LinkCache
from redirector.links import Link, decode, link_key

# Anything that could never be a code is answered 404 without touching Redis or the cache,
# so a scan of junk paths neither loads Redis nor evicts real links.
_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class LinkResolver:
    def __init__(self, redis: Redis, cache: LinkCache) -> None:
        self._redis = redis
        self._cache = cache

    async def find(self, code: str) -> Link | None:
        cache = self._cache
        now = time.monotonic()
        hit = cache.get(code, now)
        if hit is not None:
            return None if hit is ABSENT else hit  # type: ignore[return-value]
        if _CODE.fullmatch(code) is None:
            return None
        generation = cache.generation
        raw = await self._redis.hget(link_key(code), code)
        link = decode(raw) if raw is not None else None
        # An invalidation that arrived while Redis answered may concern this very record:
        # caching the answer could then pin the old version, so only cache when none did.
        if cache.generation == generation:
            cache.put(code, link, now)
        return link
