"""Campaigns: create, get and list them, each in its workspace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from admin.exceptions import CampaignNotFound
from admin.models import CampaignIn
from admin.service import as_text
from redirector.store.connection import NO_WAIT, Durability, Store
from redirector.store.counts import LinkCounts
from redirector.store.keys import DEFAULT_WORKSPACE, campaign_key, workspace_campaigns_key
from redirector.store.scripts import CreateCampaignScript

# The code length of a campaign's per-recipient codes, fixed when it is made: its
# recipients' codes are derived with it, so they must not change with CODE_LENGTH.
CODE_LENGTH = "code_length"
# The campaign's workspace, absent for `default` (so every campaign made before workspaces is
# there). Never changes: a process keeps what it read (`workspace_of`).
WORKSPACE = "workspace"
# Campaign workspaces a process keeps (then forgotten all at once, and read again).
WORKSPACES_KEPT = 100_000


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
    workspace: str = DEFAULT_WORKSPACE


class CampaignService:
    def __init__(
        self, redis: Store, code_length: int = 7, durability: Durability = NO_WAIT
    ) -> None:
        self._redis = redis
        self._code_length = code_length
        # Acknowledged once on the replicas `durability` asks for, as the links are.
        self._create = CreateCampaignScript(redis, durability)
        self._link_counts = LinkCounts(redis)
        self._workspaces: dict[int, str] = {}  # campaign id -> its workspace

    async def create_campaign(self, workspace: str, data: CampaignIn) -> Campaign:
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
        if workspace != DEFAULT_WORKSPACE:
            fields[WORKSPACE] = workspace
        campaign_id = await self._create(fields, now, workspace_campaigns_key(workspace))
        return Campaign(
            campaign_id,
            data.name,
            data.kind,
            data.utm_source,
            data.utm_medium,
            now,
            0,
            code_length,
            workspace,
        )

    async def get_campaign(
        self, campaign_id: int, workspace: str | None, *, count_links: bool = True
    ) -> Campaign:
        """The campaign, if it is one of `workspace` (None: of any workspace, for the
        service's own use): another workspace's is CampaignNotFound, as a missing one.
        Without `count_links`, one read of its hash and `links` is 0: what its links are
        made with, or whether it exists, without summing 256 counters."""
        if count_links:
            [campaign] = await self._campaigns([campaign_id])
        else:
            fields = await self._redis.hgetall(campaign_key(campaign_id))
            campaign = _campaign(campaign_id, fields, 0) if fields else None
        if campaign is None or workspace not in (None, campaign.workspace):
            raise CampaignNotFound(campaign_id)
        return campaign

    async def list_campaigns(
        self, workspace: str, offset: int, limit: int
    ) -> tuple[int, list[Campaign]]:
        listed = workspace_campaigns_key(workspace)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(listed)
            pipe.zrange(listed, offset, offset + limit - 1)
            total, ids = await pipe.execute()
        found = await self._campaigns([int(i) for i in ids])
        return total, [c for c in found if c is not None and c.workspace == workspace]

    async def workspace_of(self, campaign_id: int) -> str:
        """The campaign's workspace. Kept once read: a campaign never moves, and its id is
        never given to another. A campaign without hash (no operation deletes one; a store
        may hold links of one all the same) is `default`'s, as everything was before."""
        known = self._workspaces.get(campaign_id)
        if known is not None:
            return known
        raw = await self._redis.hmget(campaign_key(campaign_id), [WORKSPACE, "created_at"])
        if raw[1] is None:
            return DEFAULT_WORKSPACE  # not kept: a campaign of that id may be made later
        if len(self._workspaces) >= WORKSPACES_KEPT:
            self._workspaces.clear()
        found = DEFAULT_WORKSPACE if raw[0] is None else as_text(raw[0])
        self._workspaces[campaign_id] = found
        return found

    async def missing(self, ids: Iterable[int], workspace: str) -> set[int]:
        """Those of `ids` that are no campaign of `workspace` (another's, or none): one round
        trip, however many."""
        wanted = list(dict.fromkeys(ids))
        async with self._redis.pipeline(transaction=False) as pipe:
            for campaign_id in wanted:
                pipe.hmget(campaign_key(campaign_id), [WORKSPACE, "created_at"])
            found = await pipe.execute()
        return {
            campaign_id
            for campaign_id, (owner, created) in zip(wanted, found, strict=True)
            if created is None
            or (DEFAULT_WORKSPACE if owner is None else as_text(owner)) != workspace
        }

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
        workspace=text.get(WORKSPACE, DEFAULT_WORKSPACE),
    )
