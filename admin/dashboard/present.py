"""How the pages write numbers, times, shares and money: the template filters. A figure that is
not known (no report yet, a ratio of nothing) is written "—", never a made-up 0."""

from __future__ import annotations

from datetime import UTC, datetime

import jinja2

MISSING = "—"
# Digits after the point of a currency's minor unit, where it is not 2 (ISO 4217).
_MINOR_DIGITS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "BHD": 3, "KWD": 3, "OMR": 3}


def count(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}"


def share(part: int | float | None, whole: int | float | None) -> str:
    """`part` of `whole` as a percentage with one decimal."""
    if part is None or not whole:
        return MISSING
    return f"{100 * part / whole:.1f}%"


def when(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def money(minor: int | float | None, currency: str) -> str:
    """An amount in minor units (cents) of `currency`, e.g. 123456 EUR -> "1,234.56 EUR"."""
    if minor is None:
        return MISSING
    digits = _MINOR_DIGITS.get(currency.upper(), 2)
    return f"{minor / 10**digits:,.{digits}f} {currency}"


def datetime_local(seconds: int | None) -> str:
    """A time as an <input type="datetime-local"> shows it (UTC, to the minute)."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M")


def day(seconds: int) -> str:
    """The UTC date of a time, as an <input type="date"> shows it."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")


def register(env: jinja2.Environment) -> None:
    env.filters.update(count=count, when=when, datetime_local=datetime_local, day=day)
    env.globals.update(share=share, money=money, MISSING=MISSING)
