"""What the dashboard tests share: signing in as a browser does (the form's CSRF token read
from the page, the cookies kept by the client), and reading a page's form tokens. Not a test
module."""

from __future__ import annotations

import re
from typing import Any, cast

from aiohttp import ClientResponse
from pytest_aiohttp import AiohttpClient

from tests.conftest import Client

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def browser(
    aiohttp_client: AiohttpClient, admin: Client, cookies: dict[str, str] | None = None
) -> Client:
    """Another client of the admin app that `admin` serves, as a browser is: no
    Authorization header, a cookie jar of its own."""
    return cast(Client, await aiohttp_client(admin.server, cookies=cookies))


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(client: Client, key: str) -> str:
    """Signs the client in with `key`; the CSRF token of the session's forms."""
    form = await client.get("/dashboard/signin")
    assert form.status == 200, await form.text()
    token = csrf_of(await form.text())
    resp = await client.post(
        "/dashboard/signin", data={"csrf": token, "key": key}, allow_redirects=False
    )
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == "/dashboard/campaigns"
    page = await client.get("/dashboard/campaigns")
    assert page.status in (200, 403), await page.text()
    return csrf_of(await page.text())


async def post_form(
    client: Client, path: str, fields: dict[str, Any], *, follow: bool = False
) -> ClientResponse:
    return await client.post(path, data=fields, allow_redirects=follow)


async def expect_page(resp: ClientResponse, status: int) -> str:
    """The HTML of an answer that must have `status` (an error page is HTML, never JSON)."""
    text = await resp.text()
    heading = text.partition("<h1>")[2].partition("</main>")[0]
    assert resp.status == status, f"{resp.method} {resp.url.path}: {resp.status} {heading}"
    assert resp.content_type == "text/html", resp.content_type
    assert "Traceback" not in text
    return text
