"""The records and the key names shared by redirector and admin."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from redirector.store import keys
from redirector.store.keys import (
    link_count_key,
    link_key,
    link_keys,
    link_tag,
    script_link_keys,
)
from redirector.store.record import (
    Destination,
    Link,
    Record,
    RecordError,
    decode,
    decode_destination,
    decode_links,
    encode,
    encode_destination,
)


def _one_owner(record: Record) -> Record:
    """A workspace's mark only on a link without campaign that is not the plain form (which
    refers to one of its campaign's destinations)."""
    plain = isinstance(record.destination, str) and not (
        record.disabled or record.custom or record.deleted
    )
    return record if record.campaign_id is None and not plain else replace(record, workspace=None)


destinations = st.builds(
    Destination,
    destination=st.text(min_size=1).map(lambda s: "https://a.example/" + s),
    insert_at=st.integers(0, 5000),
    inserted=st.integers(0, 5000),
    tagged=st.booleans(),
)
links = st.builds(
    Link,
    destination=st.text(min_size=1).map(lambda s: "https://a.example/" + s),
    created_at=st.integers(0, 2**40),
    expires_at=st.none() | st.integers(0, 2**40),
    campaign_id=st.none() | st.integers(1, 2**62),
    recipient=st.none() | st.text(max_size=128),
    disabled=st.booleans(),
    tagged=st.booleans(),
    insert_at=st.integers(0, 5000),
    inserted=st.integers(0, 5000),
)
records = st.builds(
    Record,
    created_at=st.integers(0, 2**40),
    destination=destinations | st.from_regex(r"\A[0-9a-z]{0,8}\Z"),
    expires_at=st.none() | st.integers(0, 2**40),
    campaign_id=st.none() | st.integers(1, 2**62),
    recipient=st.none() | st.text(max_size=128),
    disabled=st.booleans(),
    custom=st.booleans(),
    deleted=st.booleans(),
    workspace=st.none() | st.from_regex(r"\Aw[0-9a-z]{1,8}\Z"),
).map(_one_owner)


@given(links)
def test_a_link_round_trips_as_a_record_holding_its_destination(link: Link) -> None:
    assert decode(encode(link)).link() == link
    assert decode(encode(link).decode()).link() == link


@given(records)
def test_records_round_trip(record: Record) -> None:
    assert decode(encode(record)) == record


@given(records, destinations)
def test_a_plain_record_is_decoded_straight_into_its_link(
    record: Record, destination: Destination
) -> None:
    """What the resolver reads: a campaign's plain link is made at once when its destination
    is known; anything else comes back as the record `decode` gives."""
    raw = encode(record)
    known = {(record.campaign_id, record.destination): destination}
    [found] = decode_links([raw], lambda campaign_id, id_: known.get((campaign_id, id_)))
    plain = record.campaign_id is not None and isinstance(record.destination, str)
    plain = plain and not (record.disabled or record.custom or record.deleted)
    assert found == (record.link(destination) if plain else decode(raw))
    assert decode_links([raw], lambda campaign_id, id_: None) == [decode(raw)]


def test_one_read_looks_each_destination_up_once_and_tells_campaigns_apart() -> None:
    """Destination ids are per campaign: two campaigns' destination "1" are two."""
    destinations = {(1, "1"): Destination("https://one/"), (2, "1"): Destination("https://two/")}
    asked: list[tuple[int, str]] = []

    def destination(campaign_id: int, destination_id: str) -> Destination | None:
        asked.append((campaign_id, destination_id))
        return destinations.get((campaign_id, destination_id))

    raws = [encode(Record(1, "1", campaign_id=campaign)) for campaign in (1, 2, 1, 2, 3)]
    found = decode_links([*raws, None], destination)
    links = [link for link in found[:4] if isinstance(link, Link)]
    assert [link.destination for link in links] == ["https://one/", "https://two/"] * 2
    assert found[4:] == [Record(1, "1", campaign_id=3), None]  # its destination unknown
    assert asked == [(1, "1"), (2, "1"), (3, "1")]


@given(records, st.from_regex(r"\A[A-Za-z0-9_-]{3,64}\Z"))
def test_aliases_round_trip(record: Record, code: str) -> None:
    alias = Record(
        record.created_at,
        "",
        None,
        record.campaign_id,
        "+34600",
        alias_of=code,
        workspace=record.workspace,
    )
    assert decode(encode(alias)) == alias
    assert not alias.live


@given(destinations)
def test_destinations_round_trip(destination: Destination) -> None:
    assert decode_destination(encode_destination(destination)) == destination


def test_a_record_of_a_campaign_holds_only_what_is_personal() -> None:
    record = Record(1_764_230_000, "3", None, 12, "+34600000000")
    assert encode(record) == b"20|t6dkkw||c|3|c|+34600000000"
    # 29 bytes: a 135-byte tagged destination is stored once per campaign, not per link.
    target = Destination("https://shop.example/x?utm_source=s", 22, 13)
    assert encode_destination(target) == "0|m|d|https://shop.example/x?utm_source=s"
    assert record.link(target) == Link(
        target.destination, 1_764_230_000, None, 12, "+34600000000", insert_at=22, inserted=13
    )


def test_version_1_records_are_still_read() -> None:
    record = decode(b"10|t6dkkw||c|m|0|c|+34600000000https://shop.example/x")
    assert record.link() == Link(
        "https://shop.example/x", 1_764_230_000, None, 12, "+34600000000", insert_at=22
    )
    assert decode(b"13|1|||0|0||https://a/").link() == Link(
        "https://a/", 1, disabled=True, tagged=False
    )


def test_a_recipient_length_is_in_utf8_bytes_as_lua_counts() -> None:
    record = Record(1, Destination("https://a/"), recipient="José")
    assert encode(record) == "24|1|||0|0|5|Joséhttps://a/".encode()
    alias = Record(1, "", campaign_id=3, recipient="José", alias_of="mine-01")
    assert encode(alias) == "2g|1||3|mine-01|5|José".encode()
    assert decode(encode(alias)) == alias
    assert decode("10|1|||0|0|4|Joséhttps://a/").link().recipient == "José"  # version 1


def test_a_link_without_campaign_outside_default_marks_its_workspace() -> None:
    mine = Record(1, Destination("https://a/"), recipient="r", workspace="w3")
    assert encode(mine) == b"24|1||~w3|0|0|1|rhttps://a/"
    assert decode(encode(mine)) == mine
    # In `default` (and in every record written before workspaces) the field stays empty.
    assert encode(replace(mine, workspace=None)) == b"24|1|||0|0|1|rhttps://a/"
    tombstone = Record(1, "", recipient="r", deleted=True, workspace="w3")
    assert decode(encode(tombstone)) == tombstone


def test_a_campaigns_link_has_no_workspace_of_its_own() -> None:
    with pytest.raises(ValueError, match="campaign's workspace"):
        encode(Record(1, "3", campaign_id=2, workspace="w3"))
    with pytest.raises(ValueError, match="belongs to a campaign"):
        encode(Record(1, "3", workspace="w3"))


def test_tombstones_and_aliases_are_no_links() -> None:
    tombstone = Record(1, "", campaign_id=3, recipient="r", deleted=True)
    assert not decode(encode(tombstone)).live
    assert Record(1, "2", campaign_id=3).live


@pytest.mark.parametrize(
    "raw",
    [
        *(b"", b"2|x", b"10|zz", b"\xff\xfe", b"1x|1||||||a", b"10|1|", b"3|1|||1||", b"24|1||"),
        *(b"20|1||3|1|", b"20|1||3|1|-|", b"20|\xff||3|1||"),  # plain ones, read the short way
        *(b"20|1||3|1||\xff", b"20|1||3|1|1|r\xff", b"20|1||3|1|2|r"),  # not its recipient
    ],
)
def test_corrupt_records_raise(raw: bytes) -> None:
    with pytest.raises(RecordError):
        decode(raw)
    with pytest.raises(RecordError):
        decode_links([raw], lambda campaign_id, id_: Destination("https://a/"))


def test_a_record_of_a_campaign_needs_its_destination() -> None:
    with pytest.raises(ValueError, match="destination"):
        Record(1, "3", campaign_id=2).link()


def test_a_script_gets_the_link_keys_of_each_code() -> None:
    codes = [f"code{i}" for i in range(2_000)] + ["code7"]  # one code twice
    keys, count_at = script_link_keys(codes)
    assert [(keys[i], keys[count_at[i] - 1]) for i in range(len(codes))] == [
        link_keys(code) for code in codes
    ]
    counts = keys[len(codes) :]  # each once
    assert len(counts) == len(set(counts)) == len({link_tag(code) for code in codes})


def test_link_keys_are_bucketed_under_256_tags() -> None:
    assert link_key("abc1234") == link_key("abc1234")
    assert re.fullmatch(r"l:\{[0-9a-f]{2}\}[0-9a-f]{2}", link_key("abc1234"))
    buckets = {link_key(f"code{i}") for i in range(10_000)}
    assert 8_000 < len(buckets) <= 10_000  # spread over 65,536 buckets
    tags = {link_tag(f"code{i}") for i in range(10_000)}
    assert tags == set(keys.LINK_TAGS)
    for code in ("abc1234", "x", "Promo_2026-x"):
        assert key_slot(link_key(code).encode()) == key_slot(
            link_count_key(link_tag(code)).encode()
        )


@pytest.mark.parametrize("campaign_id", [None, 1, 42, 2**40])
def test_a_campaign_and_its_links_click_keys_share_one_slot(campaign_id: int | None) -> None:
    names = [
        keys.click_stream_key(campaign_id),
        keys.flush_key(campaign_id),
        keys.link_stats_key(campaign_id, "abc"),
        keys.link_breakdowns_key(campaign_id, "abc"),
        keys.link_uniques_key(campaign_id, "xyz"),
    ]
    if campaign_id is not None:
        names += [
            keys.campaign_key(campaign_id),
            keys.destinations_key(campaign_id),
            keys.campaign_stats_key(campaign_id),
            keys.campaign_breakdowns_key(campaign_id),
            keys.campaign_uniques_key(campaign_id),
            keys.clickers_key(campaign_id),
        ]
    assert len({key_slot(name.encode()) for name in names}) == 1


def test_url_is_destination_without_inserted_part() -> None:
    link = Link("https://a/?x=1&utm_source=s#f", 1, insert_at=14, inserted=13)
    assert link.url == "https://a/?x=1#f"


def test_gone() -> None:
    assert not Link("https://a/", 1).gone(now=10)
    assert Link("https://a/", 1, disabled=True).gone(now=10)
    assert Link("https://a/", 1, expires_at=10).gone(now=10)
    assert not Link("https://a/", 1, expires_at=11).gone(now=10)
