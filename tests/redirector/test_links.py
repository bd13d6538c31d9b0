"""The link record encoding and key names shared by redirector and admin."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redirector.store.keys import link_key, recipient_key
from redirector.store.record import Link, RecordError, decode, encode

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


@given(links)
def test_encode_decode_round_trip(link: Link) -> None:
    assert decode(encode(link)) == link
    assert decode(encode(link).decode()) == link


def test_record_is_compact() -> None:
    link = Link("https://shop.example/x", 1_764_230_000, None, 12, "+34600000000", insert_at=22)
    assert encode(link) == b"10|t6dkkw||c|m|0|c|+34600000000https://shop.example/x"


@pytest.mark.parametrize("raw", [b"", b"2|x", b"10|zz", b"\xff\xfe", b"1x|1||||||a", b"10|1|"])
def test_corrupt_records_raise(raw: bytes) -> None:
    with pytest.raises(RecordError):
        decode(raw)


def test_keys_are_bucketed_and_stable() -> None:
    assert link_key("abc1234") == link_key("abc1234")
    assert link_key("abc1234").startswith("l:")
    assert recipient_key("3:+34600").startswith("r:")
    buckets = {link_key(f"code{i}") for i in range(10_000)}
    assert 8_000 < len(buckets) <= 10_000  # spread over 65,536 buckets


def test_url_is_destination_without_inserted_part() -> None:
    link = Link("https://a/?x=1&utm_source=s#f", 1, insert_at=14, inserted=13)
    assert link.url == "https://a/?x=1#f"


def test_gone() -> None:
    assert not Link("https://a/", 1).gone(now=10)
    assert Link("https://a/", 1, disabled=True).gone(now=10)
    assert Link("https://a/", 1, expires_at=10).gone(now=10)
    assert not Link("https://a/", 1, expires_at=11).gone(now=10)
