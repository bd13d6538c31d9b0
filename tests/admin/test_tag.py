"""admin.tagging: the UTM parameters of a link, and where `tag` puts them in its URL."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from admin.tagging import Tagged, tag, utm_params
from tests.tagged_urls import UTM, added_pairs, checked_tag, query_of

ADDED = "utm_source=sms&utm_medium=text&utm_campaign=spring"


# --- utm_params ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("campaign", "expected"),
    [
        pytest.param("spring", [("utm_campaign", "spring")], id="with-campaign-in-order"),
        pytest.param(None, [], id="without-campaign"),
        pytest.param("", [("utm_campaign", "")], id="keeps-an-empty-campaign"),
    ],
)
def test_utm_params(campaign: str | None, expected: list[tuple[str, str]]) -> None:
    assert utm_params(source="sms", medium="text", campaign=campaign) == (
        ("utm_source", "sms"),
        ("utm_medium", "text"),
        *expected,
    )


def test_utm_params_prefer_the_campaign_source_and_medium_to_the_defaults() -> None:
    own = utm_params(source="s", medium="m", campaign="c", campaign_source="cs")
    assert own == (("utm_source", "cs"), ("utm_medium", "m"), ("utm_campaign", "c"))
    only_medium = utm_params(source="s", medium="m", campaign="c", campaign_medium="cm")
    assert only_medium[:2] == (("utm_source", "s"), ("utm_medium", "cm"))


# --- tag: where the parameters go ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("http://a.example/p", f"http://a.example/p?{ADDED}", id="no-query"),
        pytest.param("http://a.example", f"http://a.example?{ADDED}", id="no-path"),
        pytest.param("http://a.example/p?x=1", f"http://a.example/p?x=1&{ADDED}", id="query"),
        pytest.param("http://a.example/p?", f"http://a.example/p?{ADDED}", id="empty-query"),
        pytest.param("http://a.example/?#f", f"http://a.example/?{ADDED}#f", id="empty-query-frag"),
        pytest.param("http://a.example/?x=1&", f"http://a.example/?x=1&{ADDED}", id="ends-amp"),
        pytest.param("http://a.example/?&", f"http://a.example/?&{ADDED}", id="only-amp"),
        pytest.param("http://a.example/p#frag", f"http://a.example/p?{ADDED}#frag", id="fragment"),
        pytest.param(
            "http://a.example/p?x=1#frag", f"http://a.example/p?x=1&{ADDED}#frag", id="query-frag"
        ),
        pytest.param(
            "http://a.example/#/spa?x=1", f"http://a.example/?{ADDED}#/spa?x=1", id="spa-fragment"
        ),
        pytest.param("http://a.example/p#", f"http://a.example/p?{ADDED}#", id="empty-fragment"),
        pytest.param(
            "http://a.example/p#a#b?c", f"http://a.example/p?{ADDED}#a#b?c", id="hash-in-fragment"
        ),
        pytest.param(
            "http://a.example/p?a=1?b=2", f"http://a.example/p?a=1?b=2&{ADDED}", id="question-in-q"
        ),
        # A parameter in the fragment is not in the query: it does not count as present.
        pytest.param(
            "http://a.example/p#utm_source=x",
            f"http://a.example/p?{ADDED}#utm_source=x",
            id="utm-frag",
        ),
        pytest.param(
            "http://a.example/p?x=1#?utm_source=x",
            f"http://a.example/p?x=1&{ADDED}#?utm_source=x",
            id="utm-frag-after-query",
        ),
    ],
)
def test_tag_places_parameters_after_query_before_fragment(url: str, expected: str) -> None:
    tagged = checked_tag(url)
    assert tagged.destination == expected
    assert tagged.inserted > 0


def test_tag_reports_insertion_point_and_size() -> None:
    tagged = checked_tag("http://a.example/p?x=1#frag")
    assert tagged == Tagged(f"http://a.example/p?x=1&{ADDED}#frag", 22, len(ADDED) + 1)
    assert tagged.destination[tagged.insert_at] == "&"


def test_tag_with_no_params_adds_nothing() -> None:
    assert checked_tag("http://a.example/p?x=1#f", ()) == Tagged("http://a.example/p?x=1#f", 22, 0)


# --- tag: parameters already present -------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "added"),
    [
        pytest.param("utm_source=x", "&utm_medium=text&utm_campaign=spring", id="source"),
        pytest.param("utm_source=", "&utm_medium=text&utm_campaign=spring", id="source-empty"),
        pytest.param("utm_source&x=1", "&utm_medium=text&utm_campaign=spring", id="no-equals"),
        pytest.param("x=1&utm_source", "&utm_medium=text&utm_campaign=spring", id="no-equals-end"),
        pytest.param("utm%5Fsource=x", "&utm_medium=text&utm_campaign=spring", id="encoded-name"),
        pytest.param("utm%5fsource=x", "&utm_medium=text&utm_campaign=spring", id="encoded-lower"),
        pytest.param("%75tm_source=x", "&utm_medium=text&utm_campaign=spring", id="encoded-u"),
        pytest.param("utm_medium=x", "&utm_source=sms&utm_campaign=spring", id="medium"),
        pytest.param("utm_campaign=x", "&utm_source=sms&utm_medium=text", id="campaign"),
        pytest.param(
            "utm_source=a&utm_source=b", "&utm_medium=text&utm_campaign=spring", id="source-twice"
        ),
        pytest.param("UTM_SOURCE=x", f"&{ADDED}", id="upper-case-does-not-count"),
        pytest.param("Utm_Source=x", f"&{ADDED}", id="mixed-case-does-not-count"),
        pytest.param("utm+source=x", f"&{ADDED}", id="plus-not-decoded"),
        pytest.param("utm_sourcex=1", f"&{ADDED}", id="longer-name"),
        pytest.param("xutm_source=1", f"&{ADDED}", id="suffix-name"),
        pytest.param("x=utm_source", f"&{ADDED}", id="in-a-value"),
        pytest.param("a=1;utm_source=x", f"&{ADDED}", id="semicolon-is-not-a-separator"),
        pytest.param(" utm_source=x", f"&{ADDED}", id="leading-space-not-trimmed"),
    ],
)
def test_tag_skips_only_the_parameters_the_query_has(query: str, added: str) -> None:
    url = f"http://a.example/p?{query}#f"
    tagged = checked_tag(url)
    assert tagged.destination == f"http://a.example/p?{query}{added}#f"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://a.example/p?utm_campaign=c&utm_medium&utm_source=#frag", id="frag"),
        pytest.param("http://a.example/p?utm_source=a&utm_medium=b&utm_campaign=c", id="no-frag"),
    ],
)
def test_tag_adds_nothing_when_every_parameter_is_present(url: str) -> None:
    assert checked_tag(url) == Tagged(url, len(url.partition("#")[0]), 0)


def test_tag_accepts_any_sequence_of_params() -> None:
    url = "http://a.example/p?x=1"
    assert checked_tag(url, tuple(UTM)) == tag(url, list(UTM))


def test_tag_each_url_gets_exactly_its_missing_fields() -> None:
    # Same params, different names already present (the encoded fields are cached inside).
    first = checked_tag("http://a.example/?utm_source=a")
    second = checked_tag("http://a.example/?utm_medium=b")
    third = checked_tag("http://a.example/")
    assert first.destination == "http://a.example/?utm_source=a&utm_medium=text&utm_campaign=spring"
    assert second.destination == "http://a.example/?utm_medium=b&utm_source=sms&utm_campaign=spring"
    assert third.destination == f"http://a.example/?{ADDED}"


def test_tag_adds_a_name_given_twice_once() -> None:
    tagged = checked_tag("http://a.example/", (("utm_source", "a"), ("utm_source", "b")))
    assert tagged.destination == "http://a.example/?utm_source=a"


# --- tag: existing bytes are kept ----------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("a=1&a=2&b", id="repeated-and-bare-keys"),
        pytest.param("q=a+b", id="plus"),
        pytest.param("q=a%20b", id="escaped-space"),
        pytest.param("a=1;b=2", id="semicolon"),
        pytest.param("path=%2f&x=%2F", id="escape-case"),
        pytest.param("b=2&a=1", id="order"),
        pytest.param("=&&x==y", id="odd-fields"),
        pytest.param("q=%zz", id="broken-escape"),
        pytest.param("%=1", id="lone-percent-name"),
    ],
)
def test_tag_keeps_the_existing_query_byte_for_byte(query: str) -> None:
    tagged = checked_tag(f"http://a.example/p?{query}#x")
    assert tagged.destination == f"http://a.example/p?{query}&{ADDED}#x"


# --- tag: value encoding -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("campaign", "encoded"),
    [
        ("spring", "spring"),
        ("A-Z_a.z~09", "A-Z_a.z~09"),
        ("spring sale", "spring%20sale"),
        ("a&b", "a%26b"),
        ("a=b", "a%3Db"),
        ("a#b", "a%23b"),
        ("a+b", "a%2Bb"),
        ("a/b", "a%2Fb"),
        ("a?b", "a%3Fb"),
        ("a;b", "a%3Bb"),
        ("100%", "100%25"),
        ("%20", "%2520"),
        ('it\'s "on"', "it%27s%20%22on%22"),
        ("Café", "Caf%C3%A9"),
        ("🎉 Black Friday", "%F0%9F%8E%89%20Black%20Friday"),
        ("tab\tnew\nline", "tab%09new%0Aline"),
        ("", ""),
    ],
)
def test_tag_encodes_values_and_they_decode_back(campaign: str, encoded: str) -> None:
    params = utm_params(source="sms", medium="text", campaign=campaign)
    tagged = checked_tag("http://a.example/p?x=1#f", params)
    assert tagged.destination == (
        f"http://a.example/p?x=1&utm_source=sms&utm_medium=text&utm_campaign={encoded}#f"
    )
    assert tagged.destination.isascii()
    assert added_pairs(tagged) == list(params)
    # What a server's form parser (which also turns '+' into a space) reads back.
    assert dict(parse_qsl(query_of(tagged.destination) or "", keep_blank_values=True)) == {
        "x": "1",
        **dict(params),
    }


def test_tag_without_campaign_adds_source_and_medium_only_encoded_too() -> None:
    params = utm_params(source="news letter", medium="sms&mms", campaign=None)
    tagged = checked_tag("http://a.example/", params)
    assert tagged.destination == "http://a.example/?utm_source=news%20letter&utm_medium=sms%26mms"
