"""The smslinks commands other than send against a real admin: campaigns, stats of real
taps, keys; errors in one line; the console script."""

from __future__ import annotations

import asyncio
import re
import socket
import sys
from pathlib import Path

import pytest

from smslinks_cli import commands
from smslinks_cli.render import BARS
from tests.admin.helpers import (
    BROWSERS,
    PREVIEWS,
    create_campaign,
    create_key,
    create_links,
    create_workspace,
    stats_once_flushed,
    tap,
)
from tests.conftest import Client
from tests.smslinks_cli.conftest import Smslinks, one_error_line


async def test_campaigns_are_created_and_listed_page_by_page(
    admin: Client, smslinks: Smslinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = await smslinks("campaigns", "create", "Black Friday")
    assert made.exit_code == 0, made.output
    campaign_id = int(made.stdout)  # the id alone, for $(...)
    result = await smslinks(
        "campaigns", "create", "Welcome", "--kind", "automation", "--utm-source", "crm",
        "--code-length", "12",
    )  # fmt: skip
    assert int(result.stdout) == campaign_id + 1
    body = await (await admin.get(f"/api/campaigns/{campaign_id + 1}")).json()
    assert (body["kind"], body["utm_source"], body["utm_medium"]) == ("automation", "crm", None)
    assert body["code_length"] == 12
    monkeypatch.setattr(commands, "PAGE", 1)  # a page per campaign
    listed = await smslinks("campaigns", "list")
    assert listed.exit_code == 0, listed.output
    assert "Black Friday" in listed.stdout and "Welcome" in listed.stdout
    assert listed.stderr == "2 campaign(s)\n"


async def test_stats_show_the_totals_and_a_sparkline_of_the_clicks(
    admin: Client, redirector: Client, smslinks: Smslinks
) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    [code] = await create_links(admin, campaign_id, [{"recipient": "+34600000001"}])
    for user_agent in [*BROWSERS, PREVIEWS[0]]:
        await tap(redirector, code, user_agent)
    path = f"/api/campaigns/{campaign_id}/stats"
    await stats_once_flushed(admin, path, clicks=3, bot_hits=1)
    result = await smslinks("stats", str(campaign_id))
    assert result.exit_code == 0, result.output
    cells = {
        m.group(1): m.group(2) for m in re.finditer(r"│ ([a-z ]+?) +│ +([\d,-]+) │", result.stdout)
    }
    totals = {"clicks": "3", "unique clicks": "1", "recipients clicked": "1", "bot hits": "1"}
    assert cells == totals
    [line] = [line for line in result.stdout.splitlines() if line and set(line) <= set(BARS)]
    # A week of hours, two to a bar; the clicks of this hour in one of the last two (the
    # last, unless the hour has turned since), the highest bar, and all others empty.
    assert len(line) in (84, 85)
    assert line.count(BARS[0]) == len(line) - 1 and line.index(BARS[-1]) >= len(line) - 2
    assert "mobile 2" in result.stdout  # the breakdowns


async def test_keys_are_made_listed_and_revoked(admin: Client, smslinks: Smslinks) -> None:
    workspace = await create_workspace(admin)
    made = await smslinks(
        "keys", "create", "--workspace", workspace, "--name", "ops", "--scopes", "keys:admin"
    )
    assert made.exit_code == 0, made.output
    ops_key = made.stdout.strip()
    assert ops_key.startswith("smsl_") and f"of workspace {workspace}" in made.stderr
    # Its own workspace's, without --workspace.
    made = await smslinks(
        "keys", "create", "--name", "shop", "--scopes", "links:read, stats:read", key=ops_key
    )
    assert made.exit_code == 0, made.output
    listed_keys = (await (await admin.get(f"/api/workspaces/{workspace}/keys")).json())["keys"]
    [shop] = [k for k in listed_keys if k["name"] == "shop"]
    assert shop["scopes"] == ["links:read", "stats:read"]
    listed = await smslinks("keys", "list", key=ops_key)
    assert listed.exit_code == 0, listed.output
    assert shop["id"] in listed.stdout and "links:read stats:read" in listed.stdout
    revoked = await smslinks("keys", "revoke", shop["id"], key=ops_key)
    assert (revoked.exit_code, revoked.stderr) == (0, f"key {shop['id']} revoked\n")
    listed = await smslinks("keys", "list", "--workspace", workspace)  # root: any workspace's
    assert listed.exit_code == 0, listed.output
    assert shop["id"] not in listed.stdout and "ops" in listed.stdout
    # A root key without --workspace: default's.
    made = await smslinks("keys", "create", "--name", "mine", "--scopes", "links:read")
    assert "of workspace default" in made.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_errors_are_one_line_and_fail(admin: Client, smslinks: Smslinks) -> None:
    workspace = await create_workspace(admin)
    reader = (await create_key(admin, workspace, ["links:read"]))["key"]
    nowhere = f"http://127.0.0.1:{_closed_port()}"
    cases = [
        (("campaigns", "list"), {"key": "not-a-key"}, "(check SMSLINKS_KEY) (HTTP 401"),
        (("campaigns", "list"), {"key": reader}, "needs the scope campaigns:read (HTTP 403"),
        (("stats", "987654"), {}, "no campaign with id 987654 (HTTP 404 campaign_not_found)"),
        (("keys", "revoke", "0" * 16), {}, "(HTTP 404 key_not_found)"),
        (("campaigns", "list"), {"url": nowhere}, f"cannot reach the admin API at {nowhere}"),
        (("campaigns", "list"), {"url": ""}, "set SMSLINKS_URL"),
        (("campaigns", "list"), {"url": "ftp://x"}, "SMSLINKS_URL must be an http(s) URL"),
        (("campaigns", "list"), {"key": " "}, "set SMSLINKS_KEY"),
        (("campaigns", "create", "x" * 300), {}, "name: String should have at most 256"),
    ]
    for args, options, error in cases:
        result = await smslinks(*args, **options)
        assert error in one_error_line(result), (args, options)


async def test_the_console_script_runs() -> None:
    script = Path(sys.executable).with_name("smslinks")
    process = await asyncio.create_subprocess_exec(script, "--help", stdout=asyncio.subprocess.PIPE)
    stdout, _ = await process.communicate()
    assert process.returncode == 0
    for command in ("campaigns", "send", "stats", "sends", "conversions", "keys"):
        assert f"  {command} " in stdout.decode()
