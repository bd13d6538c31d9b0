"""Bounded in-process caches: of links, with misses cached briefly, and of destinations.

Eviction is first-in-first-out over insertion order: O(1) with no bookkeeping on a hit, which
keeps the hot path to one dict lookup and one comparison. A hot link that is evicted comes
back on its next miss; with a cache sized for the working set that is rare. The order is an
OrderedDict's, whose oldest entry is at hand: a plain dict finds its first entry by skipping
the slots its deletions left, ~44 µs per eviction in a full cache of 100,000 links.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from redirector.store.record import Destination, Link


class _Absent:
    """Marks a code known not to exist (a cached miss)."""

    __slots__ = ()


ABSENT: Final = _Absent()


class LinkCache:
    def __init__(self, max_entries: int, ttl: float, miss_ttl: float) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.miss_ttl = miss_ttl
        # False while the invalidation feed is down: entries are still served but no new ones
        # are added (see redirector/invalidation.py for why).
        self.enabled = False
        self._entries: OrderedDict[str, tuple[float, Link | _Absent]] = OrderedDict()
        # Bumped by every invalidation; a reader that saw it change while it asked Redis
        # does not cache what it read (see LinkResolver.find).
        self.generation = 0
        # The destinations the cached links refer to, dropped with them on `clear` (after a
        # gap in the feed Redis may have been emptied, and its ids given again).
        self.destinations = DestinationCache(DESTINATIONS_CACHED)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, code: str, now: float) -> Link | _Absent | None:
        """The cached record, ABSENT for a cached miss, or None when Redis must be asked."""
        entry = self._entries.get(code)
        if entry is None:
            return None
        # Frozen (the feed down, or Redis not answering reads yet): served even past its TTL,
        # as Redis could not answer for it; the cache is dropped once it can.
        if entry[0] > now or not self.enabled:
            return entry[1]
        del self._entries[code]
        return None

    def put(self, code: str, link: Link | None, now: float) -> None:
        if not self.enabled or self.max_entries == 0:
            return
        ttl = self.ttl if link is not None else self.miss_ttl
        if ttl <= 0:
            return
        entries = self._entries
        if code not in entries and len(entries) >= self.max_entries:
            entries.popitem(last=False)
        entries[code] = (now + ttl, link if link is not None else ABSENT)

    def discard(self, code: str) -> None:
        self.generation += 1
        self._entries.pop(code, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self.destinations.clear()


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
