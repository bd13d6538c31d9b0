"""Headless Chromium for the browser tests: Debian's chromium, driven through its
chromium-driver by selenium. Each call runs in a thread, so that the servers the test's own
event loop runs keep answering the browser meanwhile. Not a test module."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from tests.user_agents import ANDROID

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = (
    "the browser tests need Debian's chromium and chromium-driver "
    "(make test installs them when root; else: sudo apt-get install -y chromium chromium-driver)"
)
# Screenshots of every page, for people to look at (git-ignored).
SCREENSHOTS = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts")) / "screenshots"
DESKTOP = (1280, 900)
LANDING_HOST = "shop.test"
PHONE = (390, 844)  # CSS pixels of a current phone
T = TypeVar("T")


class Browser:
    def __init__(self, driver: webdriver.Chrome, downloads: Path) -> None:
        self.driver = driver
        self.downloads = downloads

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(call, *args)

    async def go(self, url: str) -> None:
        await self._run(self.driver.get, url)

    async def find(self, css: str) -> WebElement:
        return await self._run(self.driver.find_element, By.CSS_SELECTOR, css)

    async def type(self, css: str, text: str) -> None:
        field = await self.find(css)
        await self._run(field.send_keys, text)

    async def click(self, css: str) -> None:
        """Clicks what leads to another page, and waits until that page is loaded."""
        element, page = await self.find(css), await self.find("html")
        await self._run(element.click)
        await self.wait_for(lambda: _gone(page) and self._loaded())

    async def press(self, css: str) -> None:
        """Clicks what stays on this page (a download)."""
        element = await self.find(css)
        await self._run(element.click)

    def _loaded(self) -> bool:
        return bool(self.driver.execute_script("return document.readyState") == "complete")

    async def text(self, css: str = "main") -> str:
        element = await self.find(css)
        return await self._run(lambda: element.text)

    async def script(self, source: str) -> Any:
        return await self._run(self.driver.execute_script, source)

    async def url(self) -> str:
        """Where the browser is (never read on the event loop's thread: chromedriver may wait
        for a page that only this loop can serve)."""
        return str(await self._run(lambda: self.driver.current_url))

    async def wait_for(self, check: Callable[[], Any], within: float = 10.0) -> None:
        """Until `check` (run in a thread, it may use the driver) is true."""
        deadline = time.monotonic() + within
        while not await self._run(check):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the page did not get there within {within}s: {self.driver.current_url}"
                )
            await asyncio.sleep(0.1)

    async def shot(self, name: str, size: tuple[int, int] = DESKTOP) -> Path:
        """A screenshot of the whole page at `size` (its full height)."""
        await self._run(self.driver.set_window_size, *size)
        height = await self.script("return document.documentElement.scrollHeight")
        await self._run(self.driver.set_window_size, size[0], max(size[1], int(height)))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await self._run(self.driver.save_screenshot, str(path))
        await self._run(self.driver.set_window_size, *size)
        return path


def _gone(element: WebElement) -> bool:
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        # Asked while the page is being replaced, chromium may answer that the node no longer
        # belongs to the document instead of calling it stale: gone all the same.
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def _options(downloads: str) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        # A phone's: a tap by HeadlessChrome would be counted as a bot hit, not a click.
        f"--user-agent={ANDROID}",
        # The shop the links lead to, on this machine: the admin refuses links to its own
        # (loopback) host by any loopback name, so this browser alone resolves one more.
        f"--host-resolver-rules=MAP {LANDING_HOST} 127.0.0.1",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"download.default_directory": downloads, "download.prompt_for_download": False}
    )
    return options


def chromium(downloads: Path) -> Iterator[Browser]:
    """A headless Chromium, quit afterwards (a generator for a fixture)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(MISSING)
    # The driver named: selenium would otherwise try to download one.
    driver = webdriver.Chrome(options=_options(str(downloads)), service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield Browser(driver, downloads)
    finally:
        driver.quit()
