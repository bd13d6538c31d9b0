"""The Lua scripts of smslinks, each beside the Python that calls it: one flush of clicks
(run by the redirector) and the atomic creation of links (by the admin). Redis runs a script
atomically, so no reader sees half a flush, and a check and the writes it guards are one step.

Every key a script touches arrives in KEYS, named by `redirector.store.keys` and listed
once per call; the lines and items in ARGV refer to their keys by index into KEYS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from redirector.store.connection import Store
from redirector.store.keys import (
    BOT_DAY_PREFIX,
    BOT_HOUR_PREFIX,
    BOTS,
    BREAKDOWNS,
    CAMPAIGN_LINKS,
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
    INVALIDATION_CHANNEL,
    campaign_breakdowns_key,
    campaign_key,
    campaign_stats_key,
    campaign_uniques_key,
    click_stream_key,
    clickers_key,
    link_breakdowns_key,
    link_key,
    link_stats_key,
    link_uniques_key,
    recipient_key,
)
from redirector.store.record import Link, encode_text

# -- FLUSH_CLICKS --------------------------------------------------------------------------
#
# Sending each XADD and HINCRBY through redis-py costs ~30 µs of client CPU per command, more
# than the redirect itself; instead the flusher sends one tab-separated line per hit, and
# Redis does the fan-out. Counters are summed per key and field inside the script, so a hot
# link costs one HINCRBY per field per flush.
#
#   KEYS[1]       the click stream of links without a campaign
#   KEYS[l..l+2]  a link's stats, breakdowns and uniques, `l` as its hits' lines give it
#   KEYS[c..c+4]  a campaign's stream, stats, breakdowns, uniques and clickers, likewise `c`
#   ARGV[1]       the hits, one per line: code, l, c ('' without a campaign), recipient ('' if
#                 none), time (unix ms), bot ('1'/'0'), user agent, referer host, visitor
#                 hash, device type, OS, browser. No field holds a tab or newline (the flusher
#                 replaces them in user agents; the rest are validated or generated).
#   ARGV[2]       the streams' approximate MAXLEN
#   ARGV[3..12]   the stats field names and prefixes, then
#   ARGV[13..19]  the field names of a stream entry, both in the order of `_FLUSH_FIELDS`
FLUSH_CLICKS = """
local hits, maxlen = ARGV[1], ARGV[2]
local CLICKS, BOTS, HOUR, BOT_HOUR, DAY, BOT_DAY, DEVICE, OS, BROWSER, REFERER =
  unpack(ARGV, 3, 12)
local E_CODE, E_RECIPIENT, E_TIME, E_USER_AGENT, E_REFERER, E_HASH, E_BOT = unpack(ARGV, 13, 19)

local counts, uniques, first = {}, {}, {}
local function bump(key, field)
  local t = counts[key]
  if not t then t = {}; counts[key] = t end
  t[field] = (t[field] or 0) + 1
end
local function count(stats, breakdowns, f, hour, day)
  if f[6] == '1' then
    bump(stats, BOTS); bump(stats, BOT_HOUR .. hour); bump(stats, BOT_DAY .. day)
  else
    bump(stats, CLICKS); bump(stats, HOUR .. hour); bump(stats, DAY .. day)
    bump(breakdowns, DEVICE .. f[10]); bump(breakdowns, OS .. f[11])
    bump(breakdowns, BROWSER .. f[12])
    if f[8] ~= '' then bump(breakdowns, REFERER .. f[8]) end
  end
end
local function unique(key, member)
  local t = uniques[key]
  if not t then t = {}; uniques[key] = t end
  t[#t + 1] = member
end

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
  local link, campaign = tonumber(f[2]), tonumber(f[3])
  local rcp, t, bot, h = f[4], f[5], f[6], f[9]
  local ms = tonumber(t)
  local hour = string.format('%d', math.floor(ms / 3600000))
  local day = string.format('%d', math.floor(ms / 86400000))
  redis.call('XADD', campaign and KEYS[campaign] or KEYS[1], 'MAXLEN', '~', maxlen, '*',
    E_CODE, f[1], E_RECIPIENT, rcp, E_TIME, t, E_USER_AGENT, f[7], E_REFERER, f[8],
    E_HASH, h, E_BOT, bot)
  count(KEYS[link], KEYS[link + 1], f, hour, day)
  if campaign then count(KEYS[campaign + 1], KEYS[campaign + 2], f, hour, day) end
  if bot ~= '1' then
    if rcp == '' then
      unique(KEYS[link + 2], h)
      if campaign then unique(KEYS[campaign + 3], h) end
    elseif campaign then
      -- Unique per recipient: a campaign's clickers, each with their first click.
      local clickers = KEYS[campaign + 4]
      local m = first[clickers]
      if not m then m = {}; first[clickers] = m end
      if not m[rcp] then m[rcp] = t end
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
"""

_FLUSH_FIELDS = (
    CLICKS, BOTS, HOUR_PREFIX, BOT_HOUR_PREFIX, DAY_PREFIX, BOT_DAY_PREFIX,
    BREAKDOWNS["device"], BREAKDOWNS["os"], BREAKDOWNS["browser"], BREAKDOWNS["referer"],
    EVENT_CODE, EVENT_RECIPIENT, EVENT_TIME, EVENT_USER_AGENT, EVENT_REFERER_HOST,
    EVENT_VISITOR_HASH, EVENT_BOT,
)  # fmt: skip


class ClickBatch:
    """The arguments of one FLUSH_CLICKS call. The flusher appends the hit lines, with
    `link(code)` as l and `campaign(campaign_id)` as c: each declares its keys on first use."""

    def __init__(self) -> None:
        self.hit_lines: list[str] = []
        self.keys = [click_stream_key(None)]
        self._links: dict[str, str] = {}
        self._campaigns: dict[int | None, str] = {None: ""}

    def link(self, code: str) -> str:
        index = self._links.get(code)
        if index is None:
            index = self._links[code] = str(len(self.keys) + 1)
            self.keys += (link_stats_key(code), link_breakdowns_key(code), link_uniques_key(code))
        return index

    def campaign(self, campaign_id: int | None) -> str:
        index = self._campaigns.get(campaign_id)
        if index is None:
            assert campaign_id is not None  # None is there from the start
            index = self._campaigns[campaign_id] = str(len(self.keys) + 1)
            self.keys += (
                click_stream_key(campaign_id),
                campaign_stats_key(campaign_id),
                campaign_breakdowns_key(campaign_id),
                campaign_uniques_key(campaign_id),
                clickers_key(campaign_id),
            )
        return index


class FlushClicksScript:
    def __init__(self, redis: Store) -> None:
        self._script = redis.register_script(FLUSH_CLICKS)

    async def __call__(self, batch: ClickBatch, stream_maxlen: int) -> None:
        hits = "\n".join(batch.hit_lines)
        await self._script(keys=batch.keys, args=[hits, stream_maxlen, *_FLUSH_FIELDS])


# -- CREATE_LINKS --------------------------------------------------------------------------
#
# Creates links all-or-nothing: nothing is written unless every check passes, so a request
# that fails leaves Redis as it was.
#
#   KEYS[1]   the campaign hash, checked and counted, when ARGV[1] == '1'; then the link
#             and recipient-index hashes of the items
#   ARGV[1]   '1' if the links belong to a campaign
#   ARGV[2]   the invalidation channel
#   ARGV[3]   the items, a JSON array of [KEYS index of the link hash, code, KEYS index of
#             the recipient-index hash (0 if none), recipient field ('' if none),
#             custom (true/false), encoded record]
#   ARGV[4]   the campaign hash's field that counts its links
# One JSON argument decoded by Redis's C cjson costs about half the time of splitting
# per-item strings in Lua, and a tenth of the client's work of sending five arguments per
# item. The reply is decoded by `CreateLinksScript`.
CREATE_LINKS = """
local campaign = ARGV[1] == '1' and KEYS[1]
local channel, items, links_field = ARGV[2], cjson.decode(ARGV[3]), ARGV[4]
if campaign and redis.call('EXISTS', campaign) == 0 then
  return {'no_campaign'}
end
local existing, new, collided = {}, {}, {}
for i, item in ipairs(items) do
  local links, code, recipients, field = KEYS[item[1]], item[2], KEYS[item[3]], item[4]
  local owner = field ~= '' and redis.call('HGET', recipients, field)
  if owner then
    existing[i] = owner
  else
    existing[i] = ''
    if redis.call('HEXISTS', links, code) == 1 then
      if item[5] then return {'taken', i} end
      collided[#collided + 1] = i
    end
    new[#new + 1] = item
  end
end
if #collided > 0 then
  return {'collided', collided}
end
local codes = {}
for _, item in ipairs(new) do
  local links, code, recipients, field, record = KEYS[item[1]], item[2], KEYS[item[3]],
    item[4], item[6]
  redis.call('HSET', links, code, record)
  if field ~= '' then redis.call('HSET', recipients, field, code) end
  codes[#codes + 1] = code
end
if #new > 0 then
  if campaign then redis.call('HINCRBY', campaign, links_field, #new) end
  -- A code may sit in a redirector's cache as a recent miss: tell them it exists now.
  redis.call('PUBLISH', channel, table.concat(codes, ' '))
end
return {'ok', existing}
"""


class NewLink(Protocol):
    """One item to create: its code, whether the caller chose it, the record, and its
    `recipient_field(...)` ('' when the link has no recipient)."""

    code: str
    custom: bool
    link: Link
    recipient_field: str


@dataclass(frozen=True, slots=True)
class Written:
    """Every new link was written. `existing[i]` is the code that item i's recipient already
    had (that item was not written), None for the items written."""

    existing: list[str | None]


@dataclass(frozen=True, slots=True)
class NoCampaign:
    """The campaign does not exist; nothing was written."""


@dataclass(frozen=True, slots=True)
class CustomCodeTaken:
    item: int  # index into the items of the item whose chosen code is in use


@dataclass(frozen=True, slots=True)
class CodesCollided:
    items: list[int]  # indices of the items whose drawn codes are in use: draw again


CreateOutcome = Written | NoCampaign | CustomCodeTaken | CodesCollided


class CreateLinksScript:
    def __init__(self, redis: Store) -> None:
        self._script = redis.register_script(CREATE_LINKS)

    async def __call__(self, campaign_id: int | None, links: Sequence[NewLink]) -> CreateOutcome:
        keys: dict[str, int] = {}  # each name once, with its 1-based index in KEYS

        def index(name: str) -> int:
            return keys.setdefault(name, len(keys) + 1)

        if campaign_id is not None:
            index(campaign_key(campaign_id))  # KEYS[1]
        items = orjson.dumps(
            [
                (
                    index(link_key(new.code)),
                    new.code,
                    index(recipient_key(new.recipient_field)) if new.recipient_field else 0,
                    new.recipient_field,
                    new.custom,
                    encode_text(new.link),
                )
                for new in links
            ]
        )
        flag = "0" if campaign_id is None else "1"
        reply = await self._script(
            keys=list(keys), args=[flag, INVALIDATION_CHANNEL, items, CAMPAIGN_LINKS]
        )
        return _create_outcome(reply)


def _create_outcome(reply: list[Any]) -> CreateOutcome:
    kind = reply[0]
    if kind == b"ok":
        return Written([code.decode() if code else None for code in reply[1]])
    if kind == b"no_campaign":
        return NoCampaign()
    if kind == b"taken":
        return CustomCodeTaken(int(reply[1]) - 1)
    if kind == b"collided":
        return CodesCollided([int(i) - 1 for i in reply[1]])
    raise ValueError(f"unexpected reply of CREATE_LINKS: {reply!r}")
