"""Short codes: random ones, base62 characters drawn with `secrets`, many at a time; and the
per-recipient ones, derived from (campaign, recipient) with a secret key."""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

from redirector.store.keys import RESERVED_CODES

ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# The lengths a generated code may have (CODE_LENGTH, a campaign's `code_length`): a derived
# code takes one character per byte of its 32-byte digest; shorter than 5 is too easily guessed.
MIN_LENGTH, MAX_LENGTH = 5, 32
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


def owner_text(owner: int | str | None) -> str:
    """Whose chains: a campaign's id; for links without campaign, '-' in the workspace
    `default` (as before workspaces existed), '-{workspace}' in another (`Chain.owner`).
    Recipients are opaque: the same one in two workspaces has two chains."""
    return "-" if owner is None else str(owner)


def derive(
    key: bytes, owner: int | str | None, recipient: str, position: int, length: int
) -> tuple[int, str]:
    """The code at `position` of a recipient's chain, or at the first position after it whose
    code is no reserved word: (that position, its code). The chain is the same for the same
    key, owner (`owner_text`) and recipient, so a retried request finds the links it wrote;
    positions are tried in order past codes held by other links (admin/service/store.py)."""
    campaign = owner_text(owner)
    while True:
        message = f"{campaign}\0{recipient}\0{position}".encode()
        # One base62 character per byte of the 32-byte digest (CODE_LENGTH is at most 32): a
        # C-level translate, where dividing the digest as an integer costs 3 µs a code. Bytes
        # below 8 come up 5 times in 256 instead of 4; that costs 0.006 bits per character.
        code = _digest(key, message)[:length].translate(_TO_BASE62).decode()
        if code.lower() not in RESERVED_CODES:
            return position, code
        position += 1


def first_codes(
    key: bytes, owner: int | str | None, recipients: list[str], length: int
) -> list[tuple[int, str]]:
    """`derive(key, owner, recipient, 0, length)` of each recipient, with the work that
    is the same for all of them done once, and the reserved words looked for in one set
    operation over the batch (10,000 codes: 20 -> 10 ms)."""
    inner, outer = _keyed(key)
    inner_copy, outer_copy = inner.copy, outer.copy
    prefix = owner_text(owner).encode() + b"\0"
    found = []
    for recipient in recipients:
        one = inner_copy()
        one.update(prefix + recipient.encode() + b"\x000")  # f"{campaign}\0{recipient}\0{0}"
        two = outer_copy()
        two.update(one.digest())
        found.append(two.digest()[:length].translate(_TO_BASE62).decode())
    # Every code has `length` characters, so a word of that length found in the codes
    # joined by NULs is one of them: one C-level search per word instead of one per code.
    joined = "\0".join(found).lower()
    if not any(len(word) == length and word in joined for word in RESERVED_CODES):
        return [(0, code) for code in found]
    return [
        derive(key, owner, recipient, 0, length) if code.lower() in RESERVED_CODES else (0, code)
        for recipient, code in zip(recipients, found, strict=True)
    ]


def _digest(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256, as `hmac.digest` gives it."""
    inner, outer = _keyed(key)
    one, two = inner.copy(), outer.copy()
    one.update(message)
    two.update(one.digest())
    return two.digest()


# HMAC (RFC 2104) is SHA-256 of the outer padded key and of the inner hash, SHA-256 of the
# inner padded key and the message: both padded keys hashed once per code key and copied for
# each code. A quarter less per code than copying OpenSSL's HMAC (three contexts a copy).
@lru_cache(maxsize=8)
def _keyed(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    padded = key.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(padded.translate(_INNER_PAD))
    outer = hashlib.sha256(padded.translate(_OUTER_PAD))
    return inner, outer


_BLOCK = 64  # SHA-256's block size, in bytes
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))
