"""Bounded in-process caches: of links, of codes known not to exist (briefly), and of
destinations.

Eviction is first-in-first-out over insertion order: O(1) with no bookkeeping on a hit, which
keeps the hot path to one dict lookup and one comparison. A hot link that is evicted comes
back on its next miss; with a cache sized for the working set that is rare. The order is an
OrderedDict's, whose oldest entry is at hand: a plain dict finds its first entry by skipping
the slots its deletions left, ~44 µs per eviction in a full cache of 100,000 links.

Unknown codes are kept apart, bounded on their own: a scan of code-shaped paths (or a burst of
mistyped ones) then churns only them, and can never push a cached link out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Final, TypeVar

from redirector.store.record import Destination, Link

V = TypeVar("V")


class _Absent:
    """Marks a code known not to exist (a cached miss)."""

    __slots__ = ()


ABSENT: Final = _Absent()


class LinkCache:
    def __init__(self, max_entries: int, ttl: float, miss_ttl: float, max_absent: int) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.miss_ttl = miss_ttl
        self.max_absent = max_absent
        # False while the invalidation feed is down: entries are still served but no new ones
        # are added (see redirector/invalidation.py for why).
        self.enabled = False
        self._links: OrderedDict[str, tuple[float, Link]] = OrderedDict()
        # Codes Redis did not hold, each until when it is answered 404 without asking again.
        self._absent: OrderedDict[str, float] = OrderedDict()
        # Bumped by every invalidation; a reader that saw it change while it asked Redis
        # does not cache what it read (see LinkResolver.find).
        self.generation = 0
        # The destinations the cached links refer to, dropped with them on `clear` (after a
        # gap in the feed Redis may have been emptied, and its ids given again).
        self.destinations = DestinationCache(DESTINATIONS_CACHED)

    def __len__(self) -> int:
        """The links cached (not the unknown codes)."""
        return len(self._links)

    def get(self, code: str, now: float) -> Link | _Absent | None:
        """The cached link, ABSENT for a cached miss, or None when Redis must be asked."""
        entry = self._links.get(code)
        if entry is not None:
            # Frozen (the feed down, or Redis not answering reads yet): served even past its
            # TTL, as Redis could not answer for it; the cache is dropped once it can.
            if entry[0] > now or not self.enabled:
                return entry[1]
            del self._links[code]
            return None
        until = self._absent.get(code)
        if until is None:
            return None
        if until > now:
            return ABSENT
        del self._absent[code]
        return None

    def put(self, code: str, link: Link | None, now: float) -> None:
        self.put_all(((code, link),), now)

    def put_all(self, links: Iterable[tuple[str, Link | None]], now: float) -> None:
        """Each (code, link) cached; None: the code is unknown. One call for a read's links:
        the miss path caches ~40 at a time."""
        if not self.enabled:
            return
        entries, absent = self._links, self._absent
        keep_links = self.max_entries > 0 and self.ttl > 0
        keep_absent = self.max_absent > 0 and self.miss_ttl > 0
        until, absent_until = now + self.ttl, now + self.miss_ttl
        for code, link in links:
            if link is None:
                if keep_absent:
                    _bounded_put(absent, self.max_absent, code, absent_until)
            elif keep_links:
                if absent:  # a code is cached one way at most (an invalidation drops both)
                    absent.pop(code, None)
                _bounded_put(entries, self.max_entries, code, (until, link))

    def discard(self, code: str) -> None:
        self.generation += 1
        self._links.pop(code, None)
        self._absent.pop(code, None)

    def clear(self) -> None:
        self.generation += 1
        self._links.clear()
        self._absent.clear()
        self.destinations.clear()


def _bounded_put(entries: OrderedDict[str, V], bound: int, code: str, value: V) -> None:
    """`code` -> `value`; the oldest entry goes first when `entries` is full."""
    if code not in entries and len(entries) >= bound:
        entries.popitem(last=False)
    entries[code] = value


# Destinations kept per process: a few per campaign, so this covers thousands of campaigns.
DESTINATIONS_CACHED = 10_000


class DestinationCache:
    """A campaign's destinations by id, bounded, first-in-first-out. Never stale while Redis
    keeps its data: an id is never given to other text (redirector/store/keys.py), so entries
    need no TTL and no invalidation. Destinations are few and hot (one per campaign and URL)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, str], Destination] = OrderedDict()

    def get(self, campaign_id: int, destination_id: str) -> Destination | None:
        return self._entries.get((campaign_id, destination_id))

    def put(self, campaign_id: int, destination_id: str, destination: Destination) -> None:
        entries = self._entries
        if entries and len(entries) >= self.max_entries:
            entries.popitem(last=False)
        entries[campaign_id, destination_id] = destination

    def clear(self) -> None:
        self._entries.clear()
