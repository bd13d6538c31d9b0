"""Pure helpers shared by the seeder and the locustfile: no I/O besides reading small files, and
no locust or aiohttp imports, so the tests can exercise all of it without starting Locust.

    parse_codes / load_codes   the `code<TAB>destination` file the seeder writes
    ZipfPicker                 a power-law index picker: a hot head and a long cold tail
    CodeMix                    the codes Locust taps, hot ones first, and unknown codes for 404s
    require_loopback           refuse to load-test anything but this machine, unless asked
    utm_suffix / seed_url      URLs whose tagged destination has an exact length
    admin_key                  the bearer key, from ADMIN_API_KEYS or `make run`'s dev key
"""

from __future__ import annotations

import ipaddress
import random
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CODES_FILE = ROOT / "loadtests" / "codes.txt"
DEV_KEY_FILE = ROOT / ".data" / "dev-api-key"
DEFAULT_ADMIN_URL = "http://127.0.0.1:8081"

# Short, so that a 90-byte destination (a typical tagged shop URL) leaves room for the padding.
DEFAULT_CAMPAIGN_NAME = "loadtest"
# The seeder gives its campaign these explicitly, so the added UTM parameters (and therefore the
# destination's length) do not depend on the admin's UTM_SOURCE/UTM_MEDIUM settings.
SEED_UTM_SOURCE = "instasent"
SEED_UTM_MEDIUM = "sms"
_SEED_URL_PREFIX = "https://shop.example/"
_PADDING = "abcdefghijklmnopqrstuvwxyz0123456789-"
# Synthetic Spanish mobile numbers (+34 6xx xxx xxx and +34 7xx xxx xxx): unique per index.
_FIRST_MOBILE = 600_000_000
MAX_RECIPIENTS = 200_000_000
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class CodesFileError(Exception):
    """The codes file is missing, empty or malformed; the message says how to fix it."""


class RemoteHostRefused(ValueError):
    """A load test or a seeding run was pointed at a host that is not this machine."""


class CodeLink(NamedTuple):
    code: str
    destination: str


def format_line(code: str, destination: str) -> str:
    return f"{code}\t{destination}\n"


def parse_codes(lines: Iterable[str], source: str = "<codes>") -> list[CodeLink]:
    """Read `code<TAB>destination` lines; blank lines are skipped, anything else is an error."""
    links: list[CodeLink] = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line:
            continue
        code, tab, destination = line.partition("\t")
        if not (tab and code and destination) or "\t" in destination:
            raise CodesFileError(f"{source}:{number}: expected 'code<TAB>destination'")
        links.append(CodeLink(code, destination))
    if not links:
        raise CodesFileError(f"{source} has no codes: seed it with `python -m loadtests.seed`")
    return links


def load_codes(path: str | Path) -> list[CodeLink]:
    try:
        with open(path, encoding="utf-8") as lines:
            return parse_codes(lines, str(path))
    except FileNotFoundError:
        raise CodesFileError(
            f"codes file {path} not found: seed one with `python -m loadtests.seed --out {path}` "
            "(or point LOCUST_CODES_FILE at it)"
        ) from None


class ZipfPicker:
    """Pick an index in [0, n) with P(k) proportional to 1 / (k + 1) ** s.

    With s = 1 over 100,000 items the first 1% of them draw about 60% of the picks and every
    item is still picked now and then: a few links of a campaign are tapped over and over
    (forwarded, re-opened) while most are tapped once. A cumulative table and a bisect make a
    pick O(log n) with no numpy.
    """

    def __init__(self, n: int, s: float = 1.0) -> None:
        if n < 1:
            raise ValueError("ZipfPicker needs at least one item")
        if s < 0:
            raise ValueError("the Zipf exponent must not be negative")
        self.n = n
        self._cumulative = list(accumulate(1.0 / (k**s) for k in range(1, n + 1)))
        self._total = self._cumulative[-1]

    def pick(self, rng: random.Random) -> int:
        # min(): random() * total can round up to exactly the last cumulative weight.
        return min(bisect_right(self._cumulative, rng.random() * self._total), self.n - 1)


class CodeMix:
    """The codes a tapper requests: known codes in a Zipf mix and a share of unknown ones.

    The list is shuffled with a fixed seed first, so every Locust worker shares the same hot
    set (popularity is a property of the link, not of the worker) and the hot codes are not
    simply the first ones the seeder created.
    """

    def __init__(
        self, links: Sequence[CodeLink], *, s: float = 1.0, unknown_share: float = 0.0
    ) -> None:
        if not 0.0 <= unknown_share <= 1.0:
            raise ValueError("the unknown share must be between 0 and 1")
        self.links = list(links)
        random.Random(0).shuffle(self.links)
        self.known = frozenset(link.code for link in self.links)
        self.unknown_share = unknown_share
        self.code_length = len(self.links[0].code)
        self._picker = ZipfPicker(len(self.links), s)

    def pick(self, rng: random.Random) -> CodeLink | None:
        """A known link, or None when this tap should go to an unknown code."""
        if self.unknown_share and rng.random() < self.unknown_share:
            return None
        return self.links[self._picker.pick(rng)]

    def unknown_code(self, rng: random.Random) -> str:
        """A random code that looks like a real one but is not in the file."""
        while True:
            code = "".join(rng.choices(_BASE62, k=self.code_length))
            if code not in self.known:
                return code


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is this machine: localhost, 127.0.0.0/8 or ::1."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_loopback(url: str, *, allow_remote: bool = False, what: str = "target") -> None:
    """Raise RemoteHostRefused unless the URL points at this machine or remote is allowed:
    a load test aimed at the wrong host is an attack on someone else's service."""
    if allow_remote or is_loopback_url(url):
        return
    raise RemoteHostRefused(
        f"{what} {url!r} is not a loopback address (localhost, 127.0.0.0/8, ::1); "
        "set LOCUST_ALLOW_REMOTE=1 to load-test another host you are responsible for"
    )


def allow_remote(env: Mapping[str, str]) -> bool:
    return env.get("LOCUST_ALLOW_REMOTE", "").strip().lower() in {"1", "true", "yes"}


def utm_suffix(*, source: str, medium: str, campaign: str) -> str:
    """What the admin appends to a URL that already has a query (README, "The UTM rule")."""
    params = (("utm_source", source), ("utm_medium", medium), ("utm_campaign", campaign))
    return "".join(f"&{name}={quote(value, safe='')}" for name, value in params)


def seed_url(index: int, *, length: int, suffix_length: int) -> str:
    """A product URL whose tagged destination (URL + a suffix of `suffix_length` characters) is
    exactly `length` characters; the shortest URL when `length` leaves no room for padding."""
    query = f"?r={index}"
    padding = length - suffix_length - len(_SEED_URL_PREFIX) - len(query)
    if padding < 1:
        return f"{_SEED_URL_PREFIX}p{query}"
    repeat = _PADDING * (padding // len(_PADDING) + 1)
    return _SEED_URL_PREFIX + repeat[:padding] + query


def recipient(index: int) -> str:
    """The index-th synthetic phone number; unique for 0 <= index < MAX_RECIPIENTS."""
    if not 0 <= index < MAX_RECIPIENTS:
        raise ValueError(f"recipient index must be in [0, {MAX_RECIPIENTS})")
    return f"+34{_FIRST_MOBILE + index}"


def admin_key(env: Mapping[str, str], dev_key_file: Path = DEV_KEY_FILE) -> str | None:
    """The first key of ADMIN_API_KEYS, else the development key `make run` keeps."""
    for key in env.get("ADMIN_API_KEYS", "").split(","):
        if key.strip():
            return key.strip()
    try:
        return dev_key_file.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
