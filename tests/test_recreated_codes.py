"""A custom code deleted and created again is a new link: it never shows the old link's clicks,
not even those of a flush that was still on its way, while the campaign keeps counting both.
Each hit carries its link's creation time from the redirect, through the raw-hit queue, to the
click worker's counts."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from redirector.clicks import Hit
from redirector.settings import Settings
from redirector.store.connection import Store
from redirector.store.keys import campaign_stats_key, link_stats_key, link_uniques_key
from tests.admin.helpers import create_campaign, create_link, stats_once_flushed, tap
from tests.conftest import Client
from tests.redirector.clicks_helpers import flusher, push, worker
from tests.user_agents import ANDROID, IPHONE

PREVIEW = "WhatsApp/2.23.20.0 A"


@pytest.mark.parametrize("of_campaign", [True, False])
async def test_a_custom_code_created_again_starts_with_no_clicks(
    admin: Client, redirector: Client, of_campaign: bool
) -> None:
    campaign: dict[str, Any] = {"campaign_id": (await create_campaign(admin))["id"]}
    fields = {"code": "promo-1", **(campaign if of_campaign else {})}
    old = await create_link(admin, **fields)
    for user_agent in (IPHONE, ANDROID, PREVIEW):
        await tap(redirector, "promo-1", user_agent)
    await stats_once_flushed(admin, "/api/links/promo-1/stats", clicks=2, bot_hits=1)
    assert (await admin.delete("/api/links/promo-1")).status == 204
    new = await create_link(admin, **fields)
    assert new["created_at"] > old["created_at"]

    resp = await admin.get("/api/links/promo-1/stats")
    fresh = await resp.json()
    assert (fresh["clicks"], fresh["bot_hits"], fresh["unique_clicks"]) == (0, 0, 0)
    assert fresh["breakdowns"]["device"] == {}
    assert all(bucket["clicks"] == 0 for bucket in fresh["series"])
    await tap(redirector, "promo-1", IPHONE)
    counted = await stats_once_flushed(admin, "/api/links/promo-1/stats", clicks=1, bot_hits=0)
    assert counted["unique_clicks"] == 1
    assert counted["breakdowns"]["device"] == {"mobile": 1}
    if of_campaign:  # the campaign counts the clicks of both links
        path = f"/api/campaigns/{campaign['campaign_id']}/stats"
        await stats_once_flushed(admin, path, clicks=3, bot_hits=1)


def _hits(link_created_at: int, visitors: range) -> list[Hit]:
    return [
        Hit("promo-2", 7, None, link_created_at, 1.7e9, False, IPHONE, "", f"10.0.0.{visitor}")
        for visitor in visitors
    ]


async def _flush(redis: Store, settings: Settings, hits: list[Hit]) -> None:
    """`hits` as one flush of a redirector, counted by a click worker (one chunk)."""
    await push(flusher(redis, settings), hits)
    assert await worker(redis, settings).work_once() == 1


async def _clicks(redis: Store, key: str) -> int:
    return int(await redis.hget(key, "clicks") or 0)


async def test_hits_of_a_deleted_link_flushed_late_never_count_for_the_new_one(
    redis: Store, redirector_settings: Settings
) -> None:
    link, campaign = link_stats_key(7, "promo-2"), campaign_stats_key(7)
    flush = partial(_flush, redis, redirector_settings)
    await flush(_hits(100, range(3)))  # the first link with this code, created at 100
    assert await _clicks(redis, link) == 3
    # The new link's first hit, flushed together with the old one's last: the new one
    # takes the code's counters over.
    await flush(_hits(200, range(10, 11)) + _hits(100, range(3, 5)))
    assert await _clicks(redis, link) == 1
    assert await redis.pfcount(link_uniques_key(7, "promo-2")) == 1
    await flush(_hits(100, range(5, 6)))  # a flush of the old link, late
    await flush(_hits(200, range(11, 12)))
    assert await _clicks(redis, link) == 2
    assert await redis.pfcount(link_uniques_key(7, "promo-2")) == 2
    assert await _clicks(redis, campaign) == 8
