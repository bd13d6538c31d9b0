"""Campaigns: create, get and list them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from admin.exceptions import CampaignNotFound
from admin.models import CampaignIn
from admin.service import as_text
from redirector.store.connection import NO_WAIT, Durability, Store
from redirector.store.counts import LinkCounts
from redirector.store.keys import CAMPAIGNS_KEY, campaign_key
from redirector.store.scripts import CreateCampaignScript

# The code length of a campaign's per-recipient codes, fixed when it is made: its
# recipients' codes are derived with it, so they must not change with CODE_LENGTH.
CODE_LENGTH = "code_length"


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    name: str
    kind: Literal["campaign", "automation"]
    utm_source: str | None
    utm_medium: str | None
    created_at: int
    links: int
    code_length: int | None = None  # None for campaigns made before it was kept


class CampaignService:
    def __init__(
        self, redis: Store, code_length: int = 7, durability: Durability = NO_WAIT
    ) -> None:
        self._redis = redis
        self._code_length = code_length
        # Acknowledged once on the replicas `durability` asks for, as the links are.
        self._create = CreateCampaignScript(redis, durability)
        self._link_counts = LinkCounts(redis)

    async def create_campaign(self, data: CampaignIn) -> Campaign:
        now = int(time.time())
        code_length = self._code_length if data.code_length is None else data.code_length
        fields: dict[str, str | int] = {
            "name": data.name,
            "kind": data.kind,
            "created_at": now,
            CODE_LENGTH: code_length,
        }
        if data.utm_source is not None:
            fields["utm_source"] = data.utm_source
        if data.utm_medium is not None:
            fields["utm_medium"] = data.utm_medium
        campaign_id = await self._create(fields, now)
        return Campaign(
            campaign_id,
            data.name,
            data.kind,
            data.utm_source,
            data.utm_medium,
            now,
            0,
            code_length,
        )

    async def get_campaign(self, campaign_id: int, *, count_links: bool = True) -> Campaign:
        """Without `count_links`, one read of its hash and `links` is 0: what its links are
        made with, or whether it exists, without summing 256 counters."""
        if count_links:
            [campaign] = await self._campaigns([campaign_id])
        else:
            fields = await self._redis.hgetall(campaign_key(campaign_id))
            campaign = _campaign(campaign_id, fields, 0) if fields else None
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        return campaign

    async def list_campaigns(self, offset: int, limit: int) -> tuple[int, list[Campaign]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(CAMPAIGNS_KEY)
            pipe.zrange(CAMPAIGNS_KEY, offset, offset + limit - 1)
            total, ids = await pipe.execute()
        found = await self._campaigns([int(i) for i in ids])
        return total, [c for c in found if c is not None]

    async def _campaigns(self, ids: list[int]) -> list[Campaign | None]:
        """The campaigns, None for those that do not exist, with their link counts: each
        tag counts the links whose record it holds (redirector/store/keys.py)."""
        if not ids:
            return []
        hashes, counts = await asyncio.gather(self._hashes(ids), self._link_counts(ids))
        return [
            _campaign(campaign_id, found, links) if found else None
            for campaign_id, found, links in zip(ids, hashes, counts, strict=True)
        ]

    async def _hashes(self, ids: list[int]) -> list[Mapping[bytes | str, bytes | str]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for campaign_id in ids:
                pipe.hgetall(campaign_key(campaign_id))
            hashes: list[Mapping[bytes | str, bytes | str]] = await pipe.execute()
        return hashes


def _campaign(campaign_id: int, fields: Mapping[bytes | str, bytes | str], links: int) -> Campaign:
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
        links=links,
        code_length=int(text[CODE_LENGTH]) if CODE_LENGTH in text else None,
    )
