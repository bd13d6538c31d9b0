"""Raw hits to FLUSH_CLICKS batches, in the click worker: the user agent classified, the
visitor hashed (salted, so that no raw IP address is stored), the hits grouped by campaign,
then into parts by link, and summed per counter (redirector/store/flushbatch.py). No I/O.

Why parts: Redis runs a script to its end before anything else, so one FLUSH_CLICKS call per
campaign and chunk (thousands of per-recipient links) held every link lookup queued behind it
for 70-130 ms. A part holds the hits of at most PART_LINKS links (all their hits in the chunk,
so that the sums stay as large as one call's) and at most PART_HITS hits (a link tapped more
often than that in a chunk is spread over parts): under a millisecond of Redis, mostly. The first
part also carries the campaign's stats, breakdowns and uniques for the whole chunk, so those
are written once (between a crash and the chunk's next application a reader may see them
ahead of the links' counters and the stream). Links go to parts in the order of their first
hit and each link's hits in order, so a recipient's first click is in the earliest part that
has one (the clickers' ZADD NX keeps it). The parts of a campaign are applied in order, each
under a number of its own (`part_number`) recorded under a name that says how chunks are cut
(`part_flusher`): a chunk applied again skips exactly the parts that went through, and a
worker that cuts chunks otherwise (another release) records under another name, so that it
never skips, and so drops, what it did not apply. The stream gets a chunk's entries part by
part (entry ids are the time they are written; every entry carries its click's own time).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from redirector.clicks import USER_AGENT_MAX
from redirector.store.flushbatch import Click, ClickBatch, Counts
from redirector.useragents import classify

log = logging.getLogger(__name__)


# Links per FLUSH_CLICKS call at most (all their hits, up to PART_HITS). 25 since 2026-12-02
# (50 before): in redirect_ab's miss row (per-recipient links tapped ~3.5 times each) the
# calls of 250 µs or more took 0.28-0.35 ms at the median and 0.5-1.1 ms at most, against
# 0.5-0.6 and 1.3-5.7 ms, every lookup that arrived meanwhile waiting. Redis's CPU per
# request and the rate showed no difference beyond this machine's noise over 14 interleaved
# pairs in three runs, though one run of 4 (open loop at 12,000 req/s) favoured 50 and 500.
PART_LINKS = 25
# Hits per call at most (each an entry to decode and XADD: ~2.3 µs of Redis).
PART_HITS = 250
# Parts of one campaign in one chunk at most; past it the last part takes the rest. A chunk
# holds at most 256 flushes of at most 5,000 hits (clickworker.py, clicks.py): 51,200 parts
# when every hit is a link of its own (25 a part), 5,120 by hits alone (250 a part).
PARTS_PER_CHUNK = 1 << 16


def part_flusher(flusher: str) -> str:
    """The name FLUSH_CLICKS records a queue's parts under: the queue's (`Chunk.flusher`) and
    how its chunks are cut into parts."""
    return f"{flusher}:p{PART_LINKS}x{PART_HITS}"


def part_number(chunk_number: int, part: int) -> int:
    """The number FLUSH_CLICKS records part `part` of a campaign's hits in chunk
    `chunk_number` under: increasing over the parts, then over the queue's chunks (exact in
    Lua's doubles for 2^37 chunks)."""
    return chunk_number * PARTS_PER_CHUNK + part


@dataclass(slots=True)
class Batches:
    """One chunk's hits by campaign, each campaign's in parts (in order), and how many hits
    and bot hits it held."""

    by_campaign: dict[int | None, list[ClickBatch]] = field(default_factory=dict)
    hits: int = 0
    bots: int = 0
    malformed: int = 0  # queue elements that were not raw hits, dropped (and logged)


def batches(
    elements: list[bytes], salt: bytes, part_links: int = PART_LINKS, part_hits: int = PART_HITS
) -> Batches:
    """The FLUSH_CLICKS batches of `elements`, each a flush of raw hits
    (`redirector.clicks.pack_hits`), in order: a campaign's hits in parts of `part_links`
    links and `part_hits` hits at most."""
    found = Batches()
    by_campaign: dict[int | None, list[Click]] = {}
    for element in elements:
        try:
            clicks = [_click(row, salt) for row in orjson.loads(element)]
        except (TypeError, ValueError, AttributeError) as exc:  # JSONDecodeError is a ValueError
            # Never a flush of ours: dropped, or it would block its queue for good.
            log.error("dropped a raw-hit queue element that is no flush of hits (%s)", exc)
            found.malformed += 1
            continue
        for click in clicks:
            by_campaign.setdefault(click[0], []).append(click)
        found.hits += len(clicks)
    for campaign_id, clicks in by_campaign.items():
        parts = _parts(campaign_id, clicks, part_links, part_hits)
        found.by_campaign[campaign_id] = parts
        found.bots += sum(part.bots for part in parts)
    return found


def _parts(
    campaign_id: int | None, clicks: list[Click], part_links: int, part_hits: int
) -> list[ClickBatch]:
    """`clicks` (of one campaign, at least one) by link, `part_links` links a part in the
    order of each link's first click, each link's in order, `part_hits` at most a part; the
    first part carries the campaign's totals."""
    group_of: dict[str, int] = {}
    groups: list[list[Click]] = []
    for click in clicks:
        code = click[1]
        index = group_of.get(code)
        if index is None:
            index = group_of[code] = len(group_of) // part_links
            if index == len(groups):
                groups.append([])
        groups[index].append(click)
    cuts = [group[i : i + part_hits] for group in groups for i in range(0, len(group), part_hits)]
    if len(cuts) > PARTS_PER_CHUNK:
        cuts[PARTS_PER_CHUNK - 1 :] = [
            [click for cut in cuts[PARTS_PER_CHUNK - 1 :] for click in cut]
        ]
    parts = []
    for cut in cuts:
        part = ClickBatch(campaign_id)
        for click in cut:
            part.add(click)
        parts.append(part)
    if len(parts) > 1:
        totals = Counts()
        for part in parts:
            totals.merge(part.own_totals())
            part.totals = Counts()
        parts[0].totals = totals
    return parts


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
