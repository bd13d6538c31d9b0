"""What chunks of raw hits add up to, key by key and field by field, once the click worker
has summed them and FLUSH_CLICKS has applied the sums; and the stream entries, as sent."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from redirector.clickbatch import batches
from redirector.clicks import Hit, pack_hits
from redirector.settings import Settings
from redirector.store.connection import Durability, Store
from redirector.store.flush import STALE_TRIES, FlushClicksScript, StaleValues
from redirector.store.flushbatch import ClickBatch
from redirector.store.keys import (
    BREAKDOWN_VALUES_MAX,
    CLICK_TIMES_KEPT,
    RECIPIENT_COUNTERS_MAX,
    campaign_breakdowns_key,
    campaign_stats_key,
    campaign_uniques_key,
    click_stream_key,
    clickers_key,
    link_breakdowns_key,
    link_stats_key,
    link_uniques_key,
    recipient_clicks_key,
    recipient_counters_key,
)
from redirector.store.linkcounters import LinkCounters, decode
from tests.redirector.clicks_helpers import flusher, push, worker
from tests.user_agents import ANDROID, IPHONE

MIDNIGHT = 1_767_225_600  # 2026-01-01T00:00:00Z: the hits below fall in two hours, two days
BEFORE, AFTER = MIDNIGHT - 1.5, MIDNIGHT + 0.25
HOURS, DAYS = (MIDNIGHT // 3600 - 1, MIDNIGHT // 3600), (MIDNIGHT // 86400 - 1, MIDNIGHT // 86400)


def _hit(code: str, at: float, ip: str, **fields: Any) -> Hit:
    hit = Hit(code, 7, None, 1, at, False, IPHONE, "", ip)
    return hit._replace(**fields)


CHUNK = [
    _hit("sum-a", BEFORE, "10.0.0.1"),
    _hit("sum-a", AFTER, "10.0.0.2", user_agent=ANDROID, referer="https://m.facebook.com/x"),
    _hit("sum-a", AFTER, "10.0.0.1"),  # the first visitor again
    _hit("sum-a", AFTER, "10.0.0.3", head=True),  # a bot hit
    _hit("sum-b", BEFORE, "10.0.0.4", recipient="+34600000001"),
    _hit("sum-b", AFTER, "10.0.0.4", recipient="+34600000001"),
]


async def _flushed(redis: Store, settings: Settings, hits: list[Hit]) -> None:
    """`hits` pushed as one flush and applied as one chunk."""
    await push(flusher(redis, settings), hits)
    assert await worker(redis, settings).work_once() == 1


async def _hash(redis: Store, key: str) -> dict[str, int]:
    fields: Any = await redis.hgetall(key)
    return {name.decode(): int(value) for name, value in fields.items()}


async def test_a_chunk_adds_up_per_key_and_field_and_a_second_one_adds_to_it(
    redis: Store, redirector_settings: Settings
) -> None:
    clicks_a = {"clicks": 3, f"h:{HOURS[0]}": 1, f"h:{HOURS[1]}": 2}
    clicks_a |= {f"d:{DAYS[0]}": 1, f"d:{DAYS[1]}": 2}
    bots = {"bots": 1, f"hb:{HOURS[1]}": 1, f"db:{DAYS[1]}": 1}
    clicks_b = {"clicks": 2, f"h:{HOURS[0]}": 1, f"h:{HOURS[1]}": 1}
    clicks_b |= {f"d:{DAYS[0]}": 1, f"d:{DAYS[1]}": 1}
    shown_a = {"dev:mobile": 3, "os:iOS": 2, "os:Android": 1, "br:Mobile Safari": 2}
    shown_a |= {"br:Chrome Mobile": 1, "ref:m.facebook.com": 1}
    shown_b = {"dev:mobile": 2, "os:iOS": 2, "br:Mobile Safari": 2}
    for times in (1, 2):  # the same hits again, in a second chunk: counted again
        await _flushed(redis, redirector_settings, CHUNK)
        twice = {name: count * times for name, count in (clicks_a | bots).items()}
        assert await _hash(redis, link_stats_key(7, "sum-a")) == twice | {"created": 1}
        # sum-b, a recipient's, is one field of the campaign's s:r hash, as its s:l and b:l
        # hashes would hold it.
        held = await _counters(redis, "sum-b")
        assert held == LinkCounters(
            1,
            {name: count * times for name, count in clicks_b.items()},
            {name: count * times for name, count in shown_b.items()},
        )
        campaign = {name: clicks_a.get(name, 0) + clicks_b.get(name, 0) for name in clicks_a}
        twice = {name: count * times for name, count in (campaign | bots).items()}
        assert await _hash(redis, campaign_stats_key(7)) == twice
        twice = {name: count * times for name, count in shown_a.items()}
        assert await _hash(redis, link_breakdowns_key(7, "sum-a")) == twice
        both = {name: shown_a.get(name, 0) + shown_b.get(name, 0) for name in shown_a}
        twice = {name: count * times for name, count in both.items()}
        assert await _hash(redis, campaign_breakdowns_key(7)) == twice
    # Two people tapped sum-a (the bot hit is none); sum-b's recipient counts as a clicker,
    # at their first click.
    assert await redis.pfcount(link_uniques_key(7, "sum-a")) == 2
    assert await redis.pfcount(campaign_uniques_key(7)) == 2
    for key in (link_stats_key, link_breakdowns_key, link_uniques_key):
        assert not await redis.exists(key(7, "sum-b"))
    clickers: Any = await redis.zrange(clickers_key(7), 0, -1, withscores=True)
    assert clickers == [(b"+34600000001", BEFORE * 1000)]
    entries: Any = await redis.xrange(click_stream_key(7))
    assert [(e[b"code"], e[b"t"], e[b"bot"]) for _, e in entries[:6]] == [
        (hit.code.encode(), b"%d" % (hit.at * 1000), b"1" if hit.head else b"0") for hit in CHUNK
    ]


async def test_a_user_agent_is_kept_as_sent(redis: Store, redirector_settings: Settings) -> None:
    odd = 'Odd\t"Agent" \\ ✓ 🎉/1.0'
    await _flushed(redis, redirector_settings, [_hit("odd-ua", AFTER, "10.0.0.1", user_agent=odd)])
    entries: Any = await redis.xrange(click_stream_key(7))
    assert [entry[b"ua"].decode() for _, entry in entries] == [odd]


async def test_a_breakdown_keeps_its_first_100_values_and_counts_the_rest_as_other(
    redis: Store, redirector_settings: Settings
) -> None:
    referers = [f"https://m{i}.example/" for i in range(3_000)]
    hits = [_hit("many-ref", AFTER, "10.0.0.1", referer=referer) for referer in referers]
    # Two chunks: the first brings 100 values, which both hashes keep; the second finds them
    # there and counts its 2,900 new ones as other. (Which 100 of many new values arriving
    # together are kept is the order a Lua table gives; a link's hits may be cut into
    # several calls, so its choice and its campaign's could differ.)
    await _flushed(redis, redirector_settings, hits[:BREAKDOWN_VALUES_MAX])
    await _flushed(redis, redirector_settings, hits[BREAKDOWN_VALUES_MAX:])
    for key in (link_breakdowns_key(7, "many-ref"), campaign_breakdowns_key(7)):
        fields = await _hash(redis, key)
        hosts = {name: count for name, count in fields.items() if name.startswith("ref:")}
        assert len(hosts) == BREAKDOWN_VALUES_MAX + 1 and hosts["ref:other"] == 2_900
        assert sum(hosts.values()) == 3_000 == fields["dev:mobile"]
        assert len(fields) == len(hosts) + 3  # and one device, OS and browser
        # Never past its cap by enough to leave the compact encoding (keys.py)
        assert await redis.object("encoding", key) == b"listpack"
    # A value kept goes on counting; a new one, or one that was counted as other, does not.
    kept = next(name for name in hosts if name != "ref:other").removeprefix("ref:")
    again = [_hit("many-ref", AFTER, "10.0.0.1", referer=f"https://{kept}/")]
    again += [_hit("many-ref", AFTER, "10.0.0.1", referer=referer) for referer in referers]
    await _flushed(redis, redirector_settings, again)
    for key in (link_breakdowns_key(7, "many-ref"), campaign_breakdowns_key(7)):
        fields = await _hash(redis, key)
        assert fields[f"ref:{kept}"] == 3 and fields["ref:other"] == 2 * 2_900
        assert len(fields) == BREAKDOWN_VALUES_MAX + 1 + 3


async def _counters(redis: Store, code: str) -> LinkCounters:
    raw = await redis.hget(recipient_counters_key(7), code)
    assert raw is not None
    return decode(raw)


def _tap(code: str, created: int, at: float, **fields: Any) -> Hit:
    return _hit(code, at, "10.0.0.9", recipient="+34600000009", link_created_at=created, **fields)


async def test_a_recipients_link_counts_only_for_its_newest_link_of_the_code(
    redis: Store, redirector_settings: Settings
) -> None:
    # A custom code given to a recipient, deleted and given again (created at 5): the first
    # link's hits, applied after the second's, count for the campaign alone; the second
    # link's first hits replace the first link's counters.
    await _flushed(redis, redirector_settings, [_tap("mine", 1, AFTER)] * 2)
    assert (await _counters(redis, "mine")).stats["clicks"] == 2
    await _flushed(redis, redirector_settings, [_tap("mine", 5, AFTER)])
    assert await _counters(redis, "mine") == LinkCounters(
        5,
        {"clicks": 1, f"h:{HOURS[1]}": 1, f"d:{DAYS[1]}": 1},
        {"dev:mobile": 1, "os:iOS": 1, "br:Mobile Safari": 1},
    )
    await _flushed(redis, redirector_settings, [_tap("mine", 1, AFTER)])  # alone: the script's
    await _flushed(redis, redirector_settings, [_tap("mine", 1, AFTER), _tap("mine", 5, BEFORE)])
    counters = await _counters(redis, "mine")
    assert counters.created == 5 and counters.stats["clicks"] == 2
    assert counters.stats[f"h:{HOURS[0]}"] == 1 and counters.breakdowns["os:iOS"] == 2
    assert (await _hash(redis, campaign_stats_key(7)))["clicks"] == 6


async def test_a_recipients_link_keeps_100_values_of_a_breakdown_in_one_batch_or_many(
    redis: Store, redirector_settings: Settings
) -> None:
    taps = [_tap("own", 1, AFTER, referer=f"https://m{i}.example/") for i in range(300)]
    await _flushed(redis, redirector_settings, taps[:50])  # made by the worker: under the cap
    await _flushed(redis, redirector_settings, taps[50:])  # 250 more: 50 kept, 200 as other
    await _flushed(redis, redirector_settings, taps[:1] + taps[-1:])  # kept, and other again
    hosts = {
        name: count
        for name, count in (await _counters(redis, "own")).breakdowns.items()
        if name.startswith("ref:")
    }
    assert len(hosts) == BREAKDOWN_VALUES_MAX + 1 and hosts["ref:other"] == 201
    assert hosts["ref:m0.example"] == 2 and sum(hosts.values()) == 302
    # 300 in one batch: the worker's first value is capped as the script caps.
    await _flushed(redis, redirector_settings, [t._replace(code="other") for t in taps])
    hosts = {
        name: count
        for name, count in (await _counters(redis, "other")).breakdowns.items()
        if name.startswith("ref:")
    }
    assert len(hosts) == BREAKDOWN_VALUES_MAX + 1 and hosts["ref:other"] == 200


@pytest.mark.parametrize(
    "junk",
    [
        "not json",
        "[1]",
        '[1, {}, "x"]',
        '{"a": 1}',
        '[1, {"clicks": "x"}, {}]',  # counters in shape, not in content
        '[1, {}, {"no-breakdown": 1}]',
        '[1, {"clicks": null}, {}]',
        "[1, {}, {}, 9]",
        '[1, {"clicks": 18446744073709551615}, {}]',  # past what JSON and Lua keep exact
        '[1, {"clicks": 2.5}, {}]',
    ],
)
async def test_a_field_that_holds_no_counters_is_counted_afresh(
    redis: Store, redirector_settings: Settings, junk: str
) -> None:
    await redis.hset(recipient_counters_key(7), "junk", junk)
    await _flushed(redis, redirector_settings, [_tap("junk", 1, AFTER)])
    assert (await _counters(redis, "junk")).stats["clicks"] == 1
    assert (await _hash(redis, campaign_stats_key(7)))["clicks"] == 1  # counted once


async def test_what_is_no_time_in_latest_clicks_is_dropped_and_their_times_kept(
    redis: Store, redirector_settings: Settings
) -> None:
    await redis.hset(recipient_clicks_key(7), "+34600000009", "x " + "9" * 5_000 + " 5")
    await _flushed(redis, redirector_settings, [_tap("junk", 1, AFTER)])
    clicked = await redis.hget(recipient_clicks_key(7), "+34600000009")
    assert clicked == f"5 {int(AFTER * 1000)}".encode()  # the one time it held, and the new


async def test_a_full_value_takes_no_new_field_but_keeps_counting(
    redis: Store, redirector_settings: Settings
) -> None:
    # One person's link tapped in ever more hours: its value stops growing at the bound.
    hours = {f"h:{HOURS[0] - i}": 1 for i in range(RECIPIENT_COUNTERS_MAX // 10)}
    full = LinkCounters(1, {"clicks": len(hours)} | hours, {"dev:mobile": len(hours)})
    await redis.hset(
        recipient_counters_key(7), "busy", orjson.dumps([1, full.stats, full.breakdowns])
    )
    referred = _tap("busy", 1, AFTER, referer="https://new.example/")
    await _flushed(redis, redirector_settings, [referred, _tap("busy", 1, AFTER, head=True)])
    counters = await _counters(redis, "busy")
    assert counters.stats == full.stats | {"clicks": len(hours) + 1, "bots": 1}
    others = {"os:other": 1, "br:other": 1, "ref:other": 1}  # values it did not hold
    assert counters.breakdowns == {"dev:mobile": len(hours) + 1} | others
    assert (await _hash(redis, campaign_stats_key(7)))[f"h:{HOURS[1]}"] == 1  # counted there


async def test_a_value_near_its_bound_takes_no_field_past_it(
    redis: Store, redirector_settings: Settings
) -> None:
    hours: dict[str, int] = {}
    near = b""
    while len(near) < RECIPIENT_COUNTERS_MAX - 200:  # 200 B short of it
        hours[f"h:{HOURS[0] - len(hours)}"] = 1
        near = orjson.dumps([1, {"clicks": len(hours)} | hours, {"dev:mobile": 1}])
    await redis.hset(recipient_counters_key(7), "near", near)
    referers = [f"https://{i:03d}{'x' * 200}.example/" for i in range(30)]
    await _flushed(
        redis, redirector_settings, [_tap("near", 1, AFTER, referer=r) for r in referers]
    )
    raw = await redis.hget(recipient_counters_key(7), "near")
    assert raw is not None and len(raw) <= RECIPIENT_COUNTERS_MAX + 4 * 20  # and the others
    assert (await _counters(redis, "near")).stats["clicks"] == len(hours) + 30


async def test_a_first_value_with_long_referers_is_made_within_the_bound(
    redis: Store, redirector_settings: Settings
) -> None:
    taps = [
        _tap("long", 1, AFTER, referer=f"https://{i:03d}{'x' * 200}.example/") for i in range(60)
    ]
    await _flushed(redis, redirector_settings, taps)
    raw = await redis.hget(recipient_counters_key(7), "long")
    assert raw is not None and len(raw) <= RECIPIENT_COUNTERS_MAX + 200
    hosts = {k: n for k, n in decode(raw).breakdowns.items() if k.startswith("ref:")}
    assert sum(hosts.values()) == 60 and hosts["ref:other"] == 60 - (len(hosts) - 1)


def _one_part(hit: Hit) -> ClickBatch:
    """The FLUSH_CLICKS batch of one hit, as the click worker makes it."""
    (part,) = batches([pack_hits([hit])], b"salt").by_campaign[hit.campaign_id]
    return part


def _overtaken(
    monkeypatch: pytest.MonkeyPatch,
    redis: Store,
    times: int,
    counters: bytes | None,
    clicks: bytes | None,
) -> list[int]:
    """Before each of the worker's first `times` FLUSH_CLICKS calls of a batch, another
    worker's batch of the same recipient lands: the values it writes (`counters`, `clicks`,
    each made different every time; None: left alone) are not those the call takes the fields
    to hold. Returns the calls made (one item each)."""
    attempt = FlushClicksScript._attempt
    calls: list[int] = []

    async def overtaken(self: FlushClicksScript, batch: ClickBatch, args: list[Any]) -> Any:
        calls.append(1)
        if len(calls) <= times:
            if counters is not None:
                changed = counters + b" " * len(calls)
                await redis.hset(recipient_counters_key(7), "race", changed)
            if clicks is not None:
                changed = clicks + b" " * len(calls)
                await redis.hset(recipient_clicks_key(7), "+34600000009", changed)
        return await attempt(self, batch, args)

    monkeypatch.setattr(FlushClicksScript, "_attempt", overtaken)
    return calls


async def test_values_changed_since_the_last_call_are_merged_and_sent_again(
    redis: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first call finds values where it took none (sent back), the second finds them
    changed again (sent back): the third writes, and every batch counts, once."""
    tap = _tap("race", 1, AFTER)
    counters = orjson.dumps([1, {"clicks": 5}, {"dev:mobile": 5}])
    calls = _overtaken(monkeypatch, redis, 2, counters, b"5")
    sent_back: list[int] = []
    flush = FlushClicksScript(redis, sent_back=lambda: sent_back.append(1))
    assert await flush(_one_part(tap), 1_000, "q", 1)
    assert (len(calls), len(sent_back)) == (3, 2)
    held = await _counters(redis, "race")
    assert held.stats["clicks"] == 6 and held.breakdowns["dev:mobile"] == 6
    clicked = await redis.hget(recipient_clicks_key(7), "+34600000009")
    assert clicked == f"5 {int(AFTER * 1000)}".encode()
    assert await redis.xlen(click_stream_key(7)) == 1
    assert (await _hash(redis, campaign_stats_key(7)))["clicks"] == 1


async def test_latest_clicks_changed_alone_are_merged_and_sent_again(
    redis: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipient's other link was tapped in another worker's batch: only their latest
    clicks changed, and neither click time is lost."""
    calls = _overtaken(monkeypatch, redis, 1, None, b"5")
    assert await FlushClicksScript(redis)(_one_part(_tap("race", 1, AFTER)), 1_000, "q", 1)
    assert len(calls) == 2
    clicked = await redis.hget(recipient_clicks_key(7), "+34600000009")
    assert clicked == f"5 {int(AFTER * 1000)}".encode()
    assert (await _counters(redis, "race")).stats["clicks"] == 1


async def test_batches_of_one_recipient_at_once_all_count(redis: Store) -> None:
    """A link forwarded to many phones, its taps in every raw-hit queue's chunk at once: each
    batch lands, whatever its calls find changed."""
    taps = [_tap("viral", 1, AFTER + i / 1000) for i in range(16)]
    flush = FlushClicksScript(redis)  # one worker: every queue's chunk at once
    batches = [flush(_one_part(tap), 1_000, f"q{i}", 1) for i, tap in enumerate(taps)]
    assert await asyncio.gather(*batches) == [True] * 16
    assert await redis.xlen(click_stream_key(7)) == 16
    assert (await _counters(redis, "viral")).stats["clicks"] == 16
    clicked = await redis.hget(recipient_clicks_key(7), "+34600000009")
    assert clicked is not None and len(clicked.split()) == CLICK_TIMES_KEPT


async def test_values_that_keep_changing_fail_the_batch_with_nothing_written(
    redis: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters = orjson.dumps([1, {"clicks": 5}, {}])
    calls = _overtaken(monkeypatch, redis, STALE_TRIES, counters, None)
    with pytest.raises(StaleValues):
        await FlushClicksScript(redis)(_one_part(_tap("race", 1, AFTER)), 1_000, "q", 1)
    assert len(calls) == STALE_TRIES
    assert await redis.exists(click_stream_key(7), campaign_stats_key(7)) == 0
    assert (await _counters(redis, "race")).stats == {"clicks": 5}  # as the other wrote it


async def test_after_a_batch_that_found_values_the_next_reads_them_before_its_call(
    redis: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first tap takes one call; a tap of a link tapped before, two (the first sends its
    value back); after it, the next batch reads the values first and takes one call."""
    calls = _overtaken(monkeypatch, redis, 0, None, None)  # counts the calls, changes nothing
    flush = FlushClicksScript(redis)
    for number, expected_calls in ((1, 1), (2, 3), (3, 4)):
        tap = _tap("again", 1, AFTER + number)
        assert await flush(_one_part(tap), 1_000, "q", number)
        assert len(calls) == expected_calls
    assert (await _counters(redis, "again")).stats["clicks"] == 3
    clicked = await redis.hget(recipient_clicks_key(7), "+34600000009")
    assert clicked == " ".join(str(int((AFTER + n) * 1000)) for n in (1, 2, 3)).encode()
    # A batch that finds nothing held (another recipient's first tap, read first) ends the
    # reads: the next batch calls at once.
    reads = _reads(monkeypatch)
    for number, code, recipient in ((4, "first-a", "+34600000010"), (5, "first-b", "+3460011")):
        tap = _tap(code, 1, AFTER)._replace(recipient=recipient)
        assert await flush(_one_part(tap), 1_000, "q", number)
    assert (len(reads), len(calls)) == (1, 6)


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The worker's reads of per-recipient values before a call (one item each)."""
    read = FlushClicksScript._held
    reads: list[int] = []

    async def counted(self: FlushClicksScript, batch: ClickBatch) -> Any:
        reads.append(1)
        return await read(self, batch)

    monkeypatch.setattr(FlushClicksScript, "_held", counted)
    return reads


async def test_a_part_sent_back_goes_through_the_wait_for_a_replica(
    redis: Store, store_kind: str
) -> None:
    """With a replica asked for, the call that finds a value held (writing nothing) and the
    one that writes both come back through the WAIT behind them; the tap counts once."""
    if store_kind != "cluster":
        pytest.skip("one redis-server has no replica to confirm a write")
    flush = FlushClicksScript(redis, Durability(1, 5_000))
    for number in (1, 2):
        assert await flush(_one_part(_tap("waited", 1, AFTER + number)), 1_000, "q", number)
    assert (await _counters(redis, "waited")).stats["clicks"] == 2


async def test_the_worker_counts_its_calls_sent_back(
    redis: Store, redirector_settings: Settings
) -> None:
    def sent_back() -> float:
        return REGISTRY.get_sample_value("smslinks_click_calls_sent_back_total") or 0.0

    before = sent_back()
    await _flushed(redis, redirector_settings, [_tap("metered", 1, AFTER)])
    assert sent_back() == before  # a first tap: one call
    await _flushed(redis, redirector_settings, [_tap("metered", 1, AFTER + 1)])
    assert sent_back() == before + 1  # its value held: sent back once
