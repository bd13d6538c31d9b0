"""Amounts of money: ISO 4217 currencies and their minor units, amounts parsed into integers
of minor units and written back as decimal strings, and shares of them rounded half-up. Pure:
no I/O, `decimal` only (never a float in a sum).

The minor units come from the `iso4217` package, which ships ISO's own table (list one, its
`CcyMnrUnts`) and nothing else. babel's `get_currency_precision` was the other candidate, but
it gives CLDR's display digits, which differ from ISO 4217 where it matters here (IQD: 0
there, 3 in ISO 4217; ALL, IRR, HUF: 0 there, 2 in ISO), and 2 for currencies that have no
minor unit at all (XAU). Funds and metals without minor units (N.A. in the table) are refused.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

from iso4217 import Currency

# An amount's largest number of minor units (10^15: ten trillion euros): a campaign's revenue
# is a 64-bit sum in Redis, which holds 9,000 such orders.
MAX_MINOR_UNITS = 10**15
CURRENCY_PATTERN = "^[A-Z]{3}$"


@cache
def minor_units(currency: str) -> int | None:
    """The currency's minor-unit digits (EUR 2, JPY 0, BHD 3), or None when `currency` is no
    ISO 4217 code, or one without minor units."""
    try:
        exponent = Currency(currency).exponent
    except ValueError:
        return None
    return exponent


def to_minor_units(amount: Decimal, currency: str) -> int:
    """`amount` (>= 0) in the currency's minor units; ValueError if it has more decimal digits
    than the currency has, or is out of range."""
    digits = minor_units(currency)
    if digits is None:
        raise ValueError(f"{currency!r} is not an ISO 4217 currency with minor units")
    if not amount.is_finite() or amount < 0:
        raise ValueError("must be a number >= 0")
    try:
        scaled = amount.scaleb(digits)
        whole = scaled.to_integral_value()
    except InvalidOperation:
        raise ValueError("is too large") from None
    if scaled != whole:
        raise ValueError(f"has more than {digits} decimal digits, the minor units of {currency}")
    minor = int(whole)
    if minor > MAX_MINOR_UNITS:
        raise ValueError(f"must be at most {MAX_MINOR_UNITS:,} minor units")
    return minor


def as_decimal(minor: int | Decimal, currency: str) -> str:
    """An amount of minor units (rounded half-up to a whole one) as the decimal string of the
    currency: 8000 EUR -> "80.00", 8000 JPY -> "8000", 1 BHD -> "0.001"."""
    digits = minor_units(currency) or 0
    whole = Decimal(minor).quantize(Decimal(1), ROUND_HALF_UP)
    return str(whole.scaleb(-digits).quantize(Decimal(1).scaleb(-digits)))


def share(minor: int, numerator: int, denominator: int) -> Decimal:
    """minor * numerator / denominator, exactly (to be rounded by `as_decimal`)."""
    return Decimal(minor) * numerator / Decimal(denominator)


def ratio(numerator: int, denominator: int, digits: int = 4) -> float | None:
    """numerator / denominator rounded half-up to `digits` decimals; None when the
    denominator is 0."""
    if denominator == 0:
        return None
    exact = Decimal(numerator) / Decimal(denominator)
    return float(exact.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP))
