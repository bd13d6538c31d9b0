"""REDIRECTOR_MISS_LIMIT: an address that asks for too many unknown codes in a minute gets
429 for every code, known ones too, until its minute is over; other addresses are served."""

from __future__ import annotations

import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from redirector.app import create_app
from redirector.appkeys import invalidation_ready_key
from redirector.misslimit import MissLimiter
from redirector.settings import Settings
from redirector.store.keys import link_key
from redirector.store.record import Link, encode
from tests.conftest import Client, redirector_client
from tests.prometheus import metric_value, scrape

LIMIT = 3
GUESSER = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}
SOMEONE_ELSE = {"X-Forwarded-For": "198.51.100.1"}


@pytest.fixture
def redirector_settings(redirector_settings: Settings) -> Settings:
    # Client addresses from X-Forwarded-For, so that one test is several clients.
    update = {"miss_limit": LIMIT, "trust_forwarded_for": True, "click_tracking": False}
    return redirector_settings.model_copy(update=update)


async def _status(client: Client, code: str, headers: dict[str, str]) -> int:
    return (await client.get(f"/{code}", headers=headers, allow_redirects=False)).status


async def test_past_the_limit_every_code_is_429_for_that_address_only(
    redirector: Client, redis: Redis
) -> None:
    await redis.hset(link_key("known01"), "known01", encode(Link("https://a.example/", 1)))
    assert await _status(redirector, "known01", GUESSER) == 302
    for guess in range(LIMIT):
        assert await _status(redirector, f"guess{guess:02}", GUESSER) == 404
    resp = await redirector.get("/known01", headers=GUESSER, allow_redirects=False)
    assert resp.status == 429  # a known code too: else the guesser would learn it exists
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert resp.headers["Cache-Control"] == "private, max-age=0"
    assert await _status(redirector, "guess99", GUESSER) == 429
    assert await _status(redirector, "known01", SOMEONE_ELSE) == 302
    assert await _status(redirector, "guess99", SOMEONE_ELSE) == 404
    assert metric_value(await scrape(redirector), 'smslinks_redirects_total{status="429"}') >= 2


async def test_no_limit_when_it_is_0(
    aiohttp_client: AiohttpClient, redirector_settings: Settings, redis: Redis
) -> None:
    app = create_app(redirector_settings.model_copy(update={"miss_limit": 0}))
    client = await redirector_client(aiohttp_client, app)
    await app[invalidation_ready_key].wait()
    for guess in range(LIMIT * 3):
        assert await _status(client, f"guess{guess:02}", GUESSER) == 404


def test_an_address_may_ask_again_when_its_window_ends() -> None:
    limiter = MissLimiter(2, window=60.0)
    limiter.miss("a", 100.0)
    assert limiter.wait("a", 101.0) == 0.0  # under the limit
    limiter.miss("a", 110.0)
    assert limiter.wait("a", 130.0) == 30.0  # until its window, started at 100, ends
    assert limiter.wait("b", 130.0) == 0.0
    assert limiter.wait("a", 160.0) == 0.0
    assert not limiter.blocked  # forgotten
    limiter.miss("a", 161.0)  # a new window: one miss in it
    assert limiter.wait("a", 162.0) == 0.0


def test_the_addresses_counted_are_bounded_oldest_window_first() -> None:
    limiter = MissLimiter(2, window=60.0, max_addresses=2)
    limiter.miss("a", 0.0)
    limiter.miss("b", 1.0)
    limiter.miss("c", 2.0)  # forgets a's window
    limiter.miss("a", 3.0)  # so this is a's first miss again
    assert limiter.wait("a", 4.0) == 0.0
    limiter.miss("c", 5.0)
    assert limiter.wait("c", 6.0) == 56.0
    for address in ("d", "e", "f"):  # the blocked are bounded as well
        limiter.miss(address, 7.0)
        limiter.miss(address, 7.0)
    assert len(limiter.blocked) == 2


async def test_an_ipv6_guesser_is_counted_by_its_64_bit_prefix(redirector: Client) -> None:
    """An IPv6 host holds a /64 (2**64 addresses): counted per address, it could give each
    guess an address of its own and never be limited."""
    for guess in range(LIMIT):
        headers = {"X-Forwarded-For": f"2001:db8:1:2::{guess + 1:x}"}
        assert await _status(redirector, f"guess{guess:02}", headers) == 404
    for address in ("2001:db8:1:2:ffff::9", "2001:DB8:1:2::1"):
        assert await _status(redirector, "guess99", {"X-Forwarded-For": address}) == 429
    assert await _status(redirector, "guess99", {"X-Forwarded-For": "2001:db8:1:3::1"}) == 404


def test_addresses_are_counted_by_prefix_only_for_ipv6() -> None:
    limiter = MissLimiter(2, window=60.0)
    limiter.miss("2001:db8::1", 0.0)
    limiter.miss("2001:db8::2", 1.0)
    assert limiter.wait("2001:db8:0:0:1::", 2.0) == 58.0
    assert limiter.wait("2001:db8:0:1::1", 2.0) == 0.0
    for address in ("::ffff:192.0.2.1", "192.0.2.1"):  # the mapped form is the IPv4 address
        limiter.miss(address, 3.0)
    assert limiter.wait("192.0.2.1", 4.0) == 59.0
    assert limiter.wait("192.0.2.2", 4.0) == 0.0
    for junk in ("", "not an address", "::zz", "1.2.3.4.5"):  # as given: counted as themselves
        limiter.miss(junk, 5.0)
        limiter.miss(junk, 5.0)
        assert limiter.wait(junk, 6.0) == 59.0
