"""Random short codes: base62 characters drawn with `secrets`, many at a time."""

from __future__ import annotations

import secrets

from redirector.store.keys import RESERVED_CODES

ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Random bytes 248..255 are dropped so that `byte % 62` is uniform (248 = 4 * 62); the rest
# map to base62 in one C-level translate, ~50x faster than secrets.choice per character.
_TO_BASE62 = bytes(ALPHABET[b % 62] for b in range(256))
_BIASED = bytes(range(248, 256))


def draw(count: int, length: int) -> list[str]:
    """`count` random codes of `length` characters; never a reserved word."""
    need = count * length
    chars = b""
    while len(chars) < need:
        chars += secrets.token_bytes(need - len(chars) + 16).translate(_TO_BASE62, _BIASED)
    text = chars[:need].decode()
    codes = [text[i : i + length] for i in range(0, need, length)]
    if any(code.lower() in RESERVED_CODES for code in codes):
        return [c if c.lower() not in RESERVED_CODES else draw(1, length)[0] for c in codes]
    return codes
