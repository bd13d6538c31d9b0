"""The click pipeline's exactly-once rules, in process against a real Redis: a flush is queued
once, a chunk counts once whoever applies it, a failing campaign, several redirectors and
workers, and input the worker cannot read."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

import pytest
import uvloop
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from redirector.clickbatch import PART_HITS, PART_LINKS
from redirector.clicks import Hit
from redirector.settings import Settings
from redirector.store import connection as connection_module
from redirector.store import hitqueue
from redirector.store.connection import NO_WAIT, Store, connect
from redirector.store.hitqueue import HitQueue
from redirector.store.keys import (
    BREAKDOWNS,
    LINK_CREATED,
    click_stream_key,
    hit_chunk_key,
    hit_queue_key,
    hit_sizes_key,
    link_breakdowns_key,
    link_stats_key,
)
from tests.redirector.clicks_helpers import counted, flusher, hits, push, queued, worker
from tests.user_agents import ANDROID
from tests.waiting import eventually


async def test_a_flush_whose_reply_was_lost_is_queued_once(
    redis: Redis, redirector_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    flush = flusher(redis, redirector_settings)
    for hit in hits(7, 5):
        flush._buffer.add(hit)
    push_once = flush._queue.push  # pushed, then its reply lost

    async def reply_lost(*args: Any) -> bool:
        assert await push_once(*args)
        raise RedisConnectionError("reply lost")

    monkeypatch.setattr(flush._queue, "push", reply_lost)
    with pytest.raises(RedisConnectionError):
        await flush.flush_once()
    assert len(flush._buffer.hits) == 5  # kept until Redis confirms
    flush._buffer.add(hits(7, 1)[0])  # a later hit goes in the next flush
    monkeypatch.setattr(flush._queue, "push", push_once)
    assert await flush.flush_once() == 5  # the same flush again: not queued twice
    assert await flush.flush_once() == 1
    assert await redis.llen(hit_queue_key(0)) == 2

    assert await worker(redis, redirector_settings).work_once() == 1
    assert await counted(redis, 7) == 6


async def test_on_one_redis_a_push_takes_its_own_connection_and_falls_back_on_the_client(
    redis: Store, redis_url: str, store_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store_kind == "cluster":
        pytest.skip("a cluster's pushes go through the client: no own connection")
    client = connect(redis_url, timeout=5.0)  # the redirector's connection class
    through_client: list[int] = []
    real = connection_module.run_replicated

    async def spied(*args: Any) -> Any:
        through_client.append(args[3][1])  # the flush's number
        return await real(*args)

    monkeypatch.setattr(hitqueue, "run_replicated", spied)
    queue = HitQueue(client, NO_WAIT)
    await redis.script_load(hitqueue.PUSH_HITS)
    assert await queue.push(0, "sender", 1, b"[1]")  # on its own connection
    await redis.script_flush()  # as after a restart or a failover
    assert await queue.push(0, "sender", 2, b"[2]")  # NOSCRIPT there: the client loads it
    assert await queue.push(0, "sender", 3, b"[3]")  # its own connection again
    for connection in await redis.client_list():
        if connection["cmd"] == "evalsha":  # its own connection, and the client's
            await redis.client_kill_filter(_id=connection["id"])
    assert await queue.push(0, "sender", 4, b"[4]")  # reconnected before sending
    assert not await queue.push(0, "sender", 4, b"[4]")  # sent again: pushed once
    assert through_client == [2]
    assert await redis.lrange(hit_queue_key(0), 0, -1) == [b"[1]", b"[2]", b"[3]", b"[4]"]
    await client.aclose()


def test_a_connection_reset_by_redis_is_made_again_before_a_command(
    unused_tcp_port: int,
) -> None:
    # Under uvloop (the redirector's loop), a write on a connection reset while idle raised
    # RuntimeError, no RedisError: the click flusher's task died of it.
    resets = 0

    def replies(data: bytes) -> tuple[bytes, bool]:
        """+PONG for each PING, +OK for anything else; and whether a PING was among them."""
        lines, out, at = data.split(b"\r\n"), [], 0
        while at < len(lines):
            if lines[at].startswith(b"*"):
                ping = lines[at + 2].upper() == b"PING"
                out.append(b"+PONG\r\n" if ping else b"+OK\r\n")
                at += 1 + 2 * int(lines[at][1:])
            else:
                at += 1
        return b"".join(out), b"+PONG\r\n" in out

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal resets
        while data := await reader.read(65536):
            out, pinged = replies(data)
            writer.write(out)
            await writer.drain()
            if pinged and resets == 0:  # the first connection: reset once it answered a PING
                resets += 1
                linger = struct.pack("ii", 1, 0)
                writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, linger
                )
                writer.close()
                return

    async def scenario() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", unused_tcp_port)
        client = connect(f"redis://127.0.0.1:{unused_tcp_port}", timeout=2.0)
        try:
            assert await client.ping()
            await asyncio.sleep(0.2)  # the reset lands while the connection is idle
            assert await client.ping()
            assert resets == 1
        finally:
            await client.aclose()
            server.close()
            await server.wait_closed()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


async def test_a_chunk_applied_again_by_another_worker_counts_once(
    redis: Redis, redirector_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A dies mid-chunk: campaign 7's part went through, 8's did not, nothing acked."""
    await push(flusher(redis, redirector_settings), [*hits(7, 3), *hits(8, 2), *hits(7, 1)])
    first = worker(redis, redirector_settings, lease=0.3)
    flush = first._flush

    async def dies_at_eight(batch: Any, *args: Any) -> bool:
        if batch.campaign_id == 8:
            raise RedisConnectionError("killed")
        return await flush(batch, *args)

    monkeypatch.setattr(first, "_flush", dies_at_eight)
    with pytest.raises(RedisConnectionError):
        await first.work_once()
    assert (await counted(redis, 7), await counted(redis, 8)) == (4, 0)

    second = worker(redis, redirector_settings)
    assert await second.work_once() == 0  # A's lease holds the chunk for now

    async def taken_over() -> bool:
        return await second.work_once() == 1

    await eventually(taken_over)
    assert (await counted(redis, 7), await counted(redis, 8)) == (4, 2)
    assert await queued(redis) == 0


async def test_a_campaigns_hits_go_in_parts_and_a_chunk_applied_again_skips_those_done(
    redis: Redis, redirector_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One FLUSH_CLICKS call holds Redis to its end: a campaign's hits on 60 links go as
    parts of PART_LINKS links, all the hits of a link in one; worker A dies after the first
    part, B applies the other two."""
    assert PART_LINKS == 25
    taps = [hit._replace(code=f"p{i % 60}") for i, hit in enumerate(hits(7, 125))]
    await push(flusher(redis, redirector_settings), taps)
    first = worker(redis, redirector_settings, lease=0.3)
    flush, sizes = first._flush, list[int]()

    async def dies_at_the_second_part(batch: Any, *args: Any) -> bool:
        if sizes:
            raise RedisConnectionError("killed")
        sizes.append(batch.hits)
        return await flush(batch, *args)

    monkeypatch.setattr(first, "_flush", dies_at_the_second_part)
    with pytest.raises(RedisConnectionError):
        await first.work_once()
    # Links p0-p24, three hits each but p5-p24 two; the campaign's total comes with them.
    assert (sizes, await counted(redis, 7)) == ([55], 125)
    assert await link_clicks(redis, 7, "p0", "p24", "p25") == [3, 2, 0]

    second = worker(redis, redirector_settings)
    flush = second._flush
    applied: list[tuple[int, bool]] = []

    async def watched(batch: Any, *args: Any) -> bool:
        applied.append((batch.hits, await flush(batch, *args)))
        return applied[-1][1]

    monkeypatch.setattr(second, "_flush", watched)

    async def taken_over() -> bool:
        return await second.work_once() == 1

    await eventually(taken_over)
    # The same three parts again, under the same numbers: the first one is skipped.
    assert applied == [(55, False), (50, True), (20, True)]
    assert await counted(redis, 7) == 125
    assert await link_clicks(redis, 7, "p0", "p25", "p59") == [3, 2, 2]
    assert await redis.xlen(click_stream_key(7)) == 125
    assert await queued(redis) == 0


async def link_clicks(redis: Redis, campaign_id: int, *codes: str) -> list[int]:
    return [
        int(await redis.hget(link_stats_key(campaign_id, code), "clicks") or 0) for code in codes
    ]


async def test_a_new_links_counters_take_one_hset_per_hash_and_no_increment(
    redis: Redis, redirector_settings: Settings, store_kind: str
) -> None:
    if store_kind == "cluster":
        pytest.skip("commandstats are per node; the script is the same on both stores")
    await push(flusher(redis, redirector_settings), hits(7, 1, ANDROID))
    await redis.config_resetstat()
    assert await worker(redis, redirector_settings).work_once() == 1
    stats = await redis.info("commandstats")
    # Increments: the chunk's number (the claim), and the campaign's clicks, hour and day,
    # device, OS and browser; the link's own six counters and its creation time are set by
    # two HSETs (besides the claim's, the trim's and the flush record's): 7 and 5, where an
    # increment per counter made 13 and 4.
    assert stats["cmdstat_hincrby"]["calls"] == 7
    assert stats["cmdstat_hset"]["calls"] == 5
    assert await link_clicks(redis, 7, "c7x0") == [1]


async def test_a_link_tapped_more_than_part_hits_times_in_a_chunk_spreads_over_parts(
    redis: Redis, redirector_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part caps hits too (each is a stream entry to decode and add): one link's 600
    hits go as 250, 250 and 100, and count once each."""
    assert PART_HITS == 250
    taps = [hit._replace(code="one") for hit in hits(7, 600)]
    await push(flusher(redis, redirector_settings), taps)
    clicks = worker(redis, redirector_settings)
    flush, sizes = clicks._flush, list[int]()

    async def watched(batch: Any, *args: Any) -> bool:
        sizes.append(batch.hits)
        return await flush(batch, *args)

    monkeypatch.setattr(clicks, "_flush", watched)
    assert await clicks.work_once() == 1
    assert sizes == [250, 250, 100]
    assert await counted(redis, 7) == 600
    assert await link_clicks(redis, 7, "one") == [600]
    assert await redis.xlen(click_stream_key(7)) == 600


async def test_a_links_first_hits_are_written_at_once_only_where_nothing_is_counted(
    redis: Redis, redirector_settings: Settings
) -> None:
    """A new link's counters are set with one HSET per hash; a link whose breakdowns are
    there without its stats (or stats without a creation time) is added to, never reset."""
    taps = [hit._replace(code=f"n{i % 3}") for i, hit in enumerate(hits(7, 6, ANDROID))]
    device = BREAKDOWNS["device"] + "mobile"
    await redis.hset(link_breakdowns_key(7, "n1"), device, 5)
    await redis.hset(link_stats_key(7, "n2"), "clicks", 10)  # counted before creation times
    await push(flusher(redis, redirector_settings), taps)
    assert await worker(redis, redirector_settings).work_once() == 1
    assert await link_clicks(redis, 7, "n0", "n1", "n2") == [2, 2, 12]
    counts = [await redis.hget(link_breakdowns_key(7, code), device) for code in ("n0", "n1")]
    assert counts == [b"2", b"7"]
    assert await redis.hget(link_stats_key(7, "n0"), LINK_CREATED) == b"1"


async def test_a_worker_that_lost_its_chunk_neither_recounts_nor_trims_it(
    redis: Redis, redirector_settings: Settings
) -> None:
    queue = HitQueue(redis, redirector_settings.durability)
    await push(flusher(redis, redirector_settings), hits(7, 2))
    stale = await queue.claim(0, "A", lease_ms=1, budget=10**6, most=10, epoch="A")
    assert stale is not None

    async def taken_over() -> bool:  # once A's 1 ms lease is over
        return await queue.claim(0, "B", lease_ms=10_000, budget=10**6, most=10, epoch="B") == stale

    await eventually(taken_over)  # the same hits under the same number
    late = worker(redis, redirector_settings)
    await late._apply(stale)
    await late._apply(stale)
    assert await counted(redis, 7) == 2
    assert await queue.ack(stale, "B")
    await push(flusher(redis, redirector_settings), hits(7, 3))
    # A reads its chunk's elements after its claim: B trimmed it since, and a later flush is
    # at the head, so A gets nothing rather than that flush under its chunk's number.
    assert await queue._elements(0, str(stale.number), str(len(stale.elements))) is None
    assert not await queue.ack(stale, "A")  # A acks late: the new flush stays
    assert await redis.llen(hit_queue_key(0)) == 1


def _claim(queue: HitQueue, budget: int, worker: str = "w") -> Any:
    return queue.claim(0, worker, lease_ms=10_000, budget=budget, most=10, epoch="e")


async def test_a_claim_takes_its_budget_from_the_sizes_kept_beside_the_queue(
    redis: Store,
) -> None:
    queue = HitQueue(redis, NO_WAIT)
    for number in range(1, 5):
        assert await queue.push(0, "sender", number, b"x" * 100)
    assert await redis.lrange(hit_sizes_key(0), 0, -1) == [b"100"] * 4
    # The claim reads the sizes, not the elements: sizes made up tell which it read.
    await redis.lset(hit_sizes_key(0), 0, "300")
    chunk = await _claim(queue, budget=250)
    assert chunk is not None and len(chunk.elements) == 1  # 300 >= 250 after one element
    assert (await _claim(queue, budget=250)).counted == 300  # the same chunk, claimed again
    # Its element holds 100 bytes, not 300: the sizes are wrong, and the ack drops them.
    assert await queue.ack(chunk, "w")
    assert await redis.llen(hit_sizes_key(0)) == 0
    # Pushes give the sizes of the last elements again; the first three are measured.
    assert await queue.push(0, "sender", 5, b"x" * 1_000)
    chunk = await _claim(queue, budget=250)
    assert chunk is not None and chunk.counted == 300  # 100 + 100 + 100 measured
    assert await queue.push(0, "sender", 6, b"x" * 100)  # while the chunk is out
    assert await queue.ack(chunk, "w")  # 2 elements left, both with their size
    assert await redis.lrange(hit_sizes_key(0), 0, -1) == [b"1000", b"100"]
    chunk = await _claim(queue, budget=10_000)
    assert chunk is not None and chunk.counted == 1_100
    assert await queue.ack(chunk, "w")


async def test_elements_pushed_or_trimmed_by_an_earlier_release_are_measured(
    redis: Store,
) -> None:
    """An earlier release's redirector pushes no size, and its click worker trims the queue
    alone: the queue's length then is not the one the sizes were kept for, and the claim
    measures every element until pushes have given sizes again."""
    queue = HitQueue(redis, NO_WAIT)
    assert await queue.push(0, "new", 1, b"x" * 100)
    await redis.rpush(hit_queue_key(0), b"y" * 1_000)  # as PUSH_HITS of the earlier release
    await redis.lset(hit_sizes_key(0), 0, "5000")  # were it read, the claim would count it
    chunk = await _claim(queue, budget=10_000)
    assert chunk is not None and chunk.counted == 1_100  # both measured
    assert await redis.llen(hit_sizes_key(0)) == 0
    assert await queue.push(0, "new", 2, b"x" * 100)  # while the chunk is out: a size again
    assert await queue.ack(chunk, "w")
    assert await redis.lrange(hit_sizes_key(0), 0, -1) == [b"100"]

    for number in (3, 4):
        assert await queue.push(0, "new", number, b"x" * 100)
    await redis.ltrim(hit_queue_key(0), 1, -1)  # as ACK_HITS of the earlier release
    await redis.lset(hit_sizes_key(0), -1, "5000")
    chunk = await _claim(queue, budget=10_000)
    assert chunk is not None and chunk.counted == 200  # 2 elements left, measured
    assert await redis.llen(hit_sizes_key(0)) == 0
    assert await queue.ack(chunk, "w")
    assert await queue.push(0, "new", 5, b"x" * 100)
    assert await redis.lrange(hit_sizes_key(0), 0, -1) == [b"100"]


async def test_sizes_put_out_of_step_unseen_are_dropped_at_the_ack(redis: Store) -> None:
    """An earlier release's push and trim of one element each, between two of ours, leave the
    queue as long as it was, and the sizes out of step: the worker, which reads the chunk's
    elements, finds that they do not hold what the claim counted, and its ack drops them."""
    queue = HitQueue(redis, NO_WAIT)
    for number in (1, 2):
        assert await queue.push(0, "new", number, b"x" * 100)
    await redis.ltrim(hit_queue_key(0), 1, -1)  # the earlier release's worker
    await redis.rpush(hit_queue_key(0), b"y" * 1_000)  # and redirector
    chunk = await _claim(queue, budget=10_000)
    assert chunk is not None and [len(element) for element in chunk.elements] == [100, 1_000]
    assert chunk.counted == 200  # the sizes of the two elements pushed first
    assert await queue.ack(chunk, "w")
    assert await redis.llen(hit_sizes_key(0)) == 0


async def test_a_size_that_is_no_number_neither_stops_the_queue_nor_stays(redis: Store) -> None:
    queue = HitQueue(redis, NO_WAIT)
    for number in (1, 2):
        assert await queue.push(0, "new", number, b"x" * 100)
    await redis.lset(hit_sizes_key(0), 0, "junk")
    chunk = await _claim(queue, budget=10_000)
    assert chunk is not None and chunk.counted == 100  # counted as 0, then 100
    assert await queue.ack(chunk, "w")  # 200 bytes read: dropped
    assert await redis.llen(hit_sizes_key(0)) == 0


async def test_a_chunk_an_earlier_release_claimed_has_no_count_of_bytes(redis: Store) -> None:
    queue = HitQueue(redis, NO_WAIT)
    assert await queue.push(0, "new", 1, b"x" * 100)
    chunk = await _claim(queue, budget=10_000)
    assert chunk is not None and chunk.counted == 100
    assert await queue.ack(chunk, "w")
    assert await queue.push(0, "new", 2, b"x" * 100)
    # As CLAIM_HITS of the earlier release makes a chunk: a number and a size, no bytes.
    await redis.hincrby(hit_chunk_key(0), "number", 1)
    await redis.hset(hit_chunk_key(0), "size", "1")
    taken_over = await _claim(queue, budget=10_000, worker="new worker")
    assert taken_over is not None and taken_over.number == chunk.number + 1
    assert taken_over.counted is None  # not the count of the chunk before
    assert await queue.ack(taken_over, "new worker")
    assert await redis.lrange(hit_sizes_key(0), 0, -1) == []


async def test_a_failing_campaign_keeps_its_chunk_and_recounts_nothing(
    redis: Redis, redirector_settings: Settings
) -> None:
    await redis.set(click_stream_key(8), "not a stream")  # its XADD fails: WRONGTYPE
    flush = flusher(redis, redirector_settings)
    interleaved = [hit for pair in zip(hits(7, 3), hits(8, 3), strict=True) for hit in pair]
    await push(flush, interleaved)
    clicks = worker(redis, redirector_settings)
    with pytest.raises(ResponseError):
        await clicks.work_once()
    assert await counted(redis, 7) == 3  # its part of the chunk went through
    await push(flush, hits(7, 2))
    with pytest.raises(ResponseError):
        await clicks.work_once()  # the same chunk again: 7's part skipped, 8 fails again
    assert await counted(redis, 7) == 3  # the later flush waits behind the chunk

    await redis.delete(click_stream_key(8))
    while await clicks.work_once():
        pass
    assert (await counted(redis, 7), await counted(redis, 8)) == (5, 3)
    assert await redis.xlen(click_stream_key(7)) == 5


async def test_several_redirectors_and_workers_count_every_hit_once(
    redis: Redis, redirector_settings: Settings
) -> None:
    flushers = [flusher(redis, redirector_settings, queue) for queue in (0, 0, 1, 5)]
    workers = [worker(redis, redirector_settings) for _ in range(3)]
    stop = asyncio.Event()
    running = [asyncio.create_task(w.run(stop)) for w in workers]
    sent = dict.fromkeys(range(1, 6), 0)
    for round_ in range(6):
        batches = []
        for i, flush in enumerate(flushers):
            campaign = 1 + (round_ + i) % 5
            batches.append(push(flush, hits(campaign, 150 + 10 * i, ANDROID)))
            sent[campaign] += 150 + 10 * i
        await asyncio.gather(*batches)

    async def all_counted() -> bool:
        return [await counted(redis, c) for c in sent] == list(sent.values())

    async def all_trimmed() -> bool:  # a worker counts a chunk as recorded before trimming it
        return await queued(redis) == 0

    await eventually(all_counted, within=20)
    await eventually(all_trimmed, within=20)
    stop.set()
    for task in running:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert sum(w.recorded for w in workers) == sum(sent.values())
    assert await queued(redis) == 0


async def test_headers_that_are_not_utf8_are_recorded_with_replacement_characters(
    redis: Redis, redirector_settings: Settings
) -> None:
    # aiohttp hands over header bytes that are not UTF-8 as lone surrogates.
    odd = Hit(
        "odd0001", 7, None, 1, 1.7e9, False, "Caf\udce9Browser/1.0", "https://\udcff.x/", "1.2.3.4"
    )
    await push(flusher(redis, redirector_settings), [odd, *hits(7, 1)])
    assert await worker(redis, redirector_settings).work_once() == 1
    assert await counted(redis, 7) == 2
    entries: Any = await redis.xrange(click_stream_key(7))
    assert entries[0][1][b"ua"] == "Caf\ufffdBrowser/1.0".encode()


async def test_an_element_that_is_no_flush_is_dropped_without_blocking_its_queue(
    redis: Redis, redirector_settings: Settings
) -> None:
    await redis.rpush(hit_queue_key(0), b"not json", b'[["too", "few"]]')
    await push(flusher(redis, redirector_settings), hits(7, 4))
    assert await worker(redis, redirector_settings).work_once() == 1
    assert await counted(redis, 7) == 4
    assert await queued(redis) == 0
