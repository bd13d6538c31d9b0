"""The one seeder: a campaign and N per-recipient links to its one URL, created through the
admin batch API (the URL given once per batch, as a send does), for Locust
(`python -m loadtests.seed`, which writes the codes file) and for the benchmark (`seed()`,
which times the creation). Only this machine is a target unless LOCUST_ALLOW_REMOTE=1.

    python -m loadtests.seed --links 100000          # against `make run` on this machine
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from admin.models import MAX_BATCH
from admin.settings import AdminSettings
from admin.tagging import tag, utm_params
from loadtests.codes import format_line
from redirector.store.connection import SettingsError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CODES_FILE = ROOT / "loadtests" / "codes.txt"
DEV_KEY_FILE = ROOT / ".data" / "dev-api-key"
DEFAULT_ADMIN_URL = "http://127.0.0.1:8081"
# Short, so that a 90-byte destination (a typical tagged shop URL) leaves room for the padding.
DEFAULT_CAMPAIGN_NAME = "loadtest"
# Given to the campaign explicitly, so that the destinations' length does not depend on the
# admin's UTM_SOURCE / UTM_MEDIUM settings.
UTM_SOURCE, UTM_MEDIUM = "instasent", "sms"
# Synthetic Spanish mobile numbers (+34 6xx xxx xxx and +34 7xx xxx xxx): unique per index.
_FIRST_MOBILE = 600_000_000
MAX_RECIPIENTS = 200_000_000
_URL_PREFIX = "https://shop.example/"
_PADDING = "abcdefghijklmnopqrstuvwxyz0123456789-"
_QUERY = "?ref=sms"


class SeedError(Exception):
    """The admin refused a request or the options are unusable; seeding stopped there."""


class RemoteHostRefused(ValueError):
    """A load test or a seeding run was pointed at a host that is not this machine."""


async def timed_senders(sender: Callable[[], Coroutine[Any, Any, None]], concurrency: int) -> float:
    """Seconds `concurrency` copies of `sender` took, run together until all are done; the
    first failure cancels the others and is raised as itself (not as an ExceptionGroup)."""
    started = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(sender())
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return time.perf_counter() - started


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is this machine: localhost, 127.0.0.0/8 or ::1."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_loopback(url: str, *, allow_remote: bool = False, what: str = "target") -> None:
    """A load test aimed at the wrong host is an attack on someone else's service."""
    if not (allow_remote or is_loopback_url(url)):
        raise RemoteHostRefused(
            f"{what} {url!r} is not a loopback address (localhost, 127.0.0.0/8, ::1); "
            "set LOCUST_ALLOW_REMOTE=1 to load-test another host you are responsible for"
        )


def allow_remote(env: Mapping[str, str]) -> bool:
    return env.get("LOCUST_ALLOW_REMOTE", "").strip().lower() in {"1", "true", "yes"}


def admin_key(api_keys: str, dev_key_file: Path = DEV_KEY_FILE) -> str:
    """The first of `api_keys` (ADMIN_API_KEYS, read as the admin reads it) when given, else
    the development key `make run` keeps; SeedError when there is none the admin would take."""
    try:
        if api_keys.strip():
            return AdminSettings.from_env({"ADMIN_API_KEYS": api_keys}).api_keys[0]
    except SettingsError as exc:
        raise SeedError(str(exc)) from None
    if dev_key_file.is_file() and (key := dev_key_file.read_text(encoding="utf-8").strip()):
        return key
    raise SeedError("no admin key: set ADMIN_API_KEYS or run `make run` once")


def recipient(index: int) -> str:
    """The index-th synthetic phone number; unique for 0 <= index < MAX_RECIPIENTS."""
    if not 0 <= index < MAX_RECIPIENTS:
        raise ValueError(f"recipient index must be in [0, {MAX_RECIPIENTS})")
    return f"+34{_FIRST_MOBILE + index}"


@dataclass(frozen=True, slots=True)
class LinkPlan:
    """The one URL every link of the campaign goes to, as a send of one campaign does: once
    tagged it is exactly `length` characters (the shortest URL when `length` leaves no room
    for padding)."""

    length: int = 90
    campaign: str = DEFAULT_CAMPAIGN_NAME

    @property
    def url(self) -> str:
        # The admin's tagging adds as much to any URL of this shape (all have a query).
        padding = self.length - len(self._tagged(_URL_PREFIX + _QUERY))
        if padding < 1:
            return f"{_URL_PREFIX}p{_QUERY}"
        return _URL_PREFIX + (_PADDING * (padding // len(_PADDING) + 1))[:padding] + _QUERY

    @property
    def destination(self) -> str:
        return self._tagged(self.url)

    def _tagged(self, url: str) -> str:
        """`url` as the admin stores it for this plan's campaign."""
        params = utm_params(source=UTM_SOURCE, medium=UTM_MEDIUM, campaign=self.campaign)
        return tag(url, params).destination


def batch_body(campaign_id: int, url: str, indices: range) -> dict[str, Any]:
    """One batch request: the URL given once, one `{"recipient"}` item per link."""
    links = [{"recipient": recipient(index)} for index in indices]
    return {"campaign_id": campaign_id, "url": url, "links": links}


async def shared_links(
    admin_url: str, key: str, campaign_id: int, url: str, count: int
) -> list[str]:
    """Create `count` links of the campaign to `url` *without* recipient (a link a campaign
    sends to everyone, or prints: tapped again and again by many people, the product's hot
    links) through the admin batch API; their codes. Loopback only; untimed."""
    require_loopback(admin_url, what="admin URL")
    codes: list[str] = []
    async with _admin_session(admin_url, key) as session:
        for start in range(0, count, MAX_BATCH):
            size = min(MAX_BATCH, count - start)
            body = {"campaign_id": campaign_id, "url": url, "links": [{}] * size}
            created = (await _post(session, "/api/links/batch", body))["links"]
            if len(created) != size:
                raise SeedError(f"a batch of {size} links answered {len(created)}")
            codes += [link["code"] for link in created]
    return codes


@dataclass(frozen=True, slots=True)
class SeedResult:
    codes: list[str]  # codes[i] is link i's, for recipient(i)
    seconds: float  # creating the links, the campaign excluded
    campaign_id: int
    out: Path | None

    @property
    def links_per_second(self) -> float:
        return len(self.codes) / self.seconds if self.seconds > 0 else 0.0


async def seed(
    admin_url: str,
    key: str,
    links: int = 100_000,
    *,
    batch_size: int = MAX_BATCH,
    concurrency: int = 4,
    campaign_name: str = DEFAULT_CAMPAIGN_NAME,
    url_length: int = 90,
    out: Path | None = DEFAULT_CODES_FILE,
    progress: Callable[[int], None] | None = None,  # given the links created so far
) -> SeedResult:
    """Create a campaign and `links` links under it, recipient(i)'s to the plan's URL; write
    their `code<TAB>destination` lines to `out` (None: no file) in link order. Only loopback
    admin URLs are accepted; the first refused request stops the run with a SeedError naming
    it and `out` left as it was. Unbounded in time: callers wrap it in `asyncio.timeout`."""
    require_loopback(admin_url, what="admin URL")
    counts_ok = 1 <= links <= MAX_RECIPIENTS and 1 <= batch_size <= MAX_BATCH
    if not counts_ok or min(concurrency, url_length) < 1:
        raise SeedError(
            f"--links must be from 1 to {MAX_RECIPIENTS:,}, --batch-size from 1 to {MAX_BATCH:,}, "
            "--concurrency and --url-length at least 1"
        )
    plan = LinkPlan(url_length, campaign_name)
    async with _admin_session(admin_url, key, concurrency) as session:
        body = {"name": campaign_name, "kind": "campaign"}
        body |= {"utm_source": UTM_SOURCE, "utm_medium": UTM_MEDIUM}
        campaign_id = int((await _post(session, "/api/campaigns", body))["id"])
        # `concurrency` senders take the next batch when free; each body is built just before
        # it is sent, so only that many are ever in memory. The first failure cancels the rest.
        codes, destinations = [""] * links, [""] * links if out else []
        starts, done = iter(range(0, links, batch_size)), 0

        async def sender() -> None:
            nonlocal done
            for start in starts:
                stop = min(start + batch_size, links)
                body = batch_body(campaign_id, plan.url, range(start, stop))
                created = (await _post(session, "/api/links/batch", body))["links"]
                if len(created) != stop - start:
                    raise SeedError(f"a batch of {stop - start} links answered {len(created)}")
                codes[start:stop] = [link["code"] for link in created]
                if out:
                    destinations[start:stop] = [link["destination"] for link in created]
                done += stop - start
                if progress:
                    progress(done)

        seconds = await timed_senders(sender, concurrency)
    if out is not None:
        # Written beside `out` and renamed: Locust never sees a half-written file.
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        partial.write_text("".join(map(format_line, codes, destinations)), encoding="utf-8")
        partial.replace(out)
    return SeedResult(codes, seconds, campaign_id, out)


def _admin_session(admin_url: str, key: str, concurrency: int = 1) -> aiohttp.ClientSession:
    """A JSON client of the admin with `key`, `concurrency` requests at a time."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    # sock_read bounds one batch: 10,000 links take a second or two.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300)
    connector = aiohttp.TCPConnector(limit=concurrency)
    return aiohttp.ClientSession(
        admin_url.rstrip("/"), headers=headers, timeout=timeout, connector=connector
    )


async def _post(session: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
    try:
        async with session.post(path, data=orjson.dumps(body)) as resp:
            if not 200 <= resp.status < 300:
                raise SeedError(f"POST {path} answered {resp.status}: {(await resp.text())[:500]}")
            return orjson.loads(await resp.read())
    except aiohttp.ClientError as exc:  # refused, reset, timed out: as fatal as a refusal
        raise SeedError(f"POST {path} failed: {exc!r}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.seed",
        description="Create a campaign and N links through the admin API; write the codes file.",
    )
    option = parser.add_argument
    option("--admin", dest="admin_url", default=DEFAULT_ADMIN_URL, help="(loopback only)")
    option("--key", help="bearer key (default: ADMIN_API_KEYS, else .data/dev-api-key)")
    option("--links", type=int, default=100_000, help="links to create")
    option("--batch-size", type=int, default=MAX_BATCH, help="links per batch request")
    option("--concurrency", type=int, default=4, help="batch requests in flight")
    option("--campaign-name", default=DEFAULT_CAMPAIGN_NAME, help="a new one every run")
    option("--url-length", type=int, default=90, help="bytes of each tagged destination")
    option("--out", type=Path, default=DEFAULT_CODES_FILE, help="codes file to write")
    args = parser.parse_args(argv)

    def progress(done: int) -> None:
        print(f"{done:,}/{args.links:,} links", file=sys.stderr)

    try:
        args.key = args.key or admin_key(os.environ.get("ADMIN_API_KEYS", ""))
        result = asyncio.run(seed(**vars(args), progress=progress))
    except (SeedError, ValueError) as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 1
    print(
        f"{len(result.codes):,} links in campaign {result.campaign_id} in {result.seconds:.2f} s "
        f"({result.links_per_second:,.0f} links/s); codes in {result.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
