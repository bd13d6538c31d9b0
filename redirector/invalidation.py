"""Listens on the invalidation channel and drops changed links from the in-process cache.

The admin publishes the codes of every link it creates, changes or deletes. While this
listener is not subscribed (start-up, Redis restart, network trouble) the cache is switched
off, because messages published meanwhile are lost: a change made through the admin is then
still seen on the next request, and the 1-second propagation promise holds.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from redirector.cache import LinkCache
from redirector.links import INVALIDATION_CHANNEL

log = logging.getLogger(__name__)

RETRY_DELAY = 0.5


async def listen(redis: Redis, cache: LinkCache, subscribed: asyncio.Event | None = None) -> None:
    """Run until cancelled, re-subscribing after any Redis error."""
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(INVALIDATION_CHANNEL)
                cache.clear()
                cache.enabled = True
                if subscribed is not None:
                    subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        for code in message["data"].decode().split():
                            cache.discard(code)
        except (RedisError, OSError) as exc:
            cache.enabled = False
            cache.clear()
            if subscribed is not None:
                subscribed.clear()
            log.warning("invalidation feed lost (%s); cache off until it is back", exc)
            await asyncio.sleep(RETRY_DELAY)
