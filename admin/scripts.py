"""Lua run inside Redis, where a check and the writes it guards must be one atomic step."""

from __future__ import annotations

# Creates links all-or-nothing. Nothing is written unless every check passes, so a request
# that fails leaves Redis as it was.
#   KEYS[1]   the campaign hash (checked and counted when ARGV[1] == '1')
#   ARGV[1]   '1' if the links belong to a campaign
#   ARGV[2]   the invalidation channel
#   ARGV[3..] one per item, tab-separated (no field can hold a tab: codes, recipients and
#             URLs are validated free of control characters):
#             link bucket key, recipient-index key, code, recipient field ('' if none),
#             custom ('1'/'0'), encoded record
# The bucket keys travel in ARGV rather than KEYS: one argument per item instead of five
# halves the client's encoding work on a 10,000-link batch. Fine on a standalone Redis (and
# replicas); it would need reworking for Redis Cluster, where keys must be declared.
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
local existing, new, collided = {}, {}, {}
for i = 1, #ARGV - 2 do
  local a = ARGV[i + 2]
  local p1 = string.find(a, '\\t', 1, true)
  local p2 = string.find(a, '\\t', p1 + 1, true)
  local p3 = string.find(a, '\\t', p2 + 1, true)
  local p4 = string.find(a, '\\t', p3 + 1, true)
  local p5 = string.find(a, '\\t', p4 + 1, true)
  local lkey = string.sub(a, 1, p1 - 1)
  local rkey = string.sub(a, p1 + 1, p2 - 1)
  local code = string.sub(a, p2 + 1, p3 - 1)
  local rfield = string.sub(a, p3 + 1, p4 - 1)
  local owner = false
  if rfield ~= '' then owner = redis.call('HGET', rkey, rfield) end
  if owner then
    existing[i] = owner
  else
    existing[i] = ''
    if redis.call('HEXISTS', lkey, code) == 1 then
      if string.sub(a, p4 + 1, p5 - 1) == '1' then return {'taken', i} end
      collided[#collided + 1] = i
    end
    new[#new + 1] = {lkey, rkey, code, rfield, string.sub(a, p5 + 1)}
  end
end
if #collided > 0 then
  return {'collided', table.concat(collided, ',')}
end
local codes = {}
for _, it in ipairs(new) do
  redis.call('HSET', it[1], it[3], it[5])
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
