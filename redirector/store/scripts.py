"""The Lua scripts that write links, each beside the Python that calls it: the creation,
change and deletion of links, the making of destinations and of campaigns (run by the
admin; the click flush, run by the redirector, is in `flush`). Redis runs a script
atomically, so no reader sees half a write, and a check and the writes it guards are one
step.

Every key a script touches arrives in KEYS, named by `redirector.store.keys` and listed once
per call, and all of them carry one hash tag (see keys.py), so each call runs on Redis
Cluster too; the lines and items in ARGV refer to their keys by index into KEYS.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import orjson
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.typing import EncodableT

from redirector.store.connection import NO_WAIT, Durability, Store, run_replicated
from redirector.store.keys import (
    CAMPAIGN_SEQ_KEY,
    CAMPAIGNS_KEY,
    DESTINATION_SEQ,
    INVALIDATION_CHANNEL,
    SHARED_DESTINATIONS_MAX,
    campaign_key,
    destinations_key,
    link_keys,
    recipient_links_field,
    script_link_keys,
)


def spans_slots(client: Store) -> bool:
    """True when `client` talks to a Redis Cluster, where one script call may only touch keys
    of one hash tag; on one Redis any keys may go together."""
    return isinstance(client, RedisCluster)


# Script calls of one operation in flight at once (one per slot group): enough to keep every
# node of a cluster busy, well under the client's connection pool (100).
CALLS_IN_FLIGHT = 16

T = TypeVar("T")


async def call_each(calls: Iterable[Awaitable[T]]) -> list[T | Exception]:
    """Await `calls`, CALLS_IN_FLIGHT at a time; each one's result or error, in order. Every
    call is awaited even if others fail, so that the caller knows which went through. If
    the caller is cancelled (or a call raises CancelledError), the calls not started yet are
    closed, never run: a coroutine dropped unstarted would warn "never awaited"."""
    limit = asyncio.Semaphore(CALLS_IN_FLIGHT)

    async def one(call: Awaitable[T]) -> T | Exception:
        async with limit:
            try:
                return await call
            except Exception as exc:
                return exc

    waiting = list(calls)
    try:
        return await asyncio.gather(*(one(call) for call in waiting))
    finally:
        for call in waiting:
            if (
                inspect.iscoroutine(call)
                and inspect.getcoroutinestate(call) == inspect.CORO_CREATED
            ):
                call.close()


# -- CREATE_LINKS --------------------------------------------------------------------------
#
# Creates a group of links all-or-nothing: nothing is written unless every check passes. On
# a cluster a group is the links of one tag; on one Redis, any links. A code comes at most
# once per call (the caller sends the others of a code in its next round: LinkStore.write).
#
#   KEYS      the link hash of each item (KEYS[i] of item i), then the link-count hashes of
#             their tags
#   ARGV[1]   the invalidation channel
#   ARGV[2]   the items, as a JSON array of four columns: each item's code, its kind, the
#             KEYS index of its link-count hash (0: not counted; negative: a link with a
#             recipient, counted in ARGV[4] too) and its encoded record; kind one of
#             'random' (the code must be free), 'custom' (free, a custom link's tombstone, or
#             holding this very record but for its creation time: then it is that link),
#             'chain' (a recipient's chain position: free, or holding a record of the same
#             campaign and recipient, a link or an alias, whose code is then returned),
#             'alias' (a chain position for a custom link, as 'chain'; finding a link there:
#             the recipient got one since the request looked, so the custom item the alias is
#             for is not written but answered as that link)
#   ARGV[3]   the campaign's id, the field of the link-count hashes ('' for none)
#   ARGV[4]   the field that counts the campaign's per-recipient links (its implied sends)
# One JSON argument decoded by Redis's C cjson costs half the time of splitting per-item
# strings in Lua, and columns a third less than an array per item (no table per item).
# The reply: {'ok', {i, code, ...}} for the items that were already written (see
# `Written`), {'taken', i} or {'collided', {i, ...}}; decoded by `CreateLinksScript`.
CREATE_LINKS = """
local channel, items, campaign, personal = ARGV[1], cjson.decode(ARGV[2]), ARGV[3], ARGV[4]
local codes, kinds, counts, records = items[1], items[2], items[3], items[4]
local INLINE, DELETED, ALIAS, CUSTOM = 4, 8, 16, 32

-- A version 2 record's flags, "campaign|recipient" and destination id (an alias: its code).
local function owner(record)
  local flags = string.match(record, '^2(%w+)|')
  if not flags then return nil end
  flags = tonumber(flags, 36)
  local id, ref, size, tail
  if bit.band(flags, INLINE) ~= 0 then
    id, size, tail = string.match(record, '^[^|]*|[^|]*|[^|]*|([^|]*)|[^|]*|[^|]*|([^|]*)|(.*)$')
  else
    id, ref, size, tail = string.match(record, '^[^|]*|[^|]*|[^|]*|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  end
  if not size or size == '' then return flags end
  -- The recipient's length is in bytes, as string.sub counts.
  return flags, id .. '|' .. string.sub(tail, 1, tonumber(size, 36)), ref
end
local function undated(record)
  return (string.gsub(record, '^(%w+)|[^|]*', '%1', 1))
end

local existing, wrote, later, collided, answered = {}, {}, {}, {}, {}
-- Undoes what this call wrote so far: it then writes nothing, as its reply says.
local function undo()
  for _, i in ipairs(wrote) do redis.call('HDEL', KEYS[i], codes[i]) end
end
for i = 1, #codes do
  local links, code, kind, record = KEYS[i], codes[i], kinds[i], records[i]
  if kind == 'random' or kind == 'chain' then
    -- Almost always free: written at once (one command, not a read and a write).
    if redis.call('HSETNX', links, code, record) == 1 then
      wrote[#wrote + 1] = i
    else
      local flags, who, ref = owner(redis.call('HGET', links, code))
      if kind == 'chain' and who == select(2, owner(record)) and bit.band(flags, DELETED) == 0 then
        existing[i] = bit.band(flags, ALIAS) ~= 0 and ref or code
      else
        collided[#collided + 1] = i
      end
    end
  else
    local held = redis.call('HGET', links, code)
    if not held then
      later[#later + 1] = i
    elseif kind == 'custom' then
      local flags = owner(held) or 0
      if undated(held) == undated(record) then
        existing[i] = code
      elseif bit.band(flags, DELETED) ~= 0 and bit.band(flags, CUSTOM) ~= 0 then
        later[#later + 1] = i
      else
        undo()
        return {'taken', i}
      end
    else  -- an alias
      local flags, who, ref = owner(held)
      local _, me, target = owner(record)
      if who == me and bit.band(flags, DELETED) == 0 then
        existing[i] = bit.band(flags, ALIAS) ~= 0 and ref or code
        if existing[i] ~= target then answered[target] = existing[i] end
      else
        collided[#collided + 1] = i
      end
    end
  end
end
if #collided > 0 then
  undo()
  return {'collided', collided}
end
-- Custom links and aliases, checked above, once every alias has had its say.
for _, i in ipairs(later) do
  local code = codes[i]
  local instead = kinds[i] == 'custom' and answered[code]
  if instead then
    existing[i] = instead
  else
    redis.call('HSET', KEYS[i], code, records[i])
    wrote[#wrote + 1] = i
  end
end
local written, counted, recipients = {}, {}, {}
for n, i in ipairs(wrote) do
  written[n] = codes[i]
  local count = counts[i]
  if count < 0 then
    count = -count
    recipients[count] = (recipients[count] or 0) + 1
  end
  if count > 0 then counted[count] = (counted[count] or 0) + 1 end
end
for index, n in pairs(counted) do redis.call('HINCRBY', KEYS[index], campaign, n) end
for index, n in pairs(recipients) do redis.call('HINCRBY', KEYS[index], personal, n) end
if #written > 0 then
  -- A code may sit in a redirector's cache as a recent miss: tell them it exists now.
  redis.call('PUBLISH', channel, table.concat(written, ' '))
end
local found = {}
for i, code in pairs(existing) do
  found[#found + 1] = i
  found[#found + 1] = code
end
return {'ok', found}
"""

Kind = Literal["random", "custom", "chain"]


class NewLink(Protocol):
    """One item to write: its code, how the code was chosen, the encoded record, and whether
    it counts as a link of its campaign (an alias does not)."""

    @property
    def code(self) -> str: ...
    @property
    def kind(self) -> Kind: ...
    @property
    def record(self) -> str: ...
    @property
    def counted(self) -> bool: ...
    @property
    def recipient(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Written:
    """Every new link was written. `existing` maps the items that were not, because they
    already were a link, to the code of that link (the same custom link, or its recipient's
    link or alias target)."""

    existing: dict[int, str]


@dataclass(frozen=True, slots=True)
class CustomCodeTaken:
    item: int  # index into the items of the item whose chosen code is in use


@dataclass(frozen=True, slots=True)
class CodesCollided:
    items: list[int]  # indices of the items whose codes are in use: choose others


CreateOutcome = Written | CustomCodeTaken | CodesCollided


class CreateLinksScript:
    def __init__(self, redis: Store, durability: Durability = NO_WAIT) -> None:
        self._redis, self._durability = redis, durability
        self._script = redis.register_script(CREATE_LINKS)

    async def __call__(self, campaign_id: int | None, links: Sequence[NewLink]) -> CreateOutcome:
        keys, campaign, codes, counts = _link_columns(campaign_id, links)
        kinds = ["alias" if new.kind == "chain" and not new.counted else new.kind for new in links]
        items = orjson.dumps((codes, kinds, counts, [new.record for new in links]))
        args: list[str | bytes] = [INVALIDATION_CHANNEL, items, campaign, _personal(campaign_id)]
        reply = await run_replicated(self._redis, self._script, keys, args, self._durability)
        return _create_outcome(reply)


def _link_columns(
    campaign_id: int | None, links: Sequence[NewLink]
) -> tuple[list[str], str, list[str], list[int]]:
    """What CREATE_LINKS and UNDO_LINKS take of their items: KEYS (`script_link_keys`), the
    campaign's field ('' for none), the codes, and for each item the KEYS index of its
    link-count hash, 0 when it is not counted. Column by column, each a list comprehension:
    half the cost of one loop over the items."""
    codes = [new.code for new in links]
    keys, count_hashes = script_link_keys(codes)
    campaign = "" if campaign_id is None else str(campaign_id)
    # A link counts in its campaign; an alias, or a link without a campaign, nowhere. A link
    # with a recipient counts as an implied send too (negative: see CREATE_LINKS).
    counted = zip(count_hashes, links, strict=True)
    counts = [
        (at if new.recipient is None else -at) if new.counted and campaign else 0
        for at, new in counted
    ]
    return keys, campaign, codes, counts


def _personal(campaign_id: int | None) -> str:
    """The link-count field of the campaign's per-recipient links ('' for none)."""
    return "" if campaign_id is None else recipient_links_field(campaign_id)


def _create_outcome(reply: list[Any]) -> CreateOutcome:
    kind = reply[0]
    if kind == b"ok":
        found = reply[1]
        return Written(
            {int(found[at]) - 1: found[at + 1].decode() for at in range(0, len(found), 2)}
        )
    if kind == b"taken":
        return CustomCodeTaken(int(reply[1]) - 1)
    if kind == b"collided":
        return CodesCollided([int(i) - 1 for i in reply[1]])
    raise ValueError(f"unexpected reply of CREATE_LINKS: {reply!r}")


# -- UNDO_LINKS ----------------------------------------------------------------------------
#
# Takes back links that a request wrote in an earlier round when a later round ends it with
# a conflict (a 409), so that the request writes nothing: each record is deleted only if it
# is still the one written, and uncounted. (Nobody was given these codes: no tombstone.)
#
#   KEYS      as CREATE_LINKS: the link hash of each item, then the link-count hashes
#   ARGV[1]   the invalidation channel
#   ARGV[2]   the items, a JSON array of three columns: the KEYS index of each item's
#             link-count hash (0: not counted), its code and the record it was written with
#   ARGV[3]   the campaign's id, the field of the link-count hashes ('' for none)
#   ARGV[4]   the field of its per-recipient links, as CREATE_LINKS's
# Returns how many records were deleted.
UNDO_LINKS = """
local channel, items, campaign, personal = ARGV[1], cjson.decode(ARGV[2]), ARGV[3], ARGV[4]
local counts, codes, records = items[1], items[2], items[3]
local undone, uncounted, recipients = {}, {}, {}
for i = 1, #codes do
  if redis.call('HGET', KEYS[i], codes[i]) == records[i] then
    redis.call('HDEL', KEYS[i], codes[i])
    undone[#undone + 1] = codes[i]
    local count = counts[i]
    if count < 0 then
      count = -count
      recipients[count] = (recipients[count] or 0) + 1
    end
    if count > 0 then uncounted[count] = (uncounted[count] or 0) + 1 end
  end
end
for index, n in pairs(uncounted) do redis.call('HINCRBY', KEYS[index], campaign, -n) end
for index, n in pairs(recipients) do redis.call('HINCRBY', KEYS[index], personal, -n) end
if #undone > 0 then
  -- A redirector may have cached one of them since: it must ask Redis again.
  redis.call('PUBLISH', channel, table.concat(undone, ' '))
end
return #undone
"""


class UndoLinksScript:
    def __init__(self, redis: Store, durability: Durability = NO_WAIT) -> None:
        self._redis, self._durability = redis, durability
        self._script = redis.register_script(UNDO_LINKS)

    async def __call__(self, campaign_id: int | None, links: Sequence[NewLink]) -> int:
        keys, campaign, codes, counts = _link_columns(campaign_id, links)
        items = orjson.dumps((counts, codes, [new.record for new in links]))
        args: list[str | bytes] = [INVALIDATION_CHANNEL, items, campaign, _personal(campaign_id)]
        return int(await run_replicated(self._redis, self._script, keys, args, self._durability))


# -- MAKE_DESTINATIONS ---------------------------------------------------------------------
#
# The ids of a campaign's destinations, each made if it is new; only while the campaign
# exists (a campaign's keys share its tag, so that is checked in the same step).
#
#   KEYS[1], KEYS[2]  the campaign hash and its destinations hash
#   ARGV[1]           the field of the destinations hash that counts ids
#   ARGV[2]           how many destinations the campaign may have (SHARED_DESTINATIONS_MAX)
#   ARGV[3..]         pairs: the field that finds a destination, and its encoded record
# Returns {'ok', ids} (base 36, in order; '' for a new one past the limit: its links hold
# it inline), or {'no_campaign'}.
MAKE_DESTINATIONS = """
local campaign, destinations, seq, limit = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
if redis.call('EXISTS', campaign) == 0 then
  return {'no_campaign'}
end
local DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz'
local ids = {}
for i = 3, #ARGV, 2 do
  local id = redis.call('HGET', destinations, ARGV[i])
  if not id and tonumber(redis.call('HGET', destinations, seq) or '0') >= limit then
    id = ''
  elseif not id then
    local n = redis.call('HINCRBY', destinations, seq, 1)
    id = ''
    repeat
      local digit = n % 36
      id = string.sub(DIGITS, digit + 1, digit + 1) .. id
      n = (n - digit) / 36
    until n == 0
    redis.call('HSET', destinations, id, ARGV[i + 1], ARGV[i], id)
  end
  ids[#ids + 1] = id
end
return {'ok', ids}
"""


class MakeDestinationsScript:
    def __init__(self, redis: Store, durability: Durability = NO_WAIT) -> None:
        self._redis, self._durability = redis, durability
        self._script = redis.register_script(MAKE_DESTINATIONS)

    async def __call__(
        self, campaign_id: int, destinations: Sequence[tuple[str, str]]
    ) -> list[str | None] | None:
        """The ids of `destinations` (pairs of finding field and record), None for each
        that is to be held inline (the campaign has SHARED_DESTINATIONS_MAX already), or None
        when the campaign does not exist (then nothing was written)."""
        keys = [campaign_key(campaign_id), destinations_key(campaign_id)]
        fields = (part for pair in destinations for part in pair)
        args: list[EncodableT] = [DESTINATION_SEQ, SHARED_DESTINATIONS_MAX, *fields]
        reply = await run_replicated(self._redis, self._script, keys, args, self._durability)
        if reply[0] == b"no_campaign":
            return None
        return [raw.decode() or None for raw in reply[1]]


# -- SWAP_LINK -----------------------------------------------------------------------------
#
# Replaces a link's record only if it is still the one read (compare-and-set: WATCH/MULTI
# cannot be used on a cluster client), and counts the change in the links of its campaign.
#
#   KEYS[1], KEYS[2]  the link's hash and the link-count hash of its tag
#   ARGV              code, the record read, the new record, the campaign's id ('' for
#                     none), the change to its link count, the invalidation channel
# Returns 1, or 0 when the record had changed meanwhile (nothing written: read it again).
SWAP_LINK = """
local links, counts = KEYS[1], KEYS[2]
local code, expected, record, campaign, change, channel = unpack(ARGV, 1, 6)
if redis.call('HGET', links, code) ~= expected then
  return 0
end
redis.call('HSET', links, code, record)
if campaign ~= '' and change ~= '0' then redis.call('HINCRBY', counts, campaign, change) end
redis.call('PUBLISH', channel, code)
return 1
"""


class SwapLinkScript:
    def __init__(self, redis: Store, durability: Durability = NO_WAIT) -> None:
        self._redis, self._durability = redis, durability
        self._script = redis.register_script(SWAP_LINK)

    async def __call__(
        self, code: str, read: bytes, record: bytes, campaign_id: int | None, change: int
    ) -> bool:
        """True if `code` held `read` and now holds `record`."""
        keys = list(link_keys(code))
        campaign = "" if campaign_id is None else str(campaign_id)
        args: list[bytes | str | int] = [code, read, record, campaign, change, INVALIDATION_CHANNEL]
        return bool(await run_replicated(self._redis, self._script, keys, args, self._durability))


# -- CREATE_HASH, ONE_COMMAND --------------------------------------------------------------
#
# Writes a hash only if its key is unused: a campaign's or a workspace's (a failover may lose
# the INCR that drew an id whose hash survived, and the id is then drawn again), or an API
# key's (whose id is part of its SHA-256).
#
#   KEYS[1]  the hash
#   ARGV     its fields and values
# Returns 1, or 0 when the key exists (nothing written).
CREATE_HASH = """
local hash = KEYS[1]
if redis.call('EXISTS', hash) == 1 then
  return 0
end
redis.call('HSET', hash, unpack(ARGV))
return 1
"""

# One command on one key, as a script so that run_replicated can wait for its replicas.
ONE_COMMAND = """
return redis.call(ARGV[1], KEYS[1], unpack(ARGV, 2))
"""


class SingleKeyWrites:
    """Writes of one key each, acknowledged once on the replicas `durability` asks for."""

    def __init__(self, redis: Store, durability: Durability = NO_WAIT) -> None:
        self._redis, self._durability = redis, durability
        self._create = redis.register_script(CREATE_HASH)
        self._one_command = redis.register_script(ONE_COMMAND)

    async def create_hash(self, key: str, fields: Mapping[str, str | int]) -> bool:
        """True if `key` was unused and now holds `fields`."""
        args = [part for pair in fields.items() for part in pair]
        return bool(await self._run(self._create, key, args))

    async def command(self, key: str, *args: str | int) -> Any:
        """`redis.call(args[0], key, args[1:]...)`: e.g. ("INCR",), ("SADD", member)."""
        return await self._run(self._one_command, key, args)

    async def _run(self, script: AsyncScript, key: str, args: Sequence[str | int]) -> Any:
        return await run_replicated(self._redis, script, [key], args, self._durability)


async def create_numbered(
    writes: SingleKeyWrites,
    seq_key: str,
    hash_key: Callable[[int], str],
    fields: Mapping[str, str | int],
) -> int:
    """Writes `fields` under the next number of `seq_key` whose hash is unused; the number."""
    while True:
        number = int(await writes.command(seq_key, "INCR"))
        if await writes.create_hash(hash_key(number), fields):
            return number


class CreateCampaignScript:
    def __init__(self, redis: Store, durability: Durability = NO_WAIT) -> None:
        self._writes = SingleKeyWrites(redis, durability)

    async def __call__(
        self, fields: Mapping[str, str | int], created_at: int, listed_in: str = CAMPAIGNS_KEY
    ) -> int:
        """Writes a campaign of `fields` under the next unused id, lists it in `listed_in`
        (its workspace's list); returns the id."""
        campaign_id = await create_numbered(self._writes, CAMPAIGN_SEQ_KEY, campaign_key, fields)
        # Another slot on a cluster: a campaign is listed once it exists.
        await self._writes.command(listed_in, "ZADD", created_at, campaign_id)
        return campaign_id
