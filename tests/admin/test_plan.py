"""Planning a batch of links: pure, no Redis."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

import pytest

from admin import codes
from admin.codes import ALPHABET
from admin.exceptions import CodeTaken, ValidationFailed
from admin.models import BatchItem
from admin.service import plan as plan_module
from admin.service.plan import Chain, Plan, derive_codes, next_position, plan_batch, redraw
from admin.tagging import tag, utm_params
from redirector.store.record import Destination, Link

UTM = utm_params(source="sms", medium="text", campaign="spring")
URL = "https://shop.example/p?x=1"
CHAIN = Chain(b"k" * 32, 9)


def item(url: str | None = URL, **fields: Any) -> BatchItem:
    return BatchItem.model_construct(url=url, **fields)


def plan(
    items: list[BatchItem], *, campaign_id: int | None = 7, tagged: bool = True, **batch: Any
) -> Plan:
    params = UTM if tagged else ()
    planned = plan_batch(
        items,
        campaign_id=campaign_id,
        params=params,
        tagged=tagged,
        now=1_000,
        code_length=9,
        **batch,
    )
    derive_codes(planned, CHAIN)
    return planned


def test_items_without_a_code_get_distinct_drawn_codes() -> None:
    planned = plan([item(), item(code="mine-01"), item()]).links
    assert [p.index for p in planned] == [0, 1, 2]
    assert [p.kind for p in planned] == ["random", "custom", "random"]
    assert planned[1].code == "mine-01"
    drawn = [planned[0].code, planned[2].code]
    assert len(set(drawn)) == 2
    assert all(len(code) == 9 and set(code.encode()) <= set(ALPHABET) for code in drawn)


def test_links_are_tagged_with_the_campaign() -> None:
    [planned] = plan([item(expires_at=datetime(2030, 1, 1, tzinfo=UTC))]).links
    tagged = tag(URL, UTM)
    assert planned.link == Link(
        tagged.destination,
        1_000,
        expires_at=1_893_456_000,
        campaign_id=7,
        insert_at=tagged.insert_at,
        inserted=tagged.inserted,
    )
    assert planned.link.url == URL


def test_untagged_links_keep_their_url() -> None:
    [planned] = plan([item()], campaign_id=None, tagged=False).links
    assert planned.link.destination == URL
    assert not planned.link.tagged
    assert planned.link.inserted == 0


def test_each_distinct_url_is_tagged_once(monkeypatch: pytest.MonkeyPatch) -> None:
    tagged: list[str] = []

    def counting_tag(url: str, params: Any) -> Any:
        tagged.append(url)
        return tag(url, params)

    monkeypatch.setattr(plan_module, "tag", counting_tag)
    other = "https://shop.example/q"
    planned = plan([item(), item(other), item(), item(), item(other)]).links
    assert sorted(tagged) == [URL, other]
    assert planned[3].link.destination == tag(URL, UTM).destination


def test_a_repeated_recipient_is_planned_once() -> None:
    result = plan(
        [
            item(recipient="+34600000001"),
            item(recipient="+34600000002"),
            item(recipient="+34600000001", code="ignored"),
        ]
    )
    assert [p.index for p in result.links] == [0, 1]
    # A recipient's code is the first of its chain: derived from campaign and recipient.
    assert [(p.kind, p.position) for p in result.links] == [("chain", 0), ("chain", 0)]
    assert [p.code for p in result.links] == [
        codes.derive(CHAIN.key, 7, f"+3460000000{i}", 0, 9)[1] for i in (1, 2)
    ]
    assert result.repeats == {2: 0}
    assert result.links[0].link.recipient == "+34600000001"


def test_a_link_without_recipient_has_a_drawn_code() -> None:
    [planned] = plan([item()], campaign_id=None).links
    assert planned.kind == "random"
    assert planned.link.campaign_id is None


def test_derived_codes_are_the_same_for_the_same_campaign_and_recipient() -> None:
    again = plan([item(recipient="r1"), item(recipient="r2")]).links
    assert [p.code for p in again] == [p.code for p in plan([item(recipient="r1")]).links] + [
        plan([item(recipient="r2")]).links[0].code
    ]
    assert plan([item(recipient="r1")], campaign_id=8).links[0].code != again[0].code
    other_key = plan([item(recipient="r1")])
    derive_codes(other_key, Chain(b"x" * 32, 9))
    assert other_key.links[0].code != again[0].code
    assert all(len(p.code) == 9 and set(p.code.encode()) <= set(ALPHABET) for p in again)


def test_next_position_walks_the_chain() -> None:
    [planned] = plan([item(recipient="r1")]).links
    seen = {planned.code}
    for position in range(1, 5):
        next_position(planned, CHAIN)
        assert planned.position == position
        assert planned.code == codes.derive(CHAIN.key, 7, "r1", position, 9)[1]
        seen.add(planned.code)
    assert len(seen) == 5


def test_a_reserved_word_is_skipped_on_the_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    real = hmac.digest
    digests = iter([bytes(32), real(b"k", b"m", "sha256")])  # 0 -> "00000": made reserved
    monkeypatch.setattr(codes, "RESERVED_CODES", frozenset({"00000"}))
    monkeypatch.setattr(codes, "_digest", lambda *_: next(digests))
    position, code = codes.derive(b"k", 1, "r", 0, 5)
    assert position == 1 and code != "00000"


def test_first_codes_skip_a_reserved_word_too(monkeypatch: pytest.MonkeyPatch) -> None:
    reserved = codes.derive(b"k", 1, "r", 0, 5)[1]
    monkeypatch.setattr(codes, "RESERVED_CODES", frozenset({reserved.lower()}))
    [(position, code)] = codes.first_codes(b"k", 1, ["r"], 5)
    assert position == 1 and code == codes.derive(b"k", 1, "r", 1, 5)[1] != reserved


def test_a_code_is_the_hmac_of_campaign_recipient_and_position() -> None:
    # The padded keys are kept per key; a key longer than SHA-256's block is hashed first.
    for key in (b"k" * 32, b"other", b"", b"x" * 64, b"y" * 65, b"z" * 200):
        digest = hmac.digest(key, b"7\x00+34600\x003", "sha256")
        expected = digest[:9].translate(bytes(ALPHABET[b % 62] for b in range(256))).decode()
        assert codes.derive(key, 7, "+34600", 3, 9) == (3, expected)
    recipients = ["+34600", "José", "r3", *(f"+3460000{i:04d}" for i in range(500))]
    for campaign_id, length in ((7, 9), (None, 7), (3, 32)):
        expected_first = [codes.derive(b"k", campaign_id, r, 0, length) for r in recipients]
        assert codes.first_codes(b"k", campaign_id, recipients, length) == expected_first


def test_a_batch_url_serves_the_items_without_one() -> None:
    other = "https://shop.example/own"
    result = plan([item(None), item(other), item(None)], url=URL)
    assert [p.link.url for p in result.links] == [URL, other, URL]
    assert result.destinations == [
        Destination(*tag(URL, UTM)),
        Destination(*tag(other, UTM)),
    ]
    assert [p.destination for p in result.links] == [0, 1, 0]


def test_an_item_without_url_in_a_batch_without_one_is_refused() -> None:
    with pytest.raises(ValidationFailed) as raised:
        plan([item(), item(None), item(None, recipient="r")])
    assert [(e.field, e.index) for e in raised.value.errors] == [
        ("links[1].url", 1),
        ("links[2].url", 2),
    ]


def test_a_custom_code_twice_in_the_request_is_refused() -> None:
    with pytest.raises(CodeTaken) as raised:
        plan([item(code="same-01"), item(), item(code="same-01")])
    assert raised.value.taken_code == "same-01"
    assert raised.value.index == 2


def test_redraw_gives_codes_that_no_other_link_has() -> None:
    planned = plan([item(), item(code="mine-01"), item()]).links
    before = [p.code for p in planned]
    redraw(planned, [0, 2], code_length=9)
    after = [p.code for p in planned]
    assert after[1] == "mine-01"
    assert after[0] not in before and after[2] not in before
    assert len(set(after)) == 3
