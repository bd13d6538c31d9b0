"""The arguments of one FLUSH_CLICKS call (flush.py), built by the click worker as it reads a
chunk's hits: the stream entries in order, and the counters summed per key and field, so that
Redis does one write per key and field instead of Lua tables doing the sums per hit; the
per-recipient values merged with those read (Redis writes them if they are unchanged). No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import orjson

from redirector.store.keys import (
    BOTS,
    BREAKDOWNS,
    CLICK_TIMES_KEPT,
    CLICKS,
    DAY,
    HOUR,
    campaign_breakdowns_key,
    campaign_stats_key,
    campaign_uniques_key,
    click_stream_key,
    clickers_key,
    day_field,
    flush_key,
    hour_field,
    link_breakdowns_key,
    link_stats_key,
    link_uniques_key,
    recipient_clicks_key,
    recipient_counters_key,
)
from redirector.store.linkcounters import merged

_DEVICE, _OS, _BROWSER, _REFERER = (
    BREAKDOWNS[kind] for kind in ("device", "os", "browser", "referer")
)
_HOUR_MS = HOUR * 1000
_ENTRY_FIELDS = 7  # values of a hit's stream entry in ClickBatch._entries


# A hit as the click worker adds it to a batch, classified and its visitor hashed: campaign
# id (None for a link without one), code, the link's creation time (unix s: tells it from
# another link given the same code since), recipient ('' if none), time (unix ms), bot, user
# agent, referer host ('' if none), the visitor's salted hash, device type, OS, browser. A
# plain tuple: the worker makes one per hit, and a NamedTuple takes ~0.3 µs more to make.
Click = tuple[int | None, str, int, str, int, bool, str, str, str, str, str, str]


class Counts:
    """What some hits add: how many there are per hour (each hour's stats fields are made
    when the batch is sent), to each breakdown field, and their visitors' hashes (once
    each: a dict's keys)."""

    __slots__ = ("breakdowns", "hours", "visitors")

    def __init__(self) -> None:
        self.hours: dict[int, int] = {}  # by hour * 2 + bot (as `_stats_fields` takes it)
        self.breakdowns: dict[str, int] = {}
        self.visitors: dict[str, None] = {}

    def merge(self, other: Counts) -> None:
        _add(self.hours, other.hours)
        _add(self.breakdowns, other.breakdowns)
        self.visitors |= other.visitors

    def stats(self) -> dict[str, int]:
        """The increments of the stats fields (clicks, bots, hours, days)."""
        stats: dict[str, int] = {}
        for hour_key, count in self.hours.items():
            for name in _stats_fields(hour_key):
                stats[name] = stats.get(name, 0) + count
        return stats

    def flat(self, into: list[Any]) -> None:
        """Append the counts as FLUSH_CLICKS reads them (but for the link's or campaign's
        own): how many stats fields, then field, increment, ...; the same for the
        breakdowns; how many visitors, then their hashes."""
        for counts in (self.stats(), self.breakdowns):
            into.append(len(counts))
            for pair in counts.items():
                into += pair
        into.append(len(self.visitors))
        into += self.visitors


class _LinkCounts(Counts):
    """The counts of one link: of the hits in the batch of its code's newest link."""

    __slots__ = ("created", "index")

    def __init__(self, index: int, created: int) -> None:
        super().__init__()
        self.index = index  # of its stats key in KEYS, counting from 1 (0: a recipient's)
        self.created = created  # unix s


class ClickBatch:
    """The hits of one campaign, as FLUSH_CLICKS takes them. Each link without recipient
    declares its keys in KEYS on its first hit; a per-recipient link's counters are a field of
    the campaign's s:r hash (linkcounters.py). The campaign's counts are its links' parts,
    summed at the end, and those of any hits that no link part counts (of an older link of a
    code)."""

    def __init__(self, campaign_id: int | None) -> None:
        self.campaign_id = campaign_id
        # What the campaign's stats, breakdowns and uniques get from this batch: its own hits'
        # (None), or what the caller put there (one part of a campaign's hits carries the
        # totals of all: clickbatch.py).
        self.totals: Counts | None = None
        self.bots = 0  # of the hits added, those of bots
        self.keys = [
            click_stream_key(campaign_id),
            flush_key(campaign_id),
            recipient_counters_key(campaign_id),
        ]
        if campaign_id is not None:
            self.keys += (
                campaign_stats_key(campaign_id),
                campaign_breakdowns_key(campaign_id),
                campaign_uniques_key(campaign_id),
                clickers_key(campaign_id),
                recipient_clicks_key(campaign_id),
            )
        # Seven values per hit, as FLUSH_CLICKS's stream entries: one flat list of strings,
        # which the garbage collector does not track.
        self._entries: list[str] = []
        self._links: dict[str, _LinkCounts] = {}  # of the links without recipient
        self._recipient_links: dict[str, _LinkCounts] = {}
        self._older = Counts()  # hits that count for the campaign only
        self._clickers: dict[str, str] = {}  # recipient -> their first click in the batch
        # recipient -> their clicks in the batch (unix ms), for attribution by click
        self._clicks: dict[str, list[int]] = {}
        # The breakdown fields of each user agent, made once: a field made per hit would be
        # a new string to hash every time it is counted.
        self._agent_fields: dict[str, tuple[str, str, str]] = {}

    @property
    def hits(self) -> int:
        """The hits added: a stream entry each."""
        return len(self._entries) // _ENTRY_FIELDS

    def add(self, click: Click) -> None:
        _, code, created, recipient, at_ms, bot, user_agent, referer, visitor, *agent = click
        at = str(at_ms)
        self._entries += (code, recipient, at, user_agent, referer, visitor, "1" if bot else "0")
        links = self._recipient_links if recipient else self._links
        link = links.get(code)
        counts = (
            link
            if link is not None and link.created == created
            else self._counts(links, code, created)
        )
        hours, hour_key = counts.hours, at_ms // _HOUR_MS * 2 + bot
        hours[hour_key] = hours.get(hour_key, 0) + 1
        if bot:
            self.bots += 1
            return
        names = self._agent_fields.get(user_agent)
        if names is None:
            device, os, browser = agent
            names = self._agent_fields[user_agent] = (
                _DEVICE + device,
                _OS + os,
                _BROWSER + browser,
            )
        breakdowns = counts.breakdowns
        for name in names:
            breakdowns[name] = breakdowns.get(name, 0) + 1
        if referer:
            name = _REFERER + referer
            breakdowns[name] = breakdowns.get(name, 0) + 1
        if not recipient:
            counts.visitors[visitor] = None
        elif self.campaign_id is not None:
            if recipient not in self._clickers:
                self._clickers[recipient] = at
            self._clicks.setdefault(recipient, []).append(at_ms)

    def _counts(self, links: dict[str, _LinkCounts], code: str, created: int) -> Counts:
        """Where a hit of `code`'s link created at `created` counts: its link's part, unless
        the batch has a newer link of that code (which owns the code's counters: see
        FLUSH_CLICKS); then the campaign's alone. `links`: the batch's links without
        recipient, or its per-recipient links."""
        link = links.get(code)
        if link is None:
            if links is self._recipient_links:
                link = links[code] = _LinkCounts(0, created)
                return link
            link = links[code] = _LinkCounts(len(self.keys) + 1, created)
            self.keys += (
                link_stats_key(self.campaign_id, code),
                link_breakdowns_key(self.campaign_id, code),
                link_uniques_key(self.campaign_id, code),
            )
        elif created > link.created:
            self._older.merge(link)
            link = links[code] = _LinkCounts(link.index, created)
        elif created < link.created:
            return self._older
        return link

    def own_totals(self) -> Counts:
        """What this batch's hits add to the campaign's stats, breakdowns and uniques."""
        total = Counts()
        for counts in (self._older, *self._links.values(), *self._recipient_links.values()):
            total.merge(counts)
        return total

    def arguments(self) -> tuple[bytes, bytes, bytes]:
        """ARGV[15..17] of FLUSH_CLICKS: the stream entries, the campaign's part, the links',
        each one flat JSON array (flush.py says what is where)."""
        campaign: list[Any] = []
        if self.campaign_id is not None:
            (self.own_totals() if self.totals is None else self.totals).flat(campaign)
            campaign.append(len(self._clickers))
            for recipient, first in self._clickers.items():
                campaign += (first, recipient)
        links: list[Any] = []
        for link in self._links.values():
            links += (link.index, str(link.created))
            link.flat(links)
        return orjson.dumps(self._entries), orjson.dumps(campaign), orjson.dumps(links)

    @property
    def recipient_codes(self) -> list[str]:
        """The per-recipient links' codes: their fields in the campaign's s:r hash."""
        return list(self._recipient_links)

    @property
    def clicked_recipients(self) -> list[str]:
        """The recipients who clicked (with a campaign): their fields in its kr hash."""
        return list(self._clicks)

    def recipient_arguments(self, held: Sequence[bytes | None] | None) -> list[str | bytes]:
        """ARGV[18..] of FLUSH_CLICKS, given the values held for `recipient_codes` and then
        `clicked_recipients` (None for one without; `held` None: none has any, as far as the
        worker knows): the values to write, each per-recipient link's counters merged with
        this batch's (linkcounters.py) and each recipient's latest clicks with theirs, and
        last the values held they were merged with, if any."""
        links = self._recipient_links
        every = held or [None] * (len(links) + len(self._clicks))
        values = [
            merged(value, link.created, link.stats(), link.breakdowns) or b""
            for value, link in zip(every[: len(links)], links.values(), strict=True)
        ]
        latest = [
            latest_clicks(value, times)
            for value, times in zip(every[len(links) :], self._clicks.values(), strict=True)
        ]
        arguments: list[str | bytes] = [str(len(links)), *links, *values]
        arguments += (str(len(latest)), *self._clicks, *latest)
        if held is not None:
            arguments += (value or b"" for value in held)
        return arguments


_TIME = re.compile(rb"\d+")
_TIME_DIGITS = 19  # a longer run of digits held is no time (nor a 64-bit number)


def latest_clicks(held: bytes | None, times: list[int]) -> str:
    """A recipient's latest CLICK_TIMES_KEPT click times (unix ms) of those `held` (anything
    else there dropped) and `times`, as the campaign's kr hash holds them: ascending,
    space-separated."""
    found = _TIME.findall(held) if held else []
    every = [int(time) for time in found if len(time) <= _TIME_DIGITS]
    every += times
    every.sort()
    return " ".join(map(str, every[-CLICK_TIMES_KEPT:]))


def _add(sums: dict[Any, int], counts: dict[Any, int]) -> None:
    for name, count in counts.items():
        sums[name] = sums.get(name, 0) + count


@lru_cache(maxsize=1024)
def _stats_fields(hour_key: int) -> tuple[str, str, str]:
    """The stats fields that a hit adds one to, by `hour * 2 + bot`."""
    bot, hour = bool(hour_key % 2), hour_key // 2
    day = hour * HOUR // DAY
    if bot:
        return BOTS, hour_field(hour, bot=True), day_field(day, bot=True)
    return CLICKS, hour_field(hour), day_field(day)
