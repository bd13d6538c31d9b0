"""admin.tagging's invariants, over the URLs and parameters Hypothesis draws."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl, quote

from hypothesis import given, settings
from hypothesis import strategies as st

from admin.exceptions import InvalidURL
from admin.tagging import utm_params
from tests.tagged_urls import added_pairs, checked_tag, normalize, query_of

# The first IDNA call loads Unicode tables, which can blow Hypothesis' per-example deadline.
properties = settings(deadline=None, max_examples=200)

# Printable ASCII (URL delimiters and space included), or anything but controls (rejected) and
# surrogates (not encodable). A URL draws from one or the other, so pure-ASCII URLs with spaces,
# the fast path's edge, are as common as URLs full of non-ASCII characters.
_ASCII = "".join(map(chr, range(0x20, 0x7F)))
# ASCII labels that are not IDNA ones: a label starting `xn--` must decode (the IDN hosts and
# the xn--p1ai TLD below are those), and a random one such as `XN--` is rightly refused.
_LABEL = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1
).filter(lambda label: label[:4].lower() != "xn--")
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
def test_property_normalize_url_encodes_only_what_it_must_and_is_idempotent(
    parts: UrlParts,
) -> None:
    url = normalize(parts.raw)
    assert url.isascii()
    assert " " not in url
    prefix = f"{parts.scheme.lower()}://{parts.stored_host}{parts.port}"
    assert url.startswith(prefix)
    # Trimming can only have removed trailing whitespace of the last piece.
    assert url[len(prefix) :] == encode_like_normalize(parts.rest.rstrip())
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
def test_property_tag_is_idempotent_and_untag_inverts_it(
    parts: UrlParts, params: tuple[tuple[str, str], ...]
) -> None:
    tagged = checked_tag(normalize(parts.raw), params)  # checks untag(tagged) == url
    again = checked_tag(tagged.destination, params)
    assert again.inserted == 0
    assert again.destination == tagged.destination


@properties
@given(url_parts(), campaign_params)
def test_property_tag_adds_the_missing_pairs_after_the_query_before_the_fragment(
    parts: UrlParts, params: tuple[tuple[str, str], ...]
) -> None:
    url = normalize(parts.raw)
    tagged = checked_tag(url, params)
    assert tagged.destination.isascii()
    # The standard library's parser decides what was already there ('+' in names aside,
    # which never matters for utm_* names); the added values decode back.
    present = {name for name, _ in parse_qsl(query_of(url) or "", keep_blank_values=True)}
    assert added_pairs(tagged) == [(name, value) for name, value in params if name not in present]
    # The part before the query is untouched, the old query is a byte-prefix of the new one.
    before_query = url.partition("#")[0].partition("?")[0]
    assert tagged.destination.startswith(before_query)
    old_query, new_query = query_of(url), query_of(tagged.destination)
    if tagged.inserted:
        # The old query, exactly one '&' unless it is empty or already ends with one, then the
        # added pairs, value-encoded.
        old = old_query or ""
        joiner = "&" if old and not old.endswith("&") else ""
        fields = "&".join(f"{name}={quote(value, safe='')}" for name, value in added_pairs(tagged))
        assert new_query == old + joiner + fields
    else:
        assert new_query == old_query
    # The fragment stays last and unchanged.
    assert tagged.destination.partition("#")[1:] == url.partition("#")[1:]
    assert tagged.destination.find("#") == (
        -1 if "#" not in url else url.find("#") + tagged.inserted
    )
