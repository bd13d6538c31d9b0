"""Raw hits pushed as redirectors push them, workers, and the counts they end up in: shared
by the click pipeline's tests. Not a test module."""

from __future__ import annotations

from redirector.clicks import ClickBuffer, ClickFlusher, Hit
from redirector.clickworker import WORKER_REDIS_TIMEOUT, ClickWorker
from redirector.settings import Settings
from redirector.store.connection import Store
from redirector.store.hitqueue import HitQueue
from redirector.store.keys import HIT_QUEUES, campaign_stats_key, hit_queue_key
from tests.user_agents import IPHONE

SALT = b"salt"


def hits(campaign_id: int | None, n: int, user_agent: str = IPHONE) -> list[Hit]:
    return [
        Hit(
            f"c{campaign_id}x{i % 3}",
            campaign_id,
            None,
            1,  # the link's creation time
            1.7e9 + i,
            False,
            user_agent,
            "",
            "10.0.0.1",
        )
        for i in range(n)
    ]


def flusher(store: Store, settings: Settings, queue_index: int = 0) -> ClickFlusher:
    """A redirector's flusher (without its app), pushing to queue `queue_index`."""
    buffer = ClickBuffer(max_buffered=1_000_000, flush_size=1_000)
    queue = HitQueue(store, settings.flush_durability)
    return ClickFlusher(queue, buffer, interval=0.1, queue_index=queue_index)


async def push(flush: ClickFlusher, batch: list[Hit]) -> None:
    """`batch` appended to the flusher's buffer and pushed, as one flush."""
    for hit in batch:
        flush._buffer.add(hit)
    while flush._buffer.hits:
        await flush.flush_once()


def worker(store: Store, settings: Settings, lease: float = 10.0) -> ClickWorker:
    return ClickWorker(
        store,
        stream_maxlen=1_000_000,
        durability=settings.durability.within(WORKER_REDIS_TIMEOUT),
        salt=SALT,
        interval=0.01,
        lease=lease,
    )


async def counted(redis: Store, campaign_id: int) -> int:
    """Clicks and bot hits of the campaign."""
    values = await redis.hmget(campaign_stats_key(campaign_id), ["clicks", "bots"])
    return sum(int(value or 0) for value in values)


async def queued(redis: Store) -> int:
    """Elements waiting in the raw-hit queues."""
    return sum([await redis.llen(hit_queue_key(queue)) for queue in range(HIT_QUEUES)])
