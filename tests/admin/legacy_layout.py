"""Writes a store as the release before the tagged key schema wrote it (layout 1), for the
migration tests and for measuring the migration. Not a test module.

The key names, the version-1 record and every write are copied from that release
(`git show 3ab6fca^1:redirector/store/keys.py`, `record.py`, `scripts.py` and
`admin/service/{campaigns,links}.py`), on purpose without importing
`redirector.store.legacy`: the migration reads what this writes, so a mistake there cannot
hide behind the same mistake here.

`python -m tests.admin.legacy_layout --links N REDIS_URL` writes N per-recipient links of one
campaign (a tenth of them clicked) into an EMPTY database, for measuring
`python -m admin migrate`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import zlib
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.typing import EncodableT, FieldT

# -- copied from 3ab6fca^1 ----------------------------------------------------------------


def _bucket(text: str) -> str:
    return format(zlib.crc32(text.encode()) & 0xFFFF, "x")


def link_key(code: str) -> str:
    return "l:" + _bucket(code)


def recipient_field(campaign_id: int | None, recipient: str) -> str:
    return f"{'' if campaign_id is None else campaign_id}:{recipient}"


def recipient_key(field: str) -> str:
    return "r:" + _bucket(field)


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


@dataclass(frozen=True)
class OldLink:
    destination: str
    created_at: int
    expires_at: int | None = None
    campaign_id: int | None = None
    recipient: str | None = None
    disabled: bool = False
    tagged: bool = True
    insert_at: int = 0
    inserted: int = 0


def encode_v1(link: OldLink) -> str:
    flags = (1 if link.disabled else 0) | (0 if link.tagged else 2)
    recipient = link.recipient or ""
    head = "|".join(
        (
            "1" + str(flags),
            _b36(link.created_at),
            "" if link.expires_at is None else _b36(link.expires_at),
            "" if link.campaign_id is None else _b36(link.campaign_id),
            _b36(link.insert_at),
            _b36(link.inserted),
            _b36(len(recipient)) if link.recipient is not None else "",
        )
    )
    return head + "|" + recipient + link.destination


# -- the writes of that release ------------------------------------------------------------


def tagged(url: str, added: str, created_at: int, **fields: Any) -> OldLink:
    """A link to `url` whose destination had `added` ("?utm_source=..." or "&...") appended."""
    link = OldLink(url + added, created_at, insert_at=len(url), inserted=len(added))
    return replace(link, **fields)


class OldStore:
    """What the old admin and redirector wrote, one operation at a time (or queued on `pipe`)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._event = 0

    async def campaign(
        self, name: str, kind: str, created_at: int, utm_source: str | None = None
    ) -> int:
        campaign_id = int(await self.redis.incr("seq:campaign"))
        fields: dict[FieldT, EncodableT] = {
            "name": name,
            "kind": kind,
            "created_at": created_at,
            "links": 0,
        }
        if utm_source is not None:
            fields["utm_source"] = utm_source
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(f"c:{campaign_id}", mapping=fields)
            pipe.zadd("campaigns", {str(campaign_id): created_at})
            await pipe.execute()
        return campaign_id

    def link(self, pipe: Pipeline, code: str, link: OldLink) -> None:
        """CREATE_LINKS of one new item: record, recipient index, campaign count."""
        pipe.hset(link_key(code), code, encode_v1(link))
        if link.recipient is not None:
            field = recipient_field(link.campaign_id, link.recipient)
            pipe.hset(recipient_key(field), field, code)
        if link.campaign_id is not None:
            pipe.hincrby(f"c:{link.campaign_id}", "links", 1)

    async def add(self, code: str, link: OldLink) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self.link(pipe, code, link)
            await pipe.execute()

    async def delete(self, code: str, link: OldLink) -> None:
        """delete_link: the record, the index entry if it is this link's, the count."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(link_key(code), code)
            if link.recipient is not None:
                field = recipient_field(link.campaign_id, link.recipient)
                if await self.redis.hget(recipient_key(field), field) == code.encode():
                    pipe.hdel(recipient_key(field), field)
            if link.campaign_id is not None:
                pipe.hincrby(f"c:{link.campaign_id}", "links", -1)
            await pipe.execute()

    def hit(
        self,
        pipe: Pipeline,
        code: str,
        link: OldLink,
        at_ms: int,
        *,
        bot: bool = False,
        device: str = "mobile",
        os: str = "iOS",
        browser: str = "Mobile Safari",
        referer: str = "",
        visitor: str = "v1",
    ) -> None:
        """FLUSH_CLICKS of one hit. The stream id is given (the old script let Redis make it)
        so that the same hits written twice make the same store."""
        self._event += 1
        campaign = link.campaign_id
        recipient = link.recipient or ""
        event: dict[FieldT, EncodableT] = {
            "code": code,
            "r": recipient,
            "t": at_ms,
            "ua": "UA",
            "ref": referer,
            "h": visitor,
            "bot": "1" if bot else "0",
        }
        stream = "x:-" if campaign is None else f"x:{campaign}"
        pipe.xadd(stream, event, id=f"{at_ms}-{self._event}")
        hour, day = at_ms // 3_600_000, at_ms // 86_400_000
        counted = [(f"s:l:{code}", f"b:l:{code}")]
        if campaign is not None:
            counted.append((f"s:c:{campaign}", f"b:c:{campaign}"))
        breakdowns = [f"dev:{device}", f"os:{os}", f"br:{browser}"]
        breakdowns += [f"ref:{referer}"] if referer else []
        kinds = ("bots", "hb:", "db:") if bot else ("clicks", "h:", "d:")
        for stats_key, breakdowns_key in counted:
            for field in (kinds[0], f"{kinds[1]}{hour}", f"{kinds[2]}{day}"):
                pipe.hincrby(stats_key, field, 1)
            for field in [] if bot else breakdowns:
                pipe.hincrby(breakdowns_key, field, 1)
        if bot:
            return
        if not recipient:
            pipe.pfadd(f"u:l:{code}", visitor)
            if campaign is not None:
                pipe.pfadd(f"u:c:{campaign}", visitor)
        elif campaign is not None:
            pipe.zadd(f"k:{campaign}", {recipient: at_ms}, nx=True)


# -- a large old store, for measuring -----------------------------------------------------


async def seed(redis: Redis, links: int, *, chunk: int = 5_000) -> None:
    """`links` per-recipient links of one campaign, to one tagged URL; every tenth clicked."""
    old = OldStore(redis)
    now = int(time.time())
    campaign_id = await old.campaign("Black Friday", "campaign", now - 86_400)
    added = "?utm_source=instasent&utm_medium=sms&utm_campaign=Black%20Friday"
    for start in range(0, links, chunk):
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(start, min(start + chunk, links)):
                code = f"{n:07d}"  # as good as drawn for the migration: 7 base62 characters
                link = tagged(
                    "https://shop.example/deals?ref=sms",
                    added,
                    created_at=now - 3600,
                    campaign_id=campaign_id,
                    recipient=f"+346{n:08d}",
                )
                old.link(pipe, code, link)
                if n % 10 == 0:
                    old.hit(pipe, code, link, (now - 60) * 1000 + n)
            await pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.admin.legacy_layout")
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("redis_url")
    args = parser.parse_args()

    async def run() -> None:
        redis = Redis.from_url(args.redis_url)
        if await redis.dbsize():
            raise SystemExit("refused: the database is not empty")
        started = time.monotonic()
        await seed(redis, args.links)
        print(f"{args.links:,} old links written in {time.monotonic() - started:.1f} s")
        await redis.aclose()

    asyncio.run(run())


if __name__ == "__main__":
    main()
