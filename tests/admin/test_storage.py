"""The storage layout through the admin API over a real Redis: destinations stored once,
derived per-recipient codes (stable across retries and partial failures), tombstones,
custom codes retried, version 1 records, and one slot per script call."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from admin.app import create_app as create_admin
from admin.appkeys import links_key
from admin.appkeys import redis_key as admin_redis_key
from admin.service import as_text
from admin.service.plan import PlannedLink
from admin.service.store import MAX_CHAIN, LinkStore
from admin.settings import AdminSettings
from redirector.appkeys import redis_key as redirector_redis_key
from redirector.store import scripts
from redirector.store.connection import run_replicated
from redirector.store.counts import SUM_LINK_COUNTS
from redirector.store.keys import campaign_key, destinations_key, link_key
from redirector.store.record import Record, decode
from redirector.store.scripts import CreateOutcome
from tests.admin.helpers import (
    URL,
    create_campaign,
    create_link,
    expect_error,
    stats_once_flushed,
    tap,
)
from tests.conftest import AUTH, Client
from tests.user_agents import IPHONE


async def _records(redis: Redis) -> dict[str, Record]:
    """Every record in the store, by code."""
    found = {}
    async for key in redis.scan_iter("l:*"):
        for code, raw in (await redis.hgetall(key)).items():
            found[as_text(code)] = decode(raw)
    return found


async def _batch(admin: Client, body: dict[str, Any], status: int = 201) -> list[dict[str, Any]]:
    resp = await admin.post("/api/links/batch", json=body)
    assert resp.status == status, await resp.text()
    links: list[dict[str, Any]] = (await resp.json())["links"]
    return links


async def test_a_destination_is_stored_once_per_campaign(admin: Client, redis: Redis) -> None:
    c = await create_campaign(admin)
    recipients = [{"recipient": f"+3460{i:08d}"} for i in range(1_000)]
    links = await _batch(admin, {"campaign_id": c["id"], "url": URL, "links": recipients})
    assert {x["destination"] for x in links} == {
        f"{URL}?utm_source=instasent&utm_medium=sms&utm_campaign=Spring"
    }
    await _batch(admin, {"campaign_id": c["id"], "url": URL, "links": [{}, {"url": URL}]})
    stored = [as_text(f) for f in await redis.hgetall(destinations_key(c["id"]))]
    assert [f for f in stored if not f.startswith("#")] == ["1"]
    await _batch(admin, {"campaign_id": c["id"], "links": [{"url": URL + "/other"}]})
    assert await redis.hget(destinations_key(c["id"]), "2") is not None
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 1_003


async def test_past_its_limit_a_campaign_holds_new_urls_inline(
    admin: Client, redirector: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL per recipient (a personal cart) must not grow one shared hash by a destination
    per link: past SHARED_DESTINATIONS_MAX a new URL is held in its link's own record."""
    monkeypatch.setattr(scripts, "SHARED_DESTINATIONS_MAX", 2)
    c = await create_campaign(admin)
    urls = [f"{URL}/cart/{i}" for i in range(4)]
    body = {
        "campaign_id": c["id"],
        "links": [{"url": u, "recipient": f"r{i}"} for i, u in enumerate(urls)],
    }
    links = await _batch(admin, body)
    stored = await redis.hgetall(destinations_key(c["id"]))
    assert sorted(as_text(f) for f in stored if not as_text(f).startswith("#")) == ["1", "2"]
    records = await _records(redis)
    shared = [isinstance(records[x["code"]].destination, str) for x in links]
    assert shared == [True, True, False, False]
    # A shared URL stays shared; another new one is inline too; each link serves its own URL.
    more = await _batch(admin, {"campaign_id": c["id"], "links": [{"url": urls[0]}, {"url": URL}]})
    records = await _records(redis)
    assert [isinstance(records[x["code"]].destination, str) for x in more] == [True, False]
    for link in links + more:
        resp = await redirector.get(f"/{link['code']}", allow_redirects=False)
        assert resp.headers["Location"] == link["destination"]
        assert (await (await admin.get(f"/api/links/{link['code']}")).json()) == link
    # Sent again, the batch answers the same links (the recipients' own, inline or not).
    assert await _batch(admin, body, status=201) == [dict(x) for x in links]


@pytest.fixture
def by_tag(admin: Client, monkeypatch: pytest.MonkeyPatch) -> LinkStore:
    """The admin's link store writing one group per tag, as on a cluster, even on one Redis."""
    store = admin.app[links_key].store
    monkeypatch.setattr(store, "by_slot", True)
    return store


async def test_a_batch_failing_between_two_groups_is_safe_to_retry(
    admin: Client, redis: Redis, by_tag: LinkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = await create_campaign(admin)
    write_group, groups = by_tag.write_group, []

    async def fail_after_the_first(
        campaign_id: int | None, group: list[PlannedLink]
    ) -> CreateOutcome:
        groups.append(group)
        if len(groups) > 1:
            raise RedisConnectionError("lost between two groups")
        return await write_group(campaign_id, group)

    monkeypatch.setattr(by_tag, "write_group", fail_after_the_first)
    body = {
        "campaign_id": c["id"],
        "url": URL,
        "links": [{"recipient": f"r{i}"} for i in range(300)],
    }
    await expect_error(await admin.post("/api/links/batch", json=body), 503, "storage_unavailable")
    assert len(groups) > 100  # 300 links over 256 tags
    written = {r.recipient: code for code, r in (await _records(redis)).items()}
    assert len(written) == len(groups[0]) > 0
    campaign = await (await admin.get(f"/api/campaigns/{c['id']}")).json()
    assert campaign["links"] == len(written)

    monkeypatch.setattr(by_tag, "write_group", write_group)
    links = await _batch(admin, body)
    codes = {x["recipient"]: x["code"] for x in links}
    assert {r: codes[r] for r in written} == written  # the same links, not second ones
    assert len(await _records(redis)) == 300 == len(set(codes.values()))
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 300
    again = await _batch(admin, body)
    assert [x["code"] for x in again] == [x["code"] for x in links]
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 300


async def test_a_deleted_recipient_link_stays_gone_and_the_recipient_gets_a_new_code(
    admin: Client, redirector: Client, redis: Redis
) -> None:
    c = await create_campaign(admin)
    first = await create_link(admin, campaign_id=c["id"], recipient="r1")
    assert (await admin.delete(f"/api/links/{first['code']}")).status == 204
    await expect_error(await admin.get(f"/api/links/{first['code']}"), 404, "link_not_found")
    await expect_error(await admin.delete(f"/api/links/{first['code']}"), 404, "link_not_found")
    await expect_error(
        await admin.patch(f"/api/links/{first['code']}", json={"disabled": True}),
        404,
        "link_not_found",
    )
    second = await create_link(admin, campaign_id=c["id"], recipient="r1")
    assert second["code"] != first["code"]
    resp = await admin.post(
        "/api/links", json={"url": URL, "campaign_id": c["id"], "recipient": "r1"}
    )
    assert resp.status == 200 and (await resp.json())["code"] == second["code"]
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 1
    # The tombstone keeps the code: it never redirects again.
    assert (await redirector.get(f"/{first['code']}", allow_redirects=False)).status == 404
    await tap(redirector, second["code"], IPHONE)
    assert len(await _records(redis)) == 2


async def test_a_recipient_chain_used_up_is_a_clear_409_and_clickers_still_list_them(
    admin: Client, redirector: Client
) -> None:
    c = await create_campaign(admin)
    first = await create_link(admin, campaign_id=c["id"], recipient="r1")
    await tap(redirector, first["code"], IPHONE)
    await stats_once_flushed(admin, f"/api/campaigns/{c['id']}/stats", clicks=1, bot_hits=0)
    assert (await admin.delete(f"/api/links/{first['code']}")).status == 204
    for _ in range(MAX_CHAIN - 1):
        again = await create_link(admin, campaign_id=c["id"], recipient="r1")
        assert (await admin.delete(f"/api/links/{again['code']}")).status == 204
    for extra in ({}, {"code": "mine-r1"}):
        body = {"url": URL, "campaign_id": c["id"], "recipient": "r1", **extra}
        resp = await admin.post("/api/links", json=body)
        error = await expect_error(resp, 409, "conflict")
        assert f"limit of {MAX_CHAIN} codes" in error["message"]
    resp = await admin.get(f"/api/campaigns/{c['id']}/clickers")
    assert resp.status == 200
    assert [(x["recipient"], x["code"]) for x in (await resp.json())["clickers"]] == [("r1", None)]


@pytest.mark.parametrize("by_slot", [False, True])
async def test_a_batch_that_ends_in_a_409_after_writing_takes_its_links_back(
    admin: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch, by_slot: bool
) -> None:
    """r1's chain is used up, which the write finds only past the first round, after the
    other items were written: the 409 leaves the store as it found it."""
    store = admin.app[links_key].store
    monkeypatch.setattr(store, "by_slot", store.by_slot or by_slot)
    c = await create_campaign(admin)
    for _ in range(MAX_CHAIN):
        gone = await create_link(admin, campaign_id=c["id"], recipient="r1")
        assert (await admin.delete(f"/api/links/{gone['code']}")).status == 204
    before = await _records(redis)
    items = [{"recipient": "r1"}, {"recipient": "r2"}, {}, {"code": "mine-1"}]
    resp = await admin.post(
        "/api/links/batch", json={"campaign_id": c["id"], "url": URL, "links": items}
    )
    error = await expect_error(resp, 409, "conflict")
    assert f"limit of {MAX_CHAIN} codes" in error["message"]
    assert await _records(redis) == before
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 0


async def test_recipients_keep_their_codes_when_code_length_changes(
    admin: Client, aiohttp_client: AiohttpClient, admin_settings: AdminSettings, redis: Redis
) -> None:
    old = await create_campaign(admin)
    await redis.hdel(campaign_key(old["id"]), "code_length")  # made before lengths were kept
    before = [
        await create_link(admin, campaign_id=old["id"], recipient="r1"),
        await create_link(admin, recipient="r1"),
    ]
    longer = admin_settings.model_copy(update={"code_length": 9})
    admin9 = await aiohttp_client(create_admin(longer), headers=AUTH)
    for link in before:
        body = {"url": URL, "campaign_id": link["campaign_id"], "recipient": "r1"}
        resp = await admin9.post("/api/links", json=body)
        assert resp.status == 200 and (await resp.json())["code"] == link["code"]
    fresh = await create_link(admin9, campaign_id=old["id"], recipient="r2")
    assert len(fresh["code"]) == len(before[0]["code"]) == 7
    assert await redis.hget(campaign_key(old["id"]), "code_length") == b"7"


async def test_a_custom_code_retried_is_the_same_link(admin: Client, redis: Redis) -> None:
    c = await create_campaign(admin)
    for body in (
        {"url": URL, "code": "mine-01"},
        {"url": URL, "code": "mine-02", "campaign_id": c["id"], "recipient": "r1"},
        {
            "url": URL,
            "code": "mine-03",
            "campaign_id": c["id"],
            "expires_at": "2099-01-01T00:00:00Z",
        },
    ):
        first = await admin.post("/api/links", json=body)
        again = await admin.post("/api/links", json=body)
        assert (first.status, again.status) == (201, 200)
        assert await first.json() == await again.json()
    # Three links, and the alias that finds mine-02 as r1's link: written once.
    assert len(await _records(redis)) == 4
    items = [{"code": "mine-01"}, {"code": "mine-04"}]
    links = await _batch(admin, {"url": URL, "links": items})
    assert [x["code"] for x in links] == ["mine-01", "mine-04"]
    # The recipient with a custom link is found again, whatever code the retry names.
    for code in ({}, {"code": "other-05"}):
        body = {"url": URL, "campaign_id": c["id"], "recipient": "r1", **code}
        resp = await admin.post("/api/links", json=body)
        assert resp.status == 200 and (await resp.json())["code"] == "mine-02"
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 2


@pytest.mark.parametrize("recipient", ["José", "+34 600 000 001", "名前|ñ"])
async def test_any_recipient_finds_its_link_again(
    admin: Client, redis: Redis, recipient: str
) -> None:
    c = await create_campaign(admin)
    for fields in ({"code": "vanity-1"}, {}, {"code": "vanity-2"}):
        body = {"url": URL, "campaign_id": c["id"], "recipient": recipient, **fields}
        resp = await admin.post("/api/links", json=body)
        assert (await resp.json())["code"] == "vanity-1", fields
    personal = await _batch(admin, {"url": URL, "links": [{"recipient": recipient}] * 2})
    again = await _batch(admin, {"url": URL, "links": [{"recipient": recipient}]})
    assert personal[0]["code"] == again[0]["code"] != "vanity-1"  # another campaign: none
    assert len(await _records(redis)) == 3  # the custom link, its alias, the other link


async def test_version_1_records_are_still_served(
    admin: Client, redirector: Client, redis: Redis
) -> None:
    raw = "10|t6dkkw||c|m|d|c|+34600000000https://shop.example/x?utm_source=a"
    await redis.hset(link_key("old-one"), "old-one", raw)
    link = await (await admin.get("/api/links/old-one")).json()
    assert (link["url"], link["recipient"], link["campaign_id"]) == (
        "https://shop.example/x",
        "+34600000000",
        12,
    )
    resp = await redirector.get("/old-one", allow_redirects=False)
    assert resp.headers["Location"] == "https://shop.example/x?utm_source=a"


@pytest.fixture
def one_slot_per_call(
    admin: Client, redirector: Client, monkeypatch: pytest.MonkeyPatch
) -> list[list[bytes]]:
    """Every script call's keys, checked to hash to one slot as Redis Cluster requires."""
    calls: list[list[bytes]] = []
    # The one script that reads keys of many tags, only ever run on one Redis.
    summing = hashlib.sha1(SUM_LINK_COUNTS.encode()).hexdigest()
    for client in (admin.app[admin_redis_key], redirector.app[redirector_redis_key]):
        evalsha = client.evalsha

        async def spy(sha: str, numkeys: int, *args: Any, _real: Any = evalsha) -> Any:
            keys = [k if isinstance(k, bytes) else str(k).encode() for k in args[:numkeys]]
            if sha != summing:
                calls.append(keys)
                assert len({key_slot(k) for k in keys}) == 1, keys
            return await _real(sha, numkeys, *args)

        monkeypatch.setattr(client, "evalsha", spy)
    # On a cluster the admin's writes wait for a replica and go by EVAL (run_replicated).

    async def spy_replicated(store: Any, script: Any, keys: Any, *rest: Any) -> Any:
        calls.append([str(key).encode() for key in keys])
        assert len({key_slot(str(key).encode()) for key in keys}) == 1, keys
        return await run_replicated(store, script, keys, *rest)

    monkeypatch.setattr("redirector.store.scripts.run_replicated", spy_replicated)
    return calls


async def test_every_script_call_touches_one_slot(
    admin: Client, redirector: Client, by_tag: LinkStore, one_slot_per_call: list[list[bytes]]
) -> None:
    c = await create_campaign(admin)
    items = [{"recipient": f"r{i}"} for i in range(80)] + [{}, {"code": "vanity", "recipient": "v"}]
    links = await _batch(admin, {"campaign_id": c["id"], "url": URL, "links": items})
    await _batch(admin, {"links": [{"url": URL}, {"url": URL, "recipient": "x"}]})
    await admin.patch(f"/api/links/{links[0]['code']}", json={"url": URL + "/new"})
    await admin.delete(f"/api/links/{links[1]['code']}")
    for link in links[2:6]:
        await tap(redirector, link["code"], IPHONE)
    await stats_once_flushed(admin, f"/api/campaigns/{c['id']}/stats", clicks=4, bot_hits=0)
    assert len(one_slot_per_call) > 50


async def test_call_each_cancelled_closes_the_calls_it_had_not_started() -> None:
    started: list[int] = []
    all_running = asyncio.Event()

    async def call(number: int) -> int:
        started.append(number)
        if len(started) == scripts.CALLS_IN_FLIGHT:
            all_running.set()
        await asyncio.sleep(60)
        return number

    calls = [call(number) for number in range(scripts.CALLS_IN_FLIGHT + 4)]
    task = asyncio.create_task(scripts.call_each(calls))
    await asyncio.wait_for(all_running.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The four waiting for a turn never ran, and were closed: no "never awaited" warning.
    assert len(started) == scripts.CALLS_IN_FLIGHT
    assert {inspect.getcoroutinestate(c) for c in calls} == {inspect.CORO_CLOSED}
