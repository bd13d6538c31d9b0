"""The records stored for a code and for a campaign's destination, and their bytes. Pure: no I/O.

A `Record` is what a code's field in its `l:` hash holds: the personal part of a link
(times, campaign, recipient, flags) and either its `Destination` inline or the id of one in
its campaign's `d:` hash, where each destination is stored once. `Link` is the two put
together: what the redirector serves and the admin answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple


class RecordError(ValueError):
    """A stored record could not be decoded (corrupt data, or a newer format)."""


_V1, _V2 = "1", "2"
# A version 2 record without flags: a link referring to its campaign's destination, neither
# disabled nor custom, no tombstone, no alias.
PLAIN_LINK = b"20|"
# Flag bits of a record (the tag bit is also a destination's).
_DISABLED, _UNTAGGED, _INLINE, _DELETED, _ALIAS, _CUSTOM = 1, 2, 4, 8, 16, 32
# Starts the campaign field of a link without campaign that belongs to a workspace other than
# `default`: `~{workspace id}`. A campaign's links take their workspace from the campaign, and
# `default`'s links without campaign keep the field empty, so neither pays a byte for it; nor
# did any record written before workspaces existed (they all belong to `default`).
_WORKSPACE = "~"


@dataclass(frozen=True, slots=True)
class Destination:
    """A tagged destination, ready to serve and pure ASCII; the URL as given is `destination`
    without the `inserted` characters at `insert_at`."""

    destination: str
    insert_at: int = 0
    inserted: int = 0
    tagged: bool = True

    @property
    def url(self) -> str:
        """The URL as given: what `admin.tagging.tag` was given to make `destination`."""
        text, start = self.destination, self.insert_at
        return text[:start] + text[start + self.inserted :]


class Link(NamedTuple):
    """One short link as served: its record with its destination. A named tuple: the miss
    path makes one per link read, 0.8 µs less than a frozen dataclass (timeit, 2026-12-01)."""

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
        text, start = self.destination, self.insert_at
        return text[:start] + text[start + self.inserted :]

    @property
    def target(self) -> Destination:
        return Destination(self.destination, self.insert_at, self.inserted, self.tagged)

    def gone(self, now: float) -> bool:
        """True when the redirector must answer 410 instead of redirecting."""
        return self.disabled or (self.expires_at is not None and now >= self.expires_at)


@dataclass(frozen=True, slots=True)
class Record:
    """What a code's field holds. `destination` is inline, or the id (base 36, as stored) of
    one in the campaign's `d:` hash. A tombstone (`deleted`) or an alias (`alias_of`, the
    custom code a recipient's chain position points to) is no link: its code answers 404."""

    created_at: int
    destination: Destination | str
    expires_at: int | None = None
    campaign_id: int | None = None
    recipient: str | None = None
    disabled: bool = False
    custom: bool = False  # the code was chosen by the caller (its tombstone may be reused)
    deleted: bool = False
    alias_of: str | None = None
    # The workspace of a link without campaign, when it is not `default`; None otherwise (a
    # campaign's link belongs to its campaign's workspace).
    workspace: str | None = None

    @property
    def live(self) -> bool:
        return not self.deleted and self.alias_of is None

    def link(self, destination: Destination | None = None) -> Link:
        """The link served: `destination` is the one `self.destination` refers to."""
        target = self.destination if isinstance(self.destination, Destination) else destination
        if target is None:
            raise ValueError("a record that refers to a destination needs it to make a link")
        return Link(
            target.destination,
            self.created_at,
            self.expires_at,
            self.campaign_id,
            self.recipient,
            self.disabled,
            target.tagged,
            target.insert_at,
            target.inserted,
        )


def inline(link: Link, *, custom: bool = False) -> Record:
    """`link` as a record holding its destination."""
    return Record(
        link.created_at,
        link.target,
        link.expires_at,
        link.campaign_id,
        link.recipient,
        link.disabled,
        custom,
    )


@lru_cache(maxsize=65_536)
def b36(n: int) -> str:
    # Cached: the links of a batch share their creation time, lengths and offsets.
    if n < 0:  # divmod(-1, 36) is (-1, 35): the loop below would never end
        raise ValueError(f"a record holds no negative number: {n}")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def encode(record: Record | Link) -> bytes:
    """The record as Redis stores it (see `encode_text`); a `Link` is stored inline."""
    return encode_text(record if isinstance(record, Record) else inline(record)).encode()


def encode_text(record: Record) -> str:
    """Compact positional text, integers in base 36, absent ones empty:
    `2{flags}|created|expires|campaign|destination id|len(recipient)|{recipient}` (an alias
    has its custom code for a destination id), or with the INLINE flag
    `2{flags}|created|expires|campaign|insert_at|inserted|len(recipient)|{recipient}{destination}`;
    `campaign` is `~{workspace}` for a link without campaign outside `default` (`_WORKSPACE`).
    Version 1 (still read) was the inline form without the INLINE flag."""
    return encoder(record)(record.recipient)


def encoder(record: Record) -> Callable[[str | None], str]:
    """`encode_text` of `record` with any recipient. The links of a batch differ in little
    but their recipient, so what comes before it is encoded once for all of them."""
    target = record.destination
    flags = (
        (_DISABLED if record.disabled else 0)
        | (_CUSTOM if record.custom else 0)
        | (_DELETED if record.deleted else 0)
        | (_ALIAS if record.alias_of is not None else 0)
    )
    parts = [
        "",
        b36(record.created_at),
        "" if record.expires_at is None else b36(record.expires_at),
        _owner_field(record),
    ]
    after = ""
    if isinstance(target, Destination):
        flags |= _INLINE | (0 if target.tagged else _UNTAGGED)
        parts += (b36(target.insert_at), b36(target.inserted))
        after = target.destination
    else:
        parts.append(target if record.alias_of is None else record.alias_of)
    if not flags and record.workspace is not None:
        # Only a campaign has destinations to refer to; and so the short way of `decode`,
        # the redirector's usual record, never meets a workspace's mark.
        raise ValueError("a link that refers to a destination by id belongs to a campaign")
    parts[0] = _V2 + b36(flags)
    head = "|".join(parts) + "|"

    def encode(recipient: str | None) -> str:
        if recipient is None:
            return head + "|" + after
        # In UTF-8 bytes, as a Lua script splits it (version 1 counted characters).
        size = len(recipient) if recipient.isascii() else len(recipient.encode())
        return f"{head}{b36(size)}|{recipient}{after}"  # one string made, not four

    return encode


def _owner_field(record: Record) -> str:
    """The campaign field: the campaign's id; for a link without campaign, its workspace's
    mark, or nothing in `default`."""
    if record.campaign_id is not None:
        if record.workspace is not None:
            raise ValueError("a campaign's link belongs to its campaign's workspace")
        return b36(record.campaign_id)
    if record.workspace is None:
        return ""
    if "|" in record.workspace or not record.workspace:
        raise ValueError(f"not a workspace id: {record.workspace!r}")
    return _WORKSPACE + record.workspace


def decode(raw: bytes | str) -> Record:
    """Inverse of `encode`, for version 2 and version 1 records. Accepts str too, for clients
    made with decode_responses=True."""
    data = raw.encode() if isinstance(raw, str) else raw
    if data[:3] == PLAIN_LINK:  # most records (a campaign's links): read the short way
        return Record(*_plain(data))
    try:
        text = data.decode()
        head, _, rest = text.partition("|")
        flags = int(head[1:], 36 if head[:1] == _V2 else 10)
        if head[:1] == _V1:
            flags |= _INLINE
        elif head[:1] != _V2:
            raise RecordError(f"unknown link record format: {raw[:16]!r}")
        fields = rest.split("|", 6 if flags & _INLINE else 5)
        created, expires, campaign, *middle, rlen, tail = fields
        if len(middle) != (2 if flags & _INLINE else 1):
            raise RecordError(f"corrupt link record: {raw[:16]!r}")
        recipient, after = _split(tail, int(rlen, 36) if rlen else None, head[:1] == _V2)
        target: Destination | str
        if flags & _INLINE:
            insert_at, inserted = middle
            tagged = not flags & _UNTAGGED
            target = Destination(after, int(insert_at, 36), int(inserted, 36), tagged)
        else:
            [target] = middle
        alias = flags & _ALIAS
        workspace = campaign[:1] == _WORKSPACE
        return Record(
            created_at=int(created, 36),
            destination="" if alias else target,
            expires_at=int(expires, 36) if expires else None,
            campaign_id=int(campaign, 36) if campaign and not workspace else None,
            recipient=recipient,
            disabled=bool(flags & _DISABLED),
            custom=bool(flags & _CUSTOM),
            deleted=bool(flags & _DELETED),
            alias_of=str(target) if alias else None,
            workspace=campaign[1:] if workspace else None,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, RecordError):
            raise
        raise RecordError(f"corrupt link record: {raw[:16]!r}") from exc


def decode_links(
    raws: Sequence[bytes | str | None], destination: Callable[[int, str], Destination | None]
) -> list[Link | Record | None]:
    """Each raw record read (None for a code without one): the link of a plain record (a
    campaign's link, the miss path's usual one) whose destination
    `destination(campaign_id, destination_id)` knows, made without a `Record`; any other
    record as `decode` gives it. A read's records mostly share one destination: each is
    asked of `destination` once per call."""
    links: list[Link | Record | None] = []
    known: dict[tuple[int | None, str], Destination | None] = {}
    for raw in raws:
        if raw is None:
            links.append(None)
            continue
        data = raw.encode() if isinstance(raw, str) else raw
        if data[:3] != PLAIN_LINK:
            links.append(decode(data))
            continue
        fields = created_at, destination_id, expires_at, campaign_id, recipient = _plain(data)
        try:
            target = known[campaign_id, destination_id]
        except KeyError:
            target = None if campaign_id is None else destination(campaign_id, destination_id)
            known[campaign_id, destination_id] = target
        if target is None:
            links.append(Record(*fields))
            continue
        links.append(
            _link_new(
                Link,
                (
                    target.destination,
                    created_at,
                    expires_at,
                    campaign_id,
                    recipient,
                    False,
                    target.tagged,
                    target.insert_at,
                    target.inserted,
                ),
            )
        )
    return links


# A Link from the tuple of its fields, in C (NamedTuple's own __new__ is a Python function).
_link_new: Callable[[type[Link], tuple[object, ...]], Link] = tuple.__new__


def _plain(data: bytes) -> tuple[int, str, int | None, int | None, str | None]:
    """created_at, destination id, expires_at, campaign_id and recipient of a version 2
    record without flags, read from its bytes: nothing may follow the recipient."""
    try:
        _, created, expires, campaign, reference, size, tail = data.split(b"|", 6)
        if len(tail) != (int(size, 36) if size else 0):
            raise ValueError("a plain record ends with its recipient")
        return (
            int(created, 36),
            reference.decode(),
            int(expires, 36) if expires else None,
            int(campaign, 36) if campaign else None,
            tail.decode() if size else None,  # its length is in bytes, as the encoder writes
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordError(f"corrupt link record: {data[:16]!r}") from exc


def _split(tail: str, size: int | None, in_bytes: bool) -> tuple[str | None, str]:
    """The recipient (None without a length) and what follows it."""
    if size is None:
        return None, tail
    if in_bytes and not tail.isascii():
        data = tail.encode()
        return data[:size].decode(), data[size:].decode()
    return tail[:size], tail[size:]


def encode_destination(destination: Destination) -> str:
    """`{flags}|insert_at|inserted|{destination}`, as a campaign's `d:` hash stores it."""
    flags = 0 if destination.tagged else _UNTAGGED
    insert_at, inserted = b36(destination.insert_at), b36(destination.inserted)
    return f"{flags}|{insert_at}|{inserted}|{destination.destination}"


def decode_destination(raw: bytes | str) -> Destination:
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        flags, insert_at, inserted, destination = text.split("|", 3)
        return Destination(
            destination, int(insert_at, 36), int(inserted, 36), not int(flags) & _UNTAGGED
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordError(f"corrupt destination record: {raw[:16]!r}") from exc
