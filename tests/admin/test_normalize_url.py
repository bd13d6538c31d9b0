"""admin.tagging.normalize_url: the URLs it accepts and their stored form, the ones it refuses."""

from __future__ import annotations

import re

import pytest

from admin.exceptions import InvalidURL
from admin.tagging import utm_params
from tests.tagged_urls import MAX_LENGTH, OWN_HOST, checked_tag, normalize

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
        pytest.param("http://XN--MNCHEN-3YA.de/", "http://xn--mnchen-3ya.de/", id="idna-upper"),
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
        # Hosts other than OWN_HOST (short.example), however alike.
        pytest.param("http://a.short.example/", "http://a.short.example/", id="own-subdomain"),
        pytest.param("http://short.example.com/", "http://short.example.com/", id="own-prefix"),
        pytest.param("http://notshort.example/", "http://notshort.example/", id="own-suffix"),
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


ABC = "http://a.example/abc"
AT_LIMIT = "http://a.example/" + "a" * (MAX_LENGTH - len("http://a.example/"))


@pytest.mark.parametrize(
    ("raw", "max_length", "expected"),
    [
        pytest.param(ABC, len(ABC), ABC, id="exactly-max"),
        pytest.param(ABC, len(ABC) - 1, None, id="one-byte-over"),
        pytest.param(f"   {ABC}\n", len(ABC), ABC, id="measured-after-trimming"),
        # 18 characters, 19 bytes
        pytest.param("http://a.example/é", 19, "http://a.example/%C3%A9", id="utf8-bytes"),
        pytest.param("http://a.example/é", 18, None, id="utf8-bytes-over"),
        pytest.param(AT_LIMIT, MAX_LENGTH, AT_LIMIT, id="default-limit"),
        pytest.param(AT_LIMIT + "a", MAX_LENGTH, None, id="default-limit-over"),
    ],
)
def test_normalize_url_max_length_counts_utf8_bytes_of_the_trimmed_url(
    raw: str, max_length: int, expected: str | None
) -> None:
    if expected is None:
        with pytest.raises(InvalidURL, match=f"URL is longer than {max_length} bytes"):
            normalize(raw, max_length=max_length)
    else:
        assert normalize(raw, max_length=max_length) == expected


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
        # Issue 10: labels in IDNA's encoded form were never decoded, so any was taken.
        pytest.param("https://xn--.example/", "not valid IDNA", id="idna-empty"),
        pytest.param("https://XN--.example/", "not valid IDNA", id="idna-empty-upper"),
        pytest.param("https://shop.xn--zz/", "not valid IDNA", id="idna-broken-punycode"),
        pytest.param("https://xn--bcher-kv.example/", "not valid IDNA", id="idna-cut-short"),
        pytest.param("https://xn--abc-.example/", "not valid IDNA", id="idna-of-ascii"),
        pytest.param("https://xn--a.example/", "not valid IDNA", id="idna-control"),
        pytest.param("https://xn--ls8h.example/", "not valid IDNA", id="idna-emoji"),
        pytest.param("https://xn--a_b.example/", "not valid IDNA", id="idna-underscore"),
    ],
)
def test_normalize_url_rejects(raw: str, message: str) -> None:
    with pytest.raises(InvalidURL, match=re.escape(message)) as raised:
        normalize(raw)
    assert isinstance(raised.value, ValueError)  # so that pydantic validators can raise it


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
    ("raw", "own_host"),
    [
        pytest.param("http://short.example/x", OWN_HOST, id="own-host"),
        pytest.param("https://SHORT.Example/x", OWN_HOST, id="upper-case"),
        pytest.param("http://short.example:8443/x", OWN_HOST, id="other-port"),
        pytest.param("http://short.example:80", OWN_HOST, id="port-no-path"),
        pytest.param("http://short.example./x", OWN_HOST, id="trailing-dot"),
        pytest.param("http://short.example?x=1", OWN_HOST, id="query-no-path"),
        pytest.param("http://short.example#f", OWN_HOST, id="fragment-no-path"),
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
    message = f"URL must not point at this service's own host ({own_host})"
    with pytest.raises(InvalidURL, match=re.escape(message)):
        normalize(raw, own_host=own_host)


# Issue 10: `localhost` and an IPv4-mapped IPv6 address got past an own host of 127.0.0.1.
LOOPBACK_SPELLINGS = [
    "http://localhost:8080/",
    "http://LocalHost./",
    "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",  # fullwidth
    "http://shop.localhost/",
    "http://[::ffff:127.0.0.1]:8080/",
    "http://[::FFFF:7f00:1]/",
    "http://127.0.0.1./",
    "http://127.0.0.2/",
    "http://127.255.255.254/",
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://0.0.0.0/",
    "http://[::]/",
]


@pytest.mark.parametrize("own_host", ["127.0.0.1", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"])
@pytest.mark.parametrize("raw", LOOPBACK_SPELLINGS)
def test_an_own_host_on_loopback_refuses_every_loopback_host(raw: str, own_host: str) -> None:
    message = f"URL must not point at this service's own host ({own_host})"
    with pytest.raises(InvalidURL, match=re.escape(message)):
        normalize(raw, own_host=own_host)


@pytest.mark.parametrize(
    ("raw", "own_host"),
    [
        ("http://[::ffff:1.2.3.4]/", "1.2.3.4"),
        ("http://[::ffff:102:304]/", "1.2.3.4"),
        ("http://1.2.3.4/", "::ffff:1.2.3.4"),
        ("http://SHORT.example./", "short.example"),
    ],
)
def test_an_own_host_is_refused_in_every_spelling_of_its_address(raw: str, own_host: str) -> None:
    with pytest.raises(InvalidURL, match="own host"):
        normalize(raw, own_host=own_host)


def test_an_own_host_elsewhere_refuses_no_loopback_host() -> None:
    for url in ["http://localhost/", "http://127.0.0.1:8080/", "http://[::1]/", "http://0.0.0.0/"]:
        assert normalize(url, own_host=OWN_HOST) == url
    assert normalize("http://127.0.0.1/", own_host="1.2.3.4") == "http://127.0.0.1/"
    assert normalize("http://short.example.com/", own_host="localhost") == (
        "http://short.example.com/"
    )


# None disables the check.
@pytest.mark.parametrize("own_host", [None, "", "::2", "[zz", "bü_cher.example"])
def test_normalize_url_no_or_odd_own_host_blocks_nothing_else(own_host: str | None) -> None:
    urls = ["http://[::1]/", "http://a.example/", "http://xn--bcher-kva.example/"]
    for url in [*urls, "http://short.example/x"]:
        assert normalize(url, own_host=own_host) == url


def test_normalize_then_tag() -> None:
    url = normalize("  HTTPS://Bücher.example:8443/Straße?q=ä&utm_source=x#Frag ment ")
    assert url == "https://xn--bcher-kva.example:8443/Stra%C3%9Fe?q=%C3%A4&utm_source=x#Frag%20ment"
    tagged = checked_tag(url, utm_params(source="sms", medium="text", campaign="🎉 Black Friday"))
    assert tagged.destination == (
        "https://xn--bcher-kva.example:8443/Stra%C3%9Fe?q=%C3%A4&utm_source=x"
        "&utm_medium=text&utm_campaign=%F0%9F%8E%89%20Black%20Friday#Frag%20ment"
    )
