"""Planning a batch of links: pure, no Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from admin.codes import ALPHABET
from admin.exceptions import CodeTaken
from admin.models import BatchItem
from admin.service import plan as plan_module
from admin.service.plan import Plan, plan_batch, redraw
from admin.tagging import tag, utm_params
from redirector.store.record import Link

UTM = utm_params(source="sms", medium="text", campaign="spring")
URL = "https://shop.example/p?x=1"


def item(url: str = URL, **fields: Any) -> BatchItem:
    return BatchItem.model_construct(url=url, **fields)


def plan(items: list[BatchItem], *, campaign_id: int | None = 7, tagged: bool = True) -> Plan:
    params = UTM if tagged else ()
    return plan_batch(
        items, campaign_id=campaign_id, params=params, tagged=tagged, now=1_000, code_length=9
    )


def test_items_without_a_code_get_distinct_drawn_codes() -> None:
    planned = plan([item(), item(code="mine-01"), item()]).links
    assert [p.index for p in planned] == [0, 1, 2]
    assert [p.custom for p in planned] == [False, True, False]
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
    assert [p.recipient_field for p in result.links] == ["7:+34600000001", "7:+34600000002"]
    assert result.repeats == {2: 0}
    assert result.links[0].link.recipient == "+34600000001"


def test_a_link_without_recipient_has_no_recipient_field() -> None:
    [planned] = plan([item()], campaign_id=None).links
    assert planned.recipient_field == ""
    assert planned.link.campaign_id is None


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
