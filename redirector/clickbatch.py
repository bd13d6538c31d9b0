"""Raw hits to FLUSH_CLICKS batches, in the click worker: the user agent classified, the
visitor hashed (salted, so that no raw IP address is stored), the hits grouped by campaign
and summed per counter (redirector/store/flushbatch.py). No I/O here."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from redirector.clicks import USER_AGENT_MAX
from redirector.store.flushbatch import Click, ClickBatch
from redirector.useragents import classify

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Batches:
    """One chunk's hits by campaign, and how many hits and bot hits it held."""

    by_campaign: dict[int | None, ClickBatch] = field(default_factory=dict)
    hits: int = 0
    bots: int = 0
    malformed: int = 0  # queue elements that were not raw hits, dropped (and logged)


def batches(elements: list[bytes], salt: bytes) -> Batches:
    """The FLUSH_CLICKS batches of `elements`, each a flush of raw hits
    (`redirector.clicks.pack_hits`), in order."""
    found = Batches()
    for element in elements:
        try:
            clicks = [_click(row, salt) for row in orjson.loads(element)]
        except (TypeError, ValueError, AttributeError) as exc:  # JSONDecodeError is a ValueError
            # Never a flush of ours: dropped, or it would block its queue for good.
            log.error("dropped a raw-hit queue element that is no flush of hits (%s)", exc)
            found.malformed += 1
            continue
        for click in clicks:
            campaign_id = click[0]
            batch = found.by_campaign.get(campaign_id)
            if batch is None:
                batch = found.by_campaign[campaign_id] = ClickBatch(campaign_id)
            batch.add(click)
        found.hits += len(clicks)
    found.bots = sum(batch.bots for batch in found.by_campaign.values())
    return found


def _click(row: list[Any], salt: bytes) -> Click:
    """A raw hit classified and hashed."""
    code, campaign_id, recipient, link_created_at, at, head, user_agent, referer, ip = row
    agent = classify(user_agent)
    person = f"{ip}\0{user_agent}".encode()
    return (
        campaign_id,
        code,
        int(link_created_at),
        recipient or "",
        int(at * 1000),
        bool(head) or agent.bot,
        user_agent[:USER_AGENT_MAX],
        referer_host(referer),
        hashlib.blake2b(person, key=salt, digest_size=8).hexdigest(),
        agent.device,
        agent.os,
        agent.browser,
    )


def referer_host(referer: str) -> str:
    if not referer:
        return ""
    try:
        host = urlsplit(referer).hostname or ""
    except ValueError:
        return ""
    return host[:253]
