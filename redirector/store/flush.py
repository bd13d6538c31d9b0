"""The click flush script, run by the click worker (`redirector.clickworker`): one call per
campaign present in a chunk of raw hits, since every key a hit touches carries its campaign's
hash tag (see keys.py). Redis runs a script atomically: no reader sees half a flush.
"""

from __future__ import annotations

from redirector.store.connection import NO_WAIT, Durability, Store, run_replicated
from redirector.store.keys import (
    BOT_DAY_PREFIX,
    BOT_HOUR_PREFIX,
    BOTS,
    BREAKDOWNS,
    CLICK_TIMES_KEPT,
    CLICKS,
    DAY_PREFIX,
    EVENT_BOT,
    EVENT_CODE,
    EVENT_RECIPIENT,
    EVENT_REFERER_HOST,
    EVENT_TIME,
    EVENT_USER_AGENT,
    EVENT_VISITOR_HASH,
    HOUR_PREFIX,
    LINK_CREATED,
    campaign_breakdowns_key,
    campaign_stats_key,
    campaign_uniques_key,
    click_stream_key,
    clickers_key,
    flush_key,
    link_breakdowns_key,
    link_stats_key,
    link_uniques_key,
    recipient_clicks_key,
)

# -- FLUSH_CLICKS --------------------------------------------------------------------------
#
# The hits of one campaign (or of the links without one): every key they touch has the
# campaign's tag. Sending each XADD and HINCRBY through redis-py costs ~30 µs of client CPU per
# command; instead the worker sends one tab-separated line per hit and Redis does the
# fan-out. Counters are summed per key and field inside the script.
#
#   KEYS[1], KEYS[2]  the campaign's click stream and its flush record
#   KEYS[3..7]        its stats, breakdowns, uniques, clickers and recipients' latest clicks
#                     (when ARGV[6] == '1')
#   KEYS[l..l+2]      a link's stats, breakdowns and uniques, `l` as its hits' lines give it
#   ARGV[1]           the hits, one per line: code, l, recipient ('' if none), time (unix ms),
#                     bot ('1'/'0'), user agent, referer host, visitor hash, device type, OS,
#                     browser, the link's creation time (unix s). No field holds a tab or
#                     newline (the worker replaces them in user agents; the rest are validated
#                     or generated).
#   ARGV[2]           the stream's approximate MAXLEN
#   ARGV[3], ARGV[4]  the flusher's id (a raw-hit queue's) and this batch's number (its
#                     chunk's, increasing per queue)
#   ARGV[5]           seconds the flush record is kept after the last flush
#   ARGV[6]           '1' when the hits are of a campaign's links
#   ARGV[7..24]       the stats field names and prefixes, then the field names of a stream
#                     entry, both in the order of `_FLUSH_FIELDS`
#   ARGV[25]          how many of a recipient's latest clicks KEYS[7] keeps (CLICK_TIMES_KEPT)
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
# its creation second is over, so that two links of a code never share a creation time.)
FLUSH_CLICKS = """
local stream, batches = KEYS[1], KEYS[2]
local hits, maxlen, flusher, seq, keep = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local campaign = ARGV[6] == '1'
local CLICKS, BOTS, HOUR, BOT_HOUR, DAY, BOT_DAY, DEVICE, OS, BROWSER, REFERER, CREATED =
  unpack(ARGV, 7, 17)
local E_CODE, E_RECIPIENT, E_TIME, E_USER_AGENT, E_REFERER, E_HASH, E_BOT = unpack(ARGV, 18, 24)
if tonumber(redis.call('HGET', batches, flusher) or '0') >= seq then
  -- Still a write: after Redis 7.0 a WAIT covers only what its own connection wrote, and it
  -- must cover the first attempt's writes, which may not be on a replica (hence the retry).
  redis.call('EXPIRE', batches, keep)
  return 0
end
local stats, breakdowns, uniques, clickers = KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local latest_clicks, kept = KEYS[7], tonumber(ARGV[25])

local counts, sets, first, latest = {}, {}, {}, {}
local function bump(key, field)
  local t = counts[key]
  if not t then t = {}; counts[key] = t end
  t[field] = (t[field] or 0) + 1
end
local function count(stats_key, breakdowns_key, f, hour, day)
  if f[5] == '1' then
    bump(stats_key, BOTS); bump(stats_key, BOT_HOUR .. hour); bump(stats_key, BOT_DAY .. day)
  else
    bump(stats_key, CLICKS); bump(stats_key, HOUR .. hour); bump(stats_key, DAY .. day)
    bump(breakdowns_key, DEVICE .. f[9]); bump(breakdowns_key, OS .. f[10])
    bump(breakdowns_key, BROWSER .. f[11])
    if f[7] ~= '' then bump(breakdowns_key, REFERER .. f[7]) end
  end
end
local function unique(key, member)
  local t = sets[key]
  if not t then t = {}; sets[key] = t end
  t[#t + 1] = member
end

local rows, newest = {}, {}
local pos, len = 1, string.len(hits)
while pos <= len do
  local eol = string.find(hits, '\\n', pos, true) or (len + 1)
  local f, i = {}, pos
  while true do
    local tab = string.find(hits, '\\t', i, true)
    if not tab or tab > eol then f[#f + 1] = string.sub(hits, i, eol - 1); break end
    f[#f + 1] = string.sub(hits, i, tab - 1)
    i = tab + 1
  end
  pos = eol + 1
  -- First, so that a stream that cannot be written fails the batch before anything counts.
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', E_CODE, f[1], E_RECIPIENT, f[3],
    E_TIME, f[4], E_USER_AGENT, f[6], E_REFERER, f[7], E_HASH, f[8], E_BOT, f[5])
  rows[#rows + 1] = f
  local link, created = tonumber(f[2]), tonumber(f[12])
  if created > (newest[link] or -1) then newest[link] = created end
end

-- Which link of each code owns its counters (see above). Counters without a creation time
-- are taken as the newest link's: there is nothing to tell otherwise.
local owner = {}
for link, created in pairs(newest) do
  local held = tonumber(redis.call('HGET', KEYS[link], CREATED) or '')
  if held and held >= created then
    owner[link] = held
  else
    if held then redis.call('DEL', KEYS[link], KEYS[link + 1], KEYS[link + 2]) end
    redis.call('HSET', KEYS[link], CREATED, created)
    owner[link] = created
  end
end

for _, f in ipairs(rows) do
  local link, rcp, t, bot, h = tonumber(f[2]), f[3], f[4], f[5], f[8]
  local owned = tonumber(f[12]) == owner[link]
  local ms = tonumber(t)
  local hour = string.format('%d', math.floor(ms / 3600000))
  local day = string.format('%d', math.floor(ms / 86400000))
  if owned then count(KEYS[link], KEYS[link + 1], f, hour, day) end
  if campaign then count(stats, breakdowns, f, hour, day) end
  if bot ~= '1' then
    if rcp == '' then
      if owned then unique(KEYS[link + 2], h) end
      if campaign then unique(uniques, h) end
    elseif campaign then
      -- Unique per recipient: a campaign's clickers, each with their first click.
      if not first[rcp] then first[rcp] = t end
      -- And their latest clicks, for attribution (a click between a send and a sale).
      local times = latest[rcp]
      if not times then times = {}; latest[rcp] = times end
      times[#times + 1] = ms
    end
  end
end

for key, fields in pairs(counts) do
  for field, n in pairs(fields) do redis.call('HINCRBY', key, field, n) end
end
for key, members in pairs(sets) do
  -- In slices: unpack() of thousands of values would overflow Lua's C stack.
  for s = 1, #members, 500 do
    redis.call('PFADD', key, unpack(members, s, math.min(s + 499, #members)))
  end
end
for rcp, t in pairs(first) do redis.call('ZADD', clickers, 'NX', t, rcp) end
for rcp, times in pairs(latest) do
  for held in string.gmatch(redis.call('HGET', latest_clicks, rcp) or '', '%d+') do
    times[#times + 1] = tonumber(held)
  end
  table.sort(times)
  local from = math.max(1, #times - kept + 1)
  local out = {}
  for i = from, #times do out[#out + 1] = string.format('%d', times[i]) end
  redis.call('HSET', latest_clicks, rcp, table.concat(out, ' '))
end
redis.call('HSET', batches, flusher, seq)
redis.call('EXPIRE', batches, keep)
return 1
"""

_FLUSH_FIELDS = (
    CLICKS, BOTS, HOUR_PREFIX, BOT_HOUR_PREFIX, DAY_PREFIX, BOT_DAY_PREFIX,
    BREAKDOWNS["device"], BREAKDOWNS["os"], BREAKDOWNS["browser"], BREAKDOWNS["referer"],
    LINK_CREATED,
    EVENT_CODE, EVENT_RECIPIENT, EVENT_TIME, EVENT_USER_AGENT, EVENT_REFERER_HOST,
    EVENT_VISITOR_HASH, EVENT_BOT,
)  # fmt: skip
# A worker applies a chunk again within a lease; a day covers any outage it waits through.
FLUSH_RECORD_SECONDS = 86_400


class ClickBatch:
    """The arguments of one FLUSH_CLICKS call: the hits of one campaign. The worker appends
    the hit lines, with `link(code)` as l: each link declares its keys on first use."""

    def __init__(self, campaign_id: int | None) -> None:
        self.campaign_id = campaign_id
        self.hit_lines: list[str] = []
        self.keys = [click_stream_key(campaign_id), flush_key(campaign_id)]
        if campaign_id is not None:
            self.keys += (
                campaign_stats_key(campaign_id),
                campaign_breakdowns_key(campaign_id),
                campaign_uniques_key(campaign_id),
                clickers_key(campaign_id),
                recipient_clicks_key(campaign_id),
            )
        self._links: dict[str, str] = {}

    def link(self, code: str) -> str:
        index = self._links.get(code)
        if index is None:
            index = self._links[code] = str(len(self.keys) + 1)
            campaign = self.campaign_id
            self.keys += (
                link_stats_key(campaign, code),
                link_breakdowns_key(campaign, code),
                link_uniques_key(campaign, code),
            )
        return index


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
        hits = "\n".join(batch.hit_lines)
        of_campaign = "0" if batch.campaign_id is None else "1"
        args: list[str | int] = [
            hits,
            stream_maxlen,
            flusher,
            number,
            FLUSH_RECORD_SECONDS,
            of_campaign,
        ]
        args += _FLUSH_FIELDS
        args.append(CLICK_TIMES_KEPT)
        reply = await run_replicated(self._redis, self._script, batch.keys, args, self._durability)
        return bool(reply)
