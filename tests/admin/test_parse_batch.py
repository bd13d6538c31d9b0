"""`parse_batch` checks recipient-only items itself: it must take and refuse what the model does."""

from __future__ import annotations

from typing import Any

import pytest

from admin.batch_body import parse_batch
from admin.exceptions import ValidationFailed
from admin.models import BatchIn, UrlRules, parse

RULES = UrlRules(2048, None)
URL = "https://shop.example/p"
RECIPIENTS: list[Any] = [
    "+34600000001",
    "x" * 128,
    "x" * 129,
    "",
    " \t ",
    "a\x00b",
    "a\x85b",
    "a\x7fb",
    "\xa0\u3000",
    "\xa0+34600000003",
    "a\nb",
    "naïve ☎",
    12,
    None,
]


def outcome(parser: Any, body: Any) -> Any:
    try:
        batch = parser(body)
    except ValidationFailed as exc:
        return [(e.field, e.message, e.index) for e in exc.errors]
    items = [
        (None, i, None, None) if isinstance(i, str) else (i.url, i.recipient, i.code, i.expires_at)
        for i in batch.links
    ]
    return batch.campaign_id, batch.url, batch.tag, items


def model(body: Any) -> Any:
    return parse(BatchIn, body, RULES)


@pytest.mark.parametrize("recipient", RECIPIENTS)
@pytest.mark.parametrize(
    "extra", [{}, {"url": URL, "campaign_id": 3}, {"url": "ftp://x"}, {"tag": "no"}, {"x": 1}]
)
def test_recipient_items_are_judged_as_the_model_judges_them(
    recipient: Any, extra: dict[str, Any]
) -> None:
    body = {**extra, "links": [{"recipient": "+34600000002"}, {"recipient": recipient}]}
    assert outcome(lambda b: parse_batch(b, RULES), body) == outcome(model, body)


@pytest.mark.parametrize(
    "links",
    [[], [{}], [{"recipient": "a", "code": "abcd"}], [{"recipient": "a", "url": URL}], ["a"]],
)
def test_other_items_go_through_the_model(links: list[Any]) -> None:
    body = {"url": URL, "links": links}
    assert outcome(lambda b: parse_batch(b, RULES), body) == outcome(model, body)
