"""Everything bad a browser can send the dashboard is a 4xx page: never a 500, never JSON."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import FormData

from tests.admin.dashboard.pages import expect_page, sign_in
from tests.admin.helpers import create_campaign, create_links
from tests.conftest import API_KEY, Client

# (method, path, body or None, status); {c} is a campaign's id, {l} a link's code.
BAD_GETS = [
    ("/dashboard/campaigns/abc", 404),
    ("/dashboard/campaigns/99999999999999999999", 404),
    ("/dashboard/campaigns/%F0%9F%8E%89", 404),
    ("/dashboard/campaigns/12345", 404),
    ("/dashboard/campaigns/{c}?from=2026-02-30", 422),
    ("/dashboard/campaigns/{c}?from=yesterday", 422),
    ("/dashboard/campaigns/{c}?to=9999-12-31", 422),
    ("/dashboard/campaigns/{c}?from=2026-03-02&to=2026-03-01", 422),
    ("/dashboard/campaigns/{c}?from=1970-01-01&to=2026-01-01", 422),
    ("/dashboard/campaigns/{c}?granularity=week", 422),
    ("/dashboard/campaigns/{c}?clickers=-1", 422),
    ("/dashboard/campaigns/{c}?clickers=%00", 422),
    ("/dashboard/campaigns/{c}/chart.svg?granularity=minute", 422),
    ("/dashboard/campaigns/{c}/clicks.csv?bots=maybe", 422),
    ("/dashboard/campaigns?offset=x", 422),
    ("/dashboard/campaigns?limit=100000", 422),
    ("/dashboard/links?code=%3Cscript%3E", 422),
    ("/dashboard/links/nope", 404),
    ("/dashboard/links/{l}/qr.gif", 404),
    ("/dashboard/links/a%2Fb", 404),
    ("/dashboard/sends/{l}", 404),
    ("/dashboard/sends/0123456789abcdef/links.csv", 404),
    ("/dashboard/nothing-here", 404),
]


@pytest.mark.parametrize(("path", "status"), BAD_GETS)
async def test_bad_addresses_are_4xx_pages(admin: Client, path: str, status: int) -> None:
    campaign = await create_campaign(admin)
    [code] = await create_links(admin, None, [{}])
    await sign_in(admin, API_KEY)
    resp = await admin.get(path.format(c=campaign["id"], l=code))
    await expect_page(resp, status)


async def test_bad_forms_are_4xx_pages(admin: Client) -> None:
    campaign = await create_campaign(admin)
    [code] = await create_links(admin, None, [{}])
    csrf = await sign_in(admin, API_KEY)
    link = f"/dashboard/links/{code}"
    form = "application/x-www-form-urlencoded"
    posts: list[tuple[str, Any, dict[str, str], int]] = [
        (
            "/dashboard/campaigns",
            b"csrf=" + csrf.encode() + b"&name=%FF",
            {"Content-Type": form},
            400,
        ),
        ("/dashboard/campaigns", b"x" * 70_000, {"Content-Type": form}, 413),
        ("/dashboard/campaigns", b'{"name": "x"}', {"Content-Type": "application/json"}, 415),
        ("/dashboard/campaigns", f"csrf={csrf}&name=x&kind=other", {"Content-Type": form}, 422),
        ("/dashboard/campaigns", f"csrf={csrf}&name={'n' * 300}", {"Content-Type": form}, 422),
        (link, f"csrf={csrf}&action=explode", {"Content-Type": form}, 422),
        (link, f"csrf={csrf}&action=expiry&expires_at=soon", {"Content-Type": form}, 422),
        (
            link,
            f"csrf={csrf}&action=expiry&expires_at=0000-01-01T00:00",
            {"Content-Type": form},
            422,
        ),
        (link, f"csrf={csrf}&action=url&url=http://sho.rt/loop", {"Content-Type": form}, 422),
        ("/dashboard/links/nope", f"csrf={csrf}&action=disable", {"Content-Type": form}, 404),
        (link, "action=disable", {"Content-Type": form}, 403),
        (f"/dashboard/campaigns/{campaign['id']}/send", "x", {"Content-Type": form}, 415),
        ("/dashboard/signout", "", {"Content-Type": form}, 403),
        ("/dashboard/links", "", {"Content-Type": form}, 405),
        (
            "/dashboard/campaigns",
            b"\x1f\x8b",
            {"Content-Type": form, "Content-Encoding": "gzip"},
            415,
        ),
    ]
    for path, body, headers, status in posts:
        resp = await admin.post(path, data=body, headers=headers)
        await expect_page(resp, status)


async def test_bad_uploads_are_4xx_pages(admin: Client) -> None:
    campaign = await create_campaign(admin)
    csrf = await sign_in(admin, API_KEY)
    path = f"/dashboard/campaigns/{campaign['id']}/send"
    no_file = FormData(default_to_multipart=True)
    no_file.add_field("csrf", csrf)
    no_file.add_field("url", "https://shop.example/")
    await expect_page(await admin.post(path, data=no_file), 422)
    bad_url = FormData()
    bad_url.add_field("csrf", csrf)
    bad_url.add_field("url", "javascript:alert(1)")
    bad_url.add_field("file", "+341\n", filename="a.csv")
    assert "url" in await expect_page(await admin.post(path, data=bad_url), 422)
    boundary = {"Content-Type": "multipart/form-data; boundary=xyz"}
    for body in (b"not multipart at all", b"--xyz\r\nno headers end", b"--abc--\r\n"):
        await expect_page(await admin.post(path, data=body, headers=boundary), 400)
    gzipped = {"Content-Type": "multipart/form-data; boundary=xyz", "Content-Encoding": "gzip"}
    await expect_page(await admin.post(path, data=b"\x1f\x8b", headers=gzipped), 415)
    huge_token = FormData(default_to_multipart=True)
    huge_token.add_field("csrf", "x" * 10_000)
    await expect_page(await admin.post(path, data=huge_token), 413)
    await expect_page(await admin.post("/dashboard/campaigns/999/send", data=bad_url), 404)
