"""Campaigns: create, get and list them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from redis.typing import EncodableT, FieldT

from admin.exceptions import CampaignNotFound
from admin.models import CampaignIn
from admin.service import as_text
from redirector.store.connection import Store
from redirector.store.keys import CAMPAIGN_LINKS, CAMPAIGN_SEQ_KEY, CAMPAIGNS_KEY, campaign_key


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    name: str
    kind: Literal["campaign", "automation"]
    utm_source: str | None
    utm_medium: str | None
    created_at: int
    links: int


class CampaignService:
    def __init__(self, redis: Store) -> None:
        self._redis = redis

    async def create_campaign(self, data: CampaignIn) -> Campaign:
        campaign_id = int(await self._redis.incr(CAMPAIGN_SEQ_KEY))
        now = int(time.time())
        fields: dict[FieldT, EncodableT] = {
            "name": data.name,
            "kind": data.kind,
            "created_at": now,
            CAMPAIGN_LINKS: 0,
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
        links=int(text.get(CAMPAIGN_LINKS, "0")),
    )
