"""The Lua script that applies one flush of clicks inside Redis.

Sending each XADD and HINCRBY through redis-py costs ~30 µs of client CPU per command, more
than the redirect itself; instead the flusher sends one tab-separated line per hit in a
single argument, and Redis does the fan-out. Counters are summed per key and field inside
the script, so a hot link costs one HINCRBY per field per flush. A script runs atomically:
no reader sees half a flush.

    ARGV[1]     the hits, one per line: code, campaign ('' if none), recipient ('' if none),
                time (unix ms), bot ('1'/'0'), user agent, referer host, visitor hash,
                device type, OS, browser. No field holds a tab or newline (the flusher
                replaces them in user agents; the rest are validated or generated).
    ARGV[2]     the streams' approximate MAXLEN
    ARGV[3..21] the names of `redirector.links.ClickNames.as_script_args()`, in that order
"""

from __future__ import annotations

FLUSH_CLICKS = """
local blob, maxlen = ARGV[1], ARGV[2]
local STREAM, NONE, LSTATS, CSTATS, LUNIQ, CUNIQ, CLICKERS = ARGV[3], ARGV[4], ARGV[5],
  ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local CLICKS, BOTS, HOUR, BHOUR, DAY, BDAY = ARGV[10], ARGV[11], ARGV[12], ARGV[13],
  ARGV[14], ARGV[15]
local DEV, OS, BR, REF = ARGV[16], ARGV[17], ARGV[18], ARGV[19]
local LBREAK, CBREAK = ARGV[20], ARGV[21]

local counts, uniques, first = {}, {}, {}
local function bump(key, field)
  local t = counts[key]
  if not t then t = {}; counts[key] = t end
  t[field] = (t[field] or 0) + 1
end
local function unique(key, member)
  local t = uniques[key]
  if not t then t = {}; uniques[key] = t end
  t[#t + 1] = member
end

local pos, len = 1, string.len(blob)
while pos <= len do
  local eol = string.find(blob, '\\n', pos, true) or (len + 1)
  local f, i = {}, pos
  while true do
    local tab = string.find(blob, '\\t', i, true)
    if not tab or tab > eol then f[#f + 1] = string.sub(blob, i, eol - 1); break end
    f[#f + 1] = string.sub(blob, i, tab - 1)
    i = tab + 1
  end
  pos = eol + 1
  local code, cid, rcp, t, bot, ua, ref, h = f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]
  local ms = tonumber(t)
  local hour = string.format('%d', math.floor(ms / 3600000))
  local day = string.format('%d', math.floor(ms / 86400000))
  redis.call('XADD', STREAM .. (cid ~= '' and cid or NONE), 'MAXLEN', '~', maxlen, '*',
    'code', code, 'r', rcp, 't', t, 'ua', ua, 'ref', ref, 'h', h, 'bot', bot)
  local keys = {{LSTATS .. code, LBREAK .. code}}
  if cid ~= '' then keys[2] = {CSTATS .. cid, CBREAK .. cid} end
  for _, k in ipairs(keys) do
    local key, breakdowns = k[1], k[2]
    if bot == '1' then
      bump(key, BOTS); bump(key, BHOUR .. hour); bump(key, BDAY .. day)
    else
      bump(key, CLICKS); bump(key, HOUR .. hour); bump(key, DAY .. day)
      bump(breakdowns, DEV .. f[9]); bump(breakdowns, OS .. f[10]); bump(breakdowns, BR .. f[11])
      if ref ~= '' then bump(breakdowns, REF .. ref) end
    end
  end
  if bot ~= '1' then
    if rcp ~= '' then
      -- Unique per recipient: a campaign's clickers, each with their first click.
      if cid ~= '' then
        local k = CLICKERS .. cid
        local m = first[k]
        if not m then m = {}; first[k] = m end
        if not m[rcp] then m[rcp] = t end
      end
    else
      unique(LUNIQ .. code, h)
      if cid ~= '' then unique(CUNIQ .. cid, h) end
    end
  end
end

for key, fields in pairs(counts) do
  for field, n in pairs(fields) do redis.call('HINCRBY', key, field, n) end
end
for key, members in pairs(uniques) do
  -- In slices: unpack() of thousands of values would overflow Lua's C stack.
  for s = 1, #members, 500 do
    redis.call('PFADD', key, unpack(members, s, math.min(s + 499, #members)))
  end
end
for key, m in pairs(first) do
  for rcp, t in pairs(m) do redis.call('ZADD', key, 'NX', t, rcp) end
end
return 'ok'
"""
