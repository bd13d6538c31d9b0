"""Nothing a visitor sends costs more than a bound: the redirect handler cuts the User-Agent,
the Referer and the client address before it queues a hit, and the click worker parses no
more of a User-Agent than that (ua-parser's regexes run over the whole string)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
import ua_parser
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from redirector import useragents
from redirector.app import create_app
from redirector.appkeys import clicks_key, invalidation_ready_key
from redirector.clickbatch import batches
from redirector.clicks import ADDRESS_MAX, REFERER_MAX, USER_AGENT_MAX, Hit, pack_hits
from redirector.settings import Settings
from redirector.store.keys import link_key
from redirector.store.record import Link, encode
from tests.conftest import redirector_client
from tests.user_agents import IPHONE

# 8 KB each, and never seen before (no cache of a classification helps).
HUGE_USER_AGENT = f"{IPHONE} {secrets.token_hex(4000)}"
HUGE_REFERER = f"https://m.facebook.com/{secrets.token_hex(4000)}"


async def test_a_hit_is_queued_with_bounded_headers_and_address(
    aiohttp_client: AiohttpClient, redirector_settings: Settings, redis: Redis
) -> None:
    await redis.hset(link_key("bound01"), "bound01", encode(Link("https://a.example/", 1)))
    # Nothing flushed during the test: the hit stays in the buffer to be looked at.
    update = {"trust_forwarded_for": True, "click_flush_interval": 10.0}
    app = create_app(redirector_settings.model_copy(update=update))
    client = await redirector_client(aiohttp_client, app)
    await app[invalidation_ready_key].wait()
    headers = {
        "User-Agent": HUGE_USER_AGENT,
        "Referer": HUGE_REFERER,
        "X-Forwarded-For": f"{'1' * 8000}, 10.0.0.1",
    }
    resp = await client.get("/bound01", headers=headers, allow_redirects=False)
    assert resp.status == 302
    [raw] = app[clicks_key].hits
    assert type(raw) is tuple  # not a Hit: untracked by the collector once it has seen it
    hit = Hit(*raw)
    assert hit.user_agent == HUGE_USER_AGENT[:USER_AGENT_MAX]
    assert hit.referer == HUGE_REFERER[:REFERER_MAX]
    assert hit.ip == "1" * ADDRESS_MAX


def test_the_click_worker_parses_a_bounded_user_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []

    def watched(user_agent: str) -> Any:
        parsed.append(user_agent)
        return ua_parser.parse(user_agent)

    monkeypatch.setattr(useragents, "parse", watched)
    # As an older redirector may have queued it, whole.
    hit = Hit("bound02", 7, None, 1, time.time(), False, HUGE_USER_AGENT, HUGE_REFERER, "10.0.0.1")
    found = batches([pack_hits([hit])], salt=b"s" * 16)
    assert (found.hits, found.bots) == (1, 0)  # still a phone's click
    assert parsed == [HUGE_USER_AGENT[:USER_AGENT_MAX]]
