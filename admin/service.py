"""Admin operations over Redis: campaigns and links. No HTTP here (see `admin.api`)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from redis.asyncio import Redis
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
from admin.scripts import CREATE_LINKS
from admin.settings import AdminSettings
from admin.tagging import Tagged, tag, utm_params
from redirector.links import (
    CAMPAIGN_SEQ_KEY,
    CAMPAIGNS_KEY,
    INVALIDATION_CHANNEL,
    Link,
    campaign_key,
    decode,
    encode,
    link_key,
    recipient_field,
    recipient_key,
)

# How often an operation re-reads and retries after losing a race (WatchError, or another
# request creating the same recipient's link meanwhile) before giving up.
MAX_ATTEMPTS = 10


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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _campaign(campaign_id: int, fields: Mapping[bytes | str, bytes | str]) -> Campaign:
    text = {_text(k): _text(v) for k, v in fields.items()}
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
        for _ in range(MAX_ATTEMPTS):
            existing = await self._existing_recipients(items, campaign_id)
            pending, results = self._assign(items, links, existing)
            if not pending:
                return [r for r in results if r is not None]
            outcome = await self._write(campaign_id, pending)
            if outcome is None:
                for p in pending:
                    results[p.index] = Created(p.code, p.link, True)
                self._reuse_same_recipient(items, campaign_id, results)
                return [r for r in results if r is not None]
            if outcome[0] == b"taken":
                index = pending[int(outcome[1]) - 1].index
                raise CodeTaken(pending[int(outcome[1]) - 1].code, index if batch else None)
            if outcome[0] == b"no_campaign":
                raise self._no_campaign(campaign_id)
            # 'collided' or 'recipient': draw again / re-read the index, then try again.
        raise Contention("too many concurrent writes to the same links; try again")

    async def get_link(self, code: str) -> Link:
        raw = await self._redis.hget(link_key(code), code)
        if raw is None:
            raise LinkNotFound(code)
        return decode(raw)

    async def update_link(self, code: str, patch: LinkPatch) -> Link:
        key = link_key(code)
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(MAX_ATTEMPTS):
                try:
                    await pipe.watch(key)
                    raw = await pipe.hget(key, code)
                    if raw is None:
                        raise LinkNotFound(code)
                    link = await self._patched(decode(raw), patch)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(key, code, encode(link))
                    pipe.publish(INVALIDATION_CHANNEL, code)
                    await pipe.execute()
                    return link
                except WatchError:
                    # Another write touched this bucket (any link that hashes to it) between
                    # our read and our write: read the record again and re-apply the patch.
                    continue
        raise Contention(f"link {code!r} kept changing; try again")

    async def delete_link(self, code: str) -> None:
        key = link_key(code)
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(MAX_ATTEMPTS):
                try:
                    await pipe.watch(key)
                    raw = await pipe.hget(key, code)
                    if raw is None:
                        raise LinkNotFound(code)
                    link = decode(raw)
                    rfield = ""
                    if link.recipient is not None:
                        rfield = recipient_field(link.campaign_id, link.recipient)
                        await pipe.watch(recipient_key(rfield))
                        owner = await pipe.hget(recipient_key(rfield), rfield)
                        rfield = rfield if owner == code.encode() else ""
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hdel(key, code)
                    if rfield:
                        pipe.hdel(recipient_key(rfield), rfield)
                    if link.campaign_id is not None:
                        pipe.hincrby(campaign_key(link.campaign_id), "links", -1)
                    pipe.publish(INVALIDATION_CHANNEL, code)
                    await pipe.execute()
                    return
                except WatchError:
                    continue  # as in update_link: re-read and delete again
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

    async def _existing_recipients(
        self, items: Sequence[BatchItem], campaign_id: int | None
    ) -> dict[str, Created]:
        fields = list(
            {recipient_field(campaign_id, i.recipient) for i in items if i.recipient is not None}
        )
        if not fields:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for f in fields:
                pipe.hget(recipient_key(f), f)
            found = [
                (f, c.decode()) for f, c in zip(fields, await pipe.execute(), strict=True) if c
            ]
        if not found:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for _, code in found:
                pipe.hget(link_key(code), code)
            records = await pipe.execute()
        return {
            f: Created(code, decode(raw), False)
            for (f, code), raw in zip(found, records, strict=True)
            if raw is not None
        }

    def _assign(
        self, items: Sequence[BatchItem], links: list[Link], existing: dict[str, Created]
    ) -> tuple[list[_Pending], list[Created | None]]:
        """Pick a code for every item that needs a new link; drawn codes are unique within
        the request, and a custom code used twice in it is refused."""
        results: list[Created | None] = [None] * len(items)
        pending: list[_Pending] = []
        seen_recipients: set[str] = set()
        used: set[str] = set()
        for i, (item, link) in enumerate(zip(items, links, strict=True)):
            rfield = ""
            if item.recipient is not None:
                rfield = recipient_field(link.campaign_id, item.recipient)
                if rfield in existing:
                    results[i] = existing[rfield]
                    continue
                if rfield in seen_recipients:
                    continue  # same recipient twice in one request: filled in after the write
                seen_recipients.add(rfield)
            if item.code is not None:
                if item.code in used:
                    raise CodeTaken(item.code, i if len(items) > 1 else None)
                used.add(item.code)
            pending.append(_Pending(i, item.code or "", item.code is not None, link, rfield))
        drawn = iter(codes.draw(len(pending), self._settings.code_length))
        for p in pending:
            if not p.custom:
                p.code = next(drawn)
                while p.code in used:
                    p.code = codes.draw(1, self._settings.code_length)[0]
                used.add(p.code)
        return pending, results

    def _reuse_same_recipient(
        self, items: Sequence[BatchItem], campaign_id: int | None, results: list[Created | None]
    ) -> None:
        first: dict[str, Created] = {}
        for i, item in enumerate(items):
            if item.recipient is None:
                continue
            rfield = recipient_field(campaign_id, item.recipient)
            result = results[i]
            if result is None:
                results[i] = replace(first[rfield], created=False)
            else:
                first.setdefault(rfield, result)

    async def _write(self, campaign_id: int | None, pending: list[_Pending]) -> list[bytes] | None:
        keys = [campaign_key(campaign_id) if campaign_id is not None else "c:"]
        args: list[str | bytes] = ["1" if campaign_id is not None else "0", INVALIDATION_CHANNEL]
        for p in pending:
            keys.append(link_key(p.code))
            keys.append(recipient_key(p.rfield) if p.rfield else link_key(p.code))
            args += (p.code, encode(p.link), p.rfield, "1" if p.custom else "0")
        outcome: list[bytes] = await self._create_links(keys=keys, args=args)
        return None if outcome[0] == b"ok" else outcome

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
