"""The key layout of the releases before the tagged schema ("layout 1", keys.py as of commit
3ab6fca^1), which only `python -m admin migrate` reads, and the scripts that move it into
the schema of keys.py. Layout 1 ran on one Redis only (its multi-key scripts had no hash
tags), so MOVE_KEYS, DROP_MIGRATED and the reads below, unlike every other script, touch
keys of several slots in one call.

Layout 1, as that release wrote it (the record format is version 1 of record.py):

    l:<bucket>        hash   code -> link record (version 1: destination inline); bucket is
                             crc32(code) mod 2**16 in hex, without leading zeros. A deleted
                             link's field was removed: no tombstone.
    r:<bucket>        hash   "<campaign id>:<recipient>" -> code of the recipient's link
                             (campaign id "" for none); bucket by crc32 of the field.
    c:<id>            hash   campaign: name, kind, utm_source, utm_medium, created_at, links
                             (its live links, counted on create and delete).
    x:<id>, x:-       stream click events (x:- for links without campaign), fields as now.
    s:l:<code>        hash   a link's counters; s:c:<id> a campaign's (fields as now).
    b:l:<code>        hash   a link's breakdowns; b:c:<id> a campaign's (fields as now).
    u:l:<code>        HLL    a link's visitors; u:c:<id> a campaign's.
    k:<id>            zset   a campaign's recipients who clicked, by first click.

`campaigns`, `seq:campaign` and `cfg:click_salt` kept their names and meaning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import orjson
from redis.asyncio.client import Pipeline

from redirector.store.connection import Store
from redirector.store.keys import (
    INVALIDATION_CHANNEL,
    LINK_CREATED,
    campaign_breakdowns_key,
    campaign_stats_key,
    campaign_uniques_key,
    click_stream_key,
    clickers_key,
    link_breakdowns_key,
    link_count_key,
    link_key,
    link_stats_key,
    link_uniques_key,
)

# SCAN patterns of layout 1 (the new names all have a `{` where these have none), each
# with the full-name check that SCAN's glob cannot make.
LINKS_MATCH, _LINKS = "l:[0-9a-f]*", re.compile(r"l:[0-9a-f]{1,4}")
RECIPIENTS_MATCH, _RECIPIENTS = "r:[0-9a-f]*", re.compile(r"r:[0-9a-f]{1,4}")
CAMPAIGNS_MATCH, _CAMPAIGNS = "c:[0-9]*", re.compile(r"c:([1-9][0-9]*)")
# Click keys of links and of campaigns, in one pass (told apart by name).
CLICKS_MATCH = "[sbukx]:*"
_LINK_CLICKS = re.compile(r"([sbu]):l:([A-Za-z0-9_-]{3,64})")
_CAMPAIGN_COUNTERS = re.compile(r"([sbu]):c:([0-9]+)")
_CLICKERS = re.compile(r"k:([0-9]+)")
_STREAM = re.compile(r"x:([0-9]+|-)")
ALL_MATCHES = (LINKS_MATCH, CAMPAIGNS_MATCH, RECIPIENTS_MATCH, CLICKS_MATCH)

# The field of a layout-1 campaign hash that counted its links (now counted per link tag).
CAMPAIGN_LINKS = "links"

_LINK_CLICK_KEYS = {"s": link_stats_key, "b": link_breakdowns_key, "u": link_uniques_key}
_CAMPAIGN_CLICK_KEYS = {
    "s": campaign_stats_key,
    "b": campaign_breakdowns_key,
    "u": campaign_uniques_key,
}


def is_old(name: str) -> bool:
    """Whether `name` is a key of layout 1."""
    return bool(
        _LINKS.fullmatch(name)
        or _RECIPIENTS.fullmatch(name)
        or _CAMPAIGNS.fullmatch(name)
        or _LINK_CLICKS.fullmatch(name)
        or new_campaign_clicks_key(name) is not None
    )


def is_link_bucket(name: str) -> bool:
    return _LINKS.fullmatch(name) is not None


def is_recipient_bucket(name: str) -> bool:
    return _RECIPIENTS.fullmatch(name) is not None


def old_campaign_key(campaign_id: int) -> str:
    return f"c:{campaign_id}"


def campaign_id_of(name: str) -> int | None:
    """The id of a layout-1 campaign hash, None for any other name."""
    found = _CAMPAIGNS.fullmatch(name)
    return None if found is None else int(found[1])


def recipient_of(field: str) -> tuple[int | None, str]:
    """The campaign id and recipient of a field of an `r:` hash."""
    campaign, _, recipient = field.partition(":")
    return (int(campaign) if campaign else None), recipient


def link_clicks_code(name: str) -> str | None:
    """The code of a layout-1 click key of one link, None for any other name."""
    found = _LINK_CLICKS.fullmatch(name)
    return None if found is None else found[2]


def new_link_clicks_key(name: str, campaign_id: int | None) -> str:
    """The name that a layout-1 click key of one link has now: it carries the campaign's tag."""
    found = _LINK_CLICKS.fullmatch(name)
    assert found is not None, name
    return _LINK_CLICK_KEYS[found[1]](campaign_id, found[2])


def is_link_stats(name: str) -> bool:
    """Whether `name` is a layout-1 stats hash of one link (s:l:<code>)."""
    found = _LINK_CLICKS.fullmatch(name)
    return found is not None and found[1] == "s"


def new_campaign_clicks_key(name: str) -> str | None:
    """The name a layout-1 click key of a campaign (or `x:-`) has now; None for other names."""
    if found := _CAMPAIGN_COUNTERS.fullmatch(name):
        return _CAMPAIGN_CLICK_KEYS[found[1]](int(found[2]))
    if found := _CLICKERS.fullmatch(name):
        return clickers_key(int(found[1]))
    if found := _STREAM.fullmatch(name):
        return click_stream_key(None if found[1] == "-" else int(found[1]))
    return None


# -- PUT_RECORDS ---------------------------------------------------------------------------
#
# Writes migrated records of one link tag, each only where its code holds nothing, and counts
# the written links in their campaigns in the same step: running it again writes and counts
# nothing twice, and never overwrites what the admin changed since.
#
#   KEYS[1]   the link-count hash of the tag; KEYS[2..] the link hashes of the items
#   ARGV[1]   the invalidation channel
#   ARGV[2]   the items, a JSON array of [KEYS index of the link hash, code, the campaign
#             field to count the link in ('' not counted), encoded record]
# Returns, per item, 1 (written), 0 (the code held this record already) or 2 (it held another).
PUT_RECORDS = """
local counts, channel, items = KEYS[1], ARGV[1], cjson.decode(ARGV[2])
local outcome, written, counted = {}, {}, {}
for i, item in ipairs(items) do
  local links, code, campaign, record = KEYS[item[1]], item[2], item[3], item[4]
  local held = redis.call('HGET', links, code)
  if not held then
    redis.call('HSET', links, code, record)
    if campaign ~= '' then counted[campaign] = (counted[campaign] or 0) + 1 end
    written[#written + 1] = code
    outcome[i] = 1
  elseif held == record then
    outcome[i] = 0
  else
    outcome[i] = 2
  end
end
for campaign, n in pairs(counted) do redis.call('HINCRBY', counts, campaign, n) end
if #written > 0 then
  -- A redirector of this release may hold the code as a recent miss.
  redis.call('PUBLISH', channel, table.concat(written, ' '))
end
return outcome
"""

WRITTEN, ALREADY, HELD = 1, 0, 2


class PutRecordsScript:
    def __init__(self, redis: Store) -> None:
        self._script = redis.register_script(PUT_RECORDS)

    async def queue(
        self, pipe: Pipeline, tag: str, items: Sequence[tuple[str, int | None, str]]
    ) -> None:
        """Queues the call for `items` of link tag `tag`: (code, campaign the link counts in,
        or None, encoded record). Its reply is a list of WRITTEN, ALREADY or HELD."""
        keys = {link_count_key(tag): 1}
        rows = []
        for code, counted_in, record in items:
            index = keys.setdefault(link_key(code), len(keys) + 1)
            rows.append((index, code, "" if counted_in is None else str(counted_in), record))
        args: list[str | bytes] = [INVALIDATION_CHANNEL, orjson.dumps(rows)]
        await self._script(keys=list(keys), args=args, client=pipe)


# -- MOVE_KEYS -----------------------------------------------------------------------------
#
# Moves layout-1 click keys to their new names: each renamed when its new key does not exist
# yet, else merged into it (the redirectors of this release may have counted clicks there
# already), what was merged leaving the old key in the same step. Counters cannot be copied
# and kept, or a second run would count them twice. A large sorted set or stream is merged a
# chunk per call, so that no call blocks Redis for long. A link's stats hash is stamped, in
# the same step, with the creation time of the link it counts (ARGV[2 + i]: a layout-1 hash
# has none; see keys.py), unless it names one already: nothing may write it again (a
# per-recipient link counts in s:r), and a custom code given again must not show it.
#
#   KEYS      pairs: an old key and its new name
#   ARGV[1]   the entries of a sorted set or stream merged per call
#   ARGV[2]   the field of a link's stats hash that holds the creation time (LINK_CREATED)
#   ARGV[2 + i]  for the i-th pair, that creation time to stamp, or '' (not a stats hash)
# Returns, per pair, 1 (moved), 0 (more of it is left to merge: call again) or 2 (there was
# no old key: a name SCAN returned twice).
MOVE_KEYS = """
local chunk, CREATED = tonumber(ARGV[1]), ARGV[2]
local function move(old, new, created)
  local kind = redis.call('TYPE', old)['ok']
  if kind == 'none' then return 2 end
  if redis.call('EXISTS', new) == 0 then
    redis.call('RENAME', old, new)
    if created ~= '' then redis.call('HSETNX', new, CREATED, created) end
    return 1
  end
  if kind == 'hash' then
    -- Counters (clicks, h:/d: buckets, breakdowns): summed; a creation time kept.
    local fields = redis.call('HGETALL', old)
    for i = 1, #fields, 2 do
      if fields[i] == CREATED then
        redis.call('HSETNX', new, CREATED, fields[i + 1])
      else
        redis.call('HINCRBY', new, fields[i], fields[i + 1])
      end
    end
    if created ~= '' then redis.call('HSETNX', new, CREATED, created) end
  elseif kind == 'string' then
    -- A HyperLogLog of visitors: the union.
    redis.call('PFMERGE', new, old)
  elseif kind == 'zset' then
    -- Recipients who clicked: each keeps the earlier first click.
    local popped = redis.call('ZPOPMIN', old, chunk)
    for i = 1, #popped, 2 do redis.call('ZADD', new, 'LT', popped[i + 1], popped[i]) end
    return redis.call('EXISTS', old) == 0 and 1 or 0
  elseif kind == 'stream' then
    -- Click events: appended, under ids of now (each keeps its tap time, field t).
    local entries = redis.call('XRANGE', old, '-', '+', 'COUNT', chunk)
    for _, entry in ipairs(entries) do
      redis.call('XADD', new, '*', unpack(entry[2]))
      redis.call('XDEL', old, entry[1])
    end
    if redis.call('XLEN', old) > 0 then return 0 end
  else
    return redis.error_reply('cannot merge ' .. old .. ', a ' .. kind)
  end
  redis.call('DEL', old)
  return 1
end
local outcome = {}
for i = 1, #KEYS, 2 do
  outcome[#outcome + 1] = move(KEYS[i], KEYS[i + 1], ARGV[2 + (i + 1) / 2])
end
return outcome
"""

MORE, MOVED, ABSENT = 0, 1, 2
# Entries of a sorted set or stream merged per MOVE_KEYS call.
MOVE_CHUNK = 1000


class MoveKeysScript:
    def __init__(self, redis: Store) -> None:
        self._script = redis.register_script(MOVE_KEYS)

    async def __call__(self, moves: Sequence[Move]) -> list[int]:
        """Each move's outcome: MOVED, MORE (call again) or ABSENT."""
        keys = [name for old, new, _ in moves for name in (old, new)]
        stamps = ["" if created is None else str(created) for _, _, created in moves]
        args: list[str | int] = [MOVE_CHUNK, LINK_CREATED, *stamps]
        return [int(n) for n in await self._script(keys=keys, args=args)]


# A click key's move: its old name, its new name, and for a link's stats hash the creation
# time of the link it counts (0 for a deleted link: before any), else None.
Move = tuple[str, str, int | None]


# -- DROP_MIGRATED -------------------------------------------------------------------------
#
# Deletes fields of layout-1 hashes that still hold what was migrated (a field changed since
# it was read stays, to be migrated by the next run).
#
#   KEYS   the hashes
#   ARGV   triples: KEYS index of the hash, field, the value it was migrated with
# Returns how many fields were deleted.
DROP_MIGRATED = """
local dropped = 0
for i = 1, #ARGV, 3 do
  local hash, field = KEYS[tonumber(ARGV[i])], ARGV[i + 1]
  if redis.call('HGET', hash, field) == ARGV[i + 2] then
    dropped = dropped + redis.call('HDEL', hash, field)
  end
end
return dropped
"""


class DropMigratedScript:
    def __init__(self, redis: Store) -> None:
        self._script = redis.register_script(DROP_MIGRATED)

    async def __call__(self, fields: Iterable[tuple[str, bytes, bytes]]) -> int:
        """Deletes each (hash, field, value) whose field still holds that value."""
        keys: dict[str, int] = {}
        args: list[int | bytes] = []
        for name, field, value in fields:
            args += (keys.setdefault(name, len(keys) + 1), field, value)
        if not args:
            return 0
        return int(await self._script(keys=list(keys), args=args))


# -- READ_HASHES, READ_FIELDS ----------------------------------------------------------------
#
# Many small reads in one call: through redis-py each command costs the client ~30 µs, several
# times what Redis spends on an HGETALL of a bucket (100,000 old links migrated: 3,200 links/s
# with one command per bucket and per record read, 14,000 with these).
#
#   READ_HASHES  KEYS the hashes; returns the fields and values of each (HGETALL)
#   READ_FIELDS  KEYS hashes, ARGV one field of each; returns its value, or nil
READ_HASHES = """
local found = {}
for i, name in ipairs(KEYS) do found[i] = redis.call('HGETALL', name) end
return found
"""

READ_FIELDS = """
local found = {}
for i, name in ipairs(KEYS) do found[i] = redis.call('HGET', name, ARGV[i]) end
return found
"""


class ReadScripts:
    def __init__(self, redis: Store) -> None:
        self._hashes = redis.register_script(READ_HASHES)
        self._fields = redis.register_script(READ_FIELDS)

    async def hashes(self, names: Sequence[str]) -> list[list[bytes]]:
        """Each hash's fields and values, flat: [field, value, field, value, ...]."""
        return list(await self._hashes(keys=names)) if names else []

    async def fields(self, wanted: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """The value of each (hash, field), None where there is none."""
        if not wanted:
            return []
        names, fields = zip(*wanted, strict=True)
        return list(await self._fields(keys=names, args=fields))
