"""Conversions: each attributed when it is ingested (`admin.attribution.decide`), from the
sends and clicks recorded by then, and stored with the decision; counted in the report of
the campaign it went to. No HTTP.

A batch is decided from one read of everything its recipients could be credited to, then
written in two steps, each safe to run again:

1. the conversions, each stored under its order id unless one is there (the first one wins:
   a repeat is a duplicate, answered as such, with the stored decision);
2. each campaign's report: an order counted once (its id kept in the campaign's counted
   set). The stored decision of a duplicate is counted again the same way, which counts
   nothing unless a failure came between the two steps the first time.

The decision reads, for the batch's recipients: their reported sends (one string each, the
sends a window can still reach), their links in the campaigns that made per-recipient links
within the windows (implied sends, found on their chains of codes) unless a send of that
campaign was reported to them, and their latest clicks in every campaign found. A
conversion writes nothing the decision reads, so deciding from a read is as deciding in one
step: a send or click recorded meanwhile is one recorded after the decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import orjson
from redis.asyncio import Redis

from admin.attribution import Attribution, Kind, Send, Windows, decide
from admin.exceptions import ConversionNotFound
from admin.models import ConversionIn
from admin.service import as_text
from admin.service.campaigns import CampaignService
from admin.service.implied import ImpliedSends
from admin.service.links import LinkService
from admin.service.sends import unix_ms
from redirector.store.attribution import AttributionScripts, CountedRow, OrderRow
from redirector.store.connection import Store
from redirector.store.keys import (
    active_campaigns_key,
    order_key,
    recipient_clicks_key,
    recipient_sends_key,
    send_ledger_key,
)


@dataclass(frozen=True, slots=True)
class Conversion:
    """A conversion as stored: amount in minor units, time in unix ms, and its decision."""

    order_id: str
    recipient: str
    amount_minor: int
    currency: str
    occurred_ms: int
    attribution: Attribution | None

    def record(self) -> bytes:
        won = self.attribution
        return orjson.dumps(
            [
                self.recipient,
                self.amount_minor,
                self.currency,
                self.occurred_ms,
                None if won is None else won.campaign_id,
                None if won is None else won.type,
            ]
        )


def decode_conversion(order_id: str, raw: bytes) -> Conversion:
    recipient, amount, currency, occurred, campaign_id, kind = orjson.loads(raw)
    won = None if campaign_id is None else Attribution(int(campaign_id), _kind(kind))
    return Conversion(order_id, recipient, int(amount), currency, int(occurred), won)


def _kind(value: str) -> Kind:
    return "click" if value == "click" else "view"


@dataclass(frozen=True, slots=True)
class Ingested:
    accepted: list[Conversion]  # stored now, in request order
    duplicates: int


class ConversionService:
    def __init__(
        self,
        redis: Store,
        scripts: AttributionScripts,
        campaigns: CampaignService,
        links: LinkService,
        implied: ImpliedSends,
        windows: Windows,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._campaigns = campaigns
        self._links = links
        self._implied = implied
        self._windows = windows

    async def ingest(self, workspace: str, items: Sequence[ConversionIn]) -> Ingested:
        first_of: dict[str, ConversionIn] = {}
        for item in items:
            first_of.setdefault(item.order_id, item)  # a repeat within the batch: a duplicate
        # Every order is decided, duplicates too: they are rare, and telling them apart
        # first would cost a read per order (the store's claim tells them apart anyway).
        decided = await self._decide(workspace, list(first_of.values()))
        claims = await self._scripts.claim_orders(
            workspace, [OrderRow(c.order_id, c.record()) for c in decided]
        )
        accepted = [c for c, claim in zip(decided, claims, strict=True) if claim is None]
        # A duplicate's stored decision counts, once: see the module docstring.
        counted = accepted + [
            decode_conversion(c.order_id, claim)
            for c, claim in zip(decided, claims, strict=True)
            if claim is not None
        ]
        await self._count(counted)
        return Ingested(accepted, len(items) - len(accepted))

    async def get(self, workspace: str, order_id: str) -> Conversion:
        raw = await self._redis.hget(order_key(workspace, order_id), order_id)
        if raw is None:
            raise ConversionNotFound(order_id)
        return decode_conversion(order_id, raw)  # type: ignore[arg-type]  # bytes: no decoding

    async def _count(self, conversions: list[Conversion]) -> None:
        by_campaign: dict[int, list[CountedRow]] = {}
        for c in conversions:
            if c.attribution is not None:
                row = CountedRow(c.order_id, c.attribution.type, c.currency, c.amount_minor)
                by_campaign.setdefault(c.attribution.campaign_id, []).append(row)
        await asyncio.gather(
            *(self._scripts.count_conversions(cid, rows) for cid, rows in by_campaign.items())
        )

    async def _decide(self, workspace: str, items: list[ConversionIn]) -> list[Conversion]:
        if not items:
            return []
        times = [unix_ms(item.occurred_at) for item in items]
        recipients = list(dict.fromkeys(item.recipient for item in items))
        reported, implied = await asyncio.gather(
            self._reported(workspace, recipients),
            self._implied_sends(workspace, recipients, min(times)),
        )
        clicks = await self._clicks(reported, implied)
        windows = self._windows
        decided = []
        for item, at_ms in zip(items, times, strict=True):
            recipient = item.recipient
            sends = reported.get(recipient, []) + implied.get(recipient, [])
            won = decide(sends, clicks.get(recipient, {}), at_ms, windows)
            decided.append(
                Conversion(item.order_id, recipient, item.amount, item.currency, at_ms, won)
            )
        return decided

    async def _reported(self, workspace: str, recipients: list[str]) -> dict[str, list[Send]]:
        """Each recipient's reported sends that a window can still reach."""
        keys = [recipient_sends_key(workspace, recipient) for recipient in recipients]
        values = await _strings(self._redis, keys)
        found: dict[str, list[Send]] = {}
        for recipient, value in zip(recipients, values, strict=True):
            if value:
                found[recipient] = [_send(entry) for entry in value.split()]
        return found

    async def _implied_sends(
        self, workspace: str, recipients: list[str], earliest_ms: int
    ) -> dict[str, list[Send]]:
        """The recipients' implied sends in the campaigns that made per-recipient links late
        enough to win one of the conversions, but those of a campaign that reported a send
        to the recipient (that one replaces them, even once no window reaches it)."""
        since = (earliest_ms - self._windows.reach_ms) // 1000
        active = await self._redis.zrangebyscore(active_campaigns_key(workspace), since, "+inf")
        campaign_ids = [int(as_text(raw)) for raw in cast(list[bytes], active)]
        found = await asyncio.gather(
            *(self._implied_in(campaign_id, recipients) for campaign_id in campaign_ids)
        )
        implied: dict[str, list[Send]] = {}
        for campaign_sends in found:
            for recipient, sends in campaign_sends.items():
                implied.setdefault(recipient, []).extend(sends)
        return implied

    async def _implied_in(self, campaign_id: int, recipients: list[str]) -> dict[str, list[Send]]:
        campaign = await self._campaigns.get_campaign(campaign_id, None, count_links=False)
        chain = await self._links.chain(campaign)
        created = await self._implied.links_created(campaign_id, recipients, chain)
        if not created:
            return {}
        linked = list(created)
        ledger = await self._redis.hmget(send_ledger_key(campaign_id), linked)
        return {
            recipient: [Send(campaign_id, at * 1000, at * 1000) for at in created[recipient]]
            for recipient, entry in zip(linked, ledger, strict=True)
            if entry is None
        }

    async def _clicks(
        self, reported: dict[str, list[Send]], implied: dict[str, list[Send]]
    ) -> dict[str, dict[int, list[int]]]:
        """The recipients' latest clicks in each campaign of their sends."""
        wanted: dict[int, set[str]] = {}
        for sends_of in (reported, implied):
            for recipient, sends in sends_of.items():
                for send in sends:
                    wanted.setdefault(send.campaign_id, set()).add(recipient)
        asked = [(campaign_id, list(recipients)) for campaign_id, recipients in wanted.items()]
        async with self._redis.pipeline(transaction=False) as pipe:
            for campaign_id, recipients in asked:
                pipe.hmget(recipient_clicks_key(campaign_id), recipients)
            rows = await pipe.execute()
        clicks: dict[str, dict[int, list[int]]] = {}
        for (campaign_id, recipients), row in zip(asked, rows, strict=True):
            for recipient, times in zip(recipients, row, strict=True):
                if times:
                    clicks.setdefault(recipient, {})[campaign_id] = [
                        int(t) for t in as_text(times).split()
                    ]
        return clicks


def _send(entry: str) -> Send:
    campaign, sent, delivered = entry.split(":")
    return Send(int(campaign), int(sent), int(delivered) if delivered else None)


async def _strings(redis: Store, keys: list[str]) -> list[str | None]:
    """GET of each key, in one command on one Redis, one per slot on a cluster."""
    if not keys:
        return []
    if isinstance(redis, Redis):
        values = await redis.mget(keys)
    else:
        values = await redis.mget_nonatomic(keys)
    return [None if value is None else as_text(value) for value in values]
