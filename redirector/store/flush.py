"""The click flush script, run by the click worker (`redirector.clickworker`): one call per
part of a campaign's hits in a chunk of raw hits (redirector/clickbatch.py), since every key
a hit touches carries its campaign's hash tag (see keys.py). Redis runs a script
atomically: no reader sees half a part (between a worker's crash and the chunk's next
application, a reader may see the campaign's totals, carried by its first part, ahead of
the later parts' link counters and stream entries).
"""

from __future__ import annotations

from redis.typing import EncodableT

from redirector.store.connection import NO_WAIT, Durability, Store, run_replicated
from redirector.store.flushbatch import ClickBatch
from redirector.store.keys import (
    BOTS,
    BREAKDOWN_OTHER,
    BREAKDOWN_VALUES_MAX,
    CLICK_TIMES_KEPT,
    CLICKS,
    EVENT_BOT,
    EVENT_CODE,
    EVENT_RECIPIENT,
    EVENT_REFERER_HOST,
    EVENT_TIME,
    EVENT_USER_AGENT,
    EVENT_VISITOR_HASH,
    LINK_CREATED,
    RECIPIENT_COUNTERS_MAX,
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
#                     clickers (n, then first click time, recipient, ...); then the latest
#                     clicks (n, then recipient, their click times in the batch: unix ms,
#                     ascending, at most ARGV[18] of them, space-separated, ...)
#   ARGV[17]          the parts of the links without recipient, each: l, the link's
#                     creation time (unix s), COUNTS; each of the newest link of its code in
#                     the batch
#   ARGV[18]          how many of a recipient's latest clicks KEYS[8] keeps (CLICK_TIMES_KEPT)
#   ARGV[19]          the size in bytes past which a per-recipient link's counters take no
#                     new field (RECIPIENT_COUNTERS_MAX)
#   ARGV[20], ARGV[21]  the stats fields of all-time clicks and bot hits
#   ARGV[22]          n, how many per-recipient links the batch counts; ARGV[23..22+n]
#                     their codes, ARGV[23+n..22+2n] each one's counts from the batch as
#                     its first value in KEYS[3] (linkcounters.py: JSON [created, stats,
#                     breakdowns], capped)
# Returns 1, or 0 when the batch had been applied already (a retry whose first reply was lost,
# or a chunk applied again after its worker died).
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
-- In slices: unpack() of thousands of values would overflow Lua's C stack. (Even: ZADD and
-- HSET take pairs.)
local SLICE = 500
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

-- Times are unix ms without leading zeros: by length, then as text, is by value.
local function earlier(a, b)
  return #a < #b or (#a == #b and a < b)
end
local function latest_of(held, new, kept)
  local times = {}
  for time in string.gmatch(held, '%d+') do times[#times + 1] = time end
  for time in string.gmatch(new, '%d+') do times[#times + 1] = time end
  table.sort(times, earlier)
  return table.concat(times, ' ', math.max(1, #times - kept + 1), #times)
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
  -- And each one's latest clicks, for attribution (a click between a send and a sale): a
  -- recipient's first clicks are written as the worker sent them (the common case), the
  -- others merged with those held.
  local latest_clicks, kept = KEYS[8], tonumber(ARGV[18])
  first, i = pairs_at(campaign, i)
  for from = first, i - 1, 2 * SLICE do
    local to = math.min(from + 2 * SLICE, i)
    local recipients = {}
    for j = from, to - 1, 2 do recipients[#recipients + 1] = campaign[j] end
    local held = redis.call('HMGET', latest_clicks, unpack(recipients))
    local out = {}
    for k, rcp in ipairs(recipients) do
      local new = campaign[from + 2 * k - 1]
      out[#out + 1] = rcp
      out[#out + 1] = held[k] and latest_of(held[k], new, kept) or new
    end
    redis.call('HSET', latest_clicks, unpack(out))
  end
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
      -- unpack() whole: a part has at most 500 hits (clickbatch.PART_HITS), so at most
      -- ~1,500 stats fields, and breakdowns at most 2 * VALUES_MAX values here.
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

-- Per-recipient links: a field each of KEYS[3], written as the worker made it when new (the
-- common case: a recipient taps their link once or twice), else added to the value held, by
-- the same rules as a link's hashes above: the newest link of a code owns its counters, and a
-- breakdown keeps at most VALUES_MAX values. A value takes no new field that would bring it
-- past FULL bytes (each flush decodes it whole: its size bounds the work): its totals and
-- the fields it holds keep counting, a new breakdown value counts as OTHER (at most one
-- such field per breakdown past it), and new hours and days count for the campaign only.
-- One HMGET and one HSET per SLICE links.
local FULL, CLICKS, BOTS = tonumber(ARGV[19]), ARGV[20], ARGV[21]
local function counters(value)
  local ok, held = pcall(cjson.decode, value)
  if ok and type(held) == 'table' and #held == 3 and type(held[1]) == 'number'
      and type(held[2]) == 'table' and type(held[3]) == 'table' then
    return held
  end
end
-- A new field adds its name and ~8 bytes (quotes, colon, count, comma) to the value.
local function merged(held, new)
  local old, add = counters(held), cjson.decode(new)
  if not old then return new end  -- not counters (nothing of ours writes that): afresh
  if old[1] > add[1] then return nil end  -- an older link's hits: the campaign's alone
  if old[1] < add[1] then return new end  -- a newer link of the code: its own counters
  local size, stats, counts, sizes = #held, old[2], old[3], nil
  for field, n in pairs(add[2]) do
    if not stats[field] and field ~= CLICKS and field ~= BOTS then
      if size + #field + 8 > FULL then n = nil else size = size + #field + 8 end
    end
    if n then stats[field] = (stats[field] or 0) + n end
  end
  for field, n in pairs(add[3]) do
    if not counts[field] then
      local breakdown = breakdown_of(field)
      if field ~= breakdown .. OTHER then
        if not sizes then  -- once, and only for a new value
          sizes = {}
          for held_field in pairs(counts) do count_value(sizes, held_field) end
        end
        if size + #field + 8 > FULL or (sizes[breakdown] or 0) >= VALUES_MAX then
          field = breakdown .. OTHER
        else
          sizes[breakdown], size = (sizes[breakdown] or 0) + 1, size + #field + 8
        end
      end
    end
    counts[field] = (counts[field] or 0) + n
  end
  return cjson.encode(old)
end
local recipient_links = tonumber(ARGV[22])
local codes, values = 22, 22 + recipient_links
for from = 1, recipient_links, SLICE do
  local to = math.min(from + SLICE - 1, recipient_links)
  local held = redis.call('HMGET', KEYS[3], unpack(ARGV, codes + from, codes + to))
  local out = {}
  for k = from, to do
    local value, old = ARGV[values + k], held[k - from + 1]
    if old then
      -- A held value that is counters in shape but not in content (a string for a count,
      -- a field without a breakdown) fails the merge: counted afresh, as one not counters,
      -- rather than failing the part after its writes.
      local ok, merged_value = pcall(merged, old, value)
      if ok then value = merged_value end  -- nil: nothing to write
    end
    if value then
      out[#out + 1] = ARGV[codes + k]
      out[#out + 1] = value
    end
  end
  if #out > 0 then redis.call('HSET', KEYS[3], unpack(out)) end
end

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


class FlushClicksScript:
    """Run with `durability`: a batch acknowledged is on the replicas asked for, so that the
    chunk it came from may be trimmed off its queue (a failover then loses no hit)."""

    def __init__(self, redis: Store, durability: Durability = NO_WAIT) -> None:
        self._redis, self._durability = redis, durability
        self._script = redis.register_script(FLUSH_CLICKS)

    async def __call__(
        self, batch: ClickBatch, stream_maxlen: int, flusher: str, number: int
    ) -> bool:
        """Apply `batch`, numbered `number` by `flusher`; False if it was applied before."""
        args: list[EncodableT] = [stream_maxlen, flusher, number, FLUSH_RECORD_SECONDS]
        args += (*_EVENT_FIELDS, LINK_CREATED, BREAKDOWN_VALUES_MAX, BREAKDOWN_OTHER)
        args += batch.arguments()
        args += (CLICK_TIMES_KEPT, RECIPIENT_COUNTERS_MAX, CLICKS, BOTS)
        args += batch.recipient_arguments()
        reply = await run_replicated(self._redis, self._script, batch.keys, args, self._durability)
        return bool(reply)
