"""What `appendfsync always` costs link creation against `everysec`, both with `appendonly
yes`: per-recipient links of one campaign created through the admin API in batches of 10,000
(2 admin workers, 4 batches in flight, as `make bench`'s create row), then single links, one
per request (8 in flight). Each round starts a fresh redis-server and admin per policy, the
policies' order alternating, so that the machine's drift falls on both alike.

    .venv/bin/python scripts/aof_cost.py [--links 200000] [--rounds 3]

The AOF is written under --dir (default: a temporary directory in the repository's, on the
disk that holds it: fsync on a tmpfs would cost nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests import bench_procs as procs
from loadtests.seed import seed

POLICIES = ("everysec", "always")
ADMIN_WORKERS = 2
SINGLE_IN_FLIGHT = 8


async def single_links(admin_url: str, key: str, count: int) -> float:
    """Links created per second, one per request, SINGLE_IN_FLIGHT requests at a time."""
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(admin_url, headers=headers) as session:

        async def create(worker: int) -> None:
            for i in range(worker, count, SINGLE_IN_FLIGHT):
                body = {"url": "https://shop.example/p", "recipient": f"+3470{i:07d}"}
                async with session.post("/api/links", json=body) as resp:
                    if resp.status != 201:
                        raise RuntimeError(f"{resp.status}: {await resp.text()}")

        started = time.perf_counter()
        await asyncio.gather(*(create(worker) for worker in range(SINGLE_IN_FLIGHT)))
        return count / (time.perf_counter() - started)


async def measure(policy: str, links: int, singles: int, data: Path) -> tuple[float, float]:
    """(batch links/s, single links/s) on a fresh redis-server with `appendfsync policy`,
    its files in `data`."""
    port, admin_port, key = procs.free_port(), procs.free_port(), secrets.token_hex(24)
    command = procs.redis_command(port, data)
    command[command.index("--appendonly") + 1] = "yes"
    command += ["--appendfsync", policy]
    redis_url, admin_url = f"redis://127.0.0.1:{port}/0", f"http://127.0.0.1:{admin_port}"
    env = {"REDIS_URL": redis_url, "ADMIN_PORT": str(admin_port), "ADMIN_API_KEYS": key}
    env |= {"ADMIN_WORKERS": str(ADMIN_WORKERS), "PUBLIC_BASE_URL": "http://127.0.0.1:8080"}
    with procs.Service(f"redis-{policy}", command, data / "redis.log", {}) as redis:
        await redis.wait(redis_url)
        admin_command = procs.python_command("admin")
        with procs.Service("admin", admin_command, data / "admin.log", env) as admin:
            await admin.wait(f"{admin_url}/healthz")
            batches = await seed(admin_url, key, links, url_length=135, out=None)
            single = await single_links(admin_url, key, singles)
    return batches.links_per_second, single


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=200_000, help="links per batch run")
    parser.add_argument("--singles", type=int, default=2_000, help="single links per run")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=procs.ROOT)
    options = parser.parse_args()
    rates: dict[str, list[tuple[float, float]]] = {policy: [] for policy in POLICIES}
    with tempfile.TemporaryDirectory(dir=options.dir, prefix=".aof-cost-") as tmp:
        for round_number in range(options.rounds):
            order = POLICIES if round_number % 2 == 0 else POLICIES[::-1]
            for policy in order:
                data = Path(tmp) / f"{policy}-{round_number}"
                data.mkdir()
                batch, single = await measure(policy, options.links, options.singles, data)
                rates[policy].append((batch, single))
                print(
                    f"round {round_number + 1} {policy:>8}: {batch:>9,.0f} links/s in "
                    f"batches, {single:>6,.0f} single links/s",
                    flush=True,
                )
    for kind, name in enumerate(("batches", "single links")):
        medians = {p: statistics.median(r[kind] for r in rates[p]) for p in POLICIES}
        ratio = medians["always"] / medians["everysec"]
        print(
            f"{name}: median everysec {medians['everysec']:,.0f}/s, always "
            f"{medians['always']:,.0f}/s, always / everysec {ratio:.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
