"""The redirector against a real Redis: answers, cache invalidation, and Redis outages."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from redirector import resolver as resolver_module
from redirector.app import create_app
from redirector.appkeys import cache_key, invalidation_ready_key, resolver_key
from redirector.cache import ABSENT
from redirector.settings import Settings
from redirector.store.connection import Store
from redirector.store.keys import destinations_key, link_key
from redirector.store.lookup import LinkReader
from redirector.store.record import (
    Destination,
    Link,
    Record,
    RecordError,
    encode,
    encode_destination,
)
from tests.conftest import Client, redirector_client
from tests.prometheus import growth, scrape
from tests.redis_server import RedisServer
from tests.waiting import eventually

DEST = "https://shop.example/a%20b/c;d?q=x+y&q=%2F&flag&utm_source=instasent#frag"


async def _put(redis: Redis, code: str, link: Link) -> None:
    await redis.hset(link_key(code), code, encode(link))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The redirector's reads of Redis (each one round trip: one script call or one pipeline):
    which, and of how many items. The reads themselves go through."""
    seen: list[tuple[str, int]] = []

    def spy(name: str) -> Callable[..., Awaitable[Any]]:
        real = getattr(LinkReader, name)

        async def read(self: LinkReader, items: Sequence[Any]) -> Any:
            seen.append((name, len(items)))
            return await real(self, items)

        return read

    for name in ("records", "destinations"):
        monkeypatch.setattr(LinkReader, name, spy(name))
    return seen


async def test_location_is_the_stored_bytes(redirector: Client, redis: Redis) -> None:
    await _put(redis, "exact01", Link(DEST, created_at=1))
    for method in ("GET", "HEAD"):
        resp = await redirector.request(method, "/exact01", allow_redirects=False)
        assert resp.status == 302
        assert resp.headers["Location"] == DEST
        assert resp.headers["Cache-Control"] == "private, max-age=0"
        assert await resp.read() == b""


@pytest.mark.parametrize(
    ("path", "read"),
    [
        ("/unknown1", True),
        ("/a.b", False),
        ("/%F0%9F%8E%89", False),
        ("/" + "x" * 65, False),
        ("/a%2Fb", False),
        ("/a/b", False),
        ("/", False),
    ],
)
async def test_unknown_is_404(
    redirector: Client, reads: list[tuple[str, int]], path: str, read: bool
) -> None:
    resp = await redirector.get(path, allow_redirects=False)
    assert resp.status == 404
    assert resp.content_type == "text/plain"
    assert reads == ([("records", 1)] if read else [])  # junk never reaches Redis


async def test_the_code_is_the_decoded_path_without_query(redirector: Client, redis: Redis) -> None:
    await _put(redis, "exact01", Link(DEST, created_at=1))
    for path in ("/exact01?utm_source=x", "/%65xact01"):
        resp = await redirector.get(path, allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (302, DEST)


@pytest.mark.parametrize("path", ["/exact01", "/healthz", "/metrics"])
async def test_other_methods_are_405(redirector: Client, path: str) -> None:
    for method in ("POST", "PUT", "DELETE"):
        resp = await redirector.request(method, path, allow_redirects=False)
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET,HEAD"
    assert (await redirector.post("/a/b")).status == 404  # no such path, whatever the method


async def test_disabled_and_expired_are_410(redirector: Client, redis: Redis) -> None:
    now = int(time.time())
    await _put(redis, "disabled", Link(DEST, created_at=1, disabled=True))
    await _put(redis, "expired", Link(DEST, created_at=1, expires_at=now - 1))
    await _put(redis, "expiring", Link(DEST, created_at=1, expires_at=now + 3600))
    assert (await redirector.get("/disabled", allow_redirects=False)).status == 410
    assert (await redirector.get("/expired", allow_redirects=False)).status == 410
    assert (await redirector.get("/expiring", allow_redirects=False)).status == 302


async def test_health(redirector: Client) -> None:
    resp = await redirector.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


# -- admin changes reach every redirector process within a second --------------------------


@pytest.fixture
async def two_redirectors(
    aiohttp_client: AiohttpClient, redirector_settings: Settings, redis: Redis
) -> list[Client]:
    """Two independent apps, each with its own cache and subscription, as two processes."""
    clients = []
    for _ in range(2):
        app = create_app(redirector_settings)
        clients.append(await redirector_client(aiohttp_client, app))
        await app[invalidation_ready_key].wait()
    return clients


async def _location(client: Client, code: str) -> tuple[int, str | None]:
    resp = await client.get(f"/{code}", allow_redirects=False)
    return resp.status, resp.headers.get("Location")


async def test_a_scan_of_unknown_codes_evicts_no_cached_link(
    aiohttp_client: AiohttpClient, redirector_settings: Settings, redis: Store
) -> None:
    settings = redirector_settings.model_copy(update={"cache_size": 5, "click_tracking": False})
    app = create_app(settings)
    client = await redirector_client(aiohttp_client, app)
    await app[invalidation_ready_key].wait()
    known = [f"kept{i:03d}" for i in range(5)]
    for code in known:  # the cache full of links
        await redis.hset(link_key(code), code, encode(Link(DEST, created_at=1)))
        assert await _location(client, code) == (302, DEST)
    for i in range(50):  # code-shaped paths, none of them a link
        assert await _location(client, f"scan{i:03d}") == (404, None)
    before = await scrape(client)
    for code in known:
        assert await _location(client, code) == (302, DEST)
    lookups = growth(before, await scrape(client))
    assert lookups('smslinks_cache_lookups_total{result="hit"}') == 5
    assert lookups('smslinks_cache_lookups_total{result="miss"}') == 0


async def test_admin_update_disable_delete_reach_all_caches(
    two_redirectors: list[Client], admin: Client
) -> None:
    resp = await admin.post("/api/links", json={"url": "https://a.example/1", "tag": False})
    code = (await resp.json())["code"]
    for client in two_redirectors:  # now cached in both
        assert await _location(client, code) == (302, "https://a.example/1")

    async def all_see(expected: tuple[int, str | None]) -> bool:
        return all([await _location(c, code) == expected for c in two_redirectors])

    await admin.patch(f"/api/links/{code}", json={"url": "https://a.example/2"})
    await eventually(lambda: all_see((302, "https://a.example/2")), within=1.0)
    await admin.patch(f"/api/links/{code}", json={"disabled": True})
    await eventually(lambda: all_see((410, None)), within=1.0)
    await admin.patch(f"/api/links/{code}", json={"disabled": False})
    await eventually(lambda: all_see((302, "https://a.example/2")), within=1.0)
    await admin.delete(f"/api/links/{code}")
    await eventually(lambda: all_see((404, None)), within=1.0)


async def test_cached_miss_is_dropped_when_the_code_is_created(
    two_redirectors: list[Client], admin: Client
) -> None:
    for client in two_redirectors:
        assert await _location(client, "later-code") == (404, None)
    await admin.post("/api/links", json={"url": "https://a.example/", "code": "later-code"})

    async def all_see() -> bool:
        return all([(await _location(c, "later-code"))[0] == 302 for c in two_redirectors])

    await eventually(all_see, within=1.0)


# -- Redis outages -------------------------------------------------------------------------


async def test_redis_down_gives_503_and_recovers(
    aiohttp_client: AiohttpClient, own_redis: RedisServer
) -> None:
    redis = Redis.from_url(own_redis.url)
    await _put(redis, "survivor", Link(DEST, created_at=1))
    await redis.aclose()
    app = create_app(Settings(redis_url=own_redis.url, redis_timeout=0.2))
    client = await redirector_client(aiohttp_client, app)
    await app[invalidation_ready_key].wait()
    assert (await client.get("/survivor", allow_redirects=False)).status == 302

    own_redis.stop()
    # Cached links keep redirecting while Redis is away; anything else is a 503, not a hang.
    await eventually(lambda: _status_is(client, "/healthz", 503), within=5.0)
    assert await (await client.get("/healthz")).json() == {"status": "unavailable"}
    assert (await client.get("/survivor", allow_redirects=False)).status == 302
    assert (await client.get("/not-cached", allow_redirects=False)).status == 503

    own_redis.start()  # an empty server on the same port: the link is gone, and the cache
    # is dropped on resubscription, so that is seen at once
    await eventually(lambda: _status_is(client, "/survivor", 404), within=5.0)
    assert (await client.get("/healthz")).status == 200


async def _status_is(client: Client, path: str, status: int) -> bool:
    return (await client.get(path, allow_redirects=False)).status == status


async def test_a_miss_costs_one_round_trip_once_its_destination_is_cached(
    redirector: Client, admin: Client, reads: list[tuple[str, int]]
) -> None:
    resp = await admin.post("/api/campaigns", json={"name": "Once"})
    campaign_id = (await resp.json())["id"]
    body = {"campaign_id": campaign_id, "url": "https://a.example/", "links": [{}, {}, {}]}
    resp = await admin.post("/api/links/batch", json=body)
    first, second, third = [link["code"] for link in (await resp.json())["links"]]
    location = "https://a.example/?utm_source=instasent&utm_medium=sms&utm_campaign=Once"
    assert await _location(redirector, first) == (302, location)
    assert reads == [("records", 1), ("destinations", 1)]  # then its campaign's destination
    assert await _location(redirector, second) == (302, location)
    assert reads[2:] == [("records", 1)]  # the record alone: the destination is cached
    # Misses of one tick go together, in one round trip.
    resolver = redirector.app[resolver_key]
    found = await asyncio.gather(resolver.find(third), resolver.find("unknown"))
    assert [link and link.destination for link in found] == [location, None]
    assert reads[3:] == [("records", 2)]


@pytest.fixture
async def masters(redis: Store) -> AsyncIterator[list[Redis]]:
    """A client of each master of the store (the store itself on one Redis)."""
    if isinstance(redis, Redis):
        yield [redis]
        return
    nodes = [Redis(host=node.host, port=int(node.port)) for node in redis.get_primaries()]
    yield nodes
    for node in nodes:
        await node.aclose()


async def _command_calls(masters: list[Redis]) -> Counter[str]:
    """Commands run by the store so far, by name, summed over its masters."""
    calls: Counter[str] = Counter()
    for node in masters:
        for name, stats in (await node.info("commandstats")).items():
            calls[name.removeprefix("cmdstat_")] += stats["calls"]
    return calls


async def test_the_misses_of_one_tick_are_one_command(
    redirector: Client,
    redis: Store,
    masters: list[Redis],
    store_kind: str,
    reads: list[tuple[str, int]],
) -> None:
    codes = [f"tick{i:03d}" for i in range(50)]
    for code in codes:
        await redis.hset(link_key(code), code, encode(Link(DEST, created_at=1)))
    resolver = redirector.app[resolver_key]
    # The script loaded and a connection open to every node, as after the first misses.
    warm = await asyncio.gather(*(resolver.find(f"warm{i:03d}") for i in range(50)))
    assert warm == [None] * 50
    before = await _command_calls(masters)
    found = await asyncio.gather(*(resolver.find(code) for code in codes))
    sent = await _command_calls(masters) - before
    del sent["info"], sent["llen"]  # ours, and the idle click worker's look at its queues
    assert [link and link.destination for link in found] == [DEST] * 50
    assert reads[1:] == [("records", 50)]
    # One script call whose HGETs Redis runs; a cluster gets a pipeline of HGETs (one round
    # trip per node), as a script call there may only read keys of one slot.
    assert sent == ({"evalsha": 1, "hget": 50} if store_kind == "single" else {"hget": 50})


async def test_misses_that_come_while_a_read_is_out_go_together_into_the_next(
    redirector: Client,
    redis: Store,
    reads: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codes = [f"wait{i:03d}" for i in range(11)]
    for code in codes:
        await redis.hset(link_key(code), code, encode(Link(DEST, created_at=1)))
    answer, read = asyncio.Event(), LinkReader.records

    async def slow(self: LinkReader, codes: Sequence[str]) -> Any:
        await answer.wait()  # Redis takes its time
        return await read(self, codes)

    monkeypatch.setattr(LinkReader, "records", slow)
    resolver = redirector.app[resolver_key]
    asked = [asyncio.create_task(resolver.find(codes[0]))]
    await asyncio.sleep(0)  # its request asks: a read starts ...
    await asyncio.sleep(0)  # ... and waits for Redis
    for code in codes[1:]:  # requests of later ticks meanwhile
        asked.append(asyncio.create_task(resolver.find(code)))
        await asyncio.sleep(0)
    answer.set()
    found = await asyncio.gather(*asked)
    assert [link and link.destination for link in found] == [DEST] * 11
    assert reads == [("records", 1), ("records", 10)]


async def test_a_read_takes_at_most_read_batch_codes(
    redirector: Client, reads: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resolver_module, "READ_BATCH", 3)
    resolver = redirector.app[resolver_key]
    found = await asyncio.gather(*(resolver.find(f"many{i:03d}") for i in range(7)))
    assert found == [None] * 7
    assert reads == [("records", 3), ("records", 3), ("records", 1)]


async def test_a_read_after_redis_forgot_its_scripts_still_answers(
    redirector: Client, redis: Store
) -> None:
    for code in ("forgot1", "forgot2"):
        await redis.hset(link_key(code), code, encode(Link(DEST, created_at=1)))
    assert await _location(redirector, "forgot1") == (302, DEST)
    await redis.script_flush()  # as after a restart or a failover
    assert await _location(redirector, "forgot2") == (302, DEST)


async def test_a_lost_destination_fails_only_its_own_code(redirector: Client, redis: Redis) -> None:
    await redis.hset(destinations_key(7), "1", encode_destination(Destination("https://kept/")))
    await redis.hset(link_key("kept001"), "kept001", encode(Record(1, "1", campaign_id=7)))
    await redis.hset(link_key("lost001"), "lost001", encode(Record(1, "2", campaign_id=7)))
    resolver = redirector.app[resolver_key]
    found = await asyncio.gather(
        resolver.find("kept001"), resolver.find("lost001"), return_exceptions=True
    )
    assert isinstance(found[0], Link) and found[0].destination == "https://kept/"
    assert isinstance(found[1], RecordError)
    assert (await redirector.get("/lost001", allow_redirects=False)).status == 500
    assert await _location(redirector, "kept001") == (302, "https://kept/")


async def test_a_read_mixing_links_records_and_tombstones_answers_each_code(
    redirector: Client, redis: Redis
) -> None:
    """One read of plain links (destination cached), a link whose destination is not cached
    yet, a deleted link, a link whose destination is gone and an unknown code: each code gets
    its own answer, and only the answers that are links or unknown are cached."""
    await redis.hset(destinations_key(7), "1", encode_destination(Destination("https://one/")))
    await redis.hset(destinations_key(7), "2", encode_destination(Destination("https://two/")))
    records = {
        "warm001": Record(1, "1", campaign_id=7),
        "warm002": Record(1, "1", campaign_id=7, recipient="+34600000002"),
        "cold001": Record(1, "2", campaign_id=7),
        "gone001": Record(1, "1", campaign_id=7, deleted=True),
        "lost001": Record(1, "3", campaign_id=7),
    }
    for code, record in records.items():
        await redis.hset(link_key(code), code, encode(record))
    resolver = redirector.app[resolver_key]
    assert await _location(redirector, "warm001") == (302, "https://one/")  # caches "1"
    codes = ["warm002", "cold001", "gone001", "lost001", "none001"]
    found = await asyncio.gather(*map(resolver.find, codes), return_exceptions=True)
    warm, cold, gone, lost, unknown = found
    assert isinstance(warm, Link) and (warm.destination, warm.recipient) == (
        "https://one/",
        "+34600000002",
    )
    assert isinstance(cold, Link) and cold.destination == "https://two/"
    assert (gone, unknown) == (None, None)
    assert isinstance(lost, RecordError)
    cache = redirector.app[cache_key]
    assert [cache.get(code, 0.0) for code in codes] == [warm, cold, ABSENT, None, ABSENT]


async def test_destinations_are_read_again_after_redis_comes_back_empty(
    aiohttp_client: AiohttpClient, own_redis: RedisServer
) -> None:
    """After a gap, Redis may have lost its data and given the same ids to other URLs."""
    redis = Redis.from_url(own_redis.url)
    await redis.hset(destinations_key(1), "1", encode_destination(Destination("https://old/")))
    await redis.hset(link_key("first01"), "first01", encode(Record(1, "1", campaign_id=1)))
    app = create_app(Settings(redis_url=own_redis.url, redis_timeout=0.2))
    client = await redirector_client(aiohttp_client, app)
    await app[invalidation_ready_key].wait()
    assert await _location(client, "first01") == (302, "https://old/")

    own_redis.stop()
    own_redis.start()  # empty: campaign 1 and its destination 1 are made anew
    await redis.aclose()
    redis = Redis.from_url(own_redis.url)
    await redis.hset(destinations_key(1), "1", encode_destination(Destination("https://new/")))
    await redis.hset(link_key("second2"), "second2", encode(Record(1, "1", campaign_id=1)))
    await eventually(lambda: _status_is(client, "/first01", 404), within=5.0)
    assert await _location(client, "second2") == (302, "https://new/")
    await redis.aclose()
