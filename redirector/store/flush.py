"""The click flush script, run by the click worker (`redirector.clickworker`): one call per
part of a campaign's hits in a chunk of raw hits (redirector/clickbatch.py), since every key
a hit touches carries its campaign's hash tag (see keys.py). Redis runs a script
atomically: no reader sees half a part (between a worker's crash and the chunk's next
application, a reader may see the campaign's totals, carried by its first part, ahead of
the later parts' link counters and stream entries).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError
from redis.typing import EncodableT

from redirector.store.connection import NO_WAIT, Durability, Store, run_replicated
from redirector.store.flushbatch import ClickBatch
from redirector.store.keys import (
    BREAKDOWN_OTHER,
    BREAKDOWN_VALUES_MAX,
    EVENT_BOT,
    EVENT_CODE,
    EVENT_RECIPIENT,
    EVENT_REFERER_HOST,
    EVENT_TIME,
    EVENT_USER_AGENT,
    EVENT_VISITOR_HASH,
    LINK_CREATED,
)

# -- FLUSH_CLICKS --------------------------------------------------------------------------
#
# The hits of one campaign (or of the links without one): every key they touch has the
# campaign's tag. The worker has summed them already (flushbatch.py): per hit Redis only
# appends the stream entry; the counters come as one increment per key and field, the
# visitors once per key and the clickers once each. ARGV[15..17] are flat JSON arrays of
# strings and numbers (cjson.decode, in C: cheaper for Redis than a Lua parser, and for the
# worker than redis-py packing one argument per value; flat, because a nested object per
# link cost Redis ~5 µs per per-recipient hit to decode, scripts/click_cost.py), read with
# a cursor; counts are given as "n, then n items" (`COUNTS` below: stats and breakdowns as
# field, increment pairs, visitors as hashes).
#
#   KEYS[1], KEYS[2]  the campaign's click stream and its flush record
#   KEYS[3]           its per-recipient links' counters (s:r, one field per link)
#   KEYS[4..8]        its stats, breakdowns, uniques, clickers and recipients' latest clicks
#                     (when ARGV[16] is not [])
#   KEYS[l..l+2]      a link's stats, breakdowns and uniques, `l` as its part in ARGV[17]
#   ARGV[1]           the stream's approximate MAXLEN
#   ARGV[2], ARGV[3]  the flusher's id (a raw-hit queue's) and this batch's number (its
#                     chunk's and part's, clickbatch.part_number: increasing per queue)
#   ARGV[4]           seconds the flush record is kept after the last flush
#   ARGV[5..11]       the field names of a stream entry, in the order of `_EVENT_FIELDS`
#   ARGV[12]          the field of a link's stats that holds its creation time
#   ARGV[13], ARGV[14]  the most values a breakdown keeps, and the value that counts the rest
#   ARGV[15]          the stream entries in order, seven strings per hit: code, recipient
#                     ('' if none), time (unix ms), user agent, referer host, visitor hash,
#                     bot ('1'/'0')
#   ARGV[16]          the campaign's part, [] for the links without one: COUNTS; then the
#                     clickers (n, then first click time, recipient, ...)
#   ARGV[17]          the parts of the links without recipient, each: l, the link's
#                     creation time (unix s), COUNTS; each of the newest link of its code in
#                     the batch
#   ARGV[18]          n, how many per-recipient links the batch counts; ARGV[19..18+n]
#                     their codes (fields of KEYS[3]), ARGV[19+n..18+2n] the value to write
#                     in each ('' for none: linkcounters.merged)
#   ARGV[19+2n]       m, how many recipients clicked (with a campaign); ARGV[20+2n..19+2n+m]
#                     the recipients (fields of KEYS[8]), then the latest clicks to write in
#                     each (flushbatch.py)
#   ARGV[20+2n+2m..]  the values the n and then the m fields are taken to hold ('' for none);
#                     none at all when they are taken to hold none
# Returns 1; 0 when the batch had been applied already (a retry whose first reply was lost, or
# a chunk applied again after its worker died); or, having written nothing, when a field does
# not hold what it was taken to, the values the n fields of KEYS[3] and the m of KEYS[8] hold,
# in that order (nil for none): the worker merges its counts with them and calls again.
#
# Per-recipient values are merged by the worker, not here: merging a link's JSON counters and
# a recipient's latest clicks cost Redis ~10 µs per hit of a link tapped before, half of the
# script's time per hit (2026-12-02). The worker's first call of a campaign's batch takes no
# field to hold a value (a recipient taps their link once or twice: most hits are the first)
# unless that campaign's last batch found some held (its links tapped before, or its
# recipients' other links, or earlier bot hits): then it reads them first. A batch that finds
# values it did not expect is sent twice, the reply that sends it back being its read.
#
# A code's counters are those of one link, named by its creation time in the link's stats
# hash: a custom code can be deleted and created again, and the new link must not show the old
# one's clicks. Keying them by that time instead would leave every old link's keys behind
# (nothing else finds them once the code is taken again), and deleting them when the link is
# deleted would not stop a flush still on its way. So the newest link of a code (by creation
# time, here or in Redis) owns its counters; on taking them over it drops the older one's, and
# hits of an older one count for the campaign only. (The admin deletes a custom link only once
# its creation second is over, so that two links of a code never share a creation time.) The
# worker keeps the newest link's part of each code; the script compares it with Redis's.
# A per-recipient link's counters are its s:r field, named by the same time, and the same
# rule holds there; but a code given again to a link of the other kind (with a recipient,
# or without) counts in the other place, which neither drops: readers take the counters
# whose time names the link they read (admin/service/stats.py).
FLUSH_CLICKS = """
local stream, batches = KEYS[1], KEYS[2]
local maxlen, flusher, number, keep = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local E_CODE, E_RECIPIENT, E_TIME, E_USER_AGENT, E_REFERER, E_HASH, E_BOT = unpack(ARGV, 5, 11)
local CREATED, VALUES_MAX, OTHER = ARGV[12], tonumber(ARGV[13]), ARGV[14]
if tonumber(redis.call('HGET', batches, flusher) or '0') >= number then
  -- Still a write: after Redis 7.0 a WAIT covers only what its own connection wrote, and it
  -- must cover the first attempt's writes, which may not be on a replica (hence the retry).
  redis.call('EXPIRE', batches, keep)
  return 0
end
-- Per-recipient fields must hold what the worker took them to, before anything is written.
local SLICE = 500  -- values per unpack(): thousands would overflow Lua's C stack
local recipient_links = tonumber(ARGV[18])
local codes, values = 18, 18 + recipient_links
local clicked = tonumber(ARGV[19 + 2 * recipient_links])
local recipients, clicks = 19 + 2 * recipient_links, 19 + 2 * recipient_links + clicked
local taken = recipients + 2 * clicked  -- then the values taken to be held, if any
if #ARGV == taken then taken = nil end
-- The values of `count` fields of `key` named from ARGV[names + 1] on, appended to `into`
-- (false for none); true if each is the one taken to be held from ARGV[expect + 1] on ('' for
-- none), or if `expect` is nil, none is held (an empty string is none too).
local function read(key, names, expect, count, into)
  local same = true
  for from = 1, count, SLICE do
    local to = math.min(from + SLICE - 1, count)
    local held = redis.call('HMGET', key, unpack(ARGV, names + from, names + to))
    for k = from, to do
      local value = held[k - from + 1]
      same = same and (value or '') == (expect and ARGV[expect + k] or '')
      into[#into + 1] = value
    end
  end
  return same
end
local held = {}
local same = read(KEYS[3], codes, taken, recipient_links, held)
if clicked > 0 then
  same = read(KEYS[8], recipients, taken and taken + recipient_links, clicked, held) and same
end
if not same then return held end
local entries, campaign, links = cjson.decode(ARGV[15]), cjson.decode(ARGV[16]),
  cjson.decode(ARGV[17])

-- First, so that a stream that cannot be written fails the batch before anything counts.
for i = 1, #entries, 7 do
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', E_CODE, entries[i],
    E_RECIPIENT, entries[i + 1], E_TIME, entries[i + 2], E_USER_AGENT, entries[i + 3],
    E_REFERER, entries[i + 4], E_HASH, entries[i + 5], E_BOT, entries[i + 6])
end

-- A flat array's "n, then n pairs" from position i: the first pair's position, and the
-- position after the last.
local function pairs_at(values, i)
  return i + 1, i + 1 + 2 * values[i]
end
local function add(key, values, from, to)
  for i = from, to - 1, 2 do redis.call('HINCRBY', key, values[i], values[i + 1]) end
end
-- In slices (SLICE: even, as ZADD and HSET take pairs).
local function each_slice(values, from, to, apply)
  for first = from, to - 1, SLICE do
    apply(unpack(values, first, math.min(first + SLICE, to) - 1))
  end
end

-- A breakdown keeps at most VALUES_MAX values: one already there keeps counting, a new one
-- past that counts as its breakdown's OTHER. The fields are added VALUES_MAX at a time, a
-- new one told by its sum being its increment; if some are new and the hash now holds more
-- than VALUES_MAX fields (else no breakdown can be past the cap), one HKEYS counts the
-- values of each breakdown (named by its fields' prefix up to ':'), and the new values
-- past the cap are moved to OTHER. A hash past its cap by at most VALUES_MAX fields, and
-- within this script only, stays listpack-encoded (4 breakdowns * 101 + 100 < 512).
local function breakdown_of(field)
  return string.match(field, '^[^:]*:')
end
-- Counts `field` among its breakdown's values in `sizes` (OTHER is none of them).
local function count_value(sizes, field)
  local breakdown = breakdown_of(field)
  if field ~= breakdown .. OTHER then sizes[breakdown] = (sizes[breakdown] or 0) + 1 end
end
local function past_the_cap(key, new)
  local sizes, moved, others = {}, {}, {}
  for _, field in ipairs(redis.call('HKEYS', key)) do count_value(sizes, field) end
  for field, n in pairs(new) do
    local breakdown = breakdown_of(field)
    if field ~= breakdown .. OTHER and sizes[breakdown] > VALUES_MAX then
      sizes[breakdown] = sizes[breakdown] - 1
      moved[#moved + 1] = field
      others[breakdown .. OTHER] = (others[breakdown .. OTHER] or 0) + n
    end
  end
  if #moved > 0 then redis.call('HDEL', key, unpack(moved)) end
  for field, n in pairs(others) do redis.call('HINCRBY', key, field, n) end
end
local function add_breakdowns(key, values, from, to)
  for first = from, to - 1, 2 * VALUES_MAX do
    local new, any = {}, false
    for i = first, math.min(first + 2 * VALUES_MAX, to) - 1, 2 do
      local field, n = values[i], values[i + 1]
      if redis.call('HINCRBY', key, field, n) == n then new[field], any = n, true end
    end
    if any and redis.call('HLEN', key) > VALUES_MAX then past_the_cap(key, new) end
  end
end

if #campaign > 0 then
  local stats, breakdowns, uniques, clickers = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
  local first, i = pairs_at(campaign, 1)
  add(stats, campaign, first, i)
  first, i = pairs_at(campaign, i)
  add_breakdowns(breakdowns, campaign, first, i)
  first, i = i + 1, i + 1 + campaign[i]
  each_slice(campaign, first, i, function(...) redis.call('PFADD', uniques, ...) end)
  -- Unique per recipient: a campaign's clickers, each with their first click.
  first, i = pairs_at(campaign, i)
  each_slice(campaign, first, i, function(...) redis.call('ZADD', clickers, 'NX', ...) end)
end

-- Which link of each code owns its counters (see above). Counters without a creation time
-- are taken as the newest link's: there is nothing to tell otherwise.
local i = 1
while i <= #links do
  local l, created = links[i], links[i + 1]
  local stats, breakdowns, uniques = KEYS[l], KEYS[l + 1], KEYS[l + 2]
  local stats_from, stats_to = pairs_at(links, i + 2)
  local breakdowns_from, breakdowns_to = pairs_at(links, stats_to)
  local visitors_from, visitors_to = breakdowns_to + 1, breakdowns_to + 1 + links[breakdowns_to]
  i = visitors_to
  local held = tonumber(redis.call('HGET', stats, CREATED) or '')
  local newer = tonumber(created)
  if not held or held <= newer then
    -- A link's first hits (a per-recipient link's only ones, often): with neither hash there,
    -- one HSET each does what an HINCRBY per field would (half the calls of a new link).
    local fresh = false
    if held ~= newer then
      if held then
        redis.call('DEL', stats, breakdowns, uniques)
        fresh = true
      else
        fresh = redis.call('EXISTS', stats, breakdowns) == 0
      end
      if not fresh then redis.call('HSET', stats, CREATED, created) end
    end
    if fresh then
      -- unpack() whole: a part has at most 250 hits (clickbatch.PART_HITS), so at most
      -- ~750 stats fields, and breakdowns at most 2 * VALUES_MAX values here.
      redis.call('HSET', stats, CREATED, created, unpack(links, stats_from, stats_to - 1))
      if breakdowns_to - breakdowns_from > 2 * VALUES_MAX then
        add_breakdowns(breakdowns, links, breakdowns_from, breakdowns_to)  -- past the cap
      elseif breakdowns_to > breakdowns_from then
        redis.call('HSET', breakdowns, unpack(links, breakdowns_from, breakdowns_to - 1))
      end
    else
      add(stats, links, stats_from, stats_to)
      add_breakdowns(breakdowns, links, breakdowns_from, breakdowns_to)
    end
    each_slice(links, visitors_from, visitors_to, function(...)
      redis.call('PFADD', uniques, ...)
    end)
  end
end

-- Per-recipient links (a field each of KEYS[3]) and recipients' latest clicks (KEYS[8], for
-- attribution: a click between a send and a sale), as the worker merged them.
local function write(key, names, new, count)
  for from = 1, count, SLICE / 2 do
    local out = {}
    for k = from, math.min(from + SLICE / 2 - 1, count) do
      if ARGV[new + k] ~= '' then
        out[#out + 1] = ARGV[names + k]
        out[#out + 1] = ARGV[new + k]
      end
    end
    if #out > 0 then redis.call('HSET', key, unpack(out)) end
  end
end
write(KEYS[3], codes, values, recipient_links)
if clicked > 0 then write(KEYS[8], recipients, clicks, clicked) end

redis.call('HSET', batches, flusher, number)
redis.call('EXPIRE', batches, keep)
return 1
"""

_EVENT_FIELDS = (
    EVENT_CODE, EVENT_RECIPIENT, EVENT_TIME, EVENT_USER_AGENT, EVENT_REFERER_HOST,
    EVENT_VISITOR_HASH, EVENT_BOT,
)  # fmt: skip
# A worker applies a chunk again within a lease; a day covers any outage it waits through.
FLUSH_RECORD_SECONDS = 86_400


class StaleValues(RedisError):
    """A batch's per-recipient values changed between each of its FLUSH_CLICKS calls and the
    next (other batches of the same recipients kept landing first): nothing of it was
    written. A RedisError, so that the worker logs it and applies its chunk again later, as
    after any failure."""


# Calls per batch before StaleValues. Each call that finds values changed means another batch
# of the same recipients went through, so the batches contending for a field all land within
# as many calls as there are of them: a worker applies every raw-hit queue's chunk at once
# (16), and a link forwarded to many phones may be in each. Past the second call a batch
# waits a little at random first, so that contenders do not keep calling in step.
STALE_TRIES = 64
STALE_WAIT = 0.001  # seconds, times the calls made, at most, before the next call
# Campaigns whose last batch found per-recipient values held (its next batch reads them
# first); forgotten all at once past this many.
READS_FIRST_MAX = 10_000


class FlushClicksScript:
    """Run with `durability`: a batch acknowledged is on the replicas asked for, so that the
    chunk it came from may be trimmed off its queue (a failover then loses no hit)."""

    def __init__(
        self,
        redis: Store,
        durability: Durability = NO_WAIT,
        sent_back: Callable[[], object] = lambda: None,
    ) -> None:
        """`sent_back` is called for each call that found per-recipient values other than
        it took them to be (and went again)."""
        self._redis, self._durability = redis, durability
        self._script = redis.register_script(FLUSH_CLICKS)
        self._reads_first: set[int | None] = set()
        self._sent_back = sent_back

    async def __call__(
        self, batch: ClickBatch, stream_maxlen: int, flusher: str, number: int
    ) -> bool:
        """Apply `batch`, numbered `number` by `flusher`; False if it was applied before."""
        args: list[EncodableT] = [stream_maxlen, flusher, number, FLUSH_RECORD_SECONDS]
        args += (*_EVENT_FIELDS, LINK_CREATED, BREAKDOWN_VALUES_MAX, BREAKDOWN_OTHER)
        args += batch.arguments()
        campaign = batch.campaign_id
        # What the fields hold: taken to be nothing (no read) unless the campaign's last batch
        # found values; a script that finds some sends them back to merge with.
        held = await self._held(batch) if campaign in self._reads_first else None
        for calls in range(1, STALE_TRIES + 1):
            reply = await self._attempt(batch, [*args, *batch.recipient_arguments(held)])
            if not isinstance(reply, list):
                self._found_held(campaign, held is not None)
                return bool(reply)
            held = reply
            self._sent_back()
            if calls >= 2:
                await asyncio.sleep(random.uniform(0, STALE_WAIT * calls))
        raise StaleValues(f"per-recipient values changed under each of {STALE_TRIES} calls")

    def _found_held(self, campaign: int | None, found: bool) -> None:
        if not found:
            self._reads_first.discard(campaign)
            return
        if len(self._reads_first) >= READS_FIRST_MAX:
            self._reads_first.clear()
        self._reads_first.add(campaign)

    async def _held(self, batch: ClickBatch) -> list[bytes | None] | None:
        """The values the batch's per-recipient fields hold (its links' in KEYS[3], then its
        recipients' in KEYS[8]) in one round trip (the keys share the campaign's tag); None
        if none holds one."""
        codes, recipients = batch.recipient_codes, batch.clicked_recipients
        if not codes and not recipients:
            return None
        async with self._redis.pipeline(transaction=False) as pipe:
            if codes:
                pipe.hmget(batch.keys[2], codes)
            if recipients:
                pipe.hmget(batch.keys[7], recipients)
            replies: list[list[bytes | None]] = await pipe.execute()
        held = [value for reply in replies for value in reply]
        return held if any(value is not None for value in held) else None

    async def _attempt(self, batch: ClickBatch, args: list[EncodableT]) -> Any:
        """One call: 1, 0 (applied before), or the values held where they were not those
        sent (nothing written)."""
        return await run_replicated(self._redis, self._script, batch.keys, args, self._durability)
