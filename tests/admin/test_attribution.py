"""Billboard attribution through the API, on a real Redis (both stores): every rule with a
hand-computed fixture. Times are chosen relative to now (sends that no window can reach any
more are not kept, so a fixture at a window's bound ends near now); clicks are recorded at
chosen times through the click worker's own batching and flush script.

The defaults: click window 72 h (259,200 s) from the send, view window 24 h (86,400 s) from
delivery."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from admin.app import create_app
from admin.responses import rfc3339_ms
from admin.settings import AdminSettings
from redirector.clickbatch import batches
from redirector.clicks import Hit, pack_hits
from redirector.store.connection import Store
from redirector.store.flush import FlushClicksScript
from redirector.store.keys import CLICK_TIMES_KEPT, recipient_clicks_key, recipient_sends_key
from tests.admin.helpers import (
    bearer,
    create_campaign,
    create_key,
    create_link,
    create_workspace,
    expect_error,
    stats_once_flushed,
    tap,
)
from tests.conftest import AUTH, Client, schema_errors
from tests.user_agents import IPHONE

H = 3_600_000  # an hour, in ms
CLICK_WINDOW, VIEW_WINDOW = 72 * H, 24 * H
R = "+34600000001"
_flushes = itertools.count(1)


def now_ms() -> int:
    return int(time.time()) * 1000


def send(
    campaign: int, sent: int, delivered: int | None = None, status: str | None = None, **more: Any
) -> dict[str, Any]:
    item: dict[str, Any] = {"campaign_id": campaign, "recipient": R, "sent_at": rfc3339_ms(sent)}
    if delivered is not None:
        item["delivered_at"] = rfc3339_ms(delivered)
    if status is not None:
        item["status"] = status
    return item | more


async def post_sends(admin: Client, *items: dict[str, Any]) -> None:
    resp = await admin.post("/api/sends", json={"sends": list(items)})
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"accepted": len(items)}


async def convert(
    admin: Client,
    at: int,
    order_id: str = "A-1",
    amount: str = "80.00",
    currency: str = "EUR",
    recipient: str = R,
) -> tuple[int | None, str | None]:
    """Posts one conversion; the campaign and type it went to."""
    item = {
        "order_id": order_id,
        "recipient": recipient,
        "amount": amount,
        "currency": currency,
        "occurred_at": rfc3339_ms(at),
    }
    resp = await admin.post("/api/conversions", json={"conversions": [item]})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert schema_errors(body, "ConversionsAccepted") == []
    assert (body["accepted"], body["duplicates"]) == (1, 0), body
    [won] = body["attributed"]
    return won["campaign_id"], won["type"]


async def report(admin: Client, campaign: int) -> dict[str, Any]:
    resp = await admin.get(f"/api/campaigns/{campaign}/report")
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert schema_errors(body, "CampaignReport") == []
    return body


async def clicks(
    redis: Store, campaign: int, code: str, *times: int, user_agent: str = IPHONE
) -> None:
    """Records taps of R on the campaign's link `code` at `times` (ms), as a click worker
    does: the raw hits batched by `redirector.clickbatch`, applied by FLUSH_CLICKS."""
    hits = [Hit(code, campaign, R, 0, at / 1000, False, user_agent, "", "10.0.0.1") for at in times]
    found = batches([pack_hits(hits)], b"salt")
    flush = FlushClicksScript(redis)
    for parts in found.by_campaign.values():
        for batch in parts:
            assert await flush(batch, 1000, "test", next(_flushes))


async def two_campaigns(admin: Client) -> tuple[int, int]:
    first = (await create_campaign(admin, name="First"))["id"]
    second = (await create_campaign(admin, name="Second"))["id"]
    return first, second


# -- by click -------------------------------------------------------------------------------


async def test_the_click_window_counts_from_the_send_and_its_bound_is_inclusive(
    admin: Client, redis: Store
) -> None:
    campaign, _ = await two_campaigns(admin)
    sent = now_ms() - CLICK_WINDOW + 60_000  # its last instant is a minute from now
    await post_sends(admin, send(campaign, sent))  # sent, never delivered: no view
    await clicks(redis, campaign, "code1", sent + H)
    assert await convert(admin, sent + CLICK_WINDOW, "in") == (campaign, "click")
    assert await convert(admin, sent + CLICK_WINDOW + 1, "out") == (None, None)


async def test_a_click_before_the_send_does_not_count_one_at_the_send_does(
    admin: Client, redis: Store
) -> None:
    campaign, _ = await two_campaigns(admin)
    sent = now_ms() - 2 * H
    await post_sends(admin, send(campaign, sent))
    await clicks(redis, campaign, "code1", sent - 1)
    assert await convert(admin, sent + H, "before") == (None, None)
    await clicks(redis, campaign, "code1", sent)
    assert await convert(admin, sent + H, "at") == (campaign, "click")


async def test_a_click_after_the_conversion_does_not_count(admin: Client, redis: Store) -> None:
    campaign, _ = await two_campaigns(admin)
    sent = now_ms() - 2 * H
    await post_sends(admin, send(campaign, sent))
    await clicks(redis, campaign, "code1", sent + H + 1)
    assert await convert(admin, sent + H, "early") == (None, None)
    assert await convert(admin, sent + H + 1, "at the click") == (campaign, "click")


async def test_bot_hits_are_no_clicks(admin: Client, redis: Store) -> None:
    campaign, _ = await two_campaigns(admin)
    sent = now_ms() - 2 * H
    await post_sends(admin, send(campaign, sent))
    await clicks(redis, campaign, "code1", sent + 60_000, user_agent="WhatsApp/2.23.20.0 A")
    assert await convert(admin, sent + H, "previewed") == (None, None)


# -- by view --------------------------------------------------------------------------------


async def test_the_view_window_counts_from_delivery_and_its_bound_is_inclusive(
    admin: Client,
) -> None:
    campaign, _ = await two_campaigns(admin)
    delivered = now_ms() - VIEW_WINDOW + 60_000
    sent = delivered - 30 * H  # far from the click window's reach, which needs a click anyway
    await post_sends(admin, send(campaign, sent, delivered))
    assert await convert(admin, delivered + VIEW_WINDOW, "in") == (campaign, "view")
    assert await convert(admin, delivered + VIEW_WINDOW + 1, "out") == (None, None)


async def test_a_send_delivered_after_the_conversion_is_not_seen(admin: Client) -> None:
    campaign, _ = await two_campaigns(admin)
    sent = now_ms() - 3 * H
    await post_sends(admin, send(campaign, sent, sent + 2 * H))
    assert await convert(admin, sent + H, "before delivery") == (None, None)
    assert await convert(admin, sent + 2 * H, "at delivery") == (campaign, "view")


async def test_the_latest_send_wins_over_an_earlier_clicked_one(
    admin: Client, redis: Store
) -> None:
    first, second = await two_campaigns(admin)
    base = now_ms() - 10 * H
    await post_sends(admin, send(first, base, base), send(second, base + 2 * H, base + 2 * H))
    await clicks(redis, first, "code1", base + H)
    # Both qualify at base + 3 h: the first by click, the second by view; the later wins.
    assert await convert(admin, base + 3 * H, "later") == (second, "view")
    # Before the second was sent, the first (clicked) is the latest.
    assert await convert(admin, base + 2 * H - 1, "earlier") == (first, "click")


async def test_a_tie_goes_to_the_higher_campaign_id(admin: Client) -> None:
    first, second = await two_campaigns(admin)
    sent = now_ms() - 2 * H
    await post_sends(admin, send(second, sent, sent), send(first, sent, sent))
    assert await convert(admin, sent + H) == (max(first, second), "view")


async def test_a_clicked_winner_is_a_click_even_if_delivered(admin: Client, redis: Store) -> None:
    campaign, _ = await two_campaigns(admin)
    sent = now_ms() - 2 * H
    await post_sends(admin, send(campaign, sent, sent + 1000))
    await clicks(redis, campaign, "code1", sent + 60_000)
    assert await convert(admin, sent + H) == (campaign, "click")


# -- failed sends, repeats ------------------------------------------------------------------


async def test_failed_sends_never_win_and_a_repeat_updates_the_status(admin: Client) -> None:
    first, second = await two_campaigns(admin)
    base = now_ms() - 5 * H
    await post_sends(admin, send(first, base, base), send(second, base + H, status="failed"))
    assert await convert(admin, base + 2 * H, "a") == (first, "view")
    # The delivery report of the first: failed after all. Nothing left to credit.
    await post_sends(admin, send(first, base, status="failed"))
    assert await convert(admin, base + 2 * H, "b") == (None, None)
    # And the second was delivered after all (its report came late).
    await post_sends(admin, send(second, base + H, base + H))
    assert await convert(admin, base + 2 * H, "c") == (second, "view")
    one, two = await report(admin, first), await report(admin, second)
    assert (one["sends"], one["delivered"], one["failed"]) == (1, 0, 1)
    assert (two["sends"], two["delivered"], two["failed"]) == (1, 1, 0)
    assert (one["conversions"], two["conversions"]) == (1, 1)  # "b" went nowhere


async def test_a_send_no_window_can_reach_is_counted_but_not_kept(
    admin: Client, redis: Store
) -> None:
    campaign, _ = await two_campaigns(admin)
    old = now_ms() - CLICK_WINDOW - H
    await post_sends(admin, send(campaign, old, old))
    assert await redis.exists(recipient_sends_key("default", R)) == 0
    recent = now_ms() - H
    await post_sends(admin, send(campaign, recent, recent))
    # Kept until the click window of the send closes (the view window closes earlier).
    left = await redis.pttl(recipient_sends_key("default", R))
    assert CLICK_WINDOW - 2 * H < left <= CLICK_WINDOW - H + 1
    assert (await report(admin, campaign))["sends"] == 2


# -- implied sends --------------------------------------------------------------------------


async def test_a_per_recipient_link_is_a_send_delivered_when_it_was_made(
    admin: Client, redis: Store
) -> None:
    campaign, _ = await two_campaigns(admin)
    link = await create_link(admin, campaign_id=campaign, recipient=R)
    made = now_ms()
    assert await convert(admin, made + 1000, "viewed") == (campaign, "view")
    await clicks(redis, campaign, link["code"], made + 2000)
    assert await convert(admin, made + 3000, "clicked") == (campaign, "click")
    body = await report(admin, campaign)
    assert (body["sends"], body["delivered"], body["failed"]) == (1, 1, 0)
    assert (body["conversions"], body["view_conversions"], body["click_conversions"]) == (2, 1, 1)


async def test_a_reported_send_replaces_the_implied_one_arriving_after_the_link(
    admin: Client,
) -> None:
    campaign, _ = await two_campaigns(admin)
    await create_link(admin, campaign_id=campaign, recipient=R)
    old = now_ms() - CLICK_WINDOW - H  # reported late, out of every window's reach
    await post_sends(admin, send(campaign, old, old))
    assert await convert(admin, now_ms()) == (None, None)
    assert (await report(admin, campaign))["sends"] == 1
    await post_sends(admin, send(campaign, old, old))  # a repeat replaces nothing more
    assert (await report(admin, campaign))["sends"] == 1


async def test_a_reported_send_replaces_the_implied_one_arriving_before_the_link(
    admin: Client,
) -> None:
    campaign, _ = await two_campaigns(admin)
    old = now_ms() - CLICK_WINDOW - H
    await post_sends(admin, send(campaign, old, old))
    await create_link(admin, campaign_id=campaign, recipient=R)
    assert await convert(admin, now_ms()) == (None, None)
    body = await report(admin, campaign)
    assert (body["sends"], body["delivered"]) == (1, 1)


async def test_an_implied_send_of_another_recipient_or_campaign_is_not_theirs(
    admin: Client,
) -> None:
    first, second = await two_campaigns(admin)
    await create_link(admin, campaign_id=first, recipient="+34699999999")
    await post_sends(admin, send(second, now_ms() - CLICK_WINDOW - H))  # second: replaced
    await create_link(admin, campaign_id=second, recipient=R)
    assert await convert(admin, now_ms()) == (None, None)


# -- conversions: duplicates, money ---------------------------------------------------------


async def test_an_order_id_counts_once_and_the_first_one_wins(admin: Client) -> None:
    campaign, _ = await two_campaigns(admin)
    sent = now_ms() - H
    await post_sends(admin, send(campaign, sent, sent))
    order = {"order_id": "A-1", "recipient": R, "amount": "10.00", "currency": "EUR"}
    first = order | {"occurred_at": rfc3339_ms(sent + 1000)}
    again = order | {
        "amount": "99.00",
        "recipient": "+34611111111",
        "occurred_at": rfc3339_ms(sent),
    }
    resp = await admin.post("/api/conversions", json={"conversions": [first, again]})
    assert await resp.json() == {
        "accepted": 1,
        "duplicates": 1,
        "attributed": [{"order_id": "A-1", "campaign_id": campaign, "type": "view"}],
    }
    resp = await admin.post("/api/conversions", json={"conversions": [again]})
    assert await resp.json() == {"accepted": 0, "duplicates": 1, "attributed": []}
    resp = await admin.get("/api/conversions/A-1")
    stored = await resp.json()
    assert schema_errors(stored, "Conversion") == []
    assert stored == {
        "order_id": "A-1",
        "recipient": R,
        "amount": "10.00",
        "currency": "EUR",
        "occurred_at": rfc3339_ms(sent + 1000),
        "campaign_id": campaign,
        "type": "view",
    }
    body = await report(admin, campaign)
    assert (body["conversions"], body["revenue"]) == (1, {"EUR": "10.00"})
    await expect_error(await admin.get("/api/conversions/A-2"), 404, "conversion_not_found")


async def test_the_report_in_two_currencies_rounded_half_up(admin: Client, redis: Store) -> None:
    campaign, _ = await two_campaigns(admin)
    sent = now_ms() - H
    others = ["+34600000002", "+34600000003"]
    items = [send(campaign, sent, sent)] + [
        send(campaign, sent, sent, recipient=other) for other in others
    ]
    await post_sends(admin, *items, send(campaign, sent + 1, status="failed", recipient="x"))
    await clicks(redis, campaign, "code1", sent + 1000)
    assert await convert(admin, sent + 2000, "e1", "10.00") == (campaign, "click")
    assert await convert(admin, sent + 2000, "e2", "0.01", recipient=others[0]) == (
        campaign,
        "view",
    )
    assert await convert(admin, sent + 2000, "j1", "1000", "JPY", others[1]) == (campaign, "view")
    body = await report(admin, campaign)
    # 4 sends (one failed), 3 delivered, 1 recipient clicked; 3 conversions.
    assert body == {
        "sends": 4,
        "delivered": 3,
        "failed": 1,
        "clicks": 1,
        "unique_clicks": 1,
        "ctr": 0.3333,  # 1 / 3
        "conversions": 3,
        "click_conversions": 1,
        "view_conversions": 2,
        "cvr": 1.0,
        "revenue": {"EUR": "10.01", "JPY": "1000"},
        "aov": {"EUR": "5.01", "JPY": "1000"},  # 10.01 / 2 = 5.005: half-up
        "epm": {"EUR": "2502.50", "JPY": "250000"},  # 10.01 x 1000 / 4, 1000 x 1000 / 4
    }


async def test_an_empty_report_has_null_ratios(admin: Client) -> None:
    campaign, _ = await two_campaigns(admin)
    assert await report(admin, campaign) == {
        "sends": 0,
        "delivered": 0,
        "failed": 0,
        "clicks": 0,
        "unique_clicks": 0,
        "ctr": None,
        "conversions": 0,
        "click_conversions": 0,
        "view_conversions": 0,
        "cvr": None,
        "revenue": {},
        "aov": {},
        "epm": {},
    }


@pytest.mark.parametrize(
    ("amount", "currency", "stored"),
    [("80", "EUR", "80.00"), (80.5, "EUR", "80.50"), ("1.234", "BHD", "1.234"), (0, "JPY", "0")],
)
async def test_amounts_are_stored_in_minor_units(
    admin: Client, amount: Any, currency: str, stored: str
) -> None:
    item = {"order_id": "o", "recipient": R, "amount": amount, "currency": currency}
    item["occurred_at"] = rfc3339_ms(now_ms())
    resp = await admin.post("/api/conversions", json={"conversions": [item]})
    assert resp.status == 200, await resp.text()
    assert (await (await admin.get("/api/conversions/o")).json())["amount"] == stored


# -- bad batches ----------------------------------------------------------------------------


async def test_a_bad_send_batch_names_every_bad_item_and_writes_nothing(
    admin: Client, redis: Store
) -> None:
    campaign, _ = await two_campaigns(admin)
    at = now_ms() - H
    bad = [
        send(campaign, at),
        send(campaign, at, at - 1),  # delivered before it was sent
        send(campaign, at, status="delivered"),  # delivered without delivered_at
        send(987654, at),  # no such campaign
        send(campaign, at, at, status="failed"),
        send(campaign, now_ms() + 3_600_000),  # an hour ahead of the clock
    ]
    resp = await admin.post("/api/sends", json={"sends": bad})
    error = await expect_error(resp, 422, "validation_failed")
    assert [(f["index"], f["field"]) for f in error["fields"]] == [
        (1, "sends[1].delivered_at"),
        (2, "sends[2].status"),
        (3, "sends[3].campaign_id"),
        (4, "sends[4].status"),
        (5, "sends[5].sent_at"),
    ]
    resp = await admin.post("/api/sends", json={"sends": [bad[0], bad[3]]})
    error = await expect_error(resp, 422, "validation_failed")
    assert [f["field"] for f in error["fields"]] == ["sends[1].campaign_id"]
    assert (await report(admin, campaign))["sends"] == 0
    assert await redis.exists(recipient_sends_key("default", R)) == 0


async def test_a_bad_conversion_batch_names_every_bad_item_and_writes_nothing(
    admin: Client,
) -> None:
    at = rfc3339_ms(now_ms())
    good = {
        "order_id": "ok",
        "recipient": R,
        "amount": "1.00",
        "currency": "EUR",
        "occurred_at": at,
    }
    bad = [
        good,
        good | {"order_id": "b1", "amount": "1.001"},  # EUR has 2 minor digits
        good | {"order_id": "b2", "currency": "XAU"},  # no minor units
        good | {"order_id": "b3", "currency": "eur"},
        good | {"order_id": "b4", "amount": -1},
        good | {"order_id": "b5", "amount": "1e3"},
        good | {"order_id": "b6", "amount": True},
        good | {"order_id": "b7", "occurred_at": "yesterday"},
    ]
    resp = await admin.post("/api/conversions", json={"conversions": bad})
    error = await expect_error(resp, 422, "validation_failed")
    assert [f["index"] for f in error["fields"]] == [1, 2, 3, 4, 5, 6, 7]
    await expect_error(await admin.get("/api/conversions/ok"), 404, "conversion_not_found")


# -- windows turned off ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("click", "view", "clicked", "expected"),
    [(0, 86400, True, "view"), (259200, 0, False, None), (259200, 0, True, "click")],
)
async def test_a_window_of_0_turns_that_model_off(
    aiohttp_client: AiohttpClient,
    admin_settings: AdminSettings,
    redis: Store,
    click: int,
    view: int,
    clicked: bool,
    expected: str | None,
) -> None:
    settings = admin_settings.model_copy(
        update={"attribution_click_window": click, "attribution_view_window": view}
    )
    admin = await aiohttp_client(create_app(settings), headers=AUTH)
    campaign, _ = await two_campaigns(admin)
    sent = now_ms() - H
    await post_sends(admin, send(campaign, sent, sent))
    if clicked:
        await clicks(redis, campaign, "code1", sent + 1000)
    won = await convert(admin, sent + 2000)
    assert won == ((campaign, expected) if expected else (None, None))


# -- end to end: taps through the redirector, recorded by the click worker ------------------


async def test_a_tap_through_the_redirector_makes_it_a_click_a_preview_does_not(
    admin: Client, redirector: Client
) -> None:
    campaign, _ = await two_campaigns(admin)
    link = await create_link(admin, campaign_id=campaign, recipient=R)
    stats = f"/api/campaigns/{campaign}/stats"
    await tap(redirector, link["code"], "WhatsApp/2.23.20.0 A")
    await stats_once_flushed(admin, stats, clicks=0, bot_hits=1)
    assert await convert(admin, now_ms() + 1000, "previewed") == (campaign, "view")
    await tap(redirector, link["code"], IPHONE)
    await stats_once_flushed(admin, stats, clicks=1, bot_hits=1)
    assert await convert(admin, now_ms() + 1000, "tapped") == (campaign, "click")


async def test_a_batch_sent_again_counts_once(admin: Client) -> None:
    campaign, _ = await two_campaigns(admin)
    sent = now_ms() - H
    batch = [send(campaign, sent, sent + 1000, recipient=f"+3461{i:07d}") for i in range(300)]
    await post_sends(admin, *batch)
    await post_sends(admin, *batch)  # a retry after, say, a 503
    body = await report(admin, campaign)
    assert (body["sends"], body["delivered"]) == (300, 300)
    orders = [
        {"order_id": f"o{i}", "recipient": item["recipient"], "amount": "1.00", "currency": "EUR"}
        | {"occurred_at": rfc3339_ms(sent + H)}
        for i, item in enumerate(batch)
    ]
    for _ in range(2):
        resp = await admin.post("/api/conversions", json={"conversions": orders})
        assert resp.status == 200, await resp.text()
    body = await report(admin, campaign)
    assert (body["conversions"], body["revenue"], body["cvr"]) == (300, {"EUR": "300.00"}, 1.0)


async def test_a_recipients_latest_clicks_are_kept_and_no_more(admin: Client, redis: Store) -> None:
    campaign, _ = await two_campaigns(admin)
    base = now_ms() - 2 * H
    await clicks(redis, campaign, "code1", *(base + i for i in range(6)))
    await clicks(redis, campaign, "code1", *(base + i for i in range(6, 12)))
    kept = await redis.hget(recipient_clicks_key(campaign), R)
    assert kept == " ".join(str(base + i) for i in range(12 - CLICK_TIMES_KEPT, 12)).encode()
    # A batch from another queue may come later with older clicks: merged by time, so an
    # older one stays out and one between takes its place (times of other lengths too).
    await clicks(redis, campaign, "code1", base - 1, base + 5, base + 11, 10**15)
    kept = await redis.hget(recipient_clicks_key(campaign), R)
    latest = [*range(12 - CLICK_TIMES_KEPT, 12), 5, 11]
    times = [*sorted(base + i for i in latest)[-(CLICK_TIMES_KEPT - 1) :], 10**15]
    assert kept == " ".join(map(str, times)).encode()


async def test_a_send_to_another_workspaces_campaign_is_refused_as_a_missing_one(
    admin: Client, redis: Store
) -> None:
    campaign, _ = await two_campaigns(admin)  # in `default`
    workspace = await create_workspace(admin, "B")
    key = (await create_key(admin, workspace, ["events:write"]))["key"]
    item = send(campaign, now_ms() - H)
    resp = await admin.post("/api/sends", json={"sends": [item]}, headers=bearer(key))
    error = await expect_error(resp, 422, "validation_failed")
    assert error["fields"] == [
        {"field": "sends[0].campaign_id", "index": 0, "message": f"no campaign with id {campaign}"}
    ]
    assert await redis.exists(recipient_sends_key(workspace, R)) == 0
