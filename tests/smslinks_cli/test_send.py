"""`smslinks send` against a real admin: every recipient once in the links file, with the
codes the API holds for them; resumed after an interruption (Ctrl-C while a batch is
answered but not written, then a line torn) without a second link or a changed code; bad
input refused in one line before anything is sent."""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from admin.app import create_app
from admin.service import ratelimit
from admin.settings import AdminSettings
from redirector.store.connection import Store
from tests.admin.helpers import create_campaign
from tests.conftest import API_KEY, AUTH, Client
from tests.smslinks_cli.conftest import Smslinks, one_error_line
from tests.waiting import eventually

URL = "https://shop.example/bf"


def links_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as file:
        return list(csv.reader(file))


def _has_lines(path: Path, count: int) -> bool:
    return path.exists() and len(links_rows(path)) == count


async def codes_held(admin: Client, campaign_id: int, recipients: list[str]) -> list[str]:
    """The codes the API gives these recipients (asking again is idempotent)."""
    body = {"campaign_id": campaign_id, "url": URL, "links": [{"recipient": r} for r in recipients]}
    resp = await admin.post("/api/links/batch", json=body)
    assert resp.status == 201, await resp.text()
    return [link["code"] for link in (await resp.json())["links"]]


async def link_count(admin: Client, campaign_id: int) -> int:
    count: int = (await (await admin.get(f"/api/campaigns/{campaign_id}")).json())["links"]
    return count


async def test_send_writes_every_recipient_once_with_their_link(
    admin: Client, smslinks: Smslinks, tmp_path: Path
) -> None:
    campaign = await create_campaign(admin)
    contacts = tmp_path / "contacts.csv"
    # A spreadsheet's export: byte order mark, header, a blank line, a URL of its own (the
    # API trims it), a recipient twice (their first line counts), CRLF line ends.
    contacts.write_bytes(
        "\ufeffRecipient,URL\r\n+34600000001\r\n\r\n+34600000002, https://shop.example/vip \r\n"
        "+34600000003\r\n+34600000001,https://shop.example/other\r\n+34600000004\r\n".encode()
    )
    out = tmp_path / "links.csv"
    result = await smslinks(
        "send", "--campaign", str(campaign["id"]), "--url", URL,
        "--recipients", str(contacts), "--out", str(out), "--batch-size", "3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = links_rows(out)
    recipients = [f"+3460000000{i}" for i in range(1, 5)]
    assert rows[0] == ["recipient", "code", "short_url"]
    assert [row[0] for row in rows[1:]] == recipients
    assert [row[1] for row in rows[1:]] == await codes_held(admin, campaign["id"], recipients)
    assert all(row[2] == f"http://sho.rt/{row[1]}" for row in rows[1:])
    link = await (await admin.get(f"/api/links/{rows[2][1]}")).json()
    assert (link["url"], link["recipient"]) == ("https://shop.example/vip", "+34600000002")
    assert await link_count(admin, campaign["id"]) == 4
    assert "1 line(s) named a recipient again" in result.stderr


async def test_an_interrupted_send_resumes_with_the_same_codes(
    aiohttp_client: AiohttpClient,
    admin_settings: AdminSettings,
    redis: Store,
    smslinks: Smslinks,
    tmp_path: Path,
) -> None:
    """Batches 1-3 answered and written; batch 4 written by the admin, whose answer is held
    until the CLI is stopped with Ctrl-C; then a write is torn; a run again finishes."""
    held, release = asyncio.Event(), asyncio.Event()

    @web.middleware
    async def gate(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path != "/api/links/batch" or release.is_set():
            return await handler(request)
        # Numbered by the recipients it holds, not as it arrives: the CLI has two batches in
        # flight, and two sent in the same tick (the 3rd and 4th, when the 2nd was answered
        # before the 1st was written) may arrive in either order (aiohttp keeps the body
        # read, for the handler to read again).
        first = (await request.json())["links"][0]["recipient"]
        number = int(first[-4:]) // 10 + 1
        if number > 4:  # sent while the 4th is held: not let in (nothing written)
            await release.wait()
        response = await handler(request)
        if number == 4:  # written, its answer held until the CLI is stopped
            held.set()
            await release.wait()
        return response

    app = create_app(admin_settings)
    app.middlewares.append(gate)
    admin = await aiohttp_client(app, headers=AUTH)
    campaign = await create_campaign(admin)
    recipients = [f"+3460000{i:04d}" for i in range(100)]
    contacts, out = tmp_path / "contacts.csv", tmp_path / "links.csv"
    contacts.write_text("\n".join(recipients) + "\n")
    args = [
        "send", "--campaign", str(campaign["id"]), "--url", URL,
        "--recipients", str(contacts), "--out", str(out), "--batch-size", "10",
    ]  # fmt: skip
    env = os.environ | {"SMSLINKS_URL": str(admin.make_url("")), "SMSLINKS_KEY": API_KEY}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smslinks_cli", *args,
        env=env, stderr=asyncio.subprocess.PIPE,
        # Ctrl-C must reach it even where the test runner was started with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        await asyncio.wait_for(held.wait(), 60)
        # Batch 3's answer left as batch 4 came in: stop the CLI once it has written it.
        await eventually(lambda: asyncio.to_thread(_has_lines, out, 1 + 30))
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        release.set()
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 130
    assert stderr.decode().splitlines() == [
        f"Error: interrupted: 30 of 100 links are in {out}; run the same command again to finish"
    ]
    written = out.read_bytes()
    assert len(links_rows(out)) == 1 + 30
    with out.open("a") as file:
        file.write("+34600000030,Tor")  # a write cut short: no line end
    result = await smslinks(*args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(written)
    rows = links_rows(out)[1:]
    assert [row[0] for row in rows] == recipients
    assert [row[1] for row in rows] == await codes_held(admin, campaign["id"], recipients)
    assert await link_count(admin, campaign["id"]) == 100
    assert "(70 now, 30 from an earlier run)" in result.stderr


async def test_a_links_file_of_another_campaign_is_refused(
    admin: Client, smslinks: Smslinks, tmp_path: Path
) -> None:
    first, second = await create_campaign(admin), await create_campaign(admin, name="Other")
    contacts, out = tmp_path / "contacts.csv", tmp_path / "links.csv"
    contacts.write_text("+34600000001\n+34600000002\n")
    args = ["--url", URL, "--recipients", str(contacts), "--out", str(out)]
    assert (await smslinks("send", "--campaign", str(first["id"]), *args)).exit_code == 0
    written = out.read_bytes()
    result = await smslinks("send", "--campaign", str(second["id"]), *args)
    assert f"not of campaign {second['id']}" in one_error_line(result)
    assert out.read_bytes() == written
    assert await link_count(admin, second["id"]) == 0


@pytest.mark.parametrize(
    ("contents", "error"),
    [
        (b"+34600000001,https://shop.example/a,extra\n", "contacts.csv line 1: 3 columns"),
        (b"recipient,url\n+34600000001\n", "contacts.csv line 2: no URL"),
        (b"+34600000001\n\xff\xfe\n", "not UTF-8"),
        (b"recipient\n\n", "contacts.csv: no recipients"),
        (b'"+3460000\n', "contacts.csv line 1: unexpected end of data"),
    ],
)
async def test_a_bad_recipients_file_is_one_line_and_sends_nothing(
    admin: Client, smslinks: Smslinks, tmp_path: Path, contents: bytes, error: str
) -> None:
    campaign = await create_campaign(admin)
    contacts, out = tmp_path / "contacts.csv", tmp_path / "links.csv"
    contacts.write_bytes(contents)
    args = ["send", "--campaign", str(campaign["id"]), "--recipients", str(contacts)]
    result = await smslinks(*args, "--out", str(out))
    assert error in one_error_line(result)
    assert not out.exists()
    assert await link_count(admin, campaign["id"]) == 0


async def test_a_bad_item_names_its_line_and_what_is_wrong(
    admin: Client, smslinks: Smslinks, tmp_path: Path
) -> None:
    campaign = await create_campaign(admin)
    contacts, out = tmp_path / "contacts.csv", tmp_path / "links.csv"
    contacts.write_text("recipient,url\n+34600000001\n+34600000002,ftp://shop.example/x\n")
    args = ["--recipients", str(contacts), "--out", str(out)]
    result = await smslinks("send", "--campaign", str(campaign["id"]), "--url", URL, *args)
    message = one_error_line(result)
    assert message.startswith(f"{contacts} line 3: url: scheme must be http or https"), message
    assert "(HTTP 422 validation_failed)" in message
    contacts.write_text("+34600000001\n")
    result = await smslinks("send", "--campaign", "987654", "--url", URL, *args)
    assert one_error_line(result).startswith("campaign_id: no campaign with id 987654")


async def test_a_spent_rate_limit_is_waited_out(
    aiohttp_client: AiohttpClient,
    admin_settings: AdminSettings,
    redis: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """3 requests per 1-second window (60 s in earnest): the send's 4th and 5th batch get 429
    with Retry-After, are sent again once it has passed, and go through."""
    monkeypatch.setattr(ratelimit, "RATE_WINDOW", 1)
    app = create_app(admin_settings.model_copy(update={"rate_limit": 3}))
    admin = await aiohttp_client(app, headers=AUTH)
    campaign = await create_campaign(admin)  # the window's first request
    contacts, out = tmp_path / "contacts.csv", tmp_path / "links.csv"
    contacts.write_text("".join(f"+3460000000{i}\n" for i in range(5)))
    result = await Smslinks(str(admin.make_url("")), API_KEY)(
        "send", "--campaign", str(campaign["id"]), "--url", URL,
        "--recipients", str(contacts), "--out", str(out), "--batch-size", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "the key's rate limit is spent: waiting 1 s" in result.stderr
    assert [row[0] for row in links_rows(out)[1:]] == [f"+3460000000{i}" for i in range(5)]
