"""Click analytics end to end: taps through the real redirector, stats from the real admin."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from redirector.store.connection import Store
from redirector.store.keys import (
    link_breakdowns_key,
    link_stats_key,
    recipient_counters_key,
)
from tests.admin.helpers import (
    BROWSERS,
    PREVIEWS,
    create_campaign,
    create_links,
    expect_error,
    stats_once_flushed,
    tap,
)
from tests.conftest import Client, schema_errors
from tests.user_agents import ANDROID, IPHONE, WINDOWS


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- totals, uniques, breakdowns -----------------------------------------------------------


async def test_browser_taps_previews_and_heads_are_counted_apart(
    admin: Client, redirector: Client
) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    code, other = await create_links(admin, campaign_id, [{}, {"recipient": "+34600000001"}])
    for ua in BROWSERS:  # N = 6 clicks, 2 on each link
        await tap(redirector, code, ua)
        await tap(redirector, other, ua)
    for ua in PREVIEWS:  # M = 5 preview fetches
        await tap(redirector, code, ua)
    for ua in BROWSERS:  # K = 3 HEADs, with a browser's UA
        await tap(redirector, code, ua, head=True)

    link = await stats_once_flushed(admin, f"/api/links/{code}/stats", clicks=3, bot_hits=8)
    campaign = await stats_once_flushed(
        admin, f"/api/campaigns/{campaign_id}/stats", clicks=6, bot_hits=8
    )
    assert link["recipients_clicked"] is None and link["unique_clicks"] == 3
    # One recipient (exact) plus three browsers on the link without recipient (HLL).
    assert campaign["recipients_clicked"] == 1 and campaign["unique_clicks"] == 4
    for body in (link, campaign):
        assert schema_errors(body, "Stats") == []
        assert sum(b["clicks"] for b in body["series"]) == body["clicks"]
        assert sum(b["bot_hits"] for b in body["series"]) == body["bot_hits"]
    # Preview fetches and HEADs are no clicks, so they are in no breakdown.
    assert campaign["breakdowns"]["device"] == {"desktop": 2, "mobile": 4}
    assert "bot" not in link["breakdowns"]["device"]
    assert sum(link["breakdowns"]["browser"].values()) == 3


async def test_per_recipient_uniques_are_exact(admin: Client, redirector: Client) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    codes = await create_links(
        admin, campaign_id, [{"recipient": f"+346000000{i:02d}"} for i in range(20)]
    )
    taps = 0
    for i, code in enumerate(codes[:12]):  # 12 recipients tap, some of them 3 times
        for _ in range(3 if i % 4 == 0 else 1):
            await tap(redirector, code, BROWSERS[i % 3])
            taps += 1
    for code in codes[12:16]:  # 4 more only get a preview fetch: they did not click
        await tap(redirector, code, PREVIEWS[0])

    campaign = await stats_once_flushed(
        admin, f"/api/campaigns/{campaign_id}/stats", clicks=taps, bot_hits=4
    )
    assert campaign["recipients_clicked"] == 12 and campaign["unique_clicks"] == 12
    tapped = await stats_once_flushed(admin, f"/api/links/{codes[0]}/stats", clicks=3, bot_hits=0)
    assert tapped["recipients_clicked"] == 1 and tapped["unique_clicks"] == 1
    previewed = await stats_once_flushed(
        admin, f"/api/links/{codes[12]}/stats", clicks=0, bot_hits=1
    )
    assert previewed["recipients_clicked"] == 0 and previewed["unique_clicks"] == 0


async def test_a_recipients_link_counted_before_its_s_r_field_shows_both(
    admin: Client, redirector: Client, redis: Store
) -> None:
    # Counted by a click worker of before s:r (keys.py): in the link's own s:l and b:l
    # hashes, which readers add to its s:r field.
    campaign_id = (await create_campaign(admin))["id"]
    [code] = await create_links(admin, campaign_id, [{"recipient": "+34600000077"}])
    made = await (await admin.get(f"/api/links/{code}")).json()
    created = int(datetime.fromisoformat(made["created_at"]).timestamp())
    hour = int(time.time() // 3600)
    old: dict[Any, Any] = {"created": created, "clicks": 2}
    old |= {f"h:{hour}": 2, f"d:{hour // 24}": 2}
    await redis.hset(link_stats_key(campaign_id, code), mapping=old)
    old_shown: dict[Any, Any] = {"dev:desktop": 2, "os:Windows": 2, "br:Chrome": 2}
    await redis.hset(link_breakdowns_key(campaign_id, code), mapping=old_shown)
    await tap(redirector, code, IPHONE)
    body = await stats_once_flushed(admin, f"/api/links/{code}/stats", clicks=3, bot_hits=0)
    assert body["breakdowns"]["device"] == {"desktop": 2, "mobile": 1}
    assert body["breakdowns"]["os"] == {"Windows": 2, "iOS": 1}
    assert sum(bucket["clicks"] for bucket in body["series"]) == 3
    assert body["recipients_clicked"] == 1


async def test_a_recipients_field_that_holds_no_counters_reads_as_none(
    admin: Client, redis: Store
) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    [code] = await create_links(admin, campaign_id, [{"recipient": "+34600000078"}])
    await redis.hset(recipient_counters_key(campaign_id), code, "[1]")  # not counters
    resp = await admin.get(f"/api/links/{code}/stats")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["clicks"] == 0


async def test_link_without_recipient_counts_distinct_visitors(
    admin: Client, redirector: Client
) -> None:
    # Every tap comes from 127.0.0.1 (the test redirector does not trust X-Forwarded-For),
    # so the visitors differ by User-Agent, which is part of the hashed identity.
    [code] = await create_links(admin, None, [{}])
    for ua in BROWSERS * 2:
        await tap(redirector, code, ua)
    body = await stats_once_flushed(admin, f"/api/links/{code}/stats", clicks=6, bot_hits=0)
    assert body["unique_clicks"] == 3
    assert body["recipients_clicked"] is None


async def test_breakdowns_by_device_os_browser_and_referer(
    admin: Client, redirector: Client
) -> None:
    [code] = await create_links(admin, None, [{}])
    await tap(redirector, code, IPHONE, referer="https://m.facebook.com/story?id=1")
    await tap(redirector, code, IPHONE, referer="https://m.facebook.com/other")
    await tap(redirector, code, ANDROID, referer="android-app://com.google.android.gm/")
    await tap(redirector, code, WINDOWS)
    await tap(redirector, code, PREVIEWS[1], referer="https://bot.example/")

    body = await stats_once_flushed(admin, f"/api/links/{code}/stats", clicks=4, bot_hits=1)
    assert body["breakdowns"] == {
        "device": {"mobile": 3, "desktop": 1},
        "os": {"iOS": 2, "Android": 1, "Windows": 1},
        "browser": {"Mobile Safari": 2, "Chrome": 1, "Chrome Mobile": 1},
        "referer": {"m.facebook.com": 2, "com.google.android.gm": 1},
    }


# -- the time series -----------------------------------------------------------------------


async def test_series_covers_the_window_in_whole_buckets(admin: Client, redirector: Client) -> None:
    [code] = await create_links(admin, None, [{}])
    for ua in BROWSERS:
        await tap(redirector, code, ua)
    await tap(redirector, code, PREVIEWS[0])
    now = time.time()
    hour = int(now // 3600) * 3600
    # 5 h 30 min before the current hour to 20 min into the next: widened to 7 buckets.
    query = f"?from={_iso(hour - 5 * 3600 - 1800)}&to={_iso(hour + 3600 + 1200)}"
    path = f"/api/links/{code}/stats"
    body = await stats_once_flushed(admin, path, clicks=3, bot_hits=1, query=query)
    assert body["granularity"] == "hour"
    assert body["from"] == _iso(hour - 6 * 3600) and body["to"] == _iso(hour + 2 * 3600)
    assert [b["t"] for b in body["series"]] == [_iso(hour + h * 3600) for h in range(-6, 2)]
    clicked = [b for b in body["series"] if b["clicks"] or b["bot_hits"]]
    # The taps happened in this hour (or, if it began meanwhile, the one before).
    assert sum(b["clicks"] for b in clicked) == 3 and sum(b["bot_hits"] for b in clicked) == 1
    assert {b["t"] for b in clicked} <= {_iso(hour - 3600), _iso(hour)}

    day = int(now // 86400) * 86400
    resp = await admin.get(f"{path}?granularity=day&from={_iso(day - 2 * 86400 + 5)}")
    body = await resp.json()
    assert [b["t"] for b in body["series"]] == [_iso(day + d * 86400) for d in range(-2, 1)]
    assert sum(b["clicks"] for b in body["series"]) == 3

    # A window without clicks: zeros in every bucket, all-time totals unchanged.
    resp = await admin.get(f"{path}?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z")
    body = await resp.json()
    assert len(body["series"]) == 24 and body["clicks"] == 3 and body["bot_hits"] == 1
    assert all(b["clicks"] == b["bot_hits"] == 0 for b in body["series"])


async def test_default_windows_end_now(admin: Client) -> None:
    [code] = await create_links(admin, None, [{}])
    before = time.time()
    body = await (await admin.get(f"/api/links/{code}/stats")).json()
    assert body["granularity"] == "hour" and len(body["series"]) in (168, 169)
    assert body["clicks"] == body["unique_clicks"] == body["bot_hits"] == 0
    assert body["breakdowns"] == {"device": {}, "os": {}, "browser": {}, "referer": {}}
    end = datetime.fromisoformat(body["to"]).timestamp()
    assert before <= end <= before + 3600 + 60
    body = await (await admin.get(f"/api/links/{code}/stats?granularity=day")).json()
    assert body["granularity"] == "day" and len(body["series"]) in (30, 31)


async def test_unencoded_plus_in_the_offset_is_understood(admin: Client) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    # '+' in a query string means a space; a client that does not encode it still means +01:00.
    query = "from=2026-01-01T00:30:00+01:00&to=2026-01-01T03:00:00%2B01:00"
    body = await (await admin.get(f"/api/campaigns/{campaign_id}/stats?{query}")).json()
    assert (body["from"], body["to"]) == ("2025-12-31T23:00:00Z", "2026-01-01T02:00:00Z")
    assert len(body["series"]) == 3


# -- clickers ------------------------------------------------------------------------------


async def test_clickers_by_first_click_with_paging(admin: Client, redirector: Client) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    recipients = [f"+346000001{i:02d}" for i in range(7)]
    codes = await create_links(admin, campaign_id, [{"recipient": r} for r in recipients])
    started = int(time.time() * 1000)
    for code in codes[:5]:  # in recipient order: equal first-click times keep this order too
        await tap(redirector, code, IPHONE)
    await tap(redirector, codes[0], ANDROID)  # a later click is no first click
    await tap(redirector, codes[5], PREVIEWS[2])  # a preview is no click
    await stats_once_flushed(admin, f"/api/campaigns/{campaign_id}/stats", clicks=6, bot_hits=1)
    ended = int(time.time() * 1000)

    resp = await admin.get(f"/api/campaigns/{campaign_id}/clickers")
    body = await resp.json()
    assert schema_errors(body, "ClickerList") == []
    assert body["total"] == 5
    assert [(c["recipient"], c["code"]) for c in body["clickers"]] == list(
        zip(recipients[:5], codes[:5], strict=True)
    )
    times = [c["first_click_at"] for c in body["clickers"]]
    assert times == sorted(times)
    for t in times:
        assert len(t) == len("2026-01-01T00:00:00.000Z") and t.endswith("Z")
        assert started <= datetime.fromisoformat(t).timestamp() * 1000 <= ended

    pages = []
    for offset in (0, 2, 4, 6):
        resp = await admin.get(f"/api/campaigns/{campaign_id}/clickers?offset={offset}&limit=2")
        page = await resp.json()
        assert page["total"] == 5
        pages += page["clickers"]
    assert pages == body["clickers"]

    # A deleted link leaves its recipient among the clickers, without a code.
    assert (await admin.delete(f"/api/links/{codes[1]}")).status == 204
    body = await (await admin.get(f"/api/campaigns/{campaign_id}/clickers?limit=2")).json()
    assert [c["code"] for c in body["clickers"]] == [codes[0], None]


# -- errors --------------------------------------------------------------------------------

STATS_ERRORS = [
    ("from=yesterday", "from"),
    ("from=2026-01-01T00:00:00", "from"),
    ("from=2026-01-01", "from"),
    ("to=2026-13-01T00:00:00Z", "to"),
    ("from=1969-12-31T00:00:00Z", "from"),
    ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
    ("from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
    ("from=2999-01-01T00:00:00Z", "from"),
    ("granularity=week", "granularity"),
    ("granularity=", "granularity"),
    ("from=2020-01-01T00:00:00Z&to=2021-12-31T00:00:00Z", "from"),  # 17,496 hours
]


@pytest.mark.parametrize(("query", "field"), STATS_ERRORS)
async def test_bad_stats_queries_are_422_naming_the_field(
    admin: Client, query: str, field: str
) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    [code] = await create_links(admin, campaign_id, [{}])
    for path in (f"/api/links/{code}/stats", f"/api/campaigns/{campaign_id}/stats"):
        error = await expect_error(await admin.get(f"{path}?{query}"), 422, "validation_failed")
        assert [f["field"] for f in error["fields"]] == [field], error


async def test_bucket_limit_is_10000(admin: Client) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    path = f"/api/campaigns/{campaign_id}/stats?from=2020-01-01T00:00:00Z"
    resp = await admin.get(f"{path}&to=2021-02-20T16:00:00Z")  # 10,000 hours
    assert len((await resp.json())["series"]) == 10_000
    await expect_error(await admin.get(f"{path}&to=2021-02-20T16:00:01Z"), 422, "validation_failed")
    resp = await admin.get(f"{path}&to=2021-12-31T00:00:00Z&granularity=day")
    assert resp.status == 200


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("clicks.csv?bots=some", "bots"),
        ("clicks.csv?from=now", "from"),
        ("clicks.csv?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("clickers?limit=0", "limit"),
        ("clickers?limit=1001", "limit"),
        ("clickers?offset=-1", "offset"),
    ],
)
async def test_bad_export_and_clickers_queries_are_422(
    admin: Client, path: str, field: str
) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    resp = await admin.get(f"/api/campaigns/{campaign_id}/{path}")
    error = await expect_error(resp, 422, "validation_failed")
    assert [f["field"] for f in error["fields"]] == [field]


async def test_query_errors_say_the_rule_and_come_together(admin: Client) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    backwards = "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"
    after = ("to", "must be after from")
    expected = {
        f"stats?granularity=week&{backwards}": {after, ("granularity", "must be hour or day")},
        f"clicks.csv?bots=some&{backwards}": {after, ("bots", "must be include, exclude or only")},
        "clickers?limit=0&offset=x": {
            ("limit", "must be a whole number from 1 to 1000"),
            ("offset", "must be a whole number from 0 to 2147483648"),
        },
    }
    for path, fields in expected.items():
        resp = await admin.get(f"/api/campaigns/{campaign_id}/{path}")
        error = await expect_error(resp, 422, "validation_failed")
        assert {(f["field"], f["message"]) for f in error["fields"]} == fields, path


ANALYTICS_PATHS = [
    "/api/links/{code}/stats",
    "/api/campaigns/{id}/stats",
    "/api/campaigns/{id}/clickers",
    "/api/campaigns/{id}/clicks.csv",
]


@pytest.mark.parametrize("template", ANALYTICS_PATHS)
async def test_analytics_need_the_key(admin: Client, template: str) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    [code] = await create_links(admin, campaign_id, [{}])
    path = template.format(code=code, id=campaign_id)
    await expect_error(await admin.get(path, headers={"Authorization": ""}), 401, "unauthorized")


@pytest.mark.parametrize("template", ANALYTICS_PATHS)
@pytest.mark.parametrize("missing", ["999", "abc"])
async def test_unknown_link_or_campaign_is_404(admin: Client, template: str, missing: str) -> None:
    path = template.format(code=missing, id=missing)
    code = "link_not_found" if "links" in template else "campaign_not_found"
    await expect_error(await admin.get(path), 404, code)
