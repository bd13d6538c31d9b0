"""Sends: a batch of them recorded for attribution and for their campaigns' reports. No HTTP.

A batch is written in three steps, each safe to run again (a send is keyed by campaign,
recipient and sent_at, and a repeat sets what it says), so a batch that failed midway (503)
may simply be sent again:

1. each campaign's ledger and report counters (one call per campaign): a send counted once,
   its status changes counted as they come;
2. the recipients' reachable sends (one call, or one per tag on a cluster), which a
   conversion reads;
3. for recipients whose first reported send of a campaign this is, whether they have a
   per-recipient link of it: its implied send is then replaced, counted once. Links made
   later look at the ledger themselves (`LinkService`); each side writes before it reads the
   other's, so a send and a link that cross are both seen by one of them at least.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from admin.attribution import Windows
from admin.exceptions import FieldError, ValidationFailed
from admin.models import MAX_BATCH, SendIn
from admin.service.campaigns import CampaignService
from admin.service.implied import ImpliedSends
from admin.service.links import LinkService
from redirector.store.attribution import STATUS_CODES, AttributionScripts, SendRow
from redirector.store.counts import LinkCounts
from redirector.store.keys import recipient_links_field

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def unix_ms(when: datetime) -> int:
    """A time as whole unix milliseconds (below a millisecond, truncated)."""
    return (when - _EPOCH) // _MS


class SendService:
    def __init__(
        self,
        scripts: AttributionScripts,
        campaigns: CampaignService,
        links: LinkService,
        implied: ImpliedSends,
        link_counts: LinkCounts,
        windows: Windows,
    ) -> None:
        self._scripts = scripts
        self._campaigns = campaigns
        self._links = links
        self._implied = implied
        self._link_counts = link_counts
        self._windows = windows

    async def record(self, workspace: str, sends: Sequence[SendIn]) -> int:
        """Records the sends (422 naming every item of a campaign the workspace does not
        have, before anything is written); how many were accepted."""
        await self._check_campaigns(workspace, sends)
        rows = [
            SendRow(
                send.campaign_id,
                send.recipient,
                unix_ms(send.sent_at),
                None if send.delivered_at is None else unix_ms(send.delivered_at),
                STATUS_CODES[send.status or "sent"],
            )
            for send in sends
        ]
        by_campaign: dict[int, list[SendRow]] = {}
        for row in rows:
            by_campaign.setdefault(row.campaign_id, []).append(row)
        windows = self._windows
        record = self._scripts.record_sends(
            workspace, rows, int(time.time() * 1000), windows.click_ms, windows.view_ms
        )
        ledgers = (self._ledger(campaign, group) for campaign, group in by_campaign.items())
        await asyncio.gather(record, *ledgers)
        return len(rows)

    async def _ledger(self, campaign_id: int, rows: list[SendRow]) -> None:
        fresh = await self._scripts.ledger_sends(campaign_id, rows)
        if not fresh:
            return
        [personal] = await self._link_counts.fields([recipient_links_field(campaign_id)])
        if not personal:
            return  # no per-recipient link of the campaign: no implied send to replace
        campaign = await self._campaigns.get_campaign(campaign_id, None, count_links=False)
        chain = await self._links.chain(campaign)
        recipients = [rows[index].recipient for index in fresh]
        linked = await self._implied.links_created(campaign_id, recipients, chain)
        await self._scripts.mark_replaced(campaign_id, list(linked))

    async def _check_campaigns(self, workspace: str, sends: Sequence[SendIn]) -> None:
        errors = await self.campaign_errors(workspace, [send.campaign_id for send in sends])
        if errors:
            raise ValidationFailed(errors)

    async def campaign_errors(
        self, workspace: str, campaign_ids: Sequence[object]
    ) -> list[FieldError]:
        """An error for each item (by its campaign_id, None or anything but an id for an item
        without one) whose campaign the workspace does not have."""
        wanted = {i for i in campaign_ids if type(i) is int and 1 <= i < 2**63}
        missing = await self._campaigns.missing(wanted, workspace) if wanted else set()
        return [
            FieldError(f"sends[{index}].campaign_id", f"no campaign with id {campaign_id}", index)
            for index, campaign_id in enumerate(campaign_ids)
            # Only ids are looked up: anything else (a list is not even hashable) was named
            # by the validation already.
            if type(campaign_id) is int and campaign_id in missing
        ]

    async def with_campaign_errors(
        self, workspace: str, body: Any, invalid: ValidationFailed
    ) -> ValidationFailed:
        """A refused batch's errors with those of its items' campaigns, so that one answer
        names every bad item."""
        items = body.get("sends") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) > MAX_BATCH:
            return invalid
        ids = [item.get("campaign_id") if isinstance(item, dict) else None for item in items]
        named = {(error.index, error.field) for error in invalid.errors}
        extra = [
            e for e in await self.campaign_errors(workspace, ids) if (e.index, e.field) not in named
        ]
        if not extra:
            return invalid
        return ValidationFailed(
            sorted(
                invalid.errors + extra, key=lambda e: (e.index is not None, e.index or 0, e.field)
            )
        )
