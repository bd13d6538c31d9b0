"""`smslinks sends import` and `conversions import` against a real admin: the rows of a CSV
file whose header names the API's fields, recorded (and attributed) as the API does; a run
again counts nothing twice; a bad row named by its line."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.admin.helpers import create_campaign
from tests.conftest import Client
from tests.smslinks_cli.conftest import Smslinks, one_error_line


def ago(seconds: int) -> str:
    return datetime.fromtimestamp(time.time() - seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_sends_and_conversions_are_recorded_once_and_attributed(
    admin: Client, smslinks: Smslinks, tmp_path: Path
) -> None:
    campaign = (await create_campaign(admin))["id"]
    sends, orders = tmp_path / "sends.csv", tmp_path / "orders.csv"
    sends.write_text(
        "campaign_id,recipient,sent_at,delivered_at,status\n"
        f"{campaign},+34600000001,{ago(7200)},{ago(7100)},\n"
        f"{campaign},+34600000002,{ago(7200)},,failed\n"
    )
    result = await smslinks("sends", "import", str(sends))
    assert (result.exit_code, result.stderr) == (0, "2 sends recorded\n"), result.output
    report = await (await admin.get(f"/api/campaigns/{campaign}/report")).json()
    assert (report["sends"], report["delivered"], report["failed"]) == (2, 1, 1)

    orders.write_text(
        "order_id,recipient,currency,amount,occurred_at\n"
        f"A-1,+34600000001,EUR,80.00,{ago(3600)}\n"  # within a day of delivery: a view
        f"A-2,+34600000003,EUR,5,{ago(3600)}\n"  # never sent to
    )
    result = await smslinks("conversions", "import", str(orders))
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "2 conversions stored, 0 duplicates; attributed: 0 after a click, 1 after a view, "
        "1 unattributed\n"
    )
    found = await (await admin.get("/api/conversions/A-1")).json()
    assert (found["amount"], found["campaign_id"], found["type"]) == ("80.00", campaign, "view")
    again = await smslinks("conversions", "import", str(orders))
    assert again.stderr.startswith("0 conversions stored, 2 duplicates"), again.output
    report = await (await admin.get(f"/api/campaigns/{campaign}/report")).json()
    assert (report["conversions"], report["revenue"]) == (1, {"EUR": "80.00"})


@pytest.mark.parametrize(
    ("command", "contents", "error"),
    [
        (
            "sends",
            "campaign_id,recipient,sent_at\n{campaign},+346000,yesterday\n",
            "line 2: sent_at:",
        ),
        ("sends", "campaign_id,recipient\n1,+34600000001,x\n", "line 2: 3 columns, the header"),
        ("conversions", "order_id,recipient,currency,amount,occurred_at\n", "no lines after"),
        ("conversions", "recipient,recipient\n+34600000001,x\n", "the header needs distinct"),
        (
            "conversions",
            "order_id,recipient,currency,amount,occurred_at,colour\nA,+3460,EUR,1,{now},red\n",
            "line 2: colour: unknown field (HTTP 422 validation_failed)",
        ),
    ],
)
async def test_a_bad_file_is_one_line(
    admin: Client, smslinks: Smslinks, tmp_path: Path, command: str, contents: str, error: str
) -> None:
    campaign = (await create_campaign(admin))["id"]
    file = tmp_path / f"{command}.csv"
    file.write_text(contents.format(now=ago(60), campaign=campaign))
    assert error in one_error_line(await smslinks(command, "import", str(file)))
