"""Writes besides the links' that are acknowledged only once a replica has them: the click
path's (a redirector's flush pushed to its raw-hit queue, a click worker's counts of a chunk),
and the secrets shared by every process (the code key above all: made again after a
failover, it would change every recipient's code). On one redis-server, which has no replica,
a wait for one is never met; on the cluster, the replica of the key's master is frozen."""

from __future__ import annotations

import asyncio

import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio.cluster import RedisCluster as ClusterClient

from admin.app import create_app as create_admin
from admin.appkeys import links_key
from admin.service.campaigns import CampaignService
from admin.service.links import LinkService
from admin.settings import AdminSettings
from redirector.clicks import ClickBuffer, ClickFlusher
from redirector.clickworker import ClickWorker
from redirector.settings import Settings
from redirector.store.connection import NO_WAIT, NotReplicated, Store
from redirector.store.hitqueue import HitQueue
from redirector.store.keys import CODE_KEY, click_stream_key, hit_queue_key
from tests.admin.helpers import URL, create_campaign, create_link, expect_error
from tests.conftest import AUTH, Client, Unconfirmed
from tests.redirector.clicks_helpers import SALT, counted, flusher, hits, push, queued, worker
from tests.waiting import eventually


async def _idle_connections(redis: Store, key: str) -> None:
    """Several idle connections to `key`'s master, each of whose writes its replicas have
    confirmed: a write sent again may go on another connection than the first attempt."""
    await asyncio.gather(*(redis.exists(key) for _ in range(4)))
    if isinstance(redis, ClusterClient):
        await redis.execute_command("WAIT", 1, 5000, target_nodes=redis.get_node_from_key(key))


async def test_a_click_flush_leaves_the_buffer_only_once_a_replica_has_it(
    redis: Store, redirector_settings: Settings, unconfirmed: Unconfirmed
) -> None:
    """The redirect process's side: its flush, pushed to its raw-hit queue."""
    buffer = ClickBuffer(max_buffered=100, flush_size=100)
    for hit in hits(7, 5):
        buffer.add(hit)
    await _idle_connections(redis, hit_queue_key(0))
    with unconfirmed(hit_queue_key(0)) as durability:
        flush = ClickFlusher(HitQueue(redis, durability), buffer, interval=0.1, queue_index=0)
        with pytest.raises(NotReplicated):
            await flush.flush_once()
        assert len(buffer.hits) == 5  # pushed on the master, not acknowledged
        # Sent again (on another connection), the flush is found pushed, and still not
        # acknowledged: the WAIT behind it must cover the first attempt's push.
        with pytest.raises(NotReplicated):
            await flush.flush_once()
        assert len(buffer.hits) == 5
    assert await queued(redis) == 1  # pushed once
    assert await worker(redis, redirector_settings).work_once() == 1
    assert await counted(redis, 7) == 5


async def test_a_chunk_leaves_its_queue_only_once_a_replica_has_its_counts(
    redis: Store, redirector_settings: Settings, unconfirmed: Unconfirmed
) -> None:
    """The click worker's side: the counts (FLUSH_CLICKS) of the chunk it claimed."""
    await push(flusher(redis, redirector_settings), hits(7, 5))
    await _idle_connections(redis, click_stream_key(7))
    with unconfirmed(click_stream_key(7)) as durability:
        applying = ClickWorker(
            redis, stream_maxlen=1_000, durability=durability, salt=SALT, lease=0.2
        )
        # Its claims acknowledged at once (one redis-server never confirms a write): only
        # the counts wait here; the queue's own writes are the test above's.
        applying._queue = HitQueue(redis, NO_WAIT)
        with pytest.raises(NotReplicated):
            await applying.work_once()
        # Applied again (the same chunk, on another connection), the batch is found
        # applied, and still not acknowledged, for the same reason as above.
        with pytest.raises(NotReplicated):
            await applying.work_once()
    assert await counted(redis, 7) == 5  # applied once
    assert await queued(redis) == 1  # and not trimmed
    # Once its lease is over another worker takes the chunk over: it counts nothing twice.
    other = worker(redis, redirector_settings)

    async def taken_over() -> bool:
        return await other.work_once() == 1

    await eventually(taken_over)
    assert (await counted(redis, 7), await queued(redis)) == (5, 0)


async def test_the_code_key_is_used_only_once_a_replica_has_it(
    redis: Store, admin_settings: AdminSettings, unconfirmed: Unconfirmed
) -> None:
    with unconfirmed(CODE_KEY) as durability:
        waiting = admin_settings.model_copy(
            update={
                "redis_wait_replicas": durability.replicas,
                "redis_wait_timeout": durability.timeout_ms,
            }
        )
        links = LinkService(redis, CampaignService(redis), waiting)
        with pytest.raises(NotReplicated):
            await links.chain(None)


async def test_a_lost_code_key_is_written_back_so_a_second_admin_finds_the_same_links(
    admin: Client, aiohttp_client: AiohttpClient, admin_settings: AdminSettings, redis: Store
) -> None:
    admin.app[links_key].code_key.recheck = 0.0  # re-read at every use
    c = await create_campaign(admin)
    first = await create_link(admin, campaign_id=c["id"], recipient="r1")
    await redis.delete(CODE_KEY)  # lost, as by a failover that no replica saved
    await create_link(admin, campaign_id=c["id"], recipient="r2")
    other = await aiohttp_client(create_admin(admin_settings), headers=AUTH)
    body = {"url": URL, "campaign_id": c["id"], "recipient": "r1"}
    resp = await other.post("/api/links", json=body)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["code"] == first["code"]


async def test_a_code_key_changed_under_an_admin_is_refused_not_used(
    admin: Client, redis: Store
) -> None:
    admin.app[links_key].code_key.recheck = 0.0
    c = await create_campaign(admin)
    first = await create_link(admin, campaign_id=c["id"], recipient="r1")
    original = await redis.get(CODE_KEY)
    assert original is not None
    await redis.set(CODE_KEY, "made-again-by-another-admin")
    for recipient in ("r1", "r2"):
        body = {"url": URL, "campaign_id": c["id"], "recipient": recipient}
        await expect_error(await admin.post("/api/links", json=body), 503, "storage_unavailable")
    # Links without recipient need no key, and still work.
    assert (await admin.post("/api/links", json={"url": URL})).status == 201
    await redis.set(CODE_KEY, original)  # the operator puts it back
    body = {"url": URL, "campaign_id": c["id"], "recipient": "r1"}
    resp = await admin.post("/api/links", json=body)
    assert resp.status == 200 and (await resp.json())["code"] == first["code"]
