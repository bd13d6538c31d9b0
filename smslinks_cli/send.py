"""`smslinks send`: a campaign's links for a file of recipients, 10,000 per request, written
to a links file as they come. Resumable: the batch API is idempotent per (campaign,
recipient), so a run again skips the recipients the file holds, and any batch answered but
not written before an interruption is asked again and answers the same codes."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from smslinks_cli.client import Api
from smslinks_cli.csvfiles import LinksFile, Recipient
from smslinks_cli.errors import ApiError, CliError, at_line

MAX_BATCH = 10_000  # the API's limit per request
# Two requests in flight: the admin creates one batch while the other's answer travels and
# is written; more only queue up on a one-process admin.
IN_FLIGHT = 2


@dataclass(frozen=True, slots=True)
class SendPlan:
    campaign_id: int
    url: str | None  # for the recipients without their own
    recipients: Sequence[Recipient]  # those not done yet
    source: str  # the recipients file, for error messages
    batch_size: int = MAX_BATCH


async def check_resumed(api: Api, links: LinksFile, campaign_id: int) -> None:
    """A links file being continued must be of this campaign: one of its codes is asked."""
    if not links.done:
        return
    code = next(iter(links.done.values()))
    try:
        link = await api.call("GET", f"/api/links/{code}")
    except ApiError as exc:
        if exc.status == 403:  # a key that may only create links: it cannot be checked
            return
        if exc.status != 404:
            raise
        link = {"campaign_id": None}
    if link["campaign_id"] != campaign_id:
        raise CliError(
            f"{links.path} holds links that are not of campaign {campaign_id} (its link "
            f"{code} is not): choose another --out"
        )


async def send(api: Api, plan: SendPlan, links: LinksFile, advance: Callable[[int], None]) -> None:
    """Every recipient of the plan's links into `links`, in the plan's order, batch by batch,
    `advance`d by each."""
    in_flight: deque[asyncio.Task[list[tuple[str, str, str]]]] = deque()
    try:
        for start in range(0, len(plan.recipients), plan.batch_size):
            if len(in_flight) == IN_FLIGHT:
                _write(await in_flight.popleft(), links, advance)
            batch = plan.recipients[start : start + plan.batch_size]
            in_flight.append(asyncio.create_task(_create(api, plan, batch)))
        while in_flight:
            _write(await in_flight.popleft(), links, advance)
    finally:
        for task in in_flight:  # after an error or Ctrl-C: the file holds what was answered
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)


def _write(
    rows: list[tuple[str, str, str]], links: LinksFile, advance: Callable[[int], None]
) -> None:
    links.append(rows)
    advance(len(rows))


async def _create(
    api: Api, plan: SendPlan, batch: Sequence[Recipient]
) -> list[tuple[str, str, str]]:
    body: dict[str, Any] = {
        "campaign_id": plan.campaign_id,
        "links": [{"recipient": r.recipient} | ({"url": r.url} if r.url else {}) for r in batch],
    }
    if plan.url:
        body["url"] = plan.url
    try:
        answer = await api.call("POST", "/api/links/batch", json=body)
    except ApiError as exc:
        raise at_line(exc, "links", plan.source, [r.line for r in batch]) from None
    # One link per item, in request order.
    return [
        (item.recipient, link["code"], link["short_url"])
        for item, link in zip(batch, answer["links"], strict=True)
    ]
