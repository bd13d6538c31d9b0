"""The benchmark's link creation through the admin batch API, and Redis memory per link.

The seeding here is timed, so the request bodies are built before the clock starts: the rate
measured is the admin's (parse, tag, write to Redis, answer), not this client's JSON encoding.
Every link is per recipient and its tagged destination is exactly `url_length` characters.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import orjson
from redis.asyncio import Redis

from loadtests.codes import SEED_UTM_MEDIUM, SEED_UTM_SOURCE, recipient, seed_url, utm_suffix

CAMPAIGN_NAME = "bench"
# The admin's maximum batch, the batch size the issue measures creation with.
BATCH_SIZE = 10_000
# One batch request gives up after this long (the whole run is bounded by the caller).
_REQUEST_SECONDS = 300.0
# Pipelined MEMORY USAGE calls per round trip when sizing the link hashes.
_MEMORY_USAGE_CHUNK = 1000


class SeedError(RuntimeError):
    """The admin refused or mangled a batch; the message says which and why."""


@dataclass(frozen=True, slots=True)
class LinkPlan:
    """The URLs the benchmark creates: link `i` goes to `destination(i)`, exactly `length`
    characters once the admin has added the campaign's UTM parameters."""

    length: int

    @property
    def suffix(self) -> str:
        return utm_suffix(source=SEED_UTM_SOURCE, medium=SEED_UTM_MEDIUM, campaign=CAMPAIGN_NAME)

    def url(self, index: int) -> str:
        return seed_url(index, length=self.length, suffix_length=len(self.suffix))

    def destination(self, index: int) -> str:
        return self.url(index) + self.suffix


@dataclass(frozen=True, slots=True)
class Seeded:
    codes: list[str]  # codes[i] goes to plan.destination(i)
    seconds: float
    campaign_id: int

    @property
    def links_per_second(self) -> float:
        return len(self.codes) / self.seconds if self.seconds > 0 else 0.0


def _batches(plan: LinkPlan, campaign_id: int, links: int, size: int) -> Iterator[bytes]:
    for start in range(0, links, size):
        items = [
            {"url": plan.url(i), "recipient": recipient(i)}
            for i in range(start, min(start + size, links))
        ]
        yield orjson.dumps({"campaign_id": campaign_id, "links": items})


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> object:
    async with session.post(url, data=body) as response:
        payload = await response.read()
        if response.status != 201:
            raise SeedError(f"POST {url}: {response.status} {payload[:500]!r}")
        return orjson.loads(payload)


async def create_campaign(session: aiohttp.ClientSession, admin_url: str) -> int:
    body = {
        "name": CAMPAIGN_NAME,
        "kind": "campaign",
        "utm_source": SEED_UTM_SOURCE,
        "utm_medium": SEED_UTM_MEDIUM,
    }
    created = await _post(session, f"{admin_url}/api/campaigns", orjson.dumps(body))
    if not isinstance(created, dict) or not isinstance(created.get("id"), int):
        raise SeedError(f"POST /api/campaigns answered {created!r}")
    campaign_id: int = created["id"]
    return campaign_id


def _codes_of(answer: object, plan: LinkPlan, start: int, count: int) -> list[str]:
    links = answer.get("links") if isinstance(answer, dict) else None
    if not isinstance(links, list) or len(links) != count:
        raise SeedError(f"a batch of {count} links answered {str(answer)[:300]}")
    first = links[0].get("destination") if isinstance(links[0], dict) else None
    if first != plan.destination(start):
        raise SeedError(
            f"link {start}: destination {first!r}, expected {plan.destination(start)!r}"
        )
    return [link["code"] for link in links]


async def seed_links(
    admin_url: str,
    api_key: str,
    *,
    plan: LinkPlan,
    links: int,
    concurrency: int,
) -> Seeded:
    """Create `links` per-recipient links in one new campaign, BATCH_SIZE per request and
    `concurrency` requests at a time; time from the first request to the last answer.
    Unbounded in time itself: the caller wraps it in `asyncio.timeout`."""
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    client_timeout = aiohttp.ClientTimeout(total=_REQUEST_SECONDS)
    async with aiohttp.ClientSession(headers=headers, timeout=client_timeout) as session:
        campaign_id = await create_campaign(session, admin_url)
        # One iterator shared by the senders: each takes the next batch when it is free.
        bodies = iter(list(enumerate(_batches(plan, campaign_id, links, BATCH_SIZE))))
        codes: list[str] = [""] * links
        url = f"{admin_url}/api/links/batch"

        async def sender() -> None:
            for number, body in bodies:
                start = number * BATCH_SIZE
                count = min(BATCH_SIZE, links - start)
                answer = await _post(session, url, body)
                codes[start : start + count] = _codes_of(answer, plan, start, count)

        started = time.perf_counter()
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(concurrency):
                    group.create_task(sender())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the first failure; the rest were cancelled
        seconds = time.perf_counter() - started
    return Seeded(codes=codes, seconds=seconds, campaign_id=campaign_id)


async def used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def redis_command_calls(url: str) -> Counter[str]:
    """Calls of each command the server has processed since it started (INFO commandstats),
    the INFO calls that read them excluded."""
    redis = Redis.from_url(url)
    try:
        stats = await redis.info("commandstats")
    finally:
        await redis.aclose()
    calls = Counter(
        {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    )
    del calls["info"]
    return calls


async def keys_memory(redis: Redis, pattern: str) -> tuple[int, int]:
    """(number of keys, total MEMORY USAGE bytes) of the keys matching `pattern`; exact (every
    key, SAMPLES 0), which is cheap because links are bucketed into at most 65,536 hashes."""
    keys = [key async for key in redis.scan_iter(match=pattern, count=10_000)]
    total = 0
    for start in range(0, len(keys), _MEMORY_USAGE_CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys[start : start + _MEMORY_USAGE_CHUNK]:
                pipe.memory_usage(key, samples=0)
            total += sum(int(size or 0) for size in await pipe.execute())
    return len(keys), total
