"""The link record: what the redirector reads for a code, and its bytes encoding. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


class RecordError(ValueError):
    """A stored record could not be decoded (corrupt data, or a newer format)."""


_FORMAT = "1"
_DISABLED = 1
_UNTAGGED = 2


@dataclass(frozen=True, slots=True)
class Link:
    """One short link as stored. `destination` is the ready-to-serve, pure-ASCII tagged URL;
    the URL as given is `destination` without the `inserted` characters at `insert_at`."""

    destination: str
    created_at: int  # unix seconds
    expires_at: int | None = None  # unix seconds; the redirector answers 410 from then on
    campaign_id: int | None = None
    recipient: str | None = None
    disabled: bool = False
    tagged: bool = True
    insert_at: int = 0
    inserted: int = 0

    @property
    def url(self) -> str:
        """The URL as given: what `admin.tagging.tag` was given to make `destination`."""
        destination = self.destination
        return destination[: self.insert_at] + destination[self.insert_at + self.inserted :]

    def gone(self, now: float) -> bool:
        """True when the redirector must answer 410 instead of redirecting."""
        return self.disabled or (self.expires_at is not None and now >= self.expires_at)


@lru_cache(maxsize=65_536)
def _b36(n: int) -> str:
    # Cached: the links of a batch share their creation time, lengths and offsets.
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def encode(link: Link) -> bytes:
    """The record as Redis stores it (see `encode_text`)."""
    return encode_text(link).encode()


def encode_text(link: Link) -> str:
    """Compact positional text,
    `1{flags}|created|expires|campaign|insert_at|inserted|len(recipient)|`, then recipient
    and destination back to back. Integers are base 36, absent ones empty.
    About 25 bytes of overhead besides recipient and destination (see README, Storage)."""
    flags = (_DISABLED if link.disabled else 0) | (0 if link.tagged else _UNTAGGED)
    recipient = link.recipient or ""
    head = "|".join(
        (
            _FORMAT + str(flags),
            _b36(link.created_at),
            "" if link.expires_at is None else _b36(link.expires_at),
            "" if link.campaign_id is None else _b36(link.campaign_id),
            _b36(link.insert_at),
            _b36(link.inserted),
            _b36(len(recipient)) if link.recipient is not None else "",
        )
    )
    return head + "|" + recipient + link.destination


def decode(raw: bytes | str) -> Link:
    """Inverse of `encode`. Accepts str too, for clients made with decode_responses=True."""
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        head, _, rest = text.partition("|")
        fields = rest.split("|", 6)
        if head[:1] != _FORMAT or len(fields) != 7:
            raise RecordError(f"unknown link record format: {raw[:16]!r}")
        flags = int(head[1:])
        created, expires, campaign, insert_at, inserted, rlen, tail = fields
        n = int(rlen, 36) if rlen else 0
        return Link(
            destination=tail[n:],
            created_at=int(created, 36),
            expires_at=int(expires, 36) if expires else None,
            campaign_id=int(campaign, 36) if campaign else None,
            recipient=tail[:n] if rlen else None,
            disabled=bool(flags & _DISABLED),
            tagged=not flags & _UNTAGGED,
            insert_at=int(insert_at, 36),
            inserted=int(inserted, 36),
        )
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, RecordError):
            raise
        raise RecordError(f"corrupt link record: {raw[:16]!r}") from exc
