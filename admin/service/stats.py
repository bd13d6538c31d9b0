"""Click analytics over what the click workers record (`redirector.clickworker`); no HTTP.

A stats query never walks the click events: it reads the all-time totals and one pair of
counters per bucket of the window (one HMGET), the breakdown fields and the unique counts,
all in one MULTI, so it costs O(buckets) (and a per-recipient link's s:r field, at most
RECIPIENT_COUNTERS_MAX bytes). Only the CSV export reads the events, from the
campaign's stream, in chunks of `CSV_CHUNK` so that memory stays bounded.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from admin.models import ClickFilter, Window
from admin.service import as_text
from admin.service.campaigns import CampaignService
from admin.service.links import LinkService
from redirector.store.connection import Store, StorePipeline
from redirector.store.keys import (
    BOTS,
    BREAKDOWNS,
    CLICKS,
    EVENT_BOT,
    EVENT_CODE,
    EVENT_RECIPIENT,
    EVENT_REFERER_HOST,
    EVENT_TIME,
    EVENT_USER_AGENT,
    EVENT_VISITOR_HASH,
    LINK_CREATED,
    campaign_breakdowns_key,
    campaign_stats_key,
    campaign_uniques_key,
    click_stream_key,
    clickers_key,
    day_field,
    hour_field,
    link_breakdowns_key,
    link_stats_key,
    link_uniques_key,
    recipient_counters_key,
)
from redirector.store.linkcounters import CountersError, LinkCounters
from redirector.store.linkcounters import decode as decode_counters

log = logging.getLogger(__name__)

# Stream entries per XRANGE of the CSV export (module-level so tests can make it small).
CSV_CHUNK = 1_000

_Entries = list[tuple[bytes, dict[bytes, bytes]]]


@dataclass(frozen=True, slots=True)
class Bucket:
    start: int  # unix seconds
    clicks: int
    bot_hits: int


@dataclass(frozen=True, slots=True)
class Stats:
    clicks: int  # all time, like bot_hits and breakdowns; only `series` follows the window
    unique_clicks: int
    bot_hits: int
    recipients_clicked: int | None  # None for a link without a recipient
    window: Window
    series: list[Bucket]
    breakdowns: dict[str, dict[str, int]]  # "device" | "os" | "browser" | "referer" -> counts


@dataclass(frozen=True, slots=True)
class Clicker:
    recipient: str
    first_click_ms: int
    code: str | None  # None when the recipient's link was deleted since


@dataclass(frozen=True, slots=True)
class ClickEvent:
    at_ms: int
    code: str
    recipient: str | None
    bot: bool
    referer_host: str
    user_agent: str
    visitor_hash: str


@dataclass(frozen=True, slots=True)
class Totals:
    """A campaign's all-time counts, as its stats give them."""

    clicks: int
    unique_clicks: int
    bot_hits: int


@dataclass(frozen=True, slots=True)
class TopLink:
    code: str
    sampled: int  # its clicks among the campaign's latest ones read
    clicks: int  # all time


# The latest click events of a campaign that its top links are found among: there is no
# per-link ranking to read (it would cost the click path a write per link and flush), and a
# bounded read of the stream costs the page view ~10 ms, whatever the campaign's size.
TOP_LINKS_SAMPLE = 5_000


class StatsService:
    def __init__(self, redis: Store, campaigns: CampaignService, links: LinkService) -> None:
        self._redis = redis
        self._campaigns = campaigns
        self._links = links

    async def link_stats(self, code: str, workspace: str, window: Window) -> Stats:
        link = await self._links.get_link(code, workspace)
        campaign_id = link.campaign_id
        # One MULTI over one slot: a link's click keys carry its campaign's tag.
        stats = link_stats_key(campaign_id, code)
        breakdowns = link_breakdowns_key(campaign_id, code)
        names = _counter_fields(window)  # up to 20,002 of them: made once
        async with self._redis.pipeline(transaction=True) as pipe:
            _queue_counters(pipe, stats, breakdowns, names)
            pipe.hget(stats, LINK_CREATED)
            if link.recipient is None:
                _queue_pfcount(pipe, link_uniques_key(campaign_id, code))
            else:  # and its field of s:r (keys.py): both, for a link counted before s:r
                pipe.hget(recipient_counters_key(campaign_id), code)
            counts, fields, counted, *more = await pipe.execute()
        uniques = more if link.recipient is None else []
        if counted is not None and int(counted) != link.created_at:
            # Another link's, given this custom code before: this one has no clicks yet (its
            # first flush drops them, redirector/store/flush.py).
            counts, fields, uniques = [None] * len(counts), {}, [0] * len(uniques)
        held = None if link.recipient is None else _decoded(more[0])
        if held is not None and held.created == link.created_at:  # else another link's
            counts, fields = _with_counters(counts, fields, held, names)
        clicks, bots, series = _counters(counts, window)
        # A link with a recipient has one person behind it: unique is whether they clicked.
        unique = int(uniques[0]) if link.recipient is None else int(clicks > 0)
        clicked = None if link.recipient is None else unique
        return Stats(clicks, unique, bots, clicked, window, series, _breakdowns(fields))

    async def campaign_stats(self, campaign_id: int, workspace: str, window: Window) -> Stats:
        await self._campaigns.get_campaign(campaign_id, workspace, count_links=False)
        async with self._redis.pipeline(transaction=True) as pipe:
            _queue_counters(
                pipe,
                campaign_stats_key(campaign_id),
                campaign_breakdowns_key(campaign_id),
                _counter_fields(window),
            )
            pipe.zcard(clickers_key(campaign_id))
            _queue_pfcount(pipe, campaign_uniques_key(campaign_id))
            counts, fields, clicked, anonymous = await pipe.execute()
        clicks, bots, series = _counters(counts, window)
        # Recipients are counted exactly; visitors of links without one are estimated (HLL).
        unique = int(clicked) + int(anonymous)
        return Stats(clicks, unique, bots, int(clicked), window, series, _breakdowns(fields))

    async def campaign_totals(self, campaign_ids: Sequence[int]) -> list[Totals]:
        """The all-time counts of each campaign (ids the caller has found in its workspace),
        in one pipeline: 3 reads per campaign, for a list of campaigns."""
        if not campaign_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for campaign_id in campaign_ids:
                pipe.hmget(campaign_stats_key(campaign_id), [CLICKS, BOTS])
                pipe.zcard(clickers_key(campaign_id))
                _queue_pfcount(pipe, campaign_uniques_key(campaign_id))
            replies = await pipe.execute()
        totals = []
        for at in range(0, len(replies), 3):
            (clicks, bots), clicked, anonymous = replies[at : at + 3]
            totals.append(Totals(int(clicks or 0), int(clicked) + int(anonymous), int(bots or 0)))
        return totals

    async def top_links(
        self, campaign_id: int, workspace: str, limit: int = 10, sample: int = TOP_LINKS_SAMPLE
    ) -> tuple[int, list[TopLink]]:
        """The campaign's most clicked links among its latest `sample` hits (how many clicks
        that sample held, and the links by clicks in it, with their all-time clicks)."""
        await self._campaigns.get_campaign(campaign_id, workspace, count_links=False)
        entries = cast(
            _Entries,
            await self._redis.xrevrange(click_stream_key(campaign_id), "+", "-", count=sample),
        )
        counted = Counter(
            as_text(fields.get(EVENT_CODE.encode(), b""))
            for _, fields in entries
            if fields.get(EVENT_BOT.encode()) != b"1"
        )
        top = counted.most_common(limit)
        async with self._redis.pipeline(transaction=True) as pipe:  # one tag: the campaign's
            for code, _ in top:
                pipe.hmget(link_stats_key(campaign_id, code), [LINK_CREATED, CLICKS])
                pipe.hget(recipient_counters_key(campaign_id), code)  # a recipient's link
            replies = await pipe.execute() if top else []
        links = [
            TopLink(code, seen, _all_time_clicks(own, held))
            for (code, seen), own, held in zip(top, replies[::2], replies[1::2], strict=True)
        ]
        return counted.total(), links

    async def clickers(
        self, campaign_id: int, workspace: str, offset: int, limit: int
    ) -> tuple[int, list[Clicker]]:
        """The campaign's recipients who clicked, by first click, with their link's code
        (found on each recipient's chain of codes, as creating their link again would)."""
        campaign = await self._campaigns.get_campaign(campaign_id, workspace, count_links=False)
        key = clickers_key(campaign_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zcard(key)
            pipe.zrange(key, offset, offset + limit - 1, withscores=True)
            total, rows = await pipe.execute()
        recipients = [as_text(member) for member, _ in rows]
        chain = await self._links.chain(campaign)
        found = await self._links.store.recipient_links(campaign_id, recipients, chain)
        return int(total), [
            Clicker(recipient, int(score), found[recipient][0])
            for recipient, (_, score) in zip(recipients, rows, strict=True)
        ]

    async def click_events(
        self, campaign_id: int, workspace: str, query: ClickFilter
    ) -> AsyncIterator[list[ClickEvent]]:
        """The campaign's click events in chunks, oldest first. The campaign is looked up
        here, before the first chunk, so that a 404 can still be answered as JSON."""
        await self._campaigns.get_campaign(campaign_id, workspace, count_links=False)
        return self._read_events(click_stream_key(campaign_id), query)

    async def _read_events(self, key: str, query: ClickFilter) -> AsyncIterator[list[ClickEvent]]:
        start = "-" if query.start_ms is None else str(query.start_ms)
        if query.end_ms is not None and query.end_ms <= 0:
            return
        # An id of only milliseconds ends a range inclusively at that millisecond's last entry.
        end = "+" if query.end_ms is None else str(query.end_ms - 1)
        while True:
            # redis-py's annotation of XRANGE is looser than what it returns.
            entries = cast(_Entries, await self._redis.xrange(key, start, end, count=CSV_CHUNK))
            events = [_event(fields) for _, fields in entries]
            wanted = [e for e in events if query.wants(e.bot)]
            if wanted:
                yield wanted
            if len(entries) < CSV_CHUNK:
                return
            start = "(" + as_text(entries[-1][0])  # exclusive: after the last entry read


def _queue_pfcount(pipe: StorePipeline, key: str) -> None:
    # redis-py's cluster pipeline refuses its pfcount() (a multi-key command in general); one
    # key is one slot, so the plain command is fine on both kinds of Redis.
    pipe.execute_command("PFCOUNT", key)


def _queue_counters(pipe: StorePipeline, key: str, breakdowns: str, names: Sequence[str]) -> None:
    """HMGET of `names` (`_counter_fields`); HGETALL of the breakdowns hash (its fields are
    not known in advance; there are as many as distinct devices, OSes, browsers and
    referers, whatever the window)."""
    pipe.hmget(key, names)
    pipe.hgetall(breakdowns)


def _counter_fields(window: Window) -> list[str]:
    """The totals, then each bucket's clicks and bot hits."""
    field = hour_field if window.granularity == "hour" else day_field
    fields = [CLICKS, BOTS]
    for bucket in window.buckets():
        fields += (field(bucket), field(bucket, bot=True))
    return fields


def _with_counters(
    counts: Sequence[bytes | None],
    fields: Mapping[bytes, bytes],
    held: LinkCounters,
    names: Sequence[str],
) -> tuple[list[int], dict[bytes, int]]:
    """What `_queue_counters` read of `names`, plus a per-recipient link's counters of its
    s:r field."""
    summed = [int(v or 0) + held.stats.get(name, 0) for v, name in zip(counts, names, strict=True)]
    breakdowns = {name: int(value) for name, value in fields.items()}
    for name, value in held.breakdowns.items():
        key = name.encode()
        breakdowns[key] = breakdowns.get(key, 0) + value
    return summed, breakdowns


def _decoded(raw: bytes | None) -> LinkCounters | None:
    """A per-recipient link's s:r field, None if it has none or it holds no counters (then
    logged: the next flush counts it afresh)."""
    if raw is None:
        return None
    try:
        return decode_counters(raw)
    except CountersError as exc:
        log.warning("%s", exc)
        return None


def _all_time_clicks(own: Sequence[bytes | None], raw: bytes | None) -> int:
    """A code's all-time clicks from its s:l hash (`created`, `clicks`) and its s:r field:
    the newer link's, or both when they name the same link (or s:l names none: counted before
    creation times were kept; a link's stats add its s:r field only when it names the link, so
    the two may differ for such a code given again, which `admin migrate` now prevents by
    stamping). A code given again to a link of the other kind counts in the other place
    (redirector/store/flush.py)."""
    created, clicks = own[0], int(own[1] or 0)
    held = _decoded(raw)
    if held is None:
        return clicks
    theirs = held.stats.get(CLICKS, 0)
    if created is None or int(created) == held.created:
        return clicks + theirs
    return theirs if held.created > int(created) else clicks


def _counters(
    counts: Sequence[bytes | int | None], window: Window
) -> tuple[int, int, list[Bucket]]:
    values = [int(v or 0) for v in counts]
    series = [
        Bucket(bucket * window.step, values[2 + 2 * i], values[3 + 2 * i])
        for i, bucket in enumerate(window.buckets())
    ]
    return values[0], values[1], series


def _breakdowns(fields: Mapping[bytes, bytes | int]) -> dict[str, dict[str, int]]:
    """Breakdown fields by kind, each by count (highest first), then name."""
    found: dict[str, dict[str, int]] = {kind: {} for kind in BREAKDOWNS}
    for raw, value in fields.items():
        name = as_text(raw)
        for kind, prefix in BREAKDOWNS.items():
            if name.startswith(prefix):
                found[kind][name[len(prefix) :]] = int(value)
                break
    return {
        kind: dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
        for kind, counts in found.items()
    }


def _event(fields: Mapping[bytes, bytes]) -> ClickEvent:
    def get(name: str) -> str:
        return as_text(fields.get(name.encode(), b""))

    return ClickEvent(
        at_ms=int(get(EVENT_TIME) or 0),
        code=get(EVENT_CODE),
        recipient=get(EVENT_RECIPIENT) or None,
        bot=get(EVENT_BOT) == "1",
        referer_host=get(EVENT_REFERER_HOST),
        user_agent=get(EVENT_USER_AGENT),
        visitor_hash=get(EVENT_VISITOR_HASH),
    )
