"""Links: create them (a plan of `admin.service.plan`, written by one script call), get,
update and delete them."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import cast

from pydantic import MISSING
from redis.exceptions import WatchError

from admin.exceptions import (
    CampaignNotFound,
    CodeTaken,
    Contention,
    FieldError,
    LinkNotFound,
    ValidationFailed,
)
from admin.models import BatchItem, LinkPatch
from admin.service import as_text
from admin.service.campaigns import Campaign, CampaignService
from admin.service.plan import PlannedLink, expiry, plan_batch, redraw, tagged_destination
from admin.settings import AdminSettings
from admin.tagging import utm_params
from redirector.store.connection import Store, StorePipeline
from redirector.store.keys import (
    CAMPAIGN_LINKS,
    INVALIDATION_CHANNEL,
    campaign_key,
    link_key,
    recipient_field,
    recipient_key,
)
from redirector.store.record import Link, decode, encode
from redirector.store.scripts import (
    CodesCollided,
    CreateLinksScript,
    CustomCodeTaken,
    NoCampaign,
    Written,
)

# How often an operation re-reads and retries after losing a race (WatchError, or generated
# codes colliding) before giving up with a 409.
MAX_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Created:
    code: str
    link: Link
    created: bool  # False when the recipient already had a link, returned as it is


class LinkService:
    def __init__(self, redis: Store, campaigns: CampaignService, settings: AdminSettings) -> None:
        self._redis = redis
        self._campaigns = campaigns
        self._settings = settings
        self._create_links = CreateLinksScript(redis)

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
        plan = plan_batch(
            items,
            campaign_id=campaign_id,
            params=self._utm(campaign) if tagged else (),
            tagged=tagged,
            now=int(time.time()),
            code_length=self._settings.code_length,
        )
        written = await self._write(campaign_id, plan.links, batch)
        existing = await self._existing(written.existing)
        results: list[Created | None] = [None] * len(items)
        for planned, owner in zip(plan.links, written.existing, strict=True):
            mine = Created(planned.code, planned.link, True)
            results[planned.index] = existing[owner] if owner else mine
        for index, first in plan.repeats.items():
            # The first item of a recipient comes before its repeats, so it is filled in.
            results[index] = replace(cast(Created, results[first]), created=False)
        return cast(list[Created], results)

    async def get_link(self, code: str) -> Link:
        raw = await self._redis.hget(link_key(code), code)
        if raw is None:
            raise LinkNotFound(code)
        return decode(raw)

    async def update_link(self, code: str, patch: LinkPatch) -> Link:
        async def write(pipe: StorePipeline, link: Link) -> Link:
            changed = await self._patched(link, patch)
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(link_key(code), code, encode(changed))
            return changed

        return await self._watched(code, write)

    async def delete_link(self, code: str) -> None:
        async def write(pipe: StorePipeline, link: Link) -> Link:
            field = ""
            if link.recipient is not None:
                field = recipient_field(link.campaign_id, link.recipient)
                await pipe.watch(recipient_key(field))
                owner = await pipe.hget(recipient_key(field), field)
                field = field if owner is not None and as_text(owner) == code else ""
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hdel(link_key(code), code)
            if field:
                pipe.hdel(recipient_key(field), field)
            if link.campaign_id is not None:
                pipe.hincrby(campaign_key(link.campaign_id), CAMPAIGN_LINKS, -1)
            return link

        await self._watched(code, write)

    async def _write(
        self, campaign_id: int | None, planned: list[PlannedLink], batch: bool
    ) -> Written:
        for _ in range(MAX_ATTEMPTS):
            match await self._create_links(campaign_id, planned):
                case Written() as written:
                    return written
                case CustomCodeTaken(item):
                    taken = planned[item]
                    raise CodeTaken(taken.code, taken.index if batch else None)
                case NoCampaign():
                    raise _no_campaign(campaign_id)
                case CodesCollided(items):
                    redraw(planned, items, self._settings.code_length)
        raise Contention("could not find free codes; try again")

    async def _existing(self, owners: list[str | None]) -> dict[str, Created]:
        """The links recipients already had, as `create_links` returns them."""
        found = [code for code in owners if code]
        if not found:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for code in found:
                pipe.hget(link_key(code), code)
            records = await pipe.execute()
        if any(raw is None for raw in records):
            # Deleted between the script and this read: the caller may simply try again.
            raise Contention("a recipient's link was deleted meanwhile; try again")
        return {
            code: Created(code, decode(raw), False)
            for code, raw in zip(found, records, strict=True)
        }

    async def _watched(
        self, code: str, write: Callable[[StorePipeline, Link], Awaitable[Link]]
    ) -> Link:
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

    async def _campaign_field(self, campaign_id: int) -> Campaign:
        try:
            return await self._campaigns.get_campaign(campaign_id)
        except CampaignNotFound:
            raise _no_campaign(campaign_id) from None

    def _utm(self, campaign: Campaign | None) -> tuple[tuple[str, str], ...]:
        source, medium = self._settings.utm_source, self._settings.utm_medium
        if campaign is None:
            return utm_params(source=source, medium=medium, campaign=None)
        return utm_params(
            source=source,
            medium=medium,
            campaign=campaign.name,
            campaign_source=campaign.utm_source,
            campaign_medium=campaign.utm_medium,
        )

    async def _patched(self, link: Link, patch: LinkPatch) -> Link:
        if patch.url is not MISSING:
            params: tuple[tuple[str, str], ...] = ()
            if link.tagged:
                campaign = None
                if link.campaign_id is not None:
                    campaign = await self._campaigns.get_campaign(link.campaign_id)
                params = self._utm(campaign)
            tagged = tagged_destination(patch.url, params)
            link = replace(
                link,
                destination=tagged.destination,
                insert_at=tagged.insert_at,
                inserted=tagged.inserted,
            )
        if "expires_at" in patch.model_fields_set:
            link = replace(link, expires_at=expiry(patch.expires_at))
        if patch.disabled is not MISSING:
            link = replace(link, disabled=patch.disabled)
        return link


def _no_campaign(campaign_id: int | None) -> ValidationFailed:
    return ValidationFailed([FieldError("campaign_id", f"no campaign with id {campaign_id}")])
