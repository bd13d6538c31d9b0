"""Lua run inside Redis, where a check and the writes it guards must be one atomic step."""

from __future__ import annotations

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
