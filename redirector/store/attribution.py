"""The Lua scripts of attribution (run by the admin): a batch of sends written into its
campaigns' ledgers and report counters and into its recipients' sends, a recipient's implied
send counted as replaced, conversions stored once per order id and counted once in their
campaign's report. What is decided, and how, is `admin.attribution`; the key schema is in
keys.py.

Each call touches keys of one tag: a campaign's (`{C}`), or a group of recipients' or of
orders' (`{ws:xx}`). On one Redis a batch's recipients or orders go in one call; on a cluster
in one call per tag, at most 256 (`by_tag`), as a batch of links is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from redis.typing import EncodableT

from redirector.store.connection import NO_WAIT, Durability, Store, run_replicated
from redirector.store.keys import (
    CONVERSIONS_PREFIX,
    REPORT_CLICK,
    REPORT_CONVERSIONS,
    REPORT_DELIVERED,
    REPORT_FAILED,
    REPORT_REPLACED,
    REPORT_SENDS,
    REPORT_VIEW,
    REVENUE_PREFIX,
    counted_orders_key,
    order_key,
    recipient_sends_key,
    report_key,
    send_ledger_key,
)
from redirector.store.scripts import call_each, spans_slots

T = TypeVar("T")

# A send's status as the scripts store it: sent, delivered, failed.
STATUS_CODES = {"sent": "s", "delivered": "d", "failed": "f"}


def by_tag(items: Sequence[T], key: Callable[[T], str], split: bool) -> list[list[T]]:
    """`items` in one group, or (`split`: on a cluster) in one group per hash tag of `key`."""
    if not split:
        return [list(items)] if items else []
    groups: dict[str, list[T]] = {}
    for item in items:
        name = key(item)
        groups.setdefault(name[name.index("{") : name.index("}") + 1], []).append(item)
    return list(groups.values())


async def _all(calls: list[Any]) -> list[Any]:
    """Every call's result, in order; the first error once all have been awaited."""
    results = await call_each(calls)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


# -- LEDGER_SENDS --------------------------------------------------------------------------
#
# A campaign's sends: each recorded in its recipient's ledger entry, keyed by sent_at (a
# repeat changes its status, and the counters with it), and counted in the report.
#
#   KEYS[1], KEYS[2]  the campaign's send ledger and report counters
#   ARGV[1]           JSON, three columns: recipients, sent_at (unix ms, as strings),
#                     statuses ('s', 'd' or 'f')
#   ARGV[2..4]        the report's fields of sends, delivered and failed sends
# Returns the 1-based indices of the items whose recipient had no ledger entry before: their
# implied send (a per-recipient link), if any, is replaced now.
LEDGER_SENDS = """
local ledger, report = KEYS[1], KEYS[2]
local items = cjson.decode(ARGV[1])
local recipients, sent, statuses = items[1], items[2], items[3]
local SENDS, DELIVERED, FAILED = ARGV[2], ARGV[3], ARGV[4]
local entries, fresh = {}, {}
local added, changes = 0, {s = 0, d = 0, f = 0}
for i = 1, #recipients do
  local recipient, status = recipients[i], statuses[i]
  local entry = entries[recipient]
  if not entry then
    entry = redis.call('HGET', ledger, recipient)
    if not entry then
      entry = '-'
      fresh[#fresh + 1] = i
    end
  end
  local needle = ' ' .. sent[i] .. ':'
  local _, last = string.find(entry, needle, 1, true)
  if last then
    local old = string.sub(entry, last + 1, last + 1)
    if old ~= status then
      entry = string.sub(entry, 1, last) .. status .. string.sub(entry, last + 2)
      changes[old] = changes[old] - 1
      changes[status] = changes[status] + 1
    end
  else
    entry = entry .. needle .. status
    added = added + 1
    changes[status] = changes[status] + 1
  end
  entries[recipient] = entry
end
for recipient, entry in pairs(entries) do redis.call('HSET', ledger, recipient, entry) end
if added ~= 0 then redis.call('HINCRBY', report, SENDS, added) end
if changes.d ~= 0 then redis.call('HINCRBY', report, DELIVERED, changes.d) end
if changes.f ~= 0 then redis.call('HINCRBY', report, FAILED, changes.f) end
return fresh
"""

# -- MARK_REPLACED -------------------------------------------------------------------------
#
# Recipients of a campaign who have both a per-recipient link (an implied send) and a
# reported send: each is counted once as replaced. Called by whichever of the two comes
# second (both, when they cross: hence the mark in the ledger entry).
#
#   KEYS[1], KEYS[2]  the campaign's send ledger and report counters
#   ARGV[1]           JSON: the recipients, who have a link of the campaign
#   ARGV[2]           the report's field of replaced implied sends
# Returns how many were counted now.
MARK_REPLACED = """
local ledger, report = KEYS[1], KEYS[2]
if redis.call('EXISTS', ledger) == 0 then return 0 end
local counted = 0
for _, recipient in ipairs(cjson.decode(ARGV[1])) do
  local entry = redis.call('HGET', ledger, recipient)
  if entry and string.sub(entry, 1, 1) == '-' then
    redis.call('HSET', ledger, recipient, '+' .. string.sub(entry, 2))
    counted = counted + 1
  end
end
if counted > 0 then redis.call('HINCRBY', report, ARGV[2], counted) end
return counted
"""

# -- RECORD_SENDS --------------------------------------------------------------------------
#
# Recipients' sends, as attribution reads them: each recipient's string holds the sends that
# a window can still reach from `now` (not failed ones), and expires with the last of them.
#
#   KEYS              each recipient's sends (`recipient_sends_key`), once
#   ARGV[1..3]        now, the click window and the view window (ms; a window of 0 is off)
#   ARGV[4]           JSON, five columns: the KEYS index of the item's recipient, campaign
#                     id, sent_at, delivered_at ('' when not delivered; ms, as strings),
#                     status ('s', 'd' or 'f')
# Returns how many recipients still have sends.
RECORD_SENDS = """
local now, click, view = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local items = cjson.decode(ARGV[4])
local at, campaigns, sent, delivered, statuses = items[1], items[2], items[3], items[4], items[5]
-- The last time a window reaches a send (-1: none does).
local function reach(sent_at, delivered_at)
  local last = -1
  if click > 0 then last = tonumber(sent_at) + click end
  if view > 0 and delivered_at ~= '' then
    last = math.max(last, tonumber(delivered_at) + view)
  end
  return last
end
local states = {}
for i = 1, #at do
  local key = KEYS[at[i]]
  local state = states[key]
  if not state then
    state = {}
    local held = redis.call('GET', key) or ''
    for campaign, sent_at, delivered_at in string.gmatch(held, '(%d+):(%d+):(%d*)') do
      state[campaign .. ':' .. sent_at] = delivered_at
    end
    states[key] = state
  end
  local send = campaigns[i] .. ':' .. sent[i]
  if statuses[i] == 'f' then state[send] = nil else state[send] = delivered[i] end
end
local left = 0
for key, state in pairs(states) do
  local kept, last = {}, -1
  for send, delivered_at in pairs(state) do
    local sent_at = string.match(send, ':(%d+)$')
    local until_ms = reach(sent_at, delivered_at)
    if until_ms >= now then
      kept[#kept + 1] = send .. ':' .. delivered_at
      last = math.max(last, until_ms)
    end
  end
  if #kept == 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, table.concat(kept, ' '), 'PXAT', string.format('%d', last + 1))
    left = left + 1
  end
end
return left
"""

# -- CLAIM_ORDERS --------------------------------------------------------------------------
#
# Conversions stored once per order id: the first one wins.
#
#   KEYS      the order hash of each item (`order_key`), KEYS[i] of item i
#   ARGV[1]   JSON, two columns: the order ids and their records
# Returns for each item '' if it was stored now, else the record already stored.
CLAIM_ORDERS = """
local items = cjson.decode(ARGV[1])
local orders, records = items[1], items[2]
local found = {}
for i = 1, #orders do
  if redis.call('HSETNX', KEYS[i], orders[i], records[i]) == 1 then
    found[i] = ''
  else
    found[i] = redis.call('HGET', KEYS[i], orders[i])
  end
end
return found
"""

# -- COUNT_CONVERSIONS ---------------------------------------------------------------------
#
# A campaign's attributed conversions counted in its report, each order id once.
#
#   KEYS[1], KEYS[2]  the campaign's counted order ids and report counters
#   ARGV[1]           JSON, four columns: order ids, types ('click' or 'view'), currencies,
#                     amounts (minor units, as strings: summed by HINCRBY, in 64 bits)
#   ARGV[2..6]        the report's fields: conversions, click, view, and the prefixes of the
#                     revenue and conversions per currency
# Returns how many were counted now.
COUNT_CONVERSIONS = """
local counted_orders, report = KEYS[1], KEYS[2]
local items = cjson.decode(ARGV[1])
local orders, types, currencies, amounts = items[1], items[2], items[3], items[4]
local CONVERSIONS, CLICK, VIEW, REVENUE, COUNT = unpack(ARGV, 2, 6)
local counted, by_type, by_currency = 0, {click = 0, view = 0}, {}
for i = 1, #orders do
  if redis.call('SADD', counted_orders, orders[i]) == 1 then
    counted = counted + 1
    by_type[types[i]] = by_type[types[i]] + 1
    by_currency[currencies[i]] = (by_currency[currencies[i]] or 0) + 1
    redis.call('HINCRBY', report, REVENUE .. currencies[i], amounts[i])
  end
end
if counted > 0 then
  redis.call('HINCRBY', report, CONVERSIONS, counted)
  if by_type.click > 0 then redis.call('HINCRBY', report, CLICK, by_type.click) end
  if by_type.view > 0 then redis.call('HINCRBY', report, VIEW, by_type.view) end
  for currency, n in pairs(by_currency) do redis.call('HINCRBY', report, COUNT .. currency, n) end
end
return counted
"""


@dataclass(frozen=True, slots=True)
class SendRow:
    """One send as the scripts take it: times in unix ms, status a `STATUS_CODES` value."""

    campaign_id: int
    recipient: str
    sent_ms: int
    delivered_ms: int | None
    status: str


@dataclass(frozen=True, slots=True)
class OrderRow:
    """A conversion to store: its order id and its record (JSON, `keys.py`)."""

    order_id: str
    record: bytes


@dataclass(frozen=True, slots=True)
class CountedRow:
    order_id: str
    type: str  # "click" or "view"
    currency: str
    amount_minor: int


class AttributionScripts:
    """The calls of the scripts above, each acknowledged once on the replicas `durability`
    asks for, as a link's write is."""

    def __init__(self, redis: Store, durability: Durability = NO_WAIT) -> None:
        self._redis, self._durability = redis, durability
        self._ledger = redis.register_script(LEDGER_SENDS)
        self._replaced = redis.register_script(MARK_REPLACED)
        self._record = redis.register_script(RECORD_SENDS)
        self._claim = redis.register_script(CLAIM_ORDERS)
        self._count = redis.register_script(COUNT_CONVERSIONS)
        self.by_slot = spans_slots(redis)

    async def _run(self, script: Any, keys: Sequence[str], args: Sequence[EncodableT]) -> Any:
        return await run_replicated(self._redis, script, keys, args, self._durability)

    async def ledger_sends(self, campaign_id: int, sends: Sequence[SendRow]) -> list[int]:
        """Records the sends (all of `campaign_id`) in its ledger and report; the indices
        into `sends` of those whose recipient had no reported send of the campaign before."""
        columns = (
            [send.recipient for send in sends],
            [str(send.sent_ms) for send in sends],
            [send.status for send in sends],
        )
        keys = [send_ledger_key(campaign_id), report_key(campaign_id)]
        args: list[EncodableT] = [
            orjson.dumps(columns),
            REPORT_SENDS,
            REPORT_DELIVERED,
            REPORT_FAILED,
        ]
        fresh = await self._run(self._ledger, keys, args)
        return [int(index) - 1 for index in fresh]

    async def mark_replaced(self, campaign_id: int, recipients: Sequence[str]) -> int:
        """Counts the implied sends of `recipients` (who have a link of the campaign) that a
        reported send replaces, each once."""
        if not recipients:
            return 0
        keys = [send_ledger_key(campaign_id), report_key(campaign_id)]
        args: list[EncodableT] = [orjson.dumps(list(recipients)), REPORT_REPLACED]
        return int(await self._run(self._replaced, keys, args))

    async def record_sends(
        self,
        workspace: str,
        sends: Sequence[SendRow],
        now_ms: int,
        click_window_ms: int,
        view_window_ms: int,
    ) -> None:
        """Writes the sends into their recipients' reachable sends (a call per tag on a
        cluster)."""
        groups = by_tag(
            sends, lambda send: recipient_sends_key(workspace, send.recipient), self.by_slot
        )
        await _all(
            [
                self._record_group(workspace, group, now_ms, click_window_ms, view_window_ms)
                for group in groups
            ]
        )

    async def _record_group(
        self, workspace: str, sends: list[SendRow], now_ms: int, click_ms: int, view_ms: int
    ) -> None:
        at: dict[str, int] = {}
        for send in sends:
            at.setdefault(send.recipient, len(at) + 1)
        keys = [recipient_sends_key(workspace, recipient) for recipient in at]
        columns = (
            [at[send.recipient] for send in sends],
            [str(send.campaign_id) for send in sends],
            [str(send.sent_ms) for send in sends],
            ["" if send.delivered_ms is None else str(send.delivered_ms) for send in sends],
            [send.status for send in sends],
        )
        args: list[EncodableT] = [now_ms, click_ms, view_ms, orjson.dumps(columns)]
        await self._run(self._record, keys, args)

    async def claim_orders(self, workspace: str, orders: Sequence[OrderRow]) -> list[bytes | None]:
        """Stores each order's record unless its order id holds one: None for those stored
        now, else the record held (the first one wins)."""
        indexed = list(enumerate(orders))
        groups = by_tag(indexed, lambda item: order_key(workspace, item[1].order_id), self.by_slot)
        replies = await _all([self._claim_group(workspace, group) for group in groups])
        found: list[bytes | None] = [None] * len(orders)
        for group, reply in zip(groups, replies, strict=True):
            for (index, _), held in zip(group, reply, strict=True):
                found[index] = held or None
        return found

    async def _claim_group(self, workspace: str, group: list[tuple[int, OrderRow]]) -> list[bytes]:
        keys = [order_key(workspace, order.order_id) for _, order in group]
        columns = (
            [order.order_id for _, order in group],
            [order.record.decode() for _, order in group],
        )
        reply: list[bytes] = await self._run(self._claim, keys, [orjson.dumps(columns)])
        return reply

    async def count_conversions(self, campaign_id: int, rows: Sequence[CountedRow]) -> int:
        """Counts the campaign's attributed conversions in its report, each order id once."""
        if not rows:
            return 0
        columns = (
            [row.order_id for row in rows],
            [row.type for row in rows],
            [row.currency for row in rows],
            [str(row.amount_minor) for row in rows],
        )
        keys = [counted_orders_key(campaign_id), report_key(campaign_id)]
        args: list[EncodableT] = [
            orjson.dumps(columns),
            REPORT_CONVERSIONS,
            REPORT_CLICK,
            REPORT_VIEW,
            REVENUE_PREFIX,
            CONVERSIONS_PREFIX,
        ]
        return int(await self._run(self._count, keys, args))
