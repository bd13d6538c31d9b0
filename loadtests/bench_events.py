"""The benchmark's attribution rows: sends and then conversions posted through the admin API,
10,000 per request and `--concurrency` in flight, to the create row's campaign, whose
recipients all have a per-recipient link (so every first send of a recipient looks for the
implied send it replaces, and every conversion for implied sends in that campaign).

  sends        one delivered send to each of `--events` recipients (recipient(i), sent an
               hour ago, delivered 5 s later)
  conversions  one order of each of those recipients, now: each credited to its send by view
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis

from loadtests import bench_procs as procs
from loadtests import bench_report as results
from loadtests.bench_rows import Bench
from loadtests.bench_store import admin_service
from loadtests.seed import SeedError, recipient, timed_senders

EVENTS_PER_REQUEST = 10_000
_HOUR_MS = 3_600_000


def rfc3339_ms(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def sends_body(campaign_id: int, indices: range, sent_ms: int) -> dict[str, Any]:
    sent, delivered = rfc3339_ms(sent_ms), rfc3339_ms(sent_ms + 5000)
    return {
        "sends": [
            {"campaign_id": campaign_id, "recipient": recipient(i), "sent_at": sent,
             "delivered_at": delivered}
            for i in indices
        ]
    }  # fmt: skip


def conversions_body(indices: range, at_ms: int) -> dict[str, Any]:
    at = rfc3339_ms(at_ms)
    return {
        "conversions": [
            {"order_id": f"bench-{i}", "recipient": recipient(i), "amount": "19.99",
             "currency": "EUR", "occurred_at": at}
            for i in indices
        ]
    }  # fmt: skip


async def post_all(
    session: aiohttp.ClientSession,
    path: str,
    bodies: Iterator[dict[str, Any]],
    concurrency: int,
    check: Callable[[Any], None],
) -> float:
    """Seconds to post every body, `concurrency` at a time (each built just before it is
    sent); the first refused one stops the run with a SeedError."""

    async def sender() -> None:
        for body in bodies:
            async with session.post(path, data=orjson.dumps(body)) as resp:
                if resp.status != 200:
                    raise SeedError(f"POST {path} answered {resp.status}: {await resp.text()}")
                check(orjson.loads(await resp.read()))

    return await timed_senders(sender, concurrency)


def _chunks(count: int) -> Iterator[range]:
    for start in range(0, count, EVENTS_PER_REQUEST):
        yield range(start, min(start + EVENTS_PER_REQUEST, count))


async def event_rates(
    bench: Bench, redis_url: str, campaign_id: int, events: int
) -> tuple[results.Creation, results.Creation]:
    """The sends row, then the conversions row, through a freshly started admin."""
    options, port, key = bench.options, procs.free_port(), secrets.token_hex(24)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300)
    sent_ms = int(time.time() * 1000) - _HOUR_MS

    def accepted(body: Any) -> None:
        if body.get("accepted") != EVENTS_PER_REQUEST and body.get("accepted", 0) <= 0:
            raise SeedError(f"events not accepted: {str(body)[:200]}")

    def credited(body: Any) -> None:
        accepted(body)
        if any(won["type"] != "view" for won in body["attributed"]):
            raise SeedError("a conversion of the bench was not credited to its send by view")

    store = bench.store
    assert store is not None, "the events go to the bench's Redis"
    with admin_service(bench, redis_url, port, key) as admin:
        url = f"http://127.0.0.1:{port}"
        await admin.wait(f"{url}/healthz")
        connector = aiohttp.TCPConnector(limit=options.concurrency)
        async with (
            aiohttp.ClientSession(
                url, headers=headers, timeout=timeout, connector=connector
            ) as session,
            asyncio.timeout(options.seed_timeout),
        ):
            used = [await _used_memory(store)]
            print(f"posting {events:,} sends through the admin API ...", flush=True)
            bodies = (sends_body(campaign_id, chunk, sent_ms) for chunk in _chunks(events))
            sends = await post_all(session, "/api/sends", bodies, options.concurrency, accepted)
            used.append(await _used_memory(store))
            print(f"posting {events:,} conversions through the admin API ...", flush=True)
            now_ms = int(time.time() * 1000)
            bodies = (conversions_body(chunk, now_ms) for chunk in _chunks(events))
            conversions = await post_all(
                session, "/api/conversions", bodies, options.concurrency, credited
            )
            used.append(await _used_memory(store))
    bench.report.notes.append(
        f"Redis memory added by the attribution rows: {(used[1] - used[0]) / events:.0f} B per "
        f"send (the campaign's ledger, the recipient's reachable sends), "
        f"{(used[2] - used[1]) / events:.0f} B per conversion (its record, its order id in "
        "the campaign's counted set)."
    )
    return (
        results.Creation(events, sends, events / sends),
        results.Creation(events, conversions, events / conversions),
    )


async def _used_memory(store: Redis) -> int:
    return int((await store.info("memory"))["used_memory"])
