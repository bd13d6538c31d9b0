"""Raw hits to FLUSH_CLICKS batches, in the click worker: the user agent classified, the
visitor hashed (salted, so that no raw IP address is stored), the hits grouped by campaign.
No I/O here."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from redirector.store.flush import ClickBatch
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
            rows = orjson.loads(element)
            lines = [_line(found.by_campaign, row, salt) for row in rows]
        except (TypeError, ValueError, AttributeError) as exc:  # JSONDecodeError is a ValueError
            # Never a flush of ours: dropped, or it would block its queue for good.
            log.error("dropped a raw-hit queue element that is no flush of hits (%s)", exc)
            found.malformed += 1
            continue
        for campaign_id, bot, line in lines:
            found.by_campaign[campaign_id].hit_lines.append(line)
            found.bots += bot
        found.hits += len(lines)
    return found


def _line(
    by_campaign: dict[int | None, ClickBatch], row: list[Any], salt: bytes
) -> tuple[int | None, bool, str]:
    """A hit's campaign, whether it is a bot's, and its line for its campaign's batch (the
    format is FLUSH_CLICKS's, in flush.py). The batch is made here, if need be, so that the
    link's keys are declared in it."""
    code, campaign_id, recipient, link_created_at, at, head, user_agent, referer, ip = row
    created = str(int(link_created_at))  # the script compares it as a number
    batch = by_campaign.get(campaign_id)
    if batch is None:
        batch = by_campaign[campaign_id] = ClickBatch(campaign_id)
    agent = classify(user_agent)
    bot = bool(head) or agent.bot
    person = f"{ip}\0{user_agent}".encode()
    digest = hashlib.blake2b(person, key=salt, digest_size=8).hexdigest()
    line = "\t".join(
        (
            code,
            batch.link(code),
            recipient or "",
            str(int(at * 1000)),
            "1" if bot else "0",
            _one_line(user_agent[:512]),
            referer_host(referer),
            digest,
            agent.device,
            _one_line(agent.os),
            _one_line(agent.browser),
            created,
        )
    )
    return campaign_id, bot, line


def referer_host(referer: str) -> str:
    if not referer:
        return ""
    try:
        host = urlsplit(referer).hostname or ""
    except ValueError:
        return ""
    return host[:253]


def _one_line(text: str) -> str:
    # Header values may hold a tab; the script splits on tabs and newlines.
    return text.replace("\t", " ").replace("\n", " ") if "\t" in text or "\n" in text else text
