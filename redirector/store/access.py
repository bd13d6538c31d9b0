"""The scripts of the admin's access records: an API key's last use, the audit log, and
the count of a key's requests for the rate limit (key names and layout in
`redirector.store.keys`). Each touches one key, given in KEYS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redirector.store.connection import NO_WAIT, Durability, Store, run_replicated
from redirector.store.keys import api_key_key, audit_key, rate_window_key

# -- TOUCH_KEY -----------------------------------------------------------------------------
#
# Records when an API key was last used, at most once per `interval`: every admin process
# may ask (each at most once a minute per key), and the one that finds the last write older
# than that writes. Nothing for a key deleted meanwhile.
#
#   KEYS[1]  the key's hash
#   ARGV     the field, now (unix seconds), the interval (seconds)
# Returns 1 if it wrote, else 0.
TOUCH_KEY = """
local key = KEYS[1]
local field, now, interval = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', key) == 0 then
  return 0
end
local last = tonumber(redis.call('HGET', key, field) or '0') or 0
if now - last < interval then
  return 0
end
redis.call('HSET', key, field, ARGV[2])
return 1
"""


class TouchKeyScript:
    def __init__(self, redis: Store, field: str, interval: int) -> None:
        self._redis, self._field, self._interval = redis, field, interval
        self._script = redis.register_script(TOUCH_KEY)

    async def __call__(self, key_id: str, now: int) -> bool:
        """Not waited for on replicas: a last use lost in a failover is written again by the
        next one; the request that used the key need not wait for it."""
        args: list[str | int] = [self._field, now, self._interval]
        keys = [api_key_key(key_id)]
        return bool(await run_replicated(self._redis, self._script, keys, args, NO_WAIT))


# -- APPEND_AUDIT --------------------------------------------------------------------------
#
# Appends an entry to a workspace's audit stream, trimming it to about `maxlen` entries
# (approximate: Redis drops whole stream nodes, which is cheap).
#
#   KEYS[1]  the stream
#   ARGV     maxlen, then the entry's fields and values
# Returns the entry's id.
APPEND_AUDIT = """
local stream = KEYS[1]
return redis.call('XADD', stream, 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 2))
"""


class AppendAuditScript:
    def __init__(self, redis: Store, maxlen: int, durability: Durability = NO_WAIT) -> None:
        self._redis, self._maxlen, self._durability = redis, maxlen, durability
        self._script = redis.register_script(APPEND_AUDIT)

    async def __call__(self, workspace: str, fields: Sequence[tuple[str, str | int]]) -> str:
        args: list[str | int] = [self._maxlen, *(part for pair in fields for part in pair)]
        keys = [audit_key(workspace)]
        reply = await run_replicated(self._redis, self._script, keys, args, self._durability)
        return reply.decode() if isinstance(reply, bytes) else str(reply)


# -- COUNT_REQUEST -------------------------------------------------------------------------
#
# Counts a request made with an API key in the key's current window, in one round trip. The
# first request of a window makes the counter with the window's expiry (so the window is
# fixed: a key may spend it all at once); a counter found without expiry gets one too, so
# that none ever counts forever.
#
#   KEYS[1]  the key's counter
#   ARGV     the window (milliseconds)
# Returns {requests in the window, this one included; milliseconds until the window ends}.
COUNT_REQUEST = """
local counter = KEYS[1]
local window = tonumber(ARGV[1])
local requests = redis.call('INCR', counter)
local left = redis.call('PTTL', counter)
if left < 0 then
  redis.call('PEXPIRE', counter, window)
  left = window
end
return {requests, left}
"""


@dataclass(frozen=True, slots=True)
class RequestCount:
    requests: int  # made with the key in its window, this one included
    left_ms: int  # until the window ends


class CountRequestScript:
    def __init__(self, redis: Store, window_seconds: int) -> None:
        self._window_ms = window_seconds * 1000
        self._script = redis.register_script(COUNT_REQUEST)

    async def __call__(self, key_id: str) -> RequestCount:
        """Not waited for on replicas: a count lost in a failover forgives one window."""
        reply = await self._script(keys=[rate_window_key(key_id)], args=[self._window_ms])
        requests, left_ms = reply
        return RequestCount(int(requests), int(left_ms))
