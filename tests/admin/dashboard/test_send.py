"""The Send page: a CSV of recipients made into links by the batch operation, progress kept in
Redis, the links CSV to download; a bad file refused with its lines before any link is made."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

import pytest
from aiohttp import FormData

from admin.appkeys import redis_key
from admin.dashboard import upload
from admin.dashboard.send import send_tasks_key
from tests.admin.dashboard.pages import expect_page, sign_in
from tests.admin.helpers import URL, create_campaign
from tests.conftest import API_KEY, Client


def upload_form(csrf: str, content: str | bytes, url: str = "") -> FormData:
    form = FormData()
    form.add_field("csrf", csrf)
    form.add_field("url", url)
    form.add_field("file", content, filename="send.csv", content_type="text/csv")
    return form


async def send(
    admin: Client, campaign_id: int, csrf: str, content: str | bytes, url: str = ""
) -> str:
    """Sends the file; the page its progress is on."""
    resp = await admin.post(
        f"/dashboard/campaigns/{campaign_id}/send",
        data=upload_form(csrf, content, url),
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    location: str = resp.headers["Location"]
    return location


async def finished(admin: Client) -> None:
    assert admin.app is not None
    await admin.app[send_tasks_key].wait_all()


async def test_a_sent_csv_becomes_links_of_the_campaign(
    admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload, "MAX_BATCH", 7)  # several batches from a small file
    campaign = await create_campaign(admin)
    csrf = await sign_in(admin, API_KEY)
    rows = [f"+3460000{n:04d}" for n in range(20)]
    lines = ["Recipient,URL", *rows[:10], "", *(f"{r},https://shop.example/q" for r in rows[10:])]
    progress = await send(admin, campaign["id"], csrf, "\r\n".join(lines) + "\r\n", URL)
    await finished(admin)
    page = await expect_page(await admin.get(progress), 200)
    assert "Done: 20 rows, 20 new links" in page
    got = await admin.get(progress + "/links.csv")
    assert got.headers["Content-Disposition"].endswith(f'"campaign-{campaign["id"]}-links.csv"')
    [header, *made] = list(csv.reader(io.StringIO(await got.text())))
    assert header == ["recipient", "code", "short_url"]
    assert [row[0] for row in made] == rows
    audit = await (await admin.get("/api/audit")).json()
    batches = [e["target"] for e in audit["entries"] if e["action"] == "createLinkBatch"]
    assert batches == [f"campaign:{campaign['id']} ({n} links)" for n in (6, 7, 7)]
    # The same recipients through the API: the same links (a send is idempotent).
    body = {"campaign_id": campaign["id"], "url": URL, "links": [{"recipient": r} for r in rows]}
    again = await (await admin.post("/api/links/batch", json=body)).json()
    assert [link["code"] for link in again["links"]] == [row[1] for row in made]
    assert [row[2] for row in made] == [f"http://sho.rt/{row[1]}" for row in made]
    tagged = await (await admin.get(f"/api/links/{made[15][1]}")).json()
    assert tagged["url"] == "https://shop.example/q"
    # Sending it again: the same links, none new.
    progress = await send(admin, campaign["id"], csrf, "\n".join(rows), URL)
    await finished(admin)
    assert "Done: 20 rows, 0 new links" in await (await admin.get(progress)).text()


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ("+341\n+342,ftp://shop.example/\n", "line 2", "url"),
        ("recipient\n+341\n\n+34\x01\n", "line 4", "recipient"),
        ("+341,https://shop.example/,extra\n", "line 1", "3 columns"),
        (b"+341\n\xff\xfe\n", "line 2", "UTF-8"),
        ('"+341\n', "line 1", "CSV"),
        ("recipient\n", "file", "no rows"),
    ],
)
async def test_a_bad_file_is_refused_with_its_line_and_makes_nothing(
    admin: Client, content: str | bytes, line: str, problem: str
) -> None:
    campaign = await create_campaign(admin)
    csrf = await sign_in(admin, API_KEY)
    resp = await admin.post(
        f"/dashboard/campaigns/{campaign['id']}/send", data=upload_form(csrf, content, URL)
    )
    page = await expect_page(resp, 422)
    assert line in page and problem in page
    assert (await (await admin.get(f"/api/campaigns/{campaign['id']}")).json())["links"] == 0


async def test_a_row_without_url_needs_the_forms(admin: Client) -> None:
    campaign = await create_campaign(admin)
    csrf = await sign_in(admin, API_KEY)
    resp = await admin.post(
        f"/dashboard/campaigns/{campaign['id']}/send", data=upload_form(csrf, "+341\n")
    )
    assert "has no url" in await expect_page(resp, 422)


async def test_too_many_rows_is_413_and_leaves_no_spool(
    admin: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(upload, "MAX_ROWS", 5)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    campaign = await create_campaign(admin)
    csrf = await sign_in(admin, API_KEY)
    content = "\n".join(f"+34{n}" for n in range(6))
    resp = await admin.post(
        f"/dashboard/campaigns/{campaign['id']}/send", data=upload_form(csrf, content, URL)
    )
    assert "more than 5 rows" in await expect_page(resp, 413)
    assert os.listdir(tmp_path) == []


async def test_a_send_is_seen_only_in_its_workspace_and_without_token_refused(
    admin: Client,
) -> None:
    campaign = await create_campaign(admin)
    csrf = await sign_in(admin, API_KEY)
    resp = await admin.post(
        f"/dashboard/campaigns/{campaign['id']}/send", data=upload_form("x" * 43, "+341\n", URL)
    )
    await expect_page(resp, 403)
    progress = await send(admin, campaign["id"], csrf, "+341\n", URL)
    await finished(admin)
    assert admin.app is not None
    redis = admin.app[redis_key]
    job = progress.rsplit("/", 1)[1]
    await redis.hset(f"sj:{{{job}}}", "workspace", "w9")
    await expect_page(await admin.get(progress), 404)
    await expect_page(await admin.get(progress + "/links.csv"), 404)
    await expect_page(await admin.get("/dashboard/sends/0123456789abcdef"), 404)
    await expect_page(await admin.get("/dashboard/sends/nonsense"), 404)


async def test_a_recipient_a_spreadsheet_would_run_is_quoted_in_the_links_csv(
    admin: Client,
) -> None:
    campaign = await create_campaign(admin)
    csrf = await sign_in(admin, API_KEY)
    progress = await send(admin, campaign["id"], csrf, '"=HYPERLINK(1)"\n+34600000001\n', URL)
    await finished(admin)
    got = await (await admin.get(progress + "/links.csv")).text()
    assert [row[0] for row in csv.reader(io.StringIO(got))] == [
        "recipient",
        "'=HYPERLINK(1)",
        "+34600000001",
    ]
