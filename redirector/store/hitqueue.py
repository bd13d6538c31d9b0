"""The raw-hit queues between the redirectors and the click workers (keys.py, `{hN}`).

A redirector pushes each flush of its click buffer as one element (PUSH_HITS). A click
worker takes the head of a queue a *chunk* at a time (CLAIM_HITS), applies it to the
counters with FLUSH_CLICKS (flush.py) under the chunk's number, and trims it (ACK_HITS).
Exactly once, by three rules:

- a chunk is fixed when it is claimed (its number and size are written in `hs:{hN}`, and
  the claim is durable before anything is applied), so whoever applies it again after a
  crash applies the same hits under the same number, and FLUSH_CLICKS skips each
  campaign's part that was applied before;
- chunks of a queue are claimed one after the other, so each campaign sees a queue's
  numbers in increasing order (FLUSH_CLICKS keeps only the last number per queue);
- a redirector that resends a flush (its reply lost) sends it with the same number, and
  PUSH_HITS pushes a number once.

Why not a stream with a consumer group: it hands the entries of one stream to several
consumers at once and re-delivers them one by one, so the batches a crashed consumer left
would be neither in order nor the same batches again; a list, a lease and a recorded chunk
make both hold with three short scripts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT

from redirector.store.connection import Durability, OwnConnection, Store, resp, run_replicated
from redirector.store.keys import (
    hit_chunk_key,
    hit_lease_key,
    hit_pushed_key,
    hit_queue_key,
    hit_sizes_key,
)

# A redirector resends a flush within seconds; a day covers any outage it waits through.
PUSHED_RECORD_SECONDS = 86_400

# -- PUSH_HITS -------------------------------------------------------------------------------
#
#   KEYS[1], KEYS[2]  the queue, and the sender's last pushed number there
#   KEYS[3], KEYS[4]  the queue's element sizes and its chunk state (see "Sizes" below)
#   ARGV[1..3]        the flush (one element), its number (increasing per sender), and
#                     seconds the sender's record is kept
# Returns 1, or 0 when that number was pushed before. The skip writes too (the record's
# expiry): WAIT then confirms the write that the first push made, which precedes it.
#
# Sizes. A chunk is claimed up to a byte budget, and measuring the elements in the claim
# (LINDEX) copies each into Lua: ~1.5 ms of Redis per megabyte claimed (2026-12-02), every
# lookup waiting behind it. So the push keeps each element's size in a list beside the queue
# (`hz:`), and the three scripts keep in the chunk state (`sized`) the queue's length as they
# left it. While the queue is that long, the list holds the sizes of its last elements, as
# many as it holds (all of them, but after a change): the claim measures the elements before
# those and reads the rest. A queue of another length was pushed to or trimmed by an earlier
# release, which keeps no sizes: the list is dropped, and the whole queue is measured until
# pushes have given sizes again. Only an earlier release's push and trim of as many elements
# between two of ours leave the length as it was and the list out of step: the worker, which
# reads the chunk's elements, then finds that they do not hold the bytes the claim counted,
# and its ack drops the list. Either way a wrong size can only make one chunk larger or
# smaller than its budget: a chunk is fixed by its recorded size, never by the sizes.
PUSH_HITS = """
local queue, pushed, sizes, state = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local hits, number, keep = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if tonumber(redis.call('GET', pushed) or '0') >= number then
  redis.call('EXPIRE', pushed, keep)
  return 0
end
local before = redis.call('RPUSH', queue, hits) - 1
if tonumber(redis.call('HGET', state, 'sized') or '-1') ~= before then
  redis.call('DEL', sizes)
end
redis.call('RPUSH', sizes, string.len(hits))
redis.call('HSET', state, 'sized', before + 1)
redis.call('SET', pushed, number, 'EX', keep)
return 1
"""

# -- CLAIM_HITS ------------------------------------------------------------------------------
#
#   KEYS[1..4]  the queue, its chunk state, its lease and its element sizes
#   ARGV[1..5]  the worker's id, the lease in milliseconds, the chunk's byte budget, the
#               most elements a chunk takes, and an epoch for a state made now
# The chunk claimed and not yet trimmed, if any (whoever claimed it: its lease is free or
# ours); else a new one, the oldest elements up to the budget (at least one), measured by the
# sizes where they are known (see "Sizes" above). Returns {number, epoch, size, bytes}
# (`bytes`: what the claim that made the chunk counted its elements to hold, '' if that is
# not known: an earlier release made it), or {} when the queue is empty or another worker
# holds it. The elements are read apart (`HitQueue.claim`): a script that returned a
# megabyte of them held Redis 3-9 ms (its slow log, bench row miss).
CLAIM_HITS = """
local queue, state, lease, sizes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local worker, lease_ms, budget, most, epoch = ARGV[1], ARGV[2], tonumber(ARGV[3]),
  tonumber(ARGV[4]), ARGV[5]
local holder = redis.call('GET', lease)
if holder and holder ~= worker then return {} end
local size = tonumber(redis.call('HGET', state, 'size') or '0')
if size == 0 then
  local elements = redis.call('LLEN', queue)
  if tonumber(redis.call('HGET', state, 'sized') or '-1') ~= elements then
    redis.call('DEL', sizes)
    redis.call('HSET', state, 'sized', elements)
  end
  local unsized = elements - redis.call('LLEN', sizes)
  local lengths = {}
  if most > unsized then lengths = redis.call('LRANGE', sizes, 0, most - unsized - 1) end
  local bytes = 0
  while size < most and size < elements and bytes < budget do
    local length
    if size < unsized then
      length = string.len(redis.call('LINDEX', queue, size))
    else
      -- Nothing else but a value no release writes: the worker's check then drops them.
      length = tonumber(lengths[size - unsized + 1]) or 0
    end
    bytes, size = bytes + length, size + 1
  end
  if size == 0 then return {} end
  redis.call('HSETNX', state, 'epoch', epoch)
  local number = redis.call('HINCRBY', state, 'number', 1)
  redis.call('HSET', state, 'size', size, 'bytes', number .. ':' .. bytes)
end
redis.call('SET', lease, worker, 'PX', lease_ms)
local claimed = redis.call('HMGET', state, 'number', 'epoch', 'bytes')
local mine, counted = claimed[1] .. ':', claimed[3] or ''
if string.sub(counted, 1, #mine) == mine then counted = string.sub(counted, #mine + 1)
else counted = '' end
return {claimed[1], claimed[2], size, counted}
"""

# -- ACK_HITS --------------------------------------------------------------------------------
#
#   KEYS[1..4]  the queue, its chunk state, its lease and its element sizes
#   ARGV[1..3]  the worker's id, the chunk's number, and '1' to drop the sizes (they did not
#               add up to the chunk's bytes: see "Sizes" above), else ''
# Trims the chunk if it is still the one claimed (a worker that lost its lease and acks
# late finds it trimmed, or a later chunk: both are left alone), and the sizes to the
# elements left at most. Returns 1, or 0.
ACK_HITS = """
local queue, state, lease, sizes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local worker, number, drop = ARGV[1], ARGV[2], ARGV[3] == '1'
local claimed = redis.call('HMGET', state, 'number', 'size', 'sized')
local size = tonumber(claimed[2] or '0')
if claimed[1] ~= number or size == 0 then return 0 end
local known = tonumber(claimed[3] or '-1') == redis.call('LLEN', queue) and not drop
redis.call('LTRIM', queue, size, -1)
local left, listed = redis.call('LLEN', queue), redis.call('LLEN', sizes)
if not known or left == 0 then
  redis.call('DEL', sizes)
elseif listed > left then
  redis.call('LTRIM', sizes, listed - left, -1)
end
redis.call('HSET', state, 'size', 0, 'sized', left)
if redis.call('GET', lease) == worker then redis.call('DEL', lease) end
return 1
"""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Elements at the head of a queue, claimed under `number`: the name FLUSH_CLICKS
    records them under is `flusher`, the queue's and its epoch's."""

    queue: int
    number: int
    flusher: str
    elements: list[bytes]
    counted: int | None = None  # the bytes the claim counted its elements to hold, if known


class HitQueue:
    """The three scripts, run with `durability`: a push or a claim acknowledged is on the
    replicas asked for (an ack need not be: an ack lost makes the chunk applied again,
    which FLUSH_CLICKS skips)."""

    def __init__(self, redis: Store, durability: Durability) -> None:
        self._redis = redis
        self._durability = durability
        self._push = redis.register_script(PUSH_HITS)
        # For `push`: its connection is taken on the first push, so a worker takes none.
        wait = durability.replicas > 0
        self._own = OwnConnection(redis) if isinstance(redis, Redis) and not wait else None
        self._claim = redis.register_script(CLAIM_HITS)
        self._ack = redis.register_script(ACK_HITS)

    async def push(self, queue: int, sender: str, number: int, hits: bytes) -> bool:
        """Append one flush; False if `number` was pushed by `sender` before. On one Redis
        with no replica waited for, on an OwnConnection: the ~250 KB flush is not copied."""
        keys = [
            hit_queue_key(queue),
            hit_pushed_key(queue, sender),
            hit_sizes_key(queue),
            hit_chunk_key(queue),
        ]
        args: list[EncodableT] = [hits, number, PUSHED_RECORD_SECONDS]

        def through_client() -> Awaitable[Any]:
            return run_replicated(self._redis, self._push, keys, args, self._durability)

        if self._own is None:
            return bool(await through_client())
        keep = PUSHED_RECORD_SECONDS
        command = resp("EVALSHA", self._push.sha, len(keys), *keys, hits, number, keep)
        return bool(await self._own.packed(through_client, command))

    async def claim(
        self, queue: int, worker: str, *, lease_ms: int, budget: int, most: int, epoch: str
    ) -> Chunk | None:
        """The queue's chunk for `worker`, or None (empty, or held by another worker)."""
        args: list[EncodableT] = [worker, lease_ms, budget, most, epoch]
        reply: list[Any] = await run_replicated(
            self._redis, self._claim, queue_keys(queue), args, self._durability
        )
        if not reply:
            return None
        number, claimed_epoch, size, counted = (_text(value) for value in reply)
        elements = await self._elements(queue, number, size)
        if elements is None:
            return None
        flusher = f"h{queue}:{claimed_epoch}"
        return Chunk(queue, int(number), flusher, elements, int(counted) if counted else None)

    async def _elements(self, queue: int, number: str, size: str) -> list[bytes] | None:
        """The elements of the chunk claimed as `number` of `size` elements, read with its
        state in one transaction (one tag: the queue's); None if it is no longer that chunk
        (the lease ran out meanwhile and another worker applied and trimmed it)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hmget(hit_chunk_key(queue), ["number", "size"])
            pipe.lrange(hit_queue_key(queue), 0, int(size) - 1)
            state, elements = await pipe.execute()
        if [None if value is None else _text(value) for value in state] != [number, size]:
            return None
        return list(elements)

    async def ack(self, chunk: Chunk, worker: str) -> bool:
        """Trim `chunk` off its queue; False if that was done already. The queue's sizes are
        dropped if they did not measure `chunk` (see "Sizes" above)."""
        wrong = chunk.counted is not None and chunk.counted != sum(map(len, chunk.elements))
        args: list[EncodableT] = [worker, chunk.number, "1" if wrong else ""]
        return bool(await self._ack(keys=queue_keys(chunk.queue), args=args))


async def queue_lengths(redis: Store, queues: Iterable[int]) -> list[int]:
    """How many flushes each of `queues` holds (a claimed chunk's until it is trimmed), in
    one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(hit_queue_key(queue))
        lengths: list[int] = await pipe.execute()
    return lengths


def queue_keys(queue: int) -> list[str]:
    """Every key of `queue` but its senders' push records, in CLAIM_HITS's and ACK_HITS's
    KEYS order."""
    return [hit_queue_key(queue), hit_chunk_key(queue), hit_lease_key(queue), hit_sizes_key(queue)]


def _text(value: bytes | str | int) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
