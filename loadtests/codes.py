"""The codes file the seeder writes (`code<TAB>destination` lines) and the mix Locust taps from
it. Pure and free of locust imports, so the tests exercise it without gevent."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from itertools import accumulate
from pathlib import Path
from typing import NamedTuple

from admin.codes import ALPHABET


class CodesFileError(Exception):
    """The codes file is missing, empty or malformed; the message says how to fix it."""


class CodeLink(NamedTuple):
    code: str
    destination: str


def format_line(code: str, destination: str) -> str:
    return f"{code}\t{destination}\n"


def parse_codes(lines: Iterable[str], source: str = "<codes>") -> list[CodeLink]:
    """Read `code<TAB>destination` lines; blank lines are skipped, anything else is an error."""
    links: list[CodeLink] = []
    for number, line in enumerate(lines, 1):
        code, tab, destination = line.rstrip("\r\n").partition("\t")
        if not (code or tab):
            continue
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
    """Pick an index in [0, count) with P(k) proportional to 1 / (k + 1) ** exponent.

    With exponent 1 over 100,000 items the first 1% draw about 60% of the picks and every item is
    still picked now and then: a few links are tapped over and over, most once."""

    def __init__(self, count: int, exponent: float = 1.0) -> None:
        if count < 1:
            raise ValueError("ZipfPicker needs at least one item")
        if exponent < 0:
            raise ValueError("the Zipf exponent must not be negative")
        self._indices = range(count)
        self._cumulative = list(accumulate(1.0 / (k**exponent) for k in range(1, count + 1)))

    def pick(self, rng: random.Random) -> int:
        return rng.choices(self._indices, cum_weights=self._cumulative)[0]


class CodeMix:
    """The codes a tapper requests: known codes in a Zipf mix and a share of unknown ones.

    Shuffled with a fixed seed, so every Locust worker shares the same hot set (popularity
    belongs to the link, not the worker) and the hot codes are not the first ones seeded.
    """

    def __init__(
        self, links: Sequence[CodeLink], *, exponent: float = 1.0, unknown_share: float = 0.0
    ) -> None:
        if not 0.0 <= unknown_share <= 1.0:
            raise ValueError("the unknown share must be between 0 and 1")
        self.links = list(links)
        random.Random(0).shuffle(self.links)
        self.known = frozenset(link.code for link in self.links)
        self.unknown_share = unknown_share
        self._picker = ZipfPicker(len(self.links), exponent)

    def pick(self, rng: random.Random) -> CodeLink | None:
        """A known link, or None when this tap should go to an unknown code."""
        if self.unknown_share and rng.random() < self.unknown_share:
            return None
        return self.links[self._picker.pick(rng)]

    def unknown_code(self, rng: random.Random) -> str:
        """A random code as long as the real ones but not in the file."""
        while True:
            code = "".join(rng.choices(ALPHABET.decode(), k=len(self.links[0].code)))
            if code not in self.known:
                return code
