"""Lua run inside Redis, where a check and the writes it guards must be one atomic step."""

from __future__ import annotations

# Creates links all-or-nothing. Nothing is written unless every check passes, so a request
# that fails leaves Redis as it was.
#   KEYS[1]             the campaign hash (checked and counted when ARGV[1] == '1')
#   KEYS[2i], KEYS[2i+1] item i's link bucket and recipient-index bucket
#   ARGV[1]             '1' if the links belong to a campaign
#   ARGV[2]             the invalidation channel
#   ARGV[3..]           per item: code, record, recipient field ('' if none), custom ('1'/'0')
# Returns {'ok'}, {'no_campaign'}, {'taken', i} (custom code in use), {'collided', 'i,j,..'}
# (generated codes in use: the caller draws again) or {'recipient', i} (another request
# created that recipient's link meanwhile: the caller reads it and retries).
CREATE_LINKS = """
local n = (#ARGV - 2) / 4
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  return {'no_campaign'}
end
local collided = {}
for i = 1, n do
  local a = 2 + (i - 1) * 4
  if redis.call('HEXISTS', KEYS[2 * i], ARGV[a + 1]) == 1 then
    if ARGV[a + 4] == '1' then return {'taken', i} end
    collided[#collided + 1] = i
  end
  if ARGV[a + 3] ~= '' and redis.call('HEXISTS', KEYS[2 * i + 1], ARGV[a + 3]) == 1 then
    return {'recipient', i}
  end
end
if #collided > 0 then
  return {'collided', table.concat(collided, ',')}
end
local codes = {}
for i = 1, n do
  local a = 2 + (i - 1) * 4
  redis.call('HSET', KEYS[2 * i], ARGV[a + 1], ARGV[a + 2])
  if ARGV[a + 3] ~= '' then
    redis.call('HSET', KEYS[2 * i + 1], ARGV[a + 3], ARGV[a + 1])
  end
  codes[i] = ARGV[a + 1]
end
if ARGV[1] == '1' then
  redis.call('HINCRBY', KEYS[1], 'links', n)
end
-- A code may sit in a redirector's cache as a recent miss: tell them it exists now.
redis.call('PUBLISH', ARGV[2], table.concat(codes, ' '))
return {'ok'}
"""
