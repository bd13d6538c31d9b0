"""Pure URL handling for links: validate and normalise a destination, add UTM parameters.

No I/O and no aiohttp here: `admin.service` calls these for every link of a batch (10,000 per
request), so they work on plain strings (`find`/`partition`/`split`) with a fast path for the
common pure-ASCII URL, and never round-trip a URL through a parser that re-encodes it.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote, unquote

import idna

from admin.exceptions import InvalidURL

# C0 controls (tab, CR and LF included), DEL and the C1 controls. They are rejected rather than
# encoded: in an SMS or a Location header they are either invisible or a header-splitting attempt.
CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f"  # a regex character range, for models' patterns too
_CONTROL_RE = re.compile(f"[{CONTROL_CHARACTERS}]")
# A lower-cased ASCII host name: labels of 1-63 letters, digits, '-' or '_' (underscores occur
# in real host names even though DNS host names forbid them), one optional trailing dot.
_HOST_NAME_RE = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*\.?")
_MAX_HOST_NAME = 253
# Every printable ASCII character except space stays as written in path, query and fragment:
# the stored URL must be exactly what the customer gave us, only made pure ASCII. '%' is in the
# set so existing escapes are kept (`%2f` stays `%2f`), never double-encoded.
_KEEP_IN_URL = "".join(chr(c) for c in range(0x21, 0x7F))
_MAX_PORT = 65535


class Tagged(NamedTuple):
    destination: str  # the final, pure-ASCII, tagged URL
    insert_at: int  # where the added parameters (with their leading '?' or '&', if any) start
    inserted: int  # number of characters added (0 when nothing was added)
    # invariant: url == destination[:insert_at] + destination[insert_at + inserted:], which
    # `redirector.store.record.Link.url` gives back from the stored link


def normalize_url(raw: str, *, max_length: int, own_host: str | None) -> str:
    """Validate a URL to shorten and return its pure-ASCII stored form.

    Surrounding whitespace is trimmed; the scheme and host are lower-cased, an internationalised
    host becomes its IDNA form, and non-ASCII characters and spaces in path, query and fragment
    are percent-encoded as UTF-8. Nothing else changes. `max_length` counts UTF-8 bytes of the
    trimmed input. `own_host` is this service's lower-cased host as `urlsplit().hostname` gives
    it (IPv6 with or without brackets); a URL pointing there is refused, whatever its port, to
    prevent redirect loops. None disables that check.
    Raises InvalidURL naming the rule broken.
    """
    url = raw.strip()
    _check_length(url, max_length)
    # isprintable() is one C loop that is false for every control character; the regex only
    # runs for the rare URL with other unprintable characters (non-ASCII spaces, format marks).
    if not url.isprintable() and _CONTROL_RE.search(url):
        raise InvalidURL("URL must not contain control characters")
    scheme, authority, rest = _split_url(url)
    origin = scheme + "://" + _normalize_authority(authority, own_host)
    if not rest.isascii() or " " in rest:
        rest = quote(rest, safe=_KEEP_IN_URL)
    return origin + rest


def utm_params(
    *,
    source: str,
    medium: str,
    campaign: str | None,
    campaign_source: str | None = None,
    campaign_medium: str | None = None,
) -> tuple[tuple[str, str], ...]:
    """The UTM parameters of a link, in the order they are added to its URL: its campaign's
    own source and medium when it has them, else `source` and `medium` (the configured
    defaults); utm_campaign is the campaign's name, absent for a link without a campaign."""
    params = (("utm_source", campaign_source or source), ("utm_medium", campaign_medium or medium))
    if campaign is None:
        return params
    return (*params, ("utm_campaign", campaign))


def tag(url: str, params: Sequence[tuple[str, str]]) -> Tagged:
    """Append each (name, value) the URL's query does not already have.

    `url` is already normalised (ASCII). Added parameters go after the existing query and before
    the fragment; everything already in the URL is kept byte for byte. Values are encoded so
    that `unquote` gives them back exactly; names are added as given (plain ASCII).
    """
    hash_at = url.find("#")
    insert_at = len(url) if hash_at < 0 else hash_at
    question = url.find("?", 0, insert_at)
    if question < 0:
        separator = "?"
        present = _NONE_PRESENT
    else:
        query = url[question + 1 : insert_at]
        # `http://a/?` has an empty query and a query ending in '&' already has its separator:
        # adding '&' there would only create an empty field.
        separator = "" if not query or query.endswith("&") else "&"
        present = _present_names(query, params)
    fields = _fields(params if isinstance(params, tuple) else tuple(params), present)
    if not fields:
        return Tagged(url, insert_at, 0)
    addition = separator + fields
    return Tagged(url[:insert_at] + addition + url[insert_at:], insert_at, len(addition))


def _check_length(url: str, max_length: int) -> None:
    try:
        size = len(url) if url.isascii() else len(url.encode())
    except UnicodeEncodeError:
        raise InvalidURL("URL is not valid Unicode (it contains a lone surrogate)") from None
    if size > max_length:
        raise InvalidURL(f"URL is longer than {max_length} bytes")


def _split_url(url: str) -> tuple[str, str, str]:
    """Split into (lower-cased scheme, authority, path + query + fragment)."""
    if url.startswith("https://"):
        scheme, start = "https", 8
    elif url.startswith("http://"):
        scheme, start = "http", 7
    else:
        scheme, start = _unusual_scheme(url)
    # The authority ends at the first '/', '?' or '#' (RFC 3986 section 3.2). Usually that is
    # a '/'; '?' and '#' are then only looked for in the short piece before it.
    end = url.find("/", start)
    if end < 0:
        end = len(url)
    for delimiter in "?#":  # a '#' only before any '?', since what follows it is cut off
        cut = url.find(delimiter, start, end)
        if cut >= 0:
            end = cut
    return scheme, url[start:end], url[end:]


def _unusual_scheme(url: str) -> tuple[str, int]:
    """The scheme of a URL that does not start with a lower-case 'http://' or 'https://',
    and where its authority starts."""
    colon = url.find(":")
    if colon < 0:
        raise InvalidURL("URL has no scheme; scheme must be http or https")
    scheme = url[:colon].lower()
    if scheme != "http" and scheme != "https":
        raise InvalidURL("scheme must be http or https")
    if not url.startswith("//", colon + 1):
        raise InvalidURL("scheme must be followed by ://")
    return scheme, colon + 3


# A batch sends thousands of links to a handful of hosts, so the checked and normalised
# `host[:port]` is cached (a failure raises each time: exceptions are not cached).
@lru_cache(maxsize=4096)
def _normalize_authority(authority: str, own_host: str | None) -> str:
    # Browsers read '\' as '/' in http(s) authorities, so `http://evil\@good/` would not go
    # where it appears to go. Checked before '@' because it is the more precise message.
    if "\\" in authority:
        raise InvalidURL("URL must not contain a backslash in its host part")
    if "@" in authority:
        raise InvalidURL("URL must not contain user info")
    host, port = _split_host_port(authority)
    host = _normalize_host(host)
    if own_host is not None and _host_key(host) == _host_key(own_host):
        raise InvalidURL(f"URL must not point at this service's own host ({own_host})")
    return host + port


def _split_host_port(authority: str) -> tuple[str, str]:
    """Split into (host as written, port with its leading ':' or ''), checking the port."""
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise InvalidURL("IPv6 address must end with ']'")
        host, port = authority[: close + 1], authority[close + 1 :]
        if port and not port.startswith(":"):
            raise InvalidURL("IPv6 address must be followed by ':port' or nothing")
    else:
        colon = authority.find(":")
        host, port = (authority, "") if colon < 0 else (authority[:colon], authority[colon:])
    if not host:
        raise InvalidURL("URL must have a host")
    digits = port[1:]
    # The length check keeps int() away from absurd inputs; leading zeros are allowed, and kept.
    if port and (
        not (digits.isascii() and digits.isdigit())
        or len(digits.lstrip("0")) > len(str(_MAX_PORT))
        or not 0 < int(digits) <= _MAX_PORT
    ):
        raise InvalidURL(f"port must be a number from 1 to {_MAX_PORT}")
    return host, port


def _normalize_host(host: str) -> str:
    if host.startswith("["):
        return _normalize_ipv6(host)
    ascii_host = ".".join(_idna_label(label) for label in host.split("."))
    if not _HOST_NAME_RE.fullmatch(ascii_host) or len(ascii_host.rstrip(".")) > _MAX_HOST_NAME:
        raise InvalidURL(f"host {host!r} is not a valid host name")
    # Browsers read a host whose last label is a number (decimal, or hex with 0x) as an IPv4
    # address (WHATWG URL "ends in a number"), so such a host must be a valid one.
    last = ascii_host.rstrip(".").rpartition(".")[2]
    if last.isdigit() or (last.startswith("0x") and not last[2:].strip(string.hexdigits)):
        try:
            ipaddress.IPv4Address(ascii_host.rstrip("."))
        except ValueError:
            raise InvalidURL(f"host {host!r} is not a valid IPv4 address") from None
    return ascii_host


def _idna_label(label: str) -> str:
    """One label in its ASCII form; ASCII labels skip IDNA so '_' stays allowed in them,
    except for an IDNA one (`xn--`), which must decode to a label IDNA allows, as the Unicode
    labels that it encodes here do: a browser refuses `xn--.example` or `xn--zz.example`."""
    if label.isascii():
        ascii_label = label.lower()
        if ascii_label.startswith("xn--"):
            try:
                idna.decode(ascii_label)
            except UnicodeError as exc:  # idna.IDNAError and its subclasses
                raise InvalidURL(f"host label {label!r} is not valid IDNA: {exc}") from None
        return ascii_label
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except UnicodeError as exc:  # idna.IDNAError and its subclasses
        raise InvalidURL(
            f"host label {label!r} is not a valid internationalised name: {exc}"
        ) from None


def _normalize_ipv6(host: str) -> str:
    literal = host[1:-1]
    # A zone id (`%25eth0`) only means something on the machine that wrote the URL.
    if "%" in literal:
        raise InvalidURL("IPv6 address must not have a zone identifier")
    try:
        ipaddress.IPv6Address(literal)
    except ValueError:
        raise InvalidURL(f"host {host!r} is not a valid IPv6 address") from None
    return host.lower()


# Where every loopback host is compared: no host name is spelled so.
_LOOPBACK = "<loopback>"


@lru_cache(maxsize=4096)
def _host_key(host: str) -> str:
    """`host` as it is compared with the own host, whichever way either is written: lower
    case, IDNA, without one final dot (which names the same host), an IPv6 address canonical
    and bare and an IPv4-mapped one as its IPv4 address; and every host that is this machine
    to whoever follows the link as one (`localhost` and `*.localhost`, which resolvers answer
    with loopback addresses without asking DNS, 127.0.0.0/8, ::1, and 0.0.0.0 and ::, which
    connect to this machine), so an own host on loopback refuses them all. Nothing is looked
    up: a name that resolves to the own host is not caught."""
    bare = host.removeprefix("[").removesuffix("]").lower()
    bare = bare.removesuffix(".")
    if bare == "localhost" or bare.endswith(".localhost"):
        return _LOOPBACK
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return _LOOPBACK if address.is_loopback or address.is_unspecified else str(address)
    if not bare.isascii():
        try:
            return _host_key(idna.encode(bare, uts46=True).decode("ascii"))
        except UnicodeError:  # not a name a URL could hold: compare it as written
            pass
    return bare


_NONE_PRESENT: frozenset[str] = frozenset()


def _present_names(query: str, params: Sequence[tuple[str, str]]) -> frozenset[str]:
    """Which names of `params` the query has, as the name of an '&'-separated field (a field
    without '=' is all name).

    Names are compared percent-decoded, because `utm%5Fsource` is `utm_source` to every server
    that parses the query. '+' is not decoded: it means a space only in form encoding, and no
    name we add contains a space or a '+', so decoding it could never make a name match ours.
    ';' is not a separator (only '&' is, as in WHATWG URLSearchParams).
    """
    # Fast path: a name that does not even occur in the query is not one of its fields.
    if "%" not in query and not any(name in query for name, _ in params):
        return _NONE_PRESENT
    wanted = {name for name, _ in params}
    present = set()
    for field in query.split("&"):
        name = field.partition("=")[0]
        if "%" in name:
            name = unquote(name)
        if name in wanted:
            present.add(name)
    return frozenset(present)


# A batch tags thousands of URLs with the same parameters, and almost always none of them is
# present yet, so the encoded fields are cached by (params, names present).
@lru_cache(maxsize=1024)
def _fields(params: tuple[tuple[str, str], ...], present: frozenset[str]) -> str:
    """The '&'-joined `name=value` fields of the params not in `present`.

    A name given twice is added once, so tagging the result again adds nothing. Values are
    encoded with quote(safe=""), which leaves only RFC 3986 unreserved characters
    (A-Z a-z 0-9 - . _ ~) as they are and writes UTF-8 escapes, space as %20.
    """
    seen = set(present)
    fields = []
    for name, value in params:
        if name not in seen:
            seen.add(name)
            fields.append(name + "=" + quote(value, safe=""))
    return "&".join(fields)
