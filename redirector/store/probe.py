"""Whether the store answers now: a PING to the one Redis, or to every master of a cluster,
within a deadline. A Redis that is loading its data answers LOADING (an error), so an answer
means it serves reads again. Used by /healthz and by the invalidation feed, which waits for it
before it drops the cache (redirector/invalidation.py), and the admin's /healthz."""

from __future__ import annotations

import asyncio

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from redirector.store.connection import Store

# What /healthz (the redirector's and the admin's) waits for Redis at most: a load balancer or
# an orchestrator waits a second or two for the answer.
HEALTH_TIMEOUT = 0.5


async def answers(store: Store, within: float) -> bool:
    """True if every master answered a PING within `within` seconds. The deadline is the
    client's retries too: redis-py tries a command that timed out again, up to 10 times."""
    try:
        async with asyncio.timeout(within):
            if isinstance(store, RedisCluster):
                await store.execute_command("PING", target_nodes=RedisCluster.PRIMARIES)
            else:
                await store.ping()
    except (RedisError, RedisClusterException, OSError, TimeoutError):
        return False
    return True
