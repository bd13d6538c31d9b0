"""`python -m admin migrate`: a store written by the release before the tagged key schema
(tests/admin/legacy_layout.py writes it as that release did) serves, counts and answers the
same after the migration, also when the migration is run twice or stopped midway."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from admin.app import create_app as create_admin
from admin.migrate import migrate
from admin.service import as_text
from admin.service.migration import Migration, Tally
from admin.settings import AdminSettings
from redirector.store import keys
from redirector.store.connection import Store
from tests.admin import legacy_layout
from tests.admin.helpers import URL, redis_keys
from tests.admin.legacy_layout import OldLink, OldStore, tagged
from tests.conftest import API_KEY, AUTH, Client

BF_TAGS = "?utm_source=crm&utm_medium=sms&utm_campaign=Black%20Friday"
NO_CAMPAIGN_TAGS = "?utm_source=instasent&utm_medium=sms"


@pytest.fixture
def old_redis(redis: Store, store_kind: str) -> Redis:
    if store_kind == "cluster":
        pytest.skip("the old layout ran on one Redis only (test_refuses_a_cluster: the cluster)")
    assert isinstance(redis, Redis)
    return redis


@dataclass
class OldData:
    """What the old release held: its live links, a deleted one, and its two campaigns."""

    links: dict[str, OldLink]
    deleted: dict[str, OldLink]
    black_friday: int
    welcome: int
    now: int


async def write_old_data(old: OldStore, now: int) -> OldData:
    bf = await old.campaign("Black Friday", "campaign", now - 7200, utm_source="crm")
    welcome = await old.campaign("Welcome", "automation", now - 7100)
    at = now - 3600
    page = "https://shop.example/p"
    links = {
        # no campaign, drawn code
        "Ab3dE5f": tagged("https://shop.example/a", NO_CAMPAIGN_TAGS, at),
        # a custom code of a campaign, expiring, its URL with a query
        "spring-sale": tagged(
            "https://shop.example/s?x=1",
            "&" + BF_TAGS[1:],
            at,
            campaign_id=bf,
            expires_at=now + 86_400,
        ),
        # recipients' links
        "Rcp0001": tagged(page, BF_TAGS, at, campaign_id=bf, recipient="+34600000001"),
        "Rcp0002": tagged(page, BF_TAGS, at, campaign_id=bf, recipient="+34600000002"),
        "Rcp0003": tagged(page, BF_TAGS, at, campaign_id=bf, recipient="José Núñez"),
        "Wel0001": tagged(
            page, "?utm_medium=sms", at, campaign_id=welcome, recipient="+34600000001"
        ),
        "Solo001": tagged(page, NO_CAMPAIGN_TAGS, at, recipient="+34600000009"),
        # untagged, disabled, expired
        "plain_one": OldLink("https://shop.example/raw?utm_source=x", at, tagged=False),
        "Dis0001": tagged(page, "?utm_medium=sms", at, campaign_id=welcome, disabled=True),
        "Exp0001": tagged(page, "?utm_medium=sms", at, campaign_id=welcome, expires_at=now - 10),
    }
    gone = tagged(page, BF_TAGS, at, campaign_id=bf, recipient="+34600000006")
    for code, link in {**links, "Gone001": gone}.items():
        await old.add(code, link)
    ms = (now - 1800) * 1000
    async with old.redis.pipeline(transaction=False) as pipe:
        old.hit(pipe, "Ab3dE5f", links["Ab3dE5f"], ms, visitor="v1")
        old.hit(pipe, "Ab3dE5f", links["Ab3dE5f"], ms + 1, visitor="v2", device="desktop")
        old.hit(pipe, "Ab3dE5f", links["Ab3dE5f"], ms + 2, bot=True)
        old.hit(pipe, "spring-sale", links["spring-sale"], ms + 3, referer="news.example")
        old.hit(pipe, "Rcp0001", links["Rcp0001"], ms + 4)
        old.hit(pipe, "Rcp0001", links["Rcp0001"], ms + 5)
        old.hit(pipe, "Rcp0002", links["Rcp0002"], ms + 6)
        old.hit(pipe, "Gone001", gone, ms + 7)
        await pipe.execute()
    await old.delete("Gone001", gone)
    return OldData(links, {"Gone001": gone}, bf, welcome, now)


async def run(
    redis: Redis, settings: AdminSettings, *, delete_old: bool = False, **options: Any
) -> Tally:
    migration = Migration(redis, settings, delete_old=delete_old, **options)
    return await migration.run()


async def get_json(admin: Client, path: str) -> Any:
    resp = await admin.get(path)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def check_migrated(admin: Client, data: OldData) -> None:
    """What the admin answers of the old data, read only (nothing is written)."""
    for code, link in data.links.items():
        body = await get_json(admin, f"/api/links/{code}")
        assert body["destination"] == link.destination
        assert (
            body["url"]
            == link.destination[: link.insert_at]
            + link.destination[link.insert_at + link.inserted :]
        )
        assert (body["campaign_id"], body["recipient"]) == (link.campaign_id, link.recipient)
        assert (body["disabled"], body["tag"]) == (link.disabled, link.tagged)
        assert (body["expires_at"] is None) == (link.expires_at is None)
    for code in data.deleted:
        assert (await admin.get(f"/api/links/{code}")).status == 404
    bf = await get_json(admin, f"/api/campaigns/{data.black_friday}")
    assert (bf["name"], bf["kind"], bf["utm_source"], bf["utm_medium"]) == (
        "Black Friday",
        "campaign",
        "crm",
        None,
    )
    assert bf["links"] == 4  # spring-sale and three recipients' links; Gone001 was deleted
    welcome = await get_json(admin, f"/api/campaigns/{data.welcome}")
    assert (welcome["name"], welcome["kind"], welcome["links"]) == ("Welcome", "automation", 3)
    # Clickers are found on the recipients' chains, as creating their links again would.
    clickers = await get_json(admin, f"/api/campaigns/{data.black_friday}/clickers")
    assert [(c["recipient"], c["code"]) for c in clickers["clickers"]] == [
        ("+34600000001", "Rcp0001"),
        ("+34600000002", "Rcp0002"),
        ("+34600000006", None),
    ]
    link = await get_json(admin, "/api/links/Ab3dE5f/stats")
    assert (link["clicks"], link["bot_hits"], link["unique_clicks"]) == (2, 1, 2)
    assert link["breakdowns"]["device"] == {"desktop": 1, "mobile": 1}
    assert sum(b["clicks"] for b in link["series"]) == 2
    link = await get_json(admin, "/api/links/Rcp0001/stats")
    assert (link["clicks"], link["unique_clicks"], link["recipients_clicked"]) == (2, 1, 1)
    campaign = await get_json(admin, f"/api/campaigns/{data.black_friday}/stats")
    # 5 clicks: 3 recipients and 1 visitor of spring-sale
    assert (campaign["clicks"], campaign["unique_clicks"], campaign["bot_hits"]) == (5, 4, 0)
    assert campaign["breakdowns"]["referer"] == {"news.example": 1}
    resp = await admin.get(f"/api/campaigns/{data.black_friday}/clicks.csv")
    rows = (await resp.text()).splitlines()[1:]
    assert [row.split(",")[1] for row in rows] == [
        "spring-sale",
        "Rcp0001",
        "Rcp0001",
        "Rcp0002",
        "Gone001",
    ]


async def test_old_links_campaigns_and_clicks_after_migration(
    old_redis: Redis, admin: Client, redirector: Client, admin_settings: AdminSettings
) -> None:
    data = await write_old_data(OldStore(old_redis), int(time.time()))
    old_counts = [
        await old_redis.hget(f"c:{i}", "links") for i in (data.black_friday, data.welcome)
    ]
    assert old_counts == [b"4", b"3"]
    tally = await run(old_redis, admin_settings)
    assert (tally.links, tally.links_written, tally.problem_count) == (10, 10, 0)
    assert (tally.recipients, tally.aliases_written) == (5, 5)
    assert tally.tombstones == 1  # Gone001: its clicks outlived it
    assert tally.count_differences == []
    await check_migrated(admin, data)  # before the taps below, which the redirector counts
    for code, link in data.links.items():
        resp = await redirector.get(f"/{code}", allow_redirects=False)
        if link.disabled or code == "Exp0001":
            assert resp.status == 410
        else:
            assert resp.status == 302, code
            assert resp.headers["Location"] == link.destination
    assert (await redirector.get("/Gone001", allow_redirects=False)).status == 404
    # Every link's counters name it, a deleted one's time 0: a per-recipient link counts in
    # s:r since, so nothing would name them later (keys.py), and a custom code given again
    # must not show them.
    rcp = data.links["Rcp0001"]
    stamped = await old_redis.hget(keys.link_stats_key(rcp.campaign_id, "Rcp0001"), "created")
    assert stamped == str(rcp.created_at).encode()
    assert await old_redis.hget(keys.link_stats_key(None, "Gone001"), "created") == b"0"
    campaigns = await get_json(admin, "/api/campaigns")
    assert [c["id"] for c in campaigns["campaigns"]] == [data.black_friday, data.welcome]


async def test_recipients_get_their_old_codes_again(
    old_redis: Redis, admin: Client, admin_settings: AdminSettings
) -> None:
    data = await write_old_data(OldStore(old_redis), int(time.time()))
    await run(old_redis, admin_settings)
    bf = data.black_friday
    one = {"url": URL, "campaign_id": bf, "recipient": "+34600000001"}
    resp = await admin.post("/api/links", json=one)
    assert resp.status == 200, await resp.text()  # the existing link, unchanged
    assert (await resp.json())["code"] == "Rcp0001"
    resp = await admin.post("/api/links", json={"url": URL, "recipient": "+34600000009"})
    assert (resp.status, (await resp.json())["code"]) == (200, "Solo001")
    recipients = ["+34600000002", "José Núñez", "+34600000006", "+34600000007", "+34600000001"]
    body = {"campaign_id": bf, "url": URL, "links": [{"recipient": r} for r in recipients]}
    resp = await admin.post("/api/links/batch", json=body)
    assert resp.status == 201, await resp.text()
    codes = [link["code"] for link in (await resp.json())["links"]]
    assert codes[:2] == ["Rcp0002", "Rcp0003"]
    assert codes[4] == "Rcp0001"
    # The recipient whose link was deleted, and a new one, get new links (and count).
    assert "Gone001" not in codes[2:4] and len(set(codes)) == 5
    assert (await get_json(admin, f"/api/campaigns/{bf}"))["links"] == 4 + 2
    body = {"campaign_id": data.welcome, "url": URL, "links": [{"recipient": "+34600000001"}]}
    resp = await admin.post("/api/links/batch", json=body)
    assert [link["code"] for link in (await resp.json())["links"]] == ["Wel0001"]
    # Once the old link is deleted, the recipient gets a new one.
    assert (await admin.delete("/api/links/Rcp0001")).status == 204
    resp = await admin.post("/api/links", json=one)
    assert resp.status == 201 and (await resp.json())["code"] != "Rcp0001"


async def test_a_second_run_changes_nothing(
    old_redis: Redis, admin_settings: AdminSettings
) -> None:
    await write_old_data(OldStore(old_redis), int(time.time()))
    await run(old_redis, admin_settings)
    first = await snapshot(old_redis)
    tally = await run(old_redis, admin_settings)
    assert await snapshot(old_redis) == first
    assert (tally.links_already, tally.aliases_already) == (10, 5)
    assert (tally.links_written, tally.aliases_written, tally.click_keys_moved) == (0, 0, 0)
    await run(old_redis, admin_settings, delete_old=True)
    after_delete = await snapshot(old_redis)
    assert not any(_is_old(name) for name in after_delete)
    assert {k: v for k, v in first.items() if not _is_old(k)} == after_delete
    await run(old_redis, admin_settings, delete_old=True)
    assert await snapshot(old_redis) == after_delete


class Interrupted(Exception):
    """Stands for the process dying."""


def stopping_after(chunks: int) -> Callable[[str, Tally, bool], None]:
    """A progress callback that 'dies' once `chunks` chunks are done."""
    calls = 0

    def stop(phase: str, tally: Tally, done: bool) -> None:
        nonlocal calls
        calls += 1
        if calls > chunks:
            raise Interrupted(phase)

    return stop


@pytest.mark.parametrize("delete_old", [False, True])
async def test_a_run_stopped_anywhere_is_finished_by_the_next(
    old_redis: Redis,
    admin_settings: AdminSettings,
    aiohttp_client: AiohttpClient,
    delete_old: bool,
) -> None:
    """Stopped after each chunk in turn (2 entries a chunk: many chunks), until a run is not
    stopped: meanwhile every live old link has its old or its new record, and the next run
    ends as an uninterrupted one."""
    options: dict[str, Any] = {"delete_old": delete_old, "scan_count": 2, "chunk": 2}
    stops = 0
    while True:
        await old_redis.flushdb()
        data = await write_old_data(OldStore(old_redis), int(time.time()))
        try:
            await run(old_redis, admin_settings, progress=stopping_after(stops), **options)
        except Interrupted:
            stops += 1
        else:
            break  # SCAN's chunks vary a little from one store to the next: it ends here
        for code in data.links:
            old = await old_redis.hget(legacy_layout.link_key(code), code)
            new = await old_redis.hget(keys.link_key(code), code)
            assert old is not None or new is not None, (stops, code)
        tally = await run(old_redis, admin_settings, **options)
        assert tally.problem_count == 0 and tally.count_differences == []
        # A new admin each time: it reads the code key of this round's data.
        admin = await aiohttp_client(create_admin(admin_settings), headers=AUTH)
        await check_migrated(admin, data)
        await admin.close()
    assert stops > 20


async def test_clicks_recorded_in_the_old_layout_after_a_run_are_added_by_the_next(
    old_redis: Redis, admin: Client, admin_settings: AdminSettings
) -> None:
    """An old redirector still running after the migration: its clicks land in old keys, and
    the next run adds them to the new ones (counters summed, visitors and clickers merged,
    events appended)."""
    old = OldStore(old_redis)
    data = await write_old_data(old, int(time.time()))
    await run(old_redis, admin_settings, delete_old=True)
    clickers = await get_json(admin, f"/api/campaigns/{data.black_friday}/clickers")
    first_before = {c["recipient"]: c["first_click_at"] for c in clickers["clickers"]}
    ms = (data.now - 60) * 1000
    async with old_redis.pipeline(transaction=False) as pipe:
        old.hit(pipe, "Ab3dE5f", data.links["Ab3dE5f"], ms, visitor="v3")
        old.hit(pipe, "Ab3dE5f", data.links["Ab3dE5f"], ms + 1, visitor="v1")
        old.hit(pipe, "Rcp0001", data.links["Rcp0001"], ms + 2)
        old.hit(pipe, "Rcp0003", data.links["Rcp0003"], ms + 3)
        await pipe.execute()
    migration = Migration(old_redis, admin_settings, delete_old=True)
    assert await migration.old_layout_present()  # click keys are all that is old now
    tally = await migration.run()
    # s/b/u:l and x:- of Ab3dE5f; s/b:l of Rcp0001 and Rcp0003; x, s:c, b:c and k of the campaign
    assert tally.click_keys_moved == 12
    link = await get_json(admin, "/api/links/Ab3dE5f/stats")
    assert (link["clicks"], link["unique_clicks"]) == (4, 3)
    campaign = await get_json(admin, f"/api/campaigns/{data.black_friday}/stats")
    assert (campaign["clicks"], campaign["unique_clicks"]) == (7, 5)
    clickers = await get_json(admin, f"/api/campaigns/{data.black_friday}/clickers")
    first = {c["recipient"]: c["first_click_at"] for c in clickers["clickers"]}
    assert first == first_before | {"José Núñez": first["José Núñez"]}  # the earlier kept
    assert first["José Núñez"] > first["+34600000002"]
    resp = await admin.get(f"/api/campaigns/{data.black_friday}/clicks.csv")
    assert [r.split(",")[1] for r in (await resp.text()).splitlines()[-2:]] == [
        "Rcp0001",
        "Rcp0003",
    ]


async def test_a_code_taken_in_the_new_layout_is_reported_and_kept(
    old_redis: Redis, admin: Client, admin_settings: AdminSettings
) -> None:
    data = await write_old_data(OldStore(old_redis), int(time.time()))
    resp = await admin.post("/api/links", json={"url": URL, "code": "spring-sale"})
    assert resp.status == 201
    lines: list[str] = []
    assert await migrate(admin_settings, delete_old=False, out=lines.append) == 1
    assert any("'spring-sale'" in line for line in lines), lines
    assert (await get_json(admin, "/api/links/spring-sale"))["url"] == URL
    # A link changed since the run that wrote it is no problem, and is not overwritten.
    patch = {"url": "https://shop.example/new"}
    assert (await admin.patch("/api/links/Rcp0002", json=patch)).status == 200
    tally = await run(old_redis, admin_settings, delete_old=True)
    assert (tally.problem_count, tally.links_changed, tally.links_already) == (1, 1, 8)
    assert (await get_json(admin, "/api/links/Rcp0002"))["url"] == "https://shop.example/new"
    # The taken code's old record is kept for a decision; the others are deleted.
    assert await old_redis.hexists(legacy_layout.link_key("spring-sale"), "spring-sale")
    assert not await old_redis.hexists(legacy_layout.link_key("Rcp0002"), "Rcp0002")
    assert data.links["spring-sale"].campaign_id == data.black_friday


async def test_nothing_to_migrate(
    old_redis: Redis, admin: Client, admin_settings: AdminSettings
) -> None:
    lines: list[str] = []
    assert await migrate(admin_settings, delete_old=False, out=lines.append) == 0
    await admin.post("/api/links", json={"url": URL, "recipient": "+34600000001"})
    assert await migrate(admin_settings, delete_old=False, out=lines.append) == 0
    assert lines == ["nothing to migrate: no key of the old layout in this database"] * 2


async def test_the_command_migrates_then_finds_nothing_to_migrate(
    old_redis: Redis, admin_settings: AdminSettings
) -> None:
    await write_old_data(OldStore(old_redis), int(time.time()))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "REDIS_URL": admin_settings.redis_url,
        "ADMIN_API_KEYS": API_KEY,
    }
    command = [sys.executable, "-m", "admin", "migrate", "--delete-old"]
    status, output = await run_command(command, env)
    assert status == 0, output
    assert "links done 10 read, 10 written" in output
    assert "old entries deleted" in output
    assert not any(_is_old(name) for name in await snapshot(old_redis))
    status, output = await run_command(command, env)
    assert (status, output) == (
        0,
        "nothing to migrate: no key of the old layout in this database\n",
    )


async def run_command(command: list[str], env: dict[str, str]) -> tuple[int | None, str]:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, output.decode()


async def test_refuses_a_cluster(
    redis: Store, store_kind: str, admin_settings: AdminSettings
) -> None:
    if store_kind != "cluster":
        pytest.skip("needs the cluster")
    await redis.hset("l:1a2b", "Abc1234", "10|0|||0|0||https://shop.example/")
    for settings in (admin_settings, replace_cluster_flag(admin_settings)):
        lines: list[str] = []
        assert await migrate(settings, delete_old=True, out=lines.append) == 2
        assert lines[0].startswith("refused:")
    assert {name.decode() for name in await redis_keys(redis)} == {"l:1a2b"}  # type: ignore[arg-type]


def replace_cluster_flag(settings: AdminSettings) -> AdminSettings:
    """The same store, with REDIS_CLUSTER left false by mistake."""
    return settings.model_copy(update={"redis_cluster": False})


async def snapshot(redis: Redis) -> dict[str, Any]:
    """Every key and its value."""
    found: dict[str, Any] = {}
    async for raw in redis.scan_iter(count=1000):
        name = as_text(raw)
        kind = as_text(await redis.type(name))
        if kind == "hash":
            found[name] = await redis.hgetall(name)
        elif kind == "zset":
            found[name] = await redis.zrange(name, 0, -1, withscores=True)
        elif kind == "stream":
            found[name] = await redis.xrange(name)
        else:
            found[name] = await redis.get(name)
    return found


def _is_old(name: str) -> bool:
    return "{" not in name and name not in {
        keys.CAMPAIGNS_KEY,
        keys.CAMPAIGN_SEQ_KEY,
        keys.CODE_KEY,
        keys.CLICK_SALT_KEY,
    }
