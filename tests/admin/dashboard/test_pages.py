"""The dashboard's pages over a real store: campaigns with their clicks, a campaign's page and
chart, a new campaign, a link's page with its edits and QR code; every write audited as the
API's would be."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from admin.dashboard.report import REPORTS_KEY
from redirector.store.connection import Store
from redirector.store.keys import link_stats_key
from tests.admin.dashboard.pages import expect_page, post_form, sign_in
from tests.admin.helpers import (
    BROWSERS,
    PREVIEWS,
    create_campaign,
    create_links,
    stats_once_flushed,
    tap,
)
from tests.conftest import API_KEY, Client


async def test_campaigns_and_a_campaigns_page_show_its_clicks(
    admin: Client, redirector: Client
) -> None:
    campaign = await create_campaign(admin, name="Black Friday")
    codes = await create_links(
        admin, campaign["id"], [{"recipient": "+34600000001"}, {"recipient": "+34600000002"}]
    )
    for user_agent in BROWSERS:
        await tap(redirector, codes[0], user_agent)
    await tap(redirector, codes[1], BROWSERS[0])
    await tap(redirector, codes[1], PREVIEWS[0])
    path = f"/api/campaigns/{campaign['id']}/stats"
    await stats_once_flushed(admin, path, clicks=4, bot_hits=1)
    csrf = await sign_in(admin, API_KEY)
    del csrf
    listed = await expect_page(await admin.get("/dashboard/campaigns"), 200)
    row = listed[listed.index("Black Friday") :].split("</tr>")[0]
    cells = [cell.split(">")[-1] for cell in row.split("</td>")[:-1]]
    # kind, links, sends, clicks, unique clicks, CTR, conversions, revenue. ATTRIBUTION
    # BRIDGE: without the report (issue 11) its cells are "—"; with it, 2 implied sends.
    report = ("2", "100.0%", "0") if REPORTS_KEY is not None else ("—", "—", "—")
    sends, ctr, conversions = report
    assert cells == ["campaign", "2", sends, "4", "2", ctr, conversions, "—"]

    page = await expect_page(await admin.get(f"/dashboard/campaigns/{campaign['id']}"), 200)
    for shown in ("Black Friday", "+34600000001", codes[0], "Mobile Safari", "Bot hits"):
        assert shown in page
    assert page.count(f'href="/dashboard/links/{codes[0]}"') == 2  # top link, clicker
    # Its 3 clicks among the latest, and all time (a per-recipient link's: keys.py's s:r).
    assert f'{codes[0]}</a></td><td class="n">3</td><td class="n">3</td>' in page
    chart = await admin.get(f"/dashboard/campaigns/{campaign['id']}/chart.svg?granularity=day")
    assert chart.status == 200 and chart.content_type == "image/svg+xml"
    assert "script-src" not in chart.headers["Content-Security-Policy"]
    svg = ET.fromstring(await chart.read())
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert b"<script" not in await chart.read()
    exported = await admin.get(f"/dashboard/campaigns/{campaign['id']}/clicks.csv")
    assert exported.status == 200
    assert len((await exported.text()).strip().splitlines()) == 1 + 5


async def test_a_top_links_all_time_clicks_are_its_newest_links(
    admin: Client, redirector: Client, redis: Store
) -> None:
    # A custom code of a recipient's link counts in s:r; given before (or after) to a link
    # without recipient, it counts in s:l too: the newer link's count is shown, or both when
    # both name the same link (keys.py).
    campaign = await create_campaign(admin)
    [code] = await create_links(
        admin, campaign["id"], [{"recipient": "+34600000001", "code": "shared-code"}]
    )
    made = await (await admin.get(f"/api/links/{code}")).json()
    created = int(datetime.fromisoformat(made["created_at"]).timestamp())
    for user_agent in BROWSERS[:2]:
        await tap(redirector, code, user_agent)
    await stats_once_flushed(admin, f"/api/links/{code}/stats", clicks=2, bot_hits=0)
    await sign_in(admin, API_KEY)
    stats = link_stats_key(campaign["id"], code)
    for other_created, shown in ((created - 60, 2), (created + 60, 7), (created, 9)):
        await redis.hset(stats, mapping={"created": other_created, "clicks": 7})
        page = await expect_page(await admin.get(f"/dashboard/campaigns/{campaign['id']}"), 200)
        assert f'{code}</a></td><td class="n">2</td><td class="n">{shown}</td>' in page


async def test_a_campaign_made_through_the_form_is_audited(admin: Client) -> None:
    csrf = await sign_in(admin, API_KEY)
    resp = await post_form(
        admin,
        "/dashboard/campaigns",
        {
            "csrf": csrf,
            "name": "Welcome",
            "kind": "automation",
            "utm_source": "",
            "utm_medium": "crm",
        },
    )
    assert resp.status == 303
    campaign_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    made = await (await admin.get(f"/api/campaigns/{campaign_id}")).json()
    assert (made["name"], made["kind"], made["utm_source"], made["utm_medium"]) == (
        "Welcome",
        "automation",
        None,
        "crm",
    )
    audit = await (await admin.get("/api/audit")).json()
    assert audit["entries"][0]["action"] == "createCampaign"
    assert audit["entries"][0]["target"] == f"campaign:{campaign_id}"
    blank = await post_form(
        admin, "/dashboard/campaigns", {"csrf": csrf, "name": " ", "kind": "campaign"}
    )
    assert "name" in await expect_page(blank, 422)


async def test_a_link_page_edits_its_link(admin: Client, redirector: Client) -> None:
    [code] = await create_links(admin, None, [{}])
    csrf = await sign_in(admin, API_KEY)
    page = await expect_page(await admin.get(f"/dashboard/links?code={code}"), 200)
    assert "https://shop.example/p?utm_source=instasent&amp;utm_medium=sms" in page
    link_page = f"/dashboard/links/{code}"
    saved = await post_form(
        admin, link_page, {"csrf": csrf, "action": "url", "url": "https://shop.example/q"}
    )
    assert (saved.status, saved.headers["Location"]) == (303, f"{link_page}?saved=1")
    link = await (await admin.get(f"/api/links/{code}")).json()
    assert link["destination"] == "https://shop.example/q?utm_source=instasent&utm_medium=sms"
    await post_form(admin, link_page, {"csrf": csrf, "action": "disable"})
    assert (await redirector.get(f"/{code}", allow_redirects=False)).status == 410
    await post_form(admin, link_page, {"csrf": csrf, "action": "enable"})
    expiry = {"csrf": csrf, "action": "expiry", "expires_at": "2031-05-06T07:08"}
    await post_form(admin, link_page, expiry)
    link = await (await admin.get(f"/api/links/{code}")).json()
    assert (link["disabled"], link["expires_at"]) == (False, "2031-05-06T07:08:00Z")
    assert 'value="2031-05-06T07:08"' in await (await admin.get(link_page)).text()
    await post_form(admin, link_page, {"csrf": csrf, "action": "expiry", "expires_at": ""})
    assert (await (await admin.get(f"/api/links/{code}")).json())["expires_at"] is None
    actions = [e["action"] for e in (await (await admin.get("/api/audit")).json())["entries"]]
    assert actions[:5] == ["updateLink"] * 5
    bad = {"csrf": csrf, "action": "url", "url": "ftp://shop.example/"}
    await expect_page(await post_form(admin, link_page, bad), 422)


async def test_a_link_page_has_its_qr_code(admin: Client) -> None:
    [code] = await create_links(admin, None, [{}])
    await sign_in(admin, API_KEY)
    svg = await admin.get(f"/dashboard/links/{code}/qr.svg")
    assert svg.content_type == "image/svg+xml"
    root = ET.fromstring(await svg.read())
    assert root.findtext("{http://www.w3.org/2000/svg}title") == f"http://sho.rt/{code}"
    png = await admin.get(f"/dashboard/links/{code}/qr.png?download=1")
    assert png.content_type == "image/png"
    assert png.headers["Content-Disposition"] == f'attachment; filename="{code}.png"'
    assert (await png.read()).startswith(b"\x89PNG")


@pytest.mark.skipif(REPORTS_KEY is None, reason="the attribution report (issue 11) is not merged")
async def test_a_campaigns_attribution_shows_its_report(admin: Client, redirector: Client) -> None:
    campaign = await create_campaign(admin, name="Sale")
    codes = await create_links(
        admin, campaign["id"], [{"recipient": "+34600000001"}, {"recipient": "+34600000002"}]
    )
    await tap(redirector, codes[0], BROWSERS[0])
    await stats_once_flushed(admin, f"/api/campaigns/{campaign['id']}/stats", clicks=1, bot_hits=0)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    order = {"order_id": "B-1", "recipient": "+34600000001", "amount": "20.00"}
    body = {"conversions": [order | {"currency": "EUR", "occurred_at": now}]}
    resp = await admin.post("/api/conversions", json=body)
    assert resp.status in (200, 201), await resp.text()
    await sign_in(admin, API_KEY)
    page = await expect_page(await admin.get(f"/dashboard/campaigns/{campaign['id']}"), 200)
    attribution = page[page.index('id="attribution"') :]
    # 2 sends (implied by the links), 1 click conversion of 20.00 EUR: AOV 20.00, EPM 10,000.00.
    for shown in ("<dd>2</dd>", "<dd>1</dd>", "20.00 EUR", "10,000.00 EUR"):
        assert shown in attribution
    assert "50.0%" in page  # CTR: 1 unique click of 2 sends
