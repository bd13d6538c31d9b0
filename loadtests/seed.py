"""Seed the link store for a load test through the admin API, and write the codes file.

    python -m loadtests.seed --links 100000          # against `make run` on this machine

One campaign, then N per-recipient links created with the batch API (several batches in
flight), every link's destination about `--url-length` bytes long. The codes file holds one
`code<TAB>destination` line per link: Locust taps those codes and checks each Location header.
`seed()` is the same operation for Python callers (the benchmark runner).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from loadtests.codes import (
    DEFAULT_ADMIN_URL,
    DEFAULT_CAMPAIGN_NAME,
    DEFAULT_CODES_FILE,
    MAX_RECIPIENTS,
    SEED_UTM_MEDIUM,
    SEED_UTM_SOURCE,
    admin_key,
    format_line,
    recipient,
    require_loopback,
    seed_url,
    utm_suffix,
)

MAX_BATCH = 10_000  # the admin API's limit per /api/links/batch request

Progress = Callable[[int], None]  # called with the number of links just created


class SeedError(Exception):
    """The admin refused a request or the options are unusable; seeding stopped there."""


@dataclass(frozen=True)
class SeedResult:
    links: int
    seconds: float  # creating the links, campaign excluded
    links_per_second: float
    campaign_id: int
    out: Path


async def seed(
    admin_url: str = DEFAULT_ADMIN_URL,
    key: str | None = None,
    links: int = 100_000,
    *,
    batch_size: int = MAX_BATCH,
    concurrency: int = 4,
    campaign_name: str | None = None,
    url_length: int = 90,
    out: str | Path = DEFAULT_CODES_FILE,
    progress: Progress | None = None,
) -> SeedResult:
    """Create a campaign and `links` links under it; write their codes to `out`.

    Only loopback admin URLs are accepted. The first non-2xx answer stops the run with a
    SeedError naming it; `out` is then left as it was.
    """
    _check_options(admin_url, links, batch_size, concurrency, url_length)
    key = key or admin_key(os.environ)
    if not key:
        raise SeedError(
            "no admin key: set ADMIN_API_KEYS or run `make run` once (.data/dev-api-key)"
        )
    name = campaign_name or DEFAULT_CAMPAIGN_NAME
    suffix = len(utm_suffix(source=SEED_UTM_SOURCE, medium=SEED_UTM_MEDIUM, campaign=name))
    headers = {"Authorization": f"Bearer {key}"}
    # sock_read bounds one batch: 10,000 links take a second or two on a laptop.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        admin_url.rstrip("/"), headers=headers, timeout=timeout, connector=connector
    ) as session:
        campaign = await _post(session, "/api/campaigns", _campaign_body(name))
        campaign_id = int(campaign["id"])
        started = time.perf_counter()
        batches = await _create_links(
            session, campaign_id, links, batch_size, concurrency, url_length, suffix, progress
        )
        seconds = time.perf_counter() - started
    out = Path(out)
    _write_codes(out, batches)
    return SeedResult(links, seconds, links / seconds if seconds else 0.0, campaign_id, out)


def _check_options(
    admin_url: str, links: int, batch_size: int, concurrency: int, url_length: int
) -> None:
    require_loopback(admin_url, what="admin URL")
    if not 1 <= links <= MAX_RECIPIENTS:
        raise SeedError(f"--links must be from 1 to {MAX_RECIPIENTS:,}")
    if not 1 <= batch_size <= MAX_BATCH:
        raise SeedError(f"--batch-size must be from 1 to {MAX_BATCH:,}")
    if concurrency < 1:
        raise SeedError("--concurrency must be at least 1")
    if url_length < 1:
        raise SeedError("--url-length must be at least 1")


def _campaign_body(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "campaign",
        "utm_source": SEED_UTM_SOURCE,
        "utm_medium": SEED_UTM_MEDIUM,
    }


async def _create_links(
    session: aiohttp.ClientSession,
    campaign_id: int,
    links: int,
    batch_size: int,
    concurrency: int,
    url_length: int,
    suffix: int,
    progress: Progress | None,
) -> list[list[tuple[str, str]]]:
    """Send the batches, at most `concurrency` at a time; the (code, destination) pairs of each
    batch, in batch order. The first failure cancels the batches still in flight."""
    starts = range(0, links, batch_size)
    results: list[list[tuple[str, str]]] = [[] for _ in starts]
    gate = asyncio.Semaphore(concurrency)

    async def one(slot: int, start: int) -> None:
        stop = min(start + batch_size, links)
        async with gate:  # built inside: only `concurrency` batches are ever held in memory
            items = [
                {
                    "url": seed_url(i, length=url_length, suffix_length=suffix),
                    "recipient": recipient(i),
                }
                for i in range(start, stop)
            ]
            body = await _post(
                session, "/api/links/batch", {"campaign_id": campaign_id, "links": items}
            )
        results[slot] = [(link["code"], link["destination"]) for link in body["links"]]
        if progress:
            progress(stop - start)

    try:
        async with asyncio.TaskGroup() as group:
            for slot, start in enumerate(starts):
                group.create_task(one(slot, start))
    except* SeedError as failed:
        raise failed.exceptions[0] from None
    return results


async def _post(session: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
    try:
        async with session.post(path, json=body) as resp:
            if not 200 <= resp.status < 300:
                text = (await resp.text())[:500]
                raise SeedError(f"POST {path} answered {resp.status}: {text}")
            return await resp.json()
    except aiohttp.ClientError as exc:  # refused, reset, timed out: as fatal as a refusal
        raise SeedError(f"POST {path} failed: {exc!r}") from exc


def _write_codes(out: Path, batches: Sequence[Sequence[tuple[str, str]]]) -> None:
    # Written next to the target and renamed: Locust never sees a half-written file.
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "w", encoding="utf-8") as file:
        for batch in batches:
            file.writelines(format_line(code, destination) for code, destination in batch)
    partial.replace(out)


@contextmanager
def _progress_bar(total: int) -> Iterator[Progress]:
    """A rich progress bar on a terminal; a line per 10% otherwise (CI logs, pipes)."""
    if sys.stderr.isatty():
        from rich.progress import Progress as Bar

        with Bar(transient=False) as bar:
            task = bar.add_task("creating links", total=total)
            yield lambda n: bar.advance(task, n)
        return
    done, step = 0, max(total // 10, 1)

    def report(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        if done // step != before // step or done == total:
            print(f"created {done:,}/{total:,} links", file=sys.stderr, flush=True)

    yield report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtests.seed",
        description="Create a campaign and N links through the admin API; write the codes file.",
    )
    p.add_argument("--admin", default=DEFAULT_ADMIN_URL, help="admin API base URL (loopback only)")
    p.add_argument("--key", help="bearer key (default: ADMIN_API_KEYS, else .data/dev-api-key)")
    p.add_argument("--links", type=int, default=100_000, help="links to create")
    p.add_argument("--batch-size", type=int, default=MAX_BATCH, help="links per batch request")
    p.add_argument("--concurrency", type=int, default=4, help="batch requests in flight")
    p.add_argument(
        "--campaign-name", default=DEFAULT_CAMPAIGN_NAME, help="(every run makes a new campaign)"
    )
    p.add_argument("--url-length", type=int, default=90, help="bytes of each tagged destination")
    p.add_argument("--out", type=Path, default=DEFAULT_CODES_FILE, help="codes file to write")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with _progress_bar(args.links) as progress:
            result = asyncio.run(
                seed(
                    args.admin,
                    args.key,
                    args.links,
                    batch_size=args.batch_size,
                    concurrency=args.concurrency,
                    campaign_name=args.campaign_name,
                    url_length=args.url_length,
                    out=args.out,
                    progress=progress,
                )
            )
    except (SeedError, ValueError) as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 1
    print(
        f"{result.links:,} links in campaign {result.campaign_id} in {result.seconds:.2f} s "
        f"({result.links_per_second:,.0f} links/s); codes in {result.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
