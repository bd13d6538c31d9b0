"""The Lua scripts of smslinks: one flush of clicks (written by the redirector) and the
atomic creation of links (by the admin). Redis runs a script atomically, so a check and the
writes it guards are one step.

FLUSH_CLICKS

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
    ARGV[3..21] the names of `redirector.store.keys.ClickNames.as_script_args()`, in that order
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

# Creates links all-or-nothing. Nothing is written unless every check passes, so a request
# that fails leaves Redis as it was.
#   KEYS[1]   the campaign hash (checked and counted when ARGV[1] == '1')
#   ARGV[1]   '1' if the links belong to a campaign
#   ARGV[2]   the invalidation channel
#   ARGV[3]   the items, a JSON array of [link bucket key, recipient-index key, code,
#             recipient field ('' if none), custom ('1'/'0'), encoded record]
# One JSON argument decoded by Redis's C cjson costs about half the time of splitting
# per-item strings in Lua, and a tenth of the client's work of sending five arguments per
# item. The bucket keys travel inside it rather than in KEYS: fine on a standalone Redis
# (and replicas); Redis Cluster would need the keys declared.
# Returns:
#   {'ok', existing}     existing[i] is '' when item i was created, else the code the
#                        recipient already had (that item was not written)
#   {'no_campaign'}
#   {'taken', i}         item i's custom code is in use
#   {'collided', 'i,j'}  those generated codes are in use: the caller draws again
CREATE_LINKS = """
local with_campaign = ARGV[1] == '1'
if with_campaign and redis.call('EXISTS', KEYS[1]) == 0 then
  return {'no_campaign'}
end
local items = cjson.decode(ARGV[3])
local existing, new, collided = {}, {}, {}
for i, it in ipairs(items) do
  local owner = false
  if it[4] ~= '' then owner = redis.call('HGET', it[2], it[4]) end
  if owner then
    existing[i] = owner
  else
    existing[i] = ''
    if redis.call('HEXISTS', it[1], it[3]) == 1 then
      if it[5] == '1' then return {'taken', i} end
      collided[#collided + 1] = i
    end
    new[#new + 1] = it
  end
end
if #collided > 0 then
  return {'collided', table.concat(collided, ',')}
end
local codes = {}
for _, it in ipairs(new) do
  redis.call('HSET', it[1], it[3], it[6])
  if it[4] ~= '' then
    redis.call('HSET', it[2], it[4], it[3])
  end
  codes[#codes + 1] = it[3]
end
if #new > 0 then
  if with_campaign then
    redis.call('HINCRBY', KEYS[1], 'links', #new)
  end
  -- A code may sit in a redirector's cache as a recent miss: tell them it exists now.
  redis.call('PUBLISH', ARGV[2], table.concat(codes, ' '))
end
return {'ok', existing}
"""
