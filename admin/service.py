"""Admin operations over Redis: campaigns and links. No HTTP here (see `admin.api`)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, cast

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

from admin import codes
from admin.exceptions import (
    CampaignNotFound,
    CodeTaken,
    FieldError,
    LinkNotFound,
    ValidationFailed,
)
from admin.models import BatchItem, CampaignIn, LinkPatch
from admin.settings import AdminSettings
from admin.tagging import Tagged, tag, utm_params
from redirector.store.keys import (
    CAMPAIGN_SEQ_KEY,
    CAMPAIGNS_KEY,
    INVALIDATION_CHANNEL,
    campaign_key,
    link_key,
    recipient_field,
    recipient_key,
)
from redirector.store.record import Link, decode, encode, encode_text
from redirector.store.scripts import CREATE_LINKS

# How often an operation re-reads and retries after losing a race (WatchError, or generated
# codes colliding) before giving up with a 409.
MAX_ATTEMPTS = 20


class Contention(RuntimeError):
    """Concurrent writers kept changing the same keys; the caller may retry."""


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    name: str
    kind: Literal["campaign", "automation"]
    utm_source: str | None
    utm_medium: str | None
    created_at: int
    links: int


@dataclass(frozen=True, slots=True)
class Created:
    code: str
    link: Link
    created: bool  # False when the recipient already had a link, returned as it is


@dataclass(slots=True)
class _Pending:
    index: int
    code: str
    custom: bool
    link: Link
    rfield: str  # "" when the link has no recipient


def as_text(value: bytes | str) -> str:
    """A value read from Redis as str (undecodable bytes, never expected, become U+FFFD)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _campaign(campaign_id: int, fields: Mapping[bytes | str, bytes | str]) -> Campaign:
    text = {as_text(k): as_text(v) for k, v in fields.items()}
    kind: Literal["campaign", "automation"] = (
        "automation" if text["kind"] == "automation" else "campaign"
    )
    return Campaign(
        id=campaign_id,
        name=text["name"],
        kind=kind,
        utm_source=text.get("utm_source"),
        utm_medium=text.get("utm_medium"),
        created_at=int(text["created_at"]),
        links=int(text.get("links", "0")),
    )


class LinkService:
    def __init__(self, redis: Redis, settings: AdminSettings) -> None:
        self._redis = redis
        self._settings = settings
        self._create_links = redis.register_script(CREATE_LINKS)

    async def ping(self) -> None:
        await self._redis.ping()

    # -- campaigns -------------------------------------------------------------------------

    async def create_campaign(self, data: CampaignIn) -> Campaign:
        campaign_id = int(await self._redis.incr(CAMPAIGN_SEQ_KEY))
        now = int(time.time())
        fields: dict[FieldT, EncodableT] = {
            "name": data.name,
            "kind": data.kind,
            "created_at": now,
            "links": 0,
        }
        if data.utm_source is not None:
            fields["utm_source"] = data.utm_source
        if data.utm_medium is not None:
            fields["utm_medium"] = data.utm_medium
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(campaign_key(campaign_id), mapping=fields)
            pipe.zadd(CAMPAIGNS_KEY, {str(campaign_id): now})
            await pipe.execute()
        return Campaign(campaign_id, data.name, data.kind, data.utm_source, data.utm_medium, now, 0)

    async def get_campaign(self, campaign_id: int) -> Campaign:
        fields = await self._redis.hgetall(campaign_key(campaign_id))
        if not fields:
            raise CampaignNotFound(campaign_id)
        return _campaign(campaign_id, fields)

    async def list_campaigns(self, offset: int, limit: int) -> tuple[int, list[Campaign]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(CAMPAIGNS_KEY)
            pipe.zrange(CAMPAIGNS_KEY, offset, offset + limit - 1)
            total, ids = await pipe.execute()
        async with self._redis.pipeline(transaction=False) as pipe:
            for raw_id in ids:
                pipe.hgetall(campaign_key(int(raw_id)))
            rows = await pipe.execute()
        return total, [_campaign(int(i), f) for i, f in zip(ids, rows, strict=True) if f]

    # -- links -----------------------------------------------------------------------------

    async def create_links(
        self,
        campaign_id: int | None,
        items: Sequence[BatchItem],
        *,
        tagged: bool = True,
        batch: bool = True,
    ) -> list[Created]:
        """Create links in request order, all or nothing. A recipient who already has a link
        in this campaign gets that link back unchanged (`created=False`)."""
        campaign = await self._campaign_field(campaign_id) if campaign_id is not None else None
        params = self._utm(campaign) if tagged else ()
        now = int(time.time())
        links = self._prepare(items, campaign_id, params, tagged, now)
        pending, repeats = self._assign(items, links)
        for _ in range(MAX_ATTEMPTS):
            outcome = await self._write(campaign_id, pending)
            if outcome[0] == b"ok":
                break
            if outcome[0] == b"taken":
                p = pending[int(outcome[1]) - 1]
                raise CodeTaken(p.code, p.index if batch else None)
            if outcome[0] == b"no_campaign":
                raise self._no_campaign(campaign_id)
            self._redraw(pending, [int(i) - 1 for i in outcome[1].split(b",")])
        else:
            raise Contention("could not find free codes; try again")
        results: list[Created | None] = [None] * len(items)
        existing = await self._existing(outcome[1])
        for p, owner in zip(pending, outcome[1], strict=True):
            results[p.index] = existing[owner] if owner else Created(p.code, p.link, True)
        for i, first in repeats.items():
            # The first item of a recipient comes before its repeats, so it is filled in.
            results[i] = replace(cast(Created, results[first]), created=False)
        return cast(list[Created], results)

    async def get_link(self, code: str) -> Link:
        raw = await self._redis.hget(link_key(code), code)
        if raw is None:
            raise LinkNotFound(code)
        return decode(raw)

    async def update_link(self, code: str, patch: LinkPatch) -> Link:
        async def write(pipe: Pipeline, link: Link) -> Link:
            changed = await self._patched(link, patch)
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(link_key(code), code, encode(changed))
            return changed

        return await self._watched(code, write)

    async def delete_link(self, code: str) -> None:
        async def write(pipe: Pipeline, link: Link) -> Link:
            rfield = ""
            if link.recipient is not None:
                rfield = recipient_field(link.campaign_id, link.recipient)
                await pipe.watch(recipient_key(rfield))
                owner = await pipe.hget(recipient_key(rfield), rfield)
                rfield = rfield if owner == code.encode() else ""
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hdel(link_key(code), code)
            if rfield:
                pipe.hdel(recipient_key(rfield), rfield)
            if link.campaign_id is not None:
                pipe.hincrby(campaign_key(link.campaign_id), "links", -1)
            return link

        await self._watched(code, write)

    async def _watched(self, code: str, write: Callable[[Pipeline, Link], Awaitable[Link]]) -> Link:
        """Read `code`'s record under WATCH; `write` may watch more keys, then starts MULTI
        and queues the change; the redirectors are told. Returns what `write` returns."""
        key = link_key(code)
        async with self._redis.pipeline(transaction=True) as pipe:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    await pipe.watch(key)
                    raw = await pipe.hget(key, code)
                    if raw is None:
                        raise LinkNotFound(code)
                    result = await write(pipe, decode(raw))
                    pipe.publish(INVALIDATION_CHANNEL, code)
                    await pipe.execute()
                    return result
                except WatchError:
                    # Another write touched a watched key (the bucket is shared by every link
                    # that hashes to it) between our read and our write: read again, redo,
                    # after a short random pause so that writers racing for one bucket spread
                    # out instead of colliding again in lockstep.
                    await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise Contention(f"link {code!r} kept changing; try again")

    # -- helpers ---------------------------------------------------------------------------

    def _no_campaign(self, campaign_id: int | None) -> ValidationFailed:
        return ValidationFailed([FieldError("campaign_id", f"no campaign with id {campaign_id}")])

    async def _campaign_field(self, campaign_id: int) -> Campaign:
        try:
            return await self.get_campaign(campaign_id)
        except CampaignNotFound:
            raise self._no_campaign(campaign_id) from None

    def _utm(self, campaign: Campaign | None) -> tuple[tuple[str, str], ...]:
        s = self._settings
        if campaign is None:
            return utm_params(source=s.utm_source, medium=s.utm_medium, campaign=None)
        return utm_params(
            source=campaign.utm_source or s.utm_source,
            medium=campaign.utm_medium or s.utm_medium,
            campaign=campaign.name,
        )

    @staticmethod
    def _destination(url: str, params: Sequence[tuple[str, str]]) -> Tagged:
        """`url` was validated and normalised when the request was parsed (admin.models)."""
        return tag(url, params) if params else Tagged(url, len(url), 0)

    def _prepare(
        self,
        items: Sequence[BatchItem],
        campaign_id: int | None,
        params: Sequence[tuple[str, str]],
        tagged: bool,
        now: int,
    ) -> list[Link]:
        links = []
        for item in items:
            t = self._destination(item.url, params)
            links.append(
                Link(
                    t.destination,
                    now,
                    _expiry(item.expires_at),
                    campaign_id,
                    item.recipient,
                    tagged=tagged,
                    insert_at=t.insert_at,
                    inserted=t.inserted,
                )
            )
        return links

    async def _existing(self, owners: list[bytes]) -> dict[bytes, Created]:
        """The links recipients already had, as `create_links` returns them."""
        found = [code for code in owners if code]
        if not found:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for code in found:
                pipe.hget(link_key(code.decode()), code)
            records = await pipe.execute()
        if any(raw is None for raw in records):
            # Deleted between the script and this read: the caller may simply try again.
            raise Contention("a recipient's link was deleted meanwhile; try again")
        return {
            code: Created(code.decode(), decode(raw), False)
            for code, raw in zip(found, records, strict=True)
        }

    def _assign(
        self, items: Sequence[BatchItem], links: list[Link]
    ) -> tuple[list[_Pending], dict[int, int]]:
        """The items to send to Redis, each with a code (drawn codes unique within the request;
        a custom code twice in it is refused), and for a recipient repeated in the request,
        the index of its first item, whose link it gets."""
        pending: list[_Pending] = []
        first_of: dict[str, int] = {}
        repeats: dict[int, int] = {}
        used: set[str] = set()
        for i, (item, link) in enumerate(zip(items, links, strict=True)):
            rfield = ""
            if item.recipient is not None:
                rfield = recipient_field(link.campaign_id, item.recipient)
                if rfield in first_of:
                    repeats[i] = first_of[rfield]
                    continue
                first_of[rfield] = i
            if item.code is not None:
                if item.code in used:
                    raise CodeTaken(item.code, i if len(items) > 1 else None)
                used.add(item.code)
            pending.append(_Pending(i, item.code or "", item.code is not None, link, rfield))
        self._redraw(pending, [n for n, p in enumerate(pending) if not p.custom], used)
        return pending, repeats

    def _redraw(
        self, pending: list[_Pending], which: list[int], used: set[str] | None = None
    ) -> None:
        used = used if used is not None else {p.code for p in pending}
        drawn = iter(codes.draw(len(which), self._settings.code_length))
        for n in which:
            code = next(drawn)
            while code in used:
                code = codes.draw(1, self._settings.code_length)[0]
            used.add(code)
            pending[n].code = code

    async def _write(self, campaign_id: int | None, pending: list[_Pending]) -> list[Any]:
        # Without a campaign the script never reads KEYS[1]; an empty name stands in.
        key = campaign_key(campaign_id) if campaign_id is not None else ""
        items = orjson.dumps(
            [
                (
                    link_key(p.code),
                    recipient_key(p.rfield) if p.rfield else "",
                    p.code,
                    p.rfield,
                    "1" if p.custom else "0",
                    encode_text(p.link),
                )
                for p in pending
            ]
        )
        flag = "1" if campaign_id is not None else "0"
        outcome: list[Any] = await self._create_links(
            keys=[key], args=[flag, INVALIDATION_CHANNEL, items]
        )
        return outcome

    async def _patched(self, link: Link, patch: LinkPatch) -> Link:
        fields = patch.model_fields_set
        for name in ("url", "disabled"):
            if name in fields and getattr(patch, name) is None:
                raise ValidationFailed([FieldError(name, "must not be null")])
        if patch.url is not None:
            params: Sequence[tuple[str, str]] = ()
            if link.tagged:
                campaign = None
                if link.campaign_id is not None:
                    campaign = await self.get_campaign(link.campaign_id)
                params = self._utm(campaign)
            t = self._destination(patch.url, params)
            link = replace(
                link, destination=t.destination, insert_at=t.insert_at, inserted=t.inserted
            )
        if "expires_at" in fields:
            link = replace(link, expires_at=_expiry(patch.expires_at))
        if patch.disabled is not None:
            link = replace(link, disabled=patch.disabled)
        return link


def _expiry(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp())
