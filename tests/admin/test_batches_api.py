"""Batches of links through the admin API over a real Redis: order, recipients, all or nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from admin import codes, models, responses
from admin.appkeys import campaigns_key, links_key, settings_key
from admin.models import MAX_BATCH
from admin.service.campaigns import Campaign
from admin.tagging import normalize_url
from redirector.store import keys
from redirector.store.keys import campaign_key
from tests.admin.helpers import (
    URL,
    create_campaign,
    create_link,
    expect_error,
    redis_keys,
)
from tests.conftest import Client, schema_errors


async def test_batch_in_request_order_and_idempotent_per_recipient(
    admin: Client, redis: Redis
) -> None:
    c = await create_campaign(admin)
    items = [{"url": f"{URL}/{i}", "recipient": f"+3460000{i:04d}"} for i in range(50)]
    items.append({"url": URL + "/anon"})
    resp = await admin.post("/api/links/batch", json={"campaign_id": c["id"], "links": items})
    assert resp.status == 201
    body = await resp.json()
    assert schema_errors(body, "LinkBatch") == []
    links = body["links"]
    assert [x["url"] for x in links] == [i["url"] for i in items]
    assert len({x["code"] for x in links}) == 51
    assert all(x["campaign_id"] == c["id"] for x in links)
    assert links[3]["recipient"] == "+34600000003"
    assert (
        links[3]["destination"]
        == f"{URL}/3?utm_source=instasent&utm_medium=sms&utm_campaign=Spring"
    )

    # Sending the recipients again returns their codes; only the anonymous item is new.
    resp = await admin.post("/api/links/batch", json={"campaign_id": c["id"], "links": items})
    again = (await resp.json())["links"]
    assert [x["code"] for x in again[:50]] == [x["code"] for x in links[:50]]
    assert again[50]["code"] != links[50]["code"]
    campaign = await (await admin.get(f"/api/campaigns/{c['id']}")).json()
    assert campaign["links"] == 52

    # The same recipient in another campaign is another link.
    other = await create_campaign(admin, name="Other")
    resp = await admin.post(
        "/api/links/batch", json={"campaign_id": other["id"], "links": items[:1]}
    )
    assert (await resp.json())["links"][0]["code"] != links[0]["code"]


@pytest.mark.parametrize("own_items", [False, True])  # recipients alone, or items of the model
async def test_a_batch_answers_each_link_as_it_is_stored(admin: Client, own_items: bool) -> None:
    """The answer, byte for byte, is each link rendered on its own from what Redis holds."""
    c = await create_campaign(admin)
    before = await create_link(admin, campaign_id=c["id"], recipient="+34600000001")
    recipients = ["+34600000001", 'Zoë "Z" \\ ☎', *(f"+3460000{i:04d}" for i in range(2, 30))]
    items: list[Any] = [{"recipient": r} for r in [*recipients, recipients[5]]]
    if own_items:
        items += [
            {"url": URL + "/own", "recipient": "+34700000000"},
            {"code": "promo-1", "expires_at": "2099-01-01T00:00:00Z"},
            {},
        ]
    body = {"campaign_id": c["id"], "url": URL + "?x=%20y", "links": items}
    resp = await admin.post("/api/links/batch", json=body)
    assert resp.status == 201, await resp.text()
    answer = await resp.read()
    codes = [link["code"] for link in orjson.loads(answer)["links"]]
    assert codes[0] == before["code"] and codes[5] == codes[len(recipients)]
    service, settings = admin.app[links_key], admin.app[settings_key]
    stored = [
        responses.link(c, await service.get_link(c, "default"), settings.short_url(c))
        for c in codes
    ]
    assert answer == orjson.dumps({"links": stored})


async def test_same_recipient_twice_in_one_batch_gets_one_link(admin: Client) -> None:
    items = [{"url": URL, "recipient": "r1"}, {"url": URL, "recipient": "r1"}]
    resp = await admin.post("/api/links/batch", json={"links": items})
    links = (await resp.json())["links"]
    assert links[0]["code"] == links[1]["code"]


async def test_single_create_returns_existing_recipient_link_with_200(admin: Client) -> None:
    c = await create_campaign(admin)
    body = {"url": URL, "campaign_id": c["id"], "recipient": "+34600000001"}
    first = await admin.post("/api/links", json=body)
    second = await admin.post("/api/links", json=body | {"url": URL + "/other"})
    assert (first.status, second.status) == (201, 200)
    assert (await first.json()) == (await second.json())


async def test_batch_validation_reports_every_bad_index_and_writes_nothing(
    admin: Client, redis: Redis
) -> None:
    c = await create_campaign(admin)
    before = await redis_keys(redis)
    items = [
        {"url": URL},
        {"url": "ftp://x"},
        {"url": URL, "code": "x"},
        {"url": URL},
        {"url": URL, "expires_at": "yesterday"},
    ]
    resp = await admin.post("/api/links/batch", json={"campaign_id": c["id"], "links": items})
    error = await expect_error(resp, 422, "validation_failed")
    assert sorted(f["index"] for f in error["fields"]) == [1, 2, 4]
    assert {f["field"] for f in error["fields"]} == {
        "links[1].url",
        "links[2].code",
        "links[4].expires_at",
    }
    assert await redis_keys(redis) == before


async def test_batch_custom_code_taken_writes_nothing(admin: Client, redis: Redis) -> None:
    await admin.post("/api/links", json={"url": URL, "code": "taken"})
    before = await redis_keys(redis)
    count_before = await redis.hlen(next(k for k in before if k.startswith(b"l:")))
    items = [{"url": URL + "/a"}, {"url": URL + "/b", "code": "taken"}]
    error = await expect_error(
        await admin.post("/api/links/batch", json={"links": items}), 409, "code_taken"
    )
    assert error["index"] == 1
    assert await redis_keys(redis) == before
    assert await redis.hlen(next(k for k in before if k.startswith(b"l:"))) == count_before


@pytest.mark.parametrize("at", [0, 2])  # last: the items before it were written, and undone
async def test_batch_whose_drawn_code_is_taken_draws_again_and_writes_once(
    admin: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch, at: int
) -> None:
    c = await create_campaign(admin)
    taken = await create_link(admin, code="Taken01")  # as long as a drawn code (CODE_LENGTH 7)
    real_draw, draws = codes.draw, []

    def draw(count: int, length: int) -> list[str]:
        draws.append(count)
        drawn = real_draw(count, length)
        if len(draws) == 1:
            drawn[at] = "Taken01"
        return drawn

    monkeypatch.setattr(codes, "draw", draw)
    items = [{"url": f"{URL}/{i}"} for i in range(3)]  # no recipient: drawn codes
    resp = await admin.post("/api/links/batch", json={"campaign_id": c["id"], "links": items})
    assert resp.status == 201, await resp.text()
    links = (await resp.json())["links"]
    assert draws == [3, 1]  # the script found Taken01 in use; only that item drew again
    assert "Taken01" not in [x["code"] for x in links] and len({x["code"] for x in links}) == 3
    for link, item in zip(links, items, strict=True):
        assert (await (await admin.get(f"/api/links/{link['code']}")).json())["url"] == item["url"]
    assert await (await admin.get("/api/links/Taken01")).json() == taken
    # Written once: four links in all, the campaign counts three.
    assert sum([await redis.hlen(k) async for k in redis.scan_iter("l:*")]) == 4
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 3


def _first_code_of_r1(monkeypatch: pytest.MonkeyPatch, code: str) -> Any:
    """Recipient r1's chain starts with `code`; every other code is derived as always.
    Returns the real `codes.derive`."""
    real_derive = codes.derive

    def derive(key: bytes, campaign: int | None, recipient: str, at: int, length: int) -> Any:
        first = (recipient, at) == ("r1", 0)
        return (0, code) if first else real_derive(key, campaign, recipient, at, length)

    def first_codes(key: bytes, campaign: int | None, recipients: list[str], length: int) -> Any:
        return [derive(key, campaign, recipient, 0, length) for recipient in recipients]

    monkeypatch.setattr(codes, "derive", derive)
    monkeypatch.setattr(codes, "first_codes", first_codes)  # derive at 0, for each recipient
    return real_derive


@pytest.mark.parametrize("custom_first", [False, True])
async def test_a_custom_code_equal_to_a_recipients_derived_code_in_the_batch_wins(
    admin: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch, custom_first: bool
) -> None:
    """A custom code cannot move, a derived one can: the custom link gets it whatever the
    order, the recipient the next code of its chain; never a 409 after a partial write."""
    c = await create_campaign(admin)
    real_derive = _first_code_of_r1(monkeypatch, "Mine001")
    items: list[dict[str, Any]] = [
        {"url": URL, "recipient": "r1"},
        {"url": URL + "/own", "code": "Mine001"},
    ]
    items = items[::-1] if custom_first else items
    resp = await admin.post("/api/links/batch", json={"campaign_id": c["id"], "links": items})
    assert resp.status == 201, await resp.text()
    links = {x["recipient"]: x for x in (await resp.json())["links"]}
    assert links[None]["code"] == "Mine001" and links[None]["url"] == URL + "/own"
    key = await redis.get(keys.CODE_KEY)
    assert isinstance(key, bytes)
    assert links["r1"]["code"] == real_derive(key, c["id"], "r1", 1, 7)[1]
    assert sum([await redis.hlen(k) async for k in redis.scan_iter("l:*")]) == 2
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 2


async def test_a_recipient_whose_code_is_taken_gets_the_next_of_its_chain(
    admin: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = await create_campaign(admin)
    taken = await create_link(admin, code="Taken01")
    real_derive = _first_code_of_r1(monkeypatch, "Taken01")  # r1's first code is the one taken
    items = [{"url": URL, "recipient": f"r{i}"} for i in range(3)]
    answers = []
    for _ in range(2):  # and again: the same links, found along the same chains
        resp = await admin.post("/api/links/batch", json={"campaign_id": c["id"], "links": items})
        assert resp.status == 201, await resp.text()
        answers.append([x["code"] for x in (await resp.json())["links"]])
    key = await redis.get(keys.CODE_KEY)
    assert isinstance(key, bytes)
    assert answers[0] == answers[1]
    assert answers[0][1] == real_derive(key, c["id"], "r1", 1, 7)[1]
    assert await (await admin.get("/api/links/Taken01")).json() == taken
    assert sum([await redis.hlen(k) async for k in redis.scan_iter("l:*")]) == 4
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 3


async def test_campaign_gone_before_the_write_is_422_and_writes_nothing(
    admin: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = await create_campaign(admin)
    campaigns = admin.app[campaigns_key]
    read = campaigns.get_campaign

    async def read_then_vanish(
        campaign_id: int, workspace: str | None, **options: bool
    ) -> Campaign:
        campaign = await read(campaign_id, workspace, **options)
        await redis.delete(campaign_key(campaign_id))  # as if deleted meanwhile
        return campaign

    monkeypatch.setattr(campaigns, "get_campaign", read_then_vanish)
    body = {"campaign_id": c["id"], "links": [{"url": URL}]}
    error = await expect_error(
        await admin.post("/api/links/batch", json=body), 422, "validation_failed"
    )
    message = f"no campaign with id {c['id']}"
    assert error["fields"] == [{"field": "campaign_id", "message": message}]
    assert not [k async for k in redis.scan_iter("l:*")]


@pytest.mark.parametrize("by_slot", [False, True])
async def test_a_recipient_given_a_link_after_a_custom_code_was_checked_keeps_one_link(
    admin: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch, by_slot: bool
) -> None:
    """A: {code, recipient} checks the recipient's chain; B: {recipient} writes there; A writes."""
    c = await create_campaign(admin)
    store = admin.app[links_key].store
    monkeypatch.setattr(store, "by_slot", store.by_slot or by_slot)
    walk, meanwhile = store.recipient_links, []

    async def walk_then_b(*args: Any) -> dict[str, tuple[str | None, int]]:
        found = await walk(*args)
        monkeypatch.setattr(store, "recipient_links", walk)
        meanwhile.append(await create_link(admin, campaign_id=c["id"], recipient="r1"))
        return found

    monkeypatch.setattr(store, "recipient_links", walk_then_b)
    body = {"url": URL, "code": "mine-01", "campaign_id": c["id"], "recipient": "r1"}
    resp = await admin.post("/api/links", json=body)
    assert resp.status == 200  # B's link, not a second one
    assert (await resp.json())["code"] == meanwhile[0]["code"]
    assert await redis.hget(keys.link_key("mine-01"), "mine-01") is None
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == 1


async def test_batch_same_custom_code_twice_is_409(admin: Client, redis: Redis) -> None:
    items = [{"url": URL, "code": "twice"}, {"url": URL, "code": "twice"}]
    error = await expect_error(
        await admin.post("/api/links/batch", json={"links": items}), 409, "code_taken"
    )
    assert error["index"] == 1
    assert await redis_keys(redis) == set()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"links": []}, "links"),
        ({}, "links"),
        ({"links": [{"url": URL}] * (MAX_BATCH + 1)}, "links"),
        ({"links": [{"url": URL, "campaign_id": 1}]}, "links[0].campaign_id"),
        ({"campaign_id": 77, "links": [{"url": URL}]}, "campaign_id"),
    ],
)
async def test_batch_shape_errors(
    admin: Client, redis: Redis, body: dict[str, Any], field: str
) -> None:
    resp = await admin.post("/api/links/batch", json=body)
    error = await expect_error(resp, 422, "validation_failed")
    assert field in [f["field"] for f in error["fields"]]
    assert await redis_keys(redis) == set()


async def test_full_batch_of_10000(admin: Client, redis: Redis) -> None:
    c = await create_campaign(admin)
    items = [{"url": f"{URL}?i={i}", "recipient": str(i)} for i in range(MAX_BATCH)]
    resp = await admin.post("/api/links/batch", json={"campaign_id": c["id"], "links": items})
    assert resp.status == 201
    links = (await resp.json())["links"]
    assert len({x["code"] for x in links}) == MAX_BATCH
    assert (await (await admin.get(f"/api/campaigns/{c['id']}")).json())["links"] == MAX_BATCH


# -- a URL for the whole batch -------------------------------------------------------------


async def test_a_batch_url_serves_every_item_without_one(admin: Client) -> None:
    c = await create_campaign(admin)
    own = URL + "/own"
    items = [{"recipient": "r1"}, {"recipient": "r2", "url": own}, {}]
    resp = await admin.post(
        "/api/links/batch", json={"campaign_id": c["id"], "url": URL, "tag": False, "links": items}
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert schema_errors(body, "LinkBatch") == []
    assert [x["url"] for x in body["links"]] == [URL, own, URL]  # an item's own url wins
    assert [x["destination"] for x in body["links"]] == [URL, own, URL]
    assert [x["recipient"] for x in body["links"]] == ["r1", "r2", None]


async def test_an_item_without_url_in_a_batch_without_one_is_422(
    admin: Client, redis: Redis
) -> None:
    items = [{"url": URL}, {"recipient": "r1"}, {}]
    error = await expect_error(
        await admin.post("/api/links/batch", json={"links": items}), 422, "validation_failed"
    )
    assert [(f["field"], f["index"]) for f in error["fields"]] == [
        ("links[1].url", 1),
        ("links[2].url", 2),
    ]
    assert await redis_keys(redis) == set()
    resp = await admin.post("/api/links/batch", json={"url": "ftp://x", "links": [{}]})
    error = await expect_error(resp, 422, "validation_failed")
    assert [f["field"] for f in error["fields"]] == ["url"]


async def test_each_distinct_url_is_validated_once_per_request(
    admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []

    def counting(url: str, **rules: Any) -> str:
        checked.append(url)
        return normalize_url(url, **rules)

    monkeypatch.setattr(models, "normalize_url", counting)
    items = [{"url": URL if i % 2 else URL + "/b"} for i in range(2_000)] + [{}, {"url": "x:y"}]
    items += [{"url": "x:y"}]
    error = await expect_error(
        await admin.post("/api/links/batch", json={"url": URL, "links": items}),
        422,
        "validation_failed",
    )
    assert sorted(checked) == sorted([URL, URL + "/b", "x:y"])
    assert [f["index"] for f in error["fields"]] == [2_001, 2_002]
