"""What the admin.tagging tests share: `normalize_url` with test settings, `tag` checked
against the invariants every result must satisfy, and a tagged URL's pieces read back."""

from __future__ import annotations

from urllib.parse import unquote

from admin.tagging import Tagged, normalize_url, tag, utm_params
from redirector.store.record import Link

MAX_LENGTH = 4096
OWN_HOST = "short.example"
UTM = utm_params(source="sms", medium="text", campaign="spring")


def untag(tagged: Tagged) -> str:
    """The URL `tag` was given, as the stored link gives it back (`Link.url`)."""
    return Link(tagged.destination, 0, insert_at=tagged.insert_at, inserted=tagged.inserted).url


def normalize(raw: str, *, max_length: int = MAX_LENGTH, own_host: str | None = OWN_HOST) -> str:
    return normalize_url(raw, max_length=max_length, own_host=own_host)


def checked_tag(url: str, params: tuple[tuple[str, str], ...] = UTM) -> Tagged:
    """tag(), plus the invariants every result must satisfy."""
    tagged = tag(url, params)
    assert untag(tagged) == url  # the destination less the inserted part
    assert 0 <= tagged.insert_at <= len(url)
    assert len(tagged.destination) == len(url) + tagged.inserted
    return tagged


def query_of(url: str) -> str | None:
    _, question, query = url.partition("#")[0].partition("?")
    return query if question else None


def added_pairs(tagged: Tagged) -> list[tuple[str, str]]:
    """The (name, decoded value) pairs `tag` inserted, read back from the destination."""
    segment = tagged.destination[tagged.insert_at : tagged.insert_at + tagged.inserted]
    if segment[:1] in ("?", "&"):
        segment = segment[1:]
    fields = [field.partition("=") for field in segment.split("&")] if segment else []
    assert all(equals for _, equals, _ in fields), segment
    return [(name, unquote(value, errors="strict")) for name, _, value in fields]
