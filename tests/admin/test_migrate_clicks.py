"""The click counters of a link that the release before the tagged key schema deleted are, once
migrated, no link's: its custom code made again after the upgrade starts with no clicks."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from admin.service.migration import Migration
from admin.settings import AdminSettings
from redirector.store.connection import Store
from tests.admin.helpers import URL, create_link, stats_once_flushed, tap
from tests.admin.legacy_layout import OldStore, tagged
from tests.conftest import Client
from tests.user_agents import IPHONE


@pytest.fixture
def old_redis(redis: Store, store_kind: str) -> Redis:
    if store_kind == "cluster":
        pytest.skip("the old layout ran on one Redis only")
    assert isinstance(redis, Redis)
    return redis


async def test_a_custom_code_deleted_before_the_upgrade_and_made_again_has_no_old_clicks(
    old_redis: Redis, admin: Client, redirector: Client, admin_settings: AdminSettings
) -> None:
    old, now = OldStore(old_redis), int(time.time())
    link = tagged(URL, "?utm_source=instasent&utm_medium=sms", now - 3600)
    await old.add("old-promo", link)
    async with old_redis.pipeline(transaction=False) as pipe:
        for n in range(2):
            old.hit(pipe, "old-promo", link, (now - 1800) * 1000 + n, visitor=f"v{n}")
        await pipe.execute()
    await old.delete("old-promo", link)
    assert (await Migration(old_redis, admin_settings).run()).tombstones == 1

    await create_link(admin, code="old-promo")
    fresh = await (await admin.get("/api/links/old-promo/stats")).json()
    assert (fresh["clicks"], fresh["unique_clicks"]) == (0, 0)
    await tap(redirector, "old-promo", IPHONE)
    counted = await stats_once_flushed(admin, "/api/links/old-promo/stats", clicks=1, bot_hits=0)
    assert counted["unique_clicks"] == 1
