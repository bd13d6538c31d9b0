"""Unknown codes asked for per client address: past `limit` in one window (a minute), that
address gets 429 for every code until its window ends, so that guessing codes costs time.
Valid codes are refused too: answering them would tell a guesser which of its guesses exist.

Counted in this process's memory (each process of each instance counts on its own), for a
bounded number of addresses: beyond `max_addresses` the oldest window is forgotten. A window
starts at an address's first unknown code and lasts `window` seconds; windows are kept in the
order they started, so the oldest is the first. The redirect path looks at `blocked` only
when it is not empty: an address over its limit costs the others nothing.

An IPv6 address is counted by its first 64 bits: a host or a subscriber holds a whole /64
(2**64 addresses), and counted per address it could give every guess an address of its own.
An IPv4-mapped IPv6 address is its IPv4 address; anything else, as given.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict

WINDOW = 60.0
MAX_ADDRESSES = 100_000
IPV6_PREFIX = 64  # bits of an IPv6 address that name who is counted


def counted_as(address: str) -> str:
    """Who `address` is counted as: its /64 for IPv6, else itself. IPv4 costs one `in`."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    mapped = ip.ipv4_mapped
    if mapped is not None:
        return str(mapped)
    # Its first 64 bits in hex, e.g. "20010db800010002/64" (an IPv6Network costs 5 times more).
    return ip.packed[: IPV6_PREFIX // 8].hex() + "/64"


class MissLimiter:
    def __init__(
        self, limit: int, window: float = WINDOW, max_addresses: int = MAX_ADDRESSES
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        # address -> [when its window ends, unknown codes in it], oldest window first
        self._windows: OrderedDict[str, list[float]] = OrderedDict()
        # address -> when it may ask again, in the order they were blocked
        self.blocked: OrderedDict[str, float] = OrderedDict()

    def wait(self, address: str, now: float) -> float:
        """Seconds `address` must still wait (0: it may ask). Forgets blocks that are over."""
        address = counted_as(address)
        blocked = self.blocked
        while blocked:  # the oldest blocks first, so that an idle map empties
            first, until = next(iter(blocked.items()))
            if until > now:
                break
            del blocked[first]
        ends = blocked.get(address)
        if ends is None:
            return 0.0
        if ends > now:
            return ends - now
        del blocked[address]
        return 0.0

    def miss(self, address: str, now: float) -> None:
        """`address` asked for an unknown code."""
        address = counted_as(address)
        windows = self._windows
        window = windows.get(address)
        if window is None or window[0] <= now:
            if window is not None:
                del windows[address]  # a new window: it goes last, as the newest
            elif len(windows) >= self.max_addresses:
                windows.popitem(last=False)
            window = windows[address] = [now + self.window, 0]
        window[1] += 1
        if window[1] >= self.limit:
            blocked = self.blocked
            if address in blocked:  # a block of an earlier window, not forgotten yet
                blocked.move_to_end(address)
            elif len(blocked) >= self.max_addresses:
                blocked.popitem(last=False)
            blocked[address] = window[0]
