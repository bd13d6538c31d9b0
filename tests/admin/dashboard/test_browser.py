"""The dashboard in a real browser (headless Chromium): sign in, make a campaign, send a CSV of
1,000 recipients, download the links CSV, tap one link through the redirector and see its
click on the campaign page; a screenshot of every page on the way (test-artifacts/screenshots,
git-ignored), at a desktop's size and, for the campaign page, at a phone's.

Skipped without chromium and chromium-driver (`make test` installs them when root). Run on the
single Redis only: the pages call the services that the other tests run on both stores."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from admin.app import create_app as create_admin
from admin.settings import AdminSettings
from tests.admin.dashboard.browser import LANDING_HOST, PHONE, Browser, chromium
from tests.conftest import API_KEY, Client

ROWS = 1_000


@pytest.fixture
def browser(tmp_path: Path, store_kind: str) -> Iterator[Browser]:
    if store_kind != "single":
        pytest.skip("the browser tests run once, on the single Redis")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    yield from chromium(downloads)


@pytest.fixture
async def served_admin(
    aiohttp_client: AiohttpClient, admin_settings: AdminSettings, redirector: Client
) -> Client:
    """The admin, its short links on the running redirector (so the browser can tap them)."""
    base = str(redirector.make_url("")).rstrip("/")
    settings = admin_settings.model_copy(update={"public_base_url": base})
    client: Client = await aiohttp_client(create_admin(settings))
    return client


def write_csv(path: Path) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["recipient"])
        writer.writerows([f"+346{n:08d}"] for n in range(ROWS))


def downloaded(browser: Browser) -> list[Path]:
    return [p for p in browser.downloads.iterdir() if p.suffix == ".csv"]


async def test_sign_in_campaign_send_download_tap_and_see_the_click(
    browser: Browser, served_admin: Client, tmp_path: Path
) -> None:
    dashboard = str(served_admin.make_url("/dashboard/"))
    await browser.go(dashboard)
    assert (await browser.url()).endswith("/dashboard/signin")
    await browser.shot("signin")
    # The keyboard reaches the page: the first Tab lands on the skip link.
    await browser.type("body", Keys.TAB)
    assert await browser.script("return document.activeElement.className") == "skip"
    await browser.type("#key", API_KEY)
    await browser.click("form button[type=submit]")
    assert (await browser.url()).endswith("/dashboard/campaigns")
    await browser.shot("campaigns-empty")

    await browser.click("a[href='/dashboard/campaigns/new']")
    await browser.shot("campaign-new")
    await browser.type("#name", "Spring sale")
    await browser.click("main button[type=submit]")
    assert "Spring sale" in await browser.text("h1")
    campaign_page = await browser.url()

    await browser.click("a[href$='/send']")
    await browser.shot("send")
    # The links lead to the admin's health check, a page this machine serves, by a name only
    # this browser resolves (the admin refuses links to its own host).
    landing = str(served_admin.make_url("/healthz")).replace("127.0.0.1", LANDING_HOST)
    await browser.type("#url", landing)
    source = tmp_path / "recipients.csv"
    write_csv(source)
    await browser.type("#file", str(source))
    await browser.click("main button[type=submit]")
    assert "/dashboard/sends/" in (await browser.url()), await browser.text()
    await browser.shot("send-progress")
    await browser.wait_for(lambda: browser.driver.find_elements(By.ID, "download"))
    assert f"Done: {ROWS:,} rows, {ROWS:,} new links" in await browser.text()
    await browser.shot("send-done")

    await browser.press("#download")
    await browser.wait_for(lambda: downloaded(browser))
    [links_csv] = downloaded(browser)
    with links_csv.open(newline="") as rows:
        [header, *links] = list(csv.reader(rows))
    assert header == ["recipient", "code", "short_url"]
    assert len(links) == ROWS and links[0][0] == "+34600000000"

    # A person taps the first link: the redirector sends the browser on, the click is counted.
    await browser.go(links[0][2])
    assert (await browser.url()).startswith(landing + "?utm_source=")
    await browser.go(campaign_page)

    async def clicked() -> bool:
        await browser.go(campaign_page)
        return await browser.text(".totals dd") == "1"

    deadline = 50
    while not await clicked():
        deadline -= 1
        assert deadline, "the click never showed on the campaign page"
    assert links[0][0] in await browser.text("#clickers")
    await browser.shot("campaign")
    await browser.shot("campaign-phone", PHONE)
    width = await browser.script("return document.documentElement.scrollWidth")
    assert width <= PHONE[0], "the campaign page scrolls sideways on a phone"
    await browser.go(str(served_admin.make_url("/dashboard/campaigns")))
    await browser.shot("campaigns")

    await browser.click("a[href='/dashboard/links']")
    await browser.shot("link-search")
    await browser.type("#code", links[0][1])
    await browser.click("main button[type=submit]")
    assert links[0][1] in await browser.text("h1")
    await browser.shot("link")
    await browser.go(str(served_admin.make_url("/dashboard/campaigns/999")))
    assert "Not found" in await browser.text("h1")
    await browser.shot("error")
    assert os.environ.get("TEST_ARTIFACTS", "test-artifacts")  # where the screenshots went
