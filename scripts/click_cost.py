"""Indicative cost of click recording, on a throw-away redis-server: the redirect process's CPU
to flush N hits (pack + push), then one click worker's CPU and rate to record them.

    .venv/bin/python scripts/click_cost.py [--hits 100000] [--agents 500] [--links 5000]
                                           [--campaigns 4] [--recipients 0.5] [--warm]

Hits are spread over `--campaigns` campaigns and `--links` links (`--recipients` of them a
recipient's: 1 for an SMS campaign's per-recipient links),
a third with a referer, User-Agents drawn from `--agents` distinct mobile-heavy strings (made
from real templates with varied versions, so that classify's cache is not flattered by one
string).
The worker's figures include classifying each distinct User-Agent once (its cache is cold),
unless `--warm` (a worker that has run a while: ~1.8 ms per new User-Agent left out).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from redirector.clicks import ClickBuffer, ClickFlusher, Hit
from redirector.clickworker import ClickWorker
from redirector.store.connection import NO_WAIT, connect
from redirector.store.hitqueue import HitQueue
from redirector.store.keys import click_stream_key
from redirector.useragents import classify
from tests.redis_server import RedisServer


def user_agents(count: int) -> list[str]:
    rnd, found = random.Random(1), set[str]()
    while len(found) < count:
        kind = rnd.random()
        chrome = f"{rnd.randint(100, 131)}.0.{rnd.randint(1000, 6999)}.{rnd.randint(10, 200)}"
        if kind < 0.45:
            ios = f"{rnd.randint(14, 18)}_{rnd.randint(0, 7)}"
            found.add(
                f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 "
                f"(KHTML, like Gecko) Version/{ios.split('_')[0]}.{rnd.randint(0, 6)} "
                f"Mobile/15E{rnd.randint(100, 400)} Safari/604.1"
            )
        elif kind < 0.9:
            model = f"SM-{rnd.choice('AGSN')}{rnd.randint(100, 999)}{rnd.choice('BFUW')}"
            found.add(
                f"Mozilla/5.0 (Linux; Android {rnd.randint(9, 15)}; {model}) AppleWebKit/537.36 "
                f"(KHTML, like Gecko) Chrome/{chrome} Mobile Safari/537.36"
            )
        else:
            found.add(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                f"(KHTML, like Gecko) Chrome/{chrome} Safari/537.36"
            )
    return sorted(found)


def make_hits(
    count: int, agents: list[str], links: int, campaigns: int, recipients: float
) -> list[Hit]:
    rnd = random.Random(2)
    personal = round(links * recipients)  # the first ones
    return [
        Hit(
            f"c{i % links:06d}",
            1 + i % campaigns,
            f"+3460{i % links:07d}" if i % links < personal else None,
            1_764_000_000,
            1.7645e9 + i / 1000,
            False,
            rnd.choice(agents),
            "" if i % 3 else "https://m.facebook.com/x",
            f"10.{i % 256}.{i // 256 % 256}.1",
        )
        for i in range(count)
    ]


async def measure(url: str, hits: list[Hit], links: int, campaigns: int) -> None:
    redis = connect(url, timeout=30)
    memory = await used_memory(redis)  # before the raw hits are queued
    buffer = ClickBuffer(len(hits) + 1, 1_000)
    buffer.hits = list(hits)
    flusher = ClickFlusher(HitQueue(redis, NO_WAIT), buffer, interval=0.1, max_batch=1_000)
    cpu, wall = time.process_time(), time.perf_counter()
    while buffer.hits:
        await flusher.flush_once()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    n = len(hits)
    print(f"redirect process: flushed {n:,} hits in {wall:.2f} s, {cpu * 1e6 / n:.2f} µs CPU/hit")

    worker = ClickWorker(redis, stream_maxlen=1_000_000, salt=b"salt")
    await redis.config_resetstat()
    server_cpu = await redis_cpu(redis)
    cpu, wall = time.process_time(), time.perf_counter()
    while await worker.work_once():
        pass
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    server_cpu = await redis_cpu(redis) - server_cpu
    assert worker.recorded == n, worker.recorded
    print(
        f"click worker: recorded {n:,} hits in {wall:.2f} s = {n / wall:,.0f} hits/s, "
        f"{cpu * 1e6 / n:.2f} µs CPU/hit in the worker (the rest is Redis running the scripts)"
    )
    script: Any = (await redis.info("commandstats")).get("cmdstat_evalsha", {})
    print(f"Redis running FLUSH_CLICKS & co: {script.get('usec', 0) / n:.2f} µs/hit")
    stats: Any = await redis.info("commandstats")
    commands = sorted(stats.items(), key=lambda item: -item[1].get("usec", 0))
    print(
        "  of which (a script's commands are counted in it too):",
        ", ".join(
            f"{name.removeprefix('cmdstat_')} {v['calls'] / n:.2f}/hit {v['usec'] / n:.2f} µs"
            for name, v in commands[1:9]
        ),
    )
    # All of the server's CPU meanwhile, reading the scripts' arguments included.
    print(f"Redis CPU while the worker ran: {server_cpu * 1e6 / n:.2f} µs/hit")
    await redis.delete(*[click_stream_key(c) for c in range(1, campaigns + 1)])
    grown = await used_memory(redis) - memory  # the queues are empty again
    print(
        f"Redis memory of the click keys but the streams (counters, clickers, latest clicks): "
        f"{grown / links:.0f} B per link"
    )
    await redis.aclose()


async def used_memory(redis: Any) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def redis_cpu(redis: Any) -> float:
    """Seconds of CPU the redis-server process has used (user and system)."""
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hits", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--links", type=int, default=5000)
    parser.add_argument("--campaigns", type=int, default=4)
    parser.add_argument("--recipients", type=float, default=0.5)
    parser.add_argument("--warm", action="store_true")
    options = parser.parse_args()
    agents = user_agents(options.agents)
    if options.warm:
        for agent in agents:
            classify(agent)
    hits = make_hits(options.hits, agents, options.links, options.campaigns, options.recipients)
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            # On uvloop, as the click worker runs (clickworker._new_loop).
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(measure(server.url, hits, options.links, options.campaigns))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
