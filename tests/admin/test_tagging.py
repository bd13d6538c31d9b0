"""admin.tagging: URL validation and normalisation, UTM tagging, and their invariants."""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from admin.exceptions import InvalidURL
from admin.tagging import Tagged, normalize_url, tag, utm_params
from redirector.store.record import Link

MAX_LENGTH = 4096
OWN_HOST = "short.example"
UTM = utm_params(source="sms", medium="text", campaign="spring")
ADDED = "utm_source=sms&utm_medium=text&utm_campaign=spring"

# The first IDNA call loads Unicode tables, which can blow Hypothesis' per-example deadline.
properties = settings(deadline=None, max_examples=200)


def untag(t: Tagged) -> str:
    """The URL `tag` was given, as the stored link gives it back (`Link.url`)."""
    return Link(t.destination, 0, insert_at=t.insert_at, inserted=t.inserted).url


def normalize(raw: str, *, max_length: int = MAX_LENGTH, own_host: str | None = OWN_HOST) -> str:
    return normalize_url(raw, max_length=max_length, own_host=own_host)


def checked_tag(url: str, params: tuple[tuple[str, str], ...] = UTM) -> Tagged:
    """tag(), plus the invariants every result must satisfy."""
    t = tag(url, params)
    assert t.destination[: t.insert_at] + t.destination[t.insert_at + t.inserted :] == url
    assert untag(t) == url
    assert 0 <= t.insert_at <= len(url)
    assert len(t.destination) == len(url) + t.inserted
    return t


def split_fragment(url: str) -> tuple[str, str | None]:
    before, hash_sign, fragment = url.partition("#")
    return before, fragment if hash_sign else None


def query_of(url: str) -> str | None:
    before, _ = split_fragment(url)
    _, question, query = before.partition("?")
    return query if question else None


def added_pairs(t: Tagged) -> list[tuple[str, str]]:
    """The (name, decoded value) pairs `tag` inserted, read back from the destination."""
    segment = t.destination[t.insert_at : t.insert_at + t.inserted]
    if not segment:
        return []
    if segment[0] in "?&":
        segment = segment[1:]
    pairs: list[tuple[str, str]] = []
    for field in segment.split("&"):
        name, equals, value = field.partition("=")
        assert equals, field
        pairs.append((name, unquote(value, errors="strict")))
    return pairs


# --- utm_params ----------------------------------------------------------------------------


def test_utm_params_with_campaign_in_order() -> None:
    assert utm_params(source="sms", medium="text", campaign="spring") == (
        ("utm_source", "sms"),
        ("utm_medium", "text"),
        ("utm_campaign", "spring"),
    )


def test_utm_params_without_campaign() -> None:
    assert utm_params(source="sms", medium="text", campaign=None) == (
        ("utm_source", "sms"),
        ("utm_medium", "text"),
    )


def test_utm_params_keeps_an_empty_campaign() -> None:
    assert utm_params(source="s", medium="m", campaign="")[-1] == ("utm_campaign", "")


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
    ],
)
def test_tag_places_parameters_after_query_before_fragment(url: str, expected: str) -> None:
    t = checked_tag(url)
    assert t.destination == expected
    assert t.inserted > 0


def test_tag_reports_insertion_point_and_size() -> None:
    t = checked_tag("http://a.example/p?x=1#frag")
    assert t == Tagged(f"http://a.example/p?x=1&{ADDED}#frag", 22, len(ADDED) + 1)
    assert t.destination[t.insert_at] == "&"


def test_tag_with_no_params_adds_nothing() -> None:
    assert checked_tag("http://a.example/p?x=1#f", ()) == Tagged("http://a.example/p?x=1#f", 22, 0)


def test_tag_without_campaign_adds_source_and_medium_only() -> None:
    params = utm_params(source="sms", medium="text", campaign=None)
    t = checked_tag("http://a.example/p", params)
    assert t.destination == "http://a.example/p?utm_source=sms&utm_medium=text"


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
    t = checked_tag(url)
    assert t.destination == f"http://a.example/p?{query}{added}#f"


def test_tag_adds_nothing_when_every_parameter_is_present() -> None:
    url = "http://a.example/p?utm_campaign=c&utm_medium&utm_source=#frag"
    t = checked_tag(url)
    assert t == Tagged(url, url.index("#"), 0)


def test_tag_adds_nothing_to_a_url_without_fragment_when_all_present() -> None:
    url = "http://a.example/p?utm_source=a&utm_medium=b&utm_campaign=c"
    assert checked_tag(url) == Tagged(url, len(url), 0)


def test_tag_parameter_only_in_fragment_does_not_count() -> None:
    t = checked_tag("http://a.example/p#utm_source=x")
    assert t.destination == f"http://a.example/p?{ADDED}#utm_source=x"


def test_tag_parameter_in_fragment_after_query_does_not_count() -> None:
    t = checked_tag("http://a.example/p?x=1#?utm_source=x")
    assert t.destination == f"http://a.example/p?x=1&{ADDED}#?utm_source=x"


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
    t = checked_tag("http://a.example/", (("utm_source", "a"), ("utm_source", "b")))
    assert t.destination == "http://a.example/?utm_source=a"


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
    t = checked_tag(f"http://a.example/p?{query}#x")
    assert t.destination == f"http://a.example/p?{query}&{ADDED}#x"


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
    t = checked_tag("http://a.example/p?x=1#f", params)
    assert t.destination == (
        f"http://a.example/p?x=1&utm_source=sms&utm_medium=text&utm_campaign={encoded}#f"
    )
    assert t.destination.isascii()
    assert added_pairs(t) == list(params)
    # What a server's form parser (which also turns '+' into a space) reads back.
    assert dict(parse_qsl(query_of(t.destination) or "", keep_blank_values=True)) == {
        "x": "1",
        **dict(params),
    }


def test_tag_encodes_source_and_medium_too() -> None:
    params = utm_params(source="news letter", medium="sms&mms", campaign=None)
    t = checked_tag("http://a.example/", params)
    assert t.destination == "http://a.example/?utm_source=news%20letter&utm_medium=sms%26mms"


def test_untag_is_the_inverse_of_tag() -> None:
    for url in ["http://a.example/p?x=1#f", "http://a.example", "http://a.example/?utm_source=x"]:
        assert untag(tag(url, UTM)) == url


# --- normalize_url: accepted and normalised ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            "https://bücher.example/straße?q=ä",
            "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%A4",
            id="idn",
        ),
        pytest.param("http://MÜNCHEN.de/", "http://xn--mnchen-3ya.de/", id="idn-upper-case"),
        pytest.param("http://例え.テスト/", "http://xn--r8jz45g.xn--zckzah/", id="idn-cjk"),
        pytest.param(
            "http://bücher。example/", "http://xn--bcher-kva.example/", id="idn-ideographic-dot"
        ),
        pytest.param(
            "http://Foo_Bar.bücher.de/", "http://foo_bar.xn--bcher-kva.de/", id="idn-mixed-labels"
        ),
        pytest.param(
            "HTTPS://WWW.Example.COM/Path/To?Q=A#Frag",
            "https://www.example.com/Path/To?Q=A#Frag",
            id="scheme-host-lowered-rest-kept",
        ),
        pytest.param("HtTp://a.example/", "http://a.example/", id="mixed-case-scheme"),
        pytest.param("http://a.example:8080/x", "http://a.example:8080/x", id="port"),
        pytest.param("http://a.example:080/x", "http://a.example:080/x", id="port-as-written"),
        pytest.param("http://a.example:1", "http://a.example:1", id="port-min"),
        pytest.param("http://a.example:65535/", "http://a.example:65535/", id="port-max"),
        pytest.param("http://[::1]/x", "http://[::1]/x", id="ipv6"),
        pytest.param("http://[2001:DB8::1]:8443/", "http://[2001:db8::1]:8443/", id="ipv6-port"),
        pytest.param("http://[::ffff:1.2.3.4]", "http://[::ffff:1.2.3.4]", id="ipv6-mapped"),
        pytest.param("http://192.168.0.1/", "http://192.168.0.1/", id="ipv4"),
        pytest.param("http://my_host.example/", "http://my_host.example/", id="underscore"),
        pytest.param("http://a.example./x", "http://a.example./x", id="trailing-dot"),
        pytest.param("http://localhost", "http://localhost", id="single-label"),
        pytest.param("http://a.0xfg/", "http://a.0xfg/", id="not-hex-tld"),
        pytest.param("http://a.example.1a/", "http://a.example.1a/", id="alnum-tld"),
        pytest.param("http://a.example/a b", "http://a.example/a%20b", id="space-in-path"),
        pytest.param("http://a.example/?q=a b#c d", "http://a.example/?q=a%20b#c%20d", id="spaces"),
        pytest.param("http://a.example/€", "http://a.example/%E2%82%AC", id="euro"),
        pytest.param("http://a.example/#ü", "http://a.example/#%C3%BC", id="fragment-non-ascii"),
        pytest.param("http://a.example/\u3000x", "http://a.example/%E3%80%80x", id="wide-space"),
        pytest.param("http://a.example/%2f%2F", "http://a.example/%2f%2F", id="escapes-kept"),
        pytest.param("http://a.example/%zz%", "http://a.example/%zz%", id="broken-escapes-kept"),
        pytest.param("http://a.example/?q=a+b;c", "http://a.example/?q=a+b;c", id="plus-semicolon"),
        pytest.param("http://a.example/?b=2&a=1", "http://a.example/?b=2&a=1", id="query-order"),
        pytest.param("http://a.example/p?", "http://a.example/p?", id="trailing-question"),
        pytest.param("http://a.example/p#", "http://a.example/p#", id="trailing-hash"),
        pytest.param("http://a.example/a@b\\c", "http://a.example/a@b\\c", id="at-backslash-path"),
        pytest.param("http://a.example/<\"'>", "http://a.example/<\"'>", id="ascii-kept"),
        pytest.param("http://a.example?x=1", "http://a.example?x=1", id="query-without-path"),
        pytest.param("http://A.example?x=/Y#/Z", "http://a.example?x=/Y#/Z", id="query-slash"),
        pytest.param("http://A.example#f?x=/Y", "http://a.example#f?x=/Y", id="fragment-slash"),
        pytest.param("http://A.example:81#?/", "http://a.example:81#?/", id="port-fragment"),
        pytest.param("  http://a.example/x \n", "http://a.example/x", id="whitespace-trimmed"),
        pytest.param("\t\r\nhttp://a.example/\t", "http://a.example/", id="controls-trimmed"),
        pytest.param("\u00a0http://a.example/\u3000", "http://a.example/", id="unicode-trimmed"),
    ],
)
def test_normalize_url(raw: str, expected: str) -> None:
    assert normalize(raw) == expected
    assert normalize(expected) == expected


def test_normalize_url_own_host_none_disables_the_check() -> None:
    assert normalize("http://short.example/x", own_host=None) == "http://short.example/x"


@pytest.mark.parametrize(
    "raw",
    ["http://a.short.example/", "http://short.example.com/", "http://notshort.example/"],
)
def test_normalize_url_other_hosts_than_own_are_fine(raw: str) -> None:
    assert normalize(raw) == raw


def test_normalize_url_exactly_max_length_is_accepted() -> None:
    url = "http://a.example/abc"
    assert normalize(url, max_length=len(url)) == url


def test_normalize_url_max_length_counts_utf8_bytes() -> None:
    url = "http://a.example/é"  # 18 characters, 19 bytes
    assert normalize(url, max_length=19) == "http://a.example/%C3%A9"
    with pytest.raises(InvalidURL, match="URL is longer than 18 bytes"):
        normalize(url, max_length=18)


def test_normalize_url_max_length_is_measured_after_trimming() -> None:
    url = "http://a.example/abc"
    assert normalize(f"   {url}\n", max_length=len(url)) == url


def test_normalize_url_default_limit() -> None:
    base = "http://a.example/"
    assert normalize(base + "a" * (4096 - len(base))) == base + "a" * (4096 - len(base))
    with pytest.raises(InvalidURL, match="URL is longer than 4096 bytes"):
        normalize(base + "a" * (4097 - len(base)))


# --- normalize_url: rejected ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("ftp://a.example/", "scheme must be http or https", id="ftp"),
        pytest.param("a.example/path", "scheme must be http or https", id="no-scheme"),
        pytest.param("//a.example/path", "scheme must be http or https", id="scheme-relative"),
        pytest.param("javascript:alert(1)", "scheme must be http or https", id="javascript"),
        pytest.param("JAVASCRIPT://%0aalert(1)", "scheme must be http or https", id="js-slashes"),
        pytest.param("data:text/html,hi", "scheme must be http or https", id="data"),
        pytest.param("mailto:a@b.example", "scheme must be http or https", id="mailto"),
        pytest.param("httpx://a.example/", "scheme must be http or https", id="httpx"),
        pytest.param(" http ://a.example/", "scheme must be http or https", id="space-in-scheme"),
        pytest.param("", "scheme must be http or https", id="empty"),
        pytest.param("   ", "scheme must be http or https", id="blank"),
        pytest.param("http:/a.example/", "scheme must be followed by ://", id="one-slash"),
        pytest.param("http:a.example/", "scheme must be followed by ://", id="no-slash"),
        pytest.param("http:\\\\a.example/", "scheme must be followed by ://", id="backslashes"),
        pytest.param("http:///x", "URL must have a host", id="missing-host"),
        pytest.param("http://", "URL must have a host", id="nothing-after-scheme"),
        pytest.param("http://?x=1", "URL must have a host", id="query-no-host"),
        pytest.param("http://#f", "URL must have a host", id="fragment-no-host"),
        pytest.param("http://:80/", "URL must have a host", id="port-no-host"),
        pytest.param("http://u:p@h.example/", "URL must not contain user info", id="userinfo"),
        pytest.param("http://u@h.example/", "URL must not contain user info", id="user"),
        pytest.param("http://@h.example/", "URL must not contain user info", id="empty-user"),
        pytest.param(
            "http://good.example@evil.example/", "URL must not contain user info", id="phish"
        ),
        pytest.param(
            "http://evil.example\\@good.example/", "URL must not contain a backslash", id="bs-at"
        ),
        pytest.param("http://a.example\\b/", "URL must not contain a backslash", id="backslash"),
        pytest.param("http://a.example:/", "port must be a number", id="empty-port"),
        pytest.param("http://a.example:0/", "port must be a number", id="port-zero"),
        pytest.param("http://a.example:65536/", "port must be a number", id="port-too-big"),
        pytest.param("http://a.example:8o/", "port must be a number", id="port-letter"),
        pytest.param("http://a.example:-1/", "port must be a number", id="port-negative"),
        pytest.param("http://a.example:+80/", "port must be a number", id="port-plus"),
        pytest.param("http://a.example: 80/", "port must be a number", id="port-space"),
        pytest.param("http://a.example:\uff18\uff10/", "port must be a number", id="port-wide"),
        pytest.param("http://a.example:\u00b2/", "port must be a number", id="port-superscript"),
        pytest.param("http://a.example:80:80/", "port must be a number", id="two-ports"),
        pytest.param("http://a.example:" + "9" * 30, "port must be a number", id="port-huge"),
        pytest.param("http://[::1]:/", "port must be a number", id="ipv6-empty-port"),
        pytest.param("http://[::1]:99999/", "port must be a number", id="ipv6-bad-port"),
        pytest.param("http://[::1/", "IPv6 address must end with ']'", id="ipv6-unclosed"),
        pytest.param("http://[::1]x/", "IPv6 address must be followed by", id="ipv6-trailing"),
        pytest.param("http://[zz]/", "not a valid IPv6 address", id="ipv6-bad"),
        pytest.param("http://[1.2.3.4]/", "not a valid IPv6 address", id="ipv6-v4"),
        pytest.param("http://[v1.x]/", "not a valid IPv6 address", id="ipv-future"),
        pytest.param("http://[]/", "not a valid IPv6 address", id="ipv6-empty"),
        pytest.param("http://[fe80::1%25eth0]/", "zone identifier", id="ipv6-zone"),
        pytest.param("http://::1/", "URL must have a host", id="ipv6-unbracketed"),
        pytest.param("http://a b.example/", "not a valid host name", id="space-in-host"),
        pytest.param("http://a..example/", "not a valid host name", id="empty-label"),
        pytest.param("http://.a.example/", "not a valid host name", id="leading-dot"),
        pytest.param("http://a.example../", "not a valid host name", id="two-trailing-dots"),
        pytest.param("http://a%41.example/", "not a valid host name", id="percent-in-host"),
        pytest.param("http://a]b/", "not a valid host name", id="bracket-in-host"),
        pytest.param("http://a.example;x/", "not a valid host name", id="semicolon-in-host"),
        pytest.param("http://" + "a" * 64 + ".example/", "not a valid host name", id="label-64"),
        pytest.param(
            "http://" + ".".join(["a" * 63] * 4) + "/", "not a valid host name", id="host-255"
        ),
        pytest.param("http://999.1.1.1/", "not a valid IPv4 address", id="ipv4-range"),
        pytest.param("http://1.2.3/", "not a valid IPv4 address", id="ipv4-short"),
        pytest.param("http://010.0.0.1/", "not a valid IPv4 address", id="ipv4-octal"),
        pytest.param("http://a.example.123/", "not a valid IPv4 address", id="numeric-tld"),
        pytest.param("http://a.example.0x1f/", "not a valid IPv4 address", id="hex-tld"),
        pytest.param("http://a.example.0X/", "not a valid IPv4 address", id="bare-0x-tld"),
        pytest.param("http://0x7f.0.0.1/", "not a valid IPv4 address", id="ipv4-hex"),
        pytest.param("http://-ü.example/", "not a valid internationalised name", id="idn-hyphen"),
        pytest.param("http://bü_cher.example/", "not a valid internationalised", id="idn-under"),
        pytest.param("http://\u0301.example/", "not a valid internationalised", id="idn-combining"),
        pytest.param("http://\u200b.example/", "not a valid internationalised", id="idn-empty"),
        pytest.param("http://" + "ü" * 70 + ".de/", "not a valid international", id="idn-long"),
        pytest.param("http://a.example/\ud800", "not valid Unicode", id="lone-surrogate"),
    ],
)
def test_normalize_url_rejects(raw: str, message: str) -> None:
    with pytest.raises(InvalidURL, match=re.escape(message)):
        normalize(raw)


@pytest.mark.parametrize(
    "control",
    ["\t", "\r", "\n", "\x00", "\x01", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9f"],
    ids=repr,
)
@pytest.mark.parametrize(
    "template",
    ["http://a.example/a{}b", "http://a{}b.example/", "http://a.example/?q={}x", "http{}://a.ex/"],
)
def test_normalize_url_rejects_control_characters_inside(control: str, template: str) -> None:
    with pytest.raises(InvalidURL, match="URL must not contain control characters"):
        normalize(template.format(control))


@pytest.mark.parametrize(
    "raw",
    [
        "http://short.example/x",
        "https://SHORT.Example/x",
        "http://short.example:8443/x",
        "http://short.example:80",
        "http://short.example./x",
        "http://short.example?x=1",
        "http://short.example#f",
    ],
)
def test_normalize_url_rejects_own_host(raw: str) -> None:
    message = "URL must not point at this service's own host (short.example)"
    with pytest.raises(InvalidURL, match=re.escape(message)):
        normalize(raw)


@pytest.mark.parametrize(
    ("raw", "own_host"),
    [
        pytest.param("http://bücher.example/", "xn--bcher-kva.example", id="idn-url"),
        pytest.param("http://xn--bcher-kva.example/", "bücher.example", id="idn-own-host"),
        pytest.param("http://127.0.0.1:8080/x", "127.0.0.1", id="ipv4"),
        pytest.param("http://[::1]:8080/", "::1", id="ipv6-as-urlsplit-gives-it"),
        pytest.param("http://[::1]/", "[::1]", id="ipv6-bracketed"),
        pytest.param("http://[0:0::1]/", "::1", id="ipv6-other-spelling"),
        pytest.param("http://[::FFFF:1.2.3.4]/", "::ffff:102:304", id="ipv6-mapped"),
        pytest.param("http://short.example/", "short.example.", id="own-host-trailing-dot"),
    ],
)
def test_normalize_url_rejects_own_host_in_any_spelling(raw: str, own_host: str) -> None:
    with pytest.raises(InvalidURL, match="own host"):
        normalize(raw, own_host=own_host)


@pytest.mark.parametrize("own_host", ["", "::2", "[zz", "bü_cher.example"])
def test_normalize_url_odd_own_hosts_block_nothing_else(own_host: str) -> None:
    for url in ["http://[::1]/", "http://a.example/", "http://xn--bcher-kva.example/"]:
        assert normalize(url, own_host=own_host) == url


def test_normalize_url_too_long_by_one_byte() -> None:
    url = "http://a.example/abc"
    with pytest.raises(InvalidURL, match=f"URL is longer than {len(url) - 1} bytes"):
        normalize(url, max_length=len(url) - 1)


def test_invalid_url_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="scheme"):
        normalize("ftp://a.example/")


def test_normalize_then_tag() -> None:
    url = normalize("  HTTPS://Bücher.example:8443/Straße?q=ä&utm_source=x#Frag ment ")
    assert url == "https://xn--bcher-kva.example:8443/Stra%C3%9Fe?q=%C3%A4&utm_source=x#Frag%20ment"
    t = checked_tag(url, utm_params(source="sms", medium="text", campaign="🎉 Black Friday"))
    assert t.destination == (
        "https://xn--bcher-kva.example:8443/Stra%C3%9Fe?q=%C3%A4&utm_source=x"
        "&utm_medium=text&utm_campaign=%F0%9F%8E%89%20Black%20Friday#Frag%20ment"
    )


# --- properties ----------------------------------------------------------------------------

# Printable ASCII (URL delimiters and space included), or anything but controls (rejected) and
# surrogates (not encodable). A URL draws from one or the other, so pure-ASCII URLs with spaces,
# the fast path's edge, are as common as URLs full of non-ASCII characters.
_ASCII = "".join(map(chr, range(0x20, 0x7F)))
_LABEL = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1)
# Hosts paired with the form normalize_url must store.
_IDN_HOSTS = [
    ("bücher.example", "xn--bcher-kva.example"),
    ("MÜNCHEN.de", "xn--mnchen-3ya.de"),
    ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
    ("παράδειγμα.δοκιμή", "xn--hxajbheg2az3al.xn--jxalpdlp"),
    ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
    ("www.café.example", "www.xn--caf-dma.example"),
    ("[::1]", "[::1]"),
    ("[2001:DB8::A]", "[2001:db8::a]"),
    ("10.0.0.1", "10.0.0.1"),
]
# Query fields that do or do not count as the UTM parameters being present.
_UTM_LIKE_FIELDS = [
    "utm_source=x",
    "utm_source=",
    "utm_source",
    "utm_medium=a+b",
    "utm%5Fcampaign=%20",
    "UTM_SOURCE=1",
    "utm_campaign",
    "utm+medium=1",
    "",
]


def url_text(wide: bool, exclude: str, max_size: int) -> st.SearchStrategy[str]:
    if wide:
        chars = st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=exclude)
        return st.text(chars, max_size=max_size)
    return st.text([c for c in _ASCII if c not in exclude], max_size=max_size)


class UrlParts(NamedTuple):
    scheme: str
    host: str
    stored_host: str
    port: str  # with its ':', or ''
    rest: str  # path, query and fragment as written

    @property
    def raw(self) -> str:
        return f"{self.scheme}://{self.host}{self.port}{self.rest}"


@st.composite
def ascii_hosts(draw: st.DrawFn) -> tuple[str, str]:
    labels = draw(st.lists(_LABEL.map(lambda label: label[:63]), max_size=3))
    tld = draw(st.sampled_from(["example", "COM", "xn--p1ai", "Test"]))
    host = ".".join([*labels, tld]) + draw(st.sampled_from(["", "."]))
    return host, host.lower()


@st.composite
def url_parts(draw: st.DrawFn) -> UrlParts:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    host, stored_host = draw(st.one_of(ascii_hosts(), st.sampled_from(_IDN_HOSTS)))
    port = draw(st.sampled_from(["", ":80", ":8080", ":065535", ":1"]))
    wide = draw(st.booleans())
    path = draw(url_text(wide, "?#", 20))
    field = st.sampled_from(_UTM_LIKE_FIELDS) | url_text(wide, "#&", 10)
    query = draw(st.none() | st.lists(field, max_size=5).map("&".join))
    fragment = draw(st.none() | url_text(wide, "", 20))
    rest = "/" + path if path or draw(st.booleans()) else ""
    rest += "" if query is None else "?" + query
    rest += "" if fragment is None else "#" + fragment
    return UrlParts(scheme, host, stored_host, port, rest)


campaign_params = st.builds(
    utm_params, source=st.text(), medium=st.text(), campaign=st.none() | st.text()
)


def encode_like_normalize(text: str) -> str:
    """The per-character oracle: only non-ASCII characters and spaces are escaped."""
    return "".join(c if c.isascii() and c != " " else quote(c, safe="") for c in text)


@properties
@given(url_parts())
def test_property_normalize_url_encodes_only_what_it_must(parts: UrlParts) -> None:
    url = normalize(parts.raw)
    assert url.isascii()
    assert " " not in url
    prefix = f"{parts.scheme.lower()}://{parts.stored_host}{parts.port}"
    assert url.startswith(prefix)
    # Trimming can only have removed trailing whitespace of the last piece.
    assert url[len(prefix) :] == encode_like_normalize(parts.rest.rstrip())


@properties
@given(url_parts())
def test_property_normalize_url_is_idempotent(parts: UrlParts) -> None:
    url = normalize(parts.raw)
    assert normalize(url) == url


@properties
@given(st.text(max_size=60), st.sampled_from(["", "http://", "https://a.example"]))
def test_property_normalize_url_accepts_or_raises_invalid_url(text: str, prefix: str) -> None:
    try:
        url = normalize(prefix + text)
    except InvalidURL:
        return
    assert url.isascii()
    assert normalize(url) == url


@properties
@given(url_parts(), campaign_params)
def test_property_tag_is_idempotent(parts: UrlParts, params: tuple[tuple[str, str], ...]) -> None:
    t = checked_tag(normalize(parts.raw), params)
    again = checked_tag(t.destination, params)
    assert again.inserted == 0
    assert again.destination == t.destination


@properties
@given(url_parts(), campaign_params)
def test_property_tag_keeps_query_prefix_and_fragment(
    parts: UrlParts, params: tuple[tuple[str, str], ...]
) -> None:
    url = normalize(parts.raw)
    t = checked_tag(url, params)
    assert t.destination.isascii()
    # The part before the query is untouched, the old query is a byte-prefix of the new one.
    before_query = url.partition("#")[0].partition("?")[0]
    assert t.destination.startswith(before_query)
    old_query, new_query = query_of(url), query_of(t.destination)
    if t.inserted:
        assert new_query is not None
        assert new_query.startswith(old_query or "")
        # Exactly one '&' between an existing non-empty query and the new fields, unless it
        # already ends with one; the new fields are the added pairs, value-encoded.
        old = old_query or ""
        joiner = "&" if old and not old.endswith("&") else ""
        fields = "&".join(f"{name}={quote(value, safe='')}" for name, value in added_pairs(t))
        assert new_query == old + joiner + fields
    else:
        assert new_query == old_query
    # The fragment stays last and unchanged.
    assert split_fragment(t.destination)[1] == split_fragment(url)[1]
    assert t.destination.find("#") == (-1 if "#" not in url else url.find("#") + t.inserted)


@properties
@given(url_parts(), campaign_params)
def test_property_added_values_decode_back(
    parts: UrlParts, params: tuple[tuple[str, str], ...]
) -> None:
    url = normalize(parts.raw)
    t = checked_tag(url, params)
    # The standard library's parser decides what was already there ('+' in names aside,
    # which never matters for utm_* names).
    present = {name for name, _ in parse_qsl(query_of(url) or "", keep_blank_values=True)}
    assert added_pairs(t) == [(name, value) for name, value in params if name not in present]


@properties
@given(url_parts(), campaign_params)
def test_property_untag_inverts_tag(parts: UrlParts, params: tuple[tuple[str, str], ...]) -> None:
    url = normalize(parts.raw)
    assert untag(tag(url, params)) == url
