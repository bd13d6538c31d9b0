"""Listens on the invalidation channel and drops changed links from the in-process cache.

The admin publishes the codes of every link it creates, changes or deletes. Messages
published while this listener is not subscribed are lost, so:
- while unsubscribed, nothing new enters the cache (`enabled = False`), but what is cached
  keeps being served: if Redis itself is down, hot links still redirect (and their clicks
  wait in the buffer), and nobody can change a link meanwhile anyway;
- on every (re)subscription the whole cache is dropped, so anything changed during the gap
  is read afresh; but only once Redis answers reads (every master, on a cluster): a Redis
  that restarted accepts the subscription while it loads its data and answers every read
  with LOADING meanwhile, which would turn every hot link into a 503. Until then the cache
  stays frozen, serving what it holds (even past its TTL, see LinkCache.get), and the
  changes announced since the subscription are already dropped from it. The listener
  retries every RETRY_DELAY seconds, which bounds how stale a cached link can be after a
  dropped subscription while Redis stayed up.

On a Redis Cluster a PUBLISH reaches the subscribers of every node, so the listener
subscribes on one node (picked at random, so that redirectors spread); after a failure it
tries the next node of the client's topology, so a dead node costs it one retry.
"""

from __future__ import annotations

import asyncio
import logging
import random

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from redirector import metrics
from redirector.cache import LinkCache
from redirector.store.connection import Store
from redirector.store.keys import INVALIDATION_CHANNEL
from redirector.store.probe import answers

log = logging.getLogger(__name__)

RETRY_DELAY = 0.5
# How long one read waits for a message: also how soon `stop` is noticed if a cancellation
# gets lost inside the Redis client (seen with redis-py's pub/sub reads on Python 3.11,
# where a cancel landing as a read times out is swallowed and the loop would go on forever).
POLL = 1.0


async def listen(
    redis: Store,
    cache: LinkCache,
    subscribed: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until cancelled or `stop` is set, re-subscribing after any Redis error."""
    stop = stop or asyncio.Event()
    node_index = random.randrange(1 << 16)  # on a cluster: the node to subscribe on next
    while not stop.is_set():
        try:
            async with await _pubsub(redis, node_index) as pubsub:
                await pubsub.subscribe(INVALIDATION_CHANNEL)
                fresh = False  # the cache dropped since this subscription
                while not stop.is_set():
                    if not fresh and await answers(redis, within=POLL):
                        cache.clear()
                        cache.enabled = fresh = True
                        if subscribed is not None:
                            subscribed.set()
                    message = await pubsub.get_message(timeout=POLL if fresh else RETRY_DELAY)
                    if message is not None:
                        for code in message["data"].decode().split():
                            cache.discard(code)
        except Exception as exc:
            # Any error, not only Redis's: a dead listener would leave the cache serving
            # changed links until their TTL (redis-py 8.1's cluster client has been seen to
            # raise AttributeError from a connection closed while it was being opened).
            node_index += 1
            metrics.REDIS_ERRORS_FEED.inc()
            cache.enabled = False
            if subscribed is not None:
                subscribed.clear()
            unexpected = not isinstance(exc, RedisError | OSError)
            log.warning(
                "invalidation feed lost (%s); cache frozen until it is back",
                exc,
                exc_info=unexpected,
            )
            await asyncio.sleep(RETRY_DELAY)


async def _pubsub(redis: Store, node_index: int) -> PubSub:
    """A pub/sub of the single node, or of the cluster's node `node_index` (modulo)."""
    if not isinstance(redis, RedisCluster):
        return redis.pubsub(ignore_subscribe_messages=True)
    await redis.initialize()  # (again, if a failure marked the topology stale)
    nodes = redis.get_nodes()
    return redis.pubsub(node=nodes[node_index % len(nodes)], ignore_subscribe_messages=True)
