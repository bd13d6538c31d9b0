"""What chunks of raw hits add up to, key by key and field by field, once the click worker
has summed them and FLUSH_CLICKS has applied the sums; and the stream entries, as sent."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from redirector.clicks import Hit
from redirector.settings import Settings
from redirector.store.connection import Store
from redirector.store.keys import (
    BREAKDOWN_VALUES_MAX,
    RECIPIENT_COUNTERS_MAX,
    campaign_breakdowns_key,
    campaign_stats_key,
    campaign_uniques_key,
    click_stream_key,
    clickers_key,
    link_breakdowns_key,
    link_stats_key,
    link_uniques_key,
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
    ],
)
async def test_a_field_that_holds_no_counters_is_counted_afresh(
    redis: Store, redirector_settings: Settings, junk: str
) -> None:
    await redis.hset(recipient_counters_key(7), "junk", junk)
    await _flushed(redis, redirector_settings, [_tap("junk", 1, AFTER)])
    assert (await _counters(redis, "junk")).stats["clicks"] == 1
    assert (await _hash(redis, campaign_stats_key(7)))["clicks"] == 1  # once: no retry


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
