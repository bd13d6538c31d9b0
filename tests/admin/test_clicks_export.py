"""The CSV export of a campaign's clicks: rows, chunks, time ranges, bots, a broken download."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime
from typing import Any

import pytest
from aiohttp import ClientPayloadError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.typing import EncodableT, FieldT

from admin.appkeys import redis_key
from admin.export import CLICKS_CSV_HEADER, clicks_csv
from admin.service import stats as stats_module
from admin.service.stats import ClickEvent
from redirector.store import keys
from tests.admin.helpers import (
    PREVIEWS,
    create_campaign,
    create_links,
    stats_once_flushed,
    tap,
)
from tests.conftest import Client
from tests.user_agents import ANDROID, IPHONE, WINDOWS


def _rows(text: str) -> list[dict[str, str]]:
    lines = list(csv.reader(io.StringIO(text)))
    assert tuple(lines[0]) == CLICKS_CSV_HEADER
    return [dict(zip(CLICKS_CSV_HEADER, line, strict=True)) for line in lines[1:]]


async def test_clicks_csv_has_one_row_per_hit(admin: Client, redirector: Client) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    anonymous, personal = await create_links(
        admin, campaign_id, [{}, {"recipient": "+34600000009"}]
    )
    started = int(time.time() * 1000)
    await tap(redirector, personal, IPHONE, referer="https://m.facebook.com/x")
    await tap(redirector, anonymous, WINDOWS)
    await tap(redirector, anonymous, PREVIEWS[0])
    await tap(redirector, personal, ANDROID, head=True)
    await stats_once_flushed(admin, f"/api/campaigns/{campaign_id}/stats", clicks=2, bot_hits=2)
    ended = int(time.time() * 1000)

    resp = await admin.get(f"/api/campaigns/{campaign_id}/clicks.csv")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"] == (
        f'attachment; filename="campaign-{campaign_id}-clicks.csv"'
    )
    rows = _rows(await resp.text())
    assert [
        (r["code"], r["recipient"], r["bot"], r["referer_host"], r["user_agent"]) for r in rows
    ] == [
        (personal, "+34600000009", "0", "m.facebook.com", IPHONE),  # a number: kept as sent
        (anonymous, "", "0", "", WINDOWS),
        (anonymous, "", "1", "", PREVIEWS[0]),
        (personal, "+34600000009", "1", "", ANDROID),
    ]
    for row in rows:
        assert started <= datetime.fromisoformat(row["time"]).timestamp() * 1000 <= ended
        assert len(row["visitor_hash"]) == 16
    assert rows[1]["visitor_hash"] != rows[2]["visitor_hash"]  # another UA, another visitor

    text = await (await admin.get(f"/api/campaigns/{campaign_id}/clicks.csv?bots=exclude")).text()
    assert [r["bot"] for r in _rows(text)] == ["0", "0"]
    text = await (await admin.get(f"/api/campaigns/{campaign_id}/clicks.csv?bots=only")).text()
    assert [r["user_agent"] for r in _rows(text)] == [PREVIEWS[0], ANDROID]


BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


async def _write_events(redis: Redis, campaign_id: int, n: int) -> None:
    """`n` events one second apart from BASE_MS, written as the redirector writes them."""
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(n):
            event: dict[FieldT, EncodableT] = {
                keys.EVENT_CODE: f"c{i}",
                keys.EVENT_RECIPIENT: "",
                keys.EVENT_TIME: BASE_MS + i * 1000,
                keys.EVENT_USER_AGENT: WINDOWS,
                keys.EVENT_REFERER_HOST: "",
                keys.EVENT_VISITOR_HASH: f"{i:016x}",
                keys.EVENT_BOT: "1" if i % 10 == 0 else "0",
            }
            pipe.xadd(keys.click_stream_key(campaign_id), event, id=f"{BASE_MS + i * 1000}-0")
        await pipe.execute()


@pytest.mark.parametrize(("chunk", "reads"), [(1_000, 3), (2_500, 2), (2_501, 1), (7, 358)])
async def test_clicks_csv_streams_the_stream_in_chunks(
    admin: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch, chunk: int, reads: int
) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    await _write_events(redis, campaign_id, 2_500)
    monkeypatch.setattr(stats_module, "CSV_CHUNK", chunk)
    app_redis = admin.app[redis_key]
    xrange, calls = app_redis.xrange, []

    async def counting_xrange(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await xrange(*args, **kwargs)

    monkeypatch.setattr(app_redis, "xrange", counting_xrange)
    resp = await admin.get(f"/api/campaigns/{campaign_id}/clicks.csv")
    assert resp.headers["Transfer-Encoding"] == "chunked"
    rows = _rows(await resp.text())
    assert [r["code"] for r in rows] == [f"c{i}" for i in range(2_500)]
    assert rows[1]["time"] == "2026-01-01T00:00:01.000Z"
    assert len(calls) == reads


async def test_clicks_csv_from_to_select_by_recorded_time(admin: Client, redis: Redis) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    await _write_events(redis, campaign_id, 2_500)
    path = f"/api/campaigns/{campaign_id}/clicks.csv"
    # [00:01:40, 00:18:20): events 100 to 1099, `to` exclusive.
    text = await (
        await admin.get(f"{path}?from=2026-01-01T00:01:40Z&to=2026-01-01T00:18:20Z")
    ).text()
    assert [r["code"] for r in _rows(text)] == [f"c{i}" for i in range(100, 1100)]
    text = await (await admin.get(f"{path}?from=2026-01-01T00:41:00Z&bots=only")).text()
    assert [r["code"] for r in _rows(text)] == [f"c{i}" for i in range(2460, 2500, 10)]
    text = await (await admin.get(f"{path}?to=2026-01-01T00:00:00.500Z")).text()
    assert [r["code"] for r in _rows(text)] == ["c0"]
    text = await (await admin.get(f"{path}?to=1970-01-01T00:00:00Z")).text()
    assert _rows(text) == []


async def test_clicks_csv_of_a_campaign_without_clicks_is_the_header(admin: Client) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    resp = await admin.get(f"/api/campaigns/{campaign_id}/clicks.csv")
    assert resp.status == 200 and _rows(await resp.text()) == []


async def test_clicks_csv_head_has_no_body(admin: Client, redis: Redis) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    await _write_events(redis, campaign_id, 3)
    resp = await admin.head(f"/api/campaigns/{campaign_id}/clicks.csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert await resp.read() == b""
    # The connection is still usable: no stray body bytes were sent.
    assert (await admin.get(f"/api/campaigns/{campaign_id}")).status == 200


async def test_clicks_csv_cells_are_never_formulas(admin: Client, redirector: Client) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    [code] = await create_links(admin, campaign_id, [{"code": "-1-1", "recipient": "@SUM(1+1)"}])
    await tap(redirector, code, '=HYPERLINK("http://evil.example","x")', referer="http://-x/")
    await stats_once_flushed(admin, f"/api/campaigns/{campaign_id}/stats", clicks=1, bot_hits=0)
    [row] = _rows(await (await admin.get(f"/api/campaigns/{campaign_id}/clicks.csv")).text())
    assert row["user_agent"] == '\'=HYPERLINK("http://evil.example","x")'
    assert row["referer_host"] == "'-x"
    assert (row["code"], row["recipient"]) == ("'-1-1", "'@SUM(1+1)")


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_text_cell_starting_a_formula_is_guarded(start: str) -> None:
    cell = start + "1+1"
    event = ClickEvent(BASE_MS, cell, cell, False, cell, cell, cell)
    [row] = list(csv.reader(io.StringIO(clicks_csv([event]).decode())))
    assert row == ["2026-01-01T00:00:00.000Z", *(["'" + cell] * 2), "0", *(["'" + cell] * 3)]


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("+34600000001", "+34600000001"),  # a phone number in E.164 is a number, inert
        ("-12.5", "-12.5"),
        ("+34600000001+cmd", "'+34600000001+cmd"),  # anything after the digits: guarded
        ("+1 2", "'+1 2"),
        ("-", "'-"),
        ("+.5", "'+.5"),
    ],
)
def test_a_signed_number_is_written_as_sent(cell: str, written: str) -> None:
    event = ClickEvent(BASE_MS, "abc", cell, False, "", "", "")
    [row] = list(csv.reader(io.StringIO(clicks_csv([event]).decode())))
    assert row[2] == written


async def test_redis_failing_mid_export_breaks_the_download(
    admin: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    await _write_events(redis, campaign_id, 30)
    monkeypatch.setattr(stats_module, "CSV_CHUNK", 10)
    app_redis = admin.app[redis_key]
    xrange, calls = app_redis.xrange, []

    async def failing_xrange(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 2:
            raise RedisConnectionError("gone")
        return await xrange(*args, **kwargs)

    monkeypatch.setattr(app_redis, "xrange", failing_xrange)
    resp = await admin.get(f"/api/campaigns/{campaign_id}/clicks.csv")
    assert resp.status == 200  # already sent with the first rows
    with pytest.raises(ClientPayloadError):
        await resp.read()
