"""The audit log: one entry per write request through the admin, in the workspace it wrote
to, kept in a capped stream per workspace (AUDIT_MAXLEN entries, about), newest first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from admin.service import as_text
from redirector.store.access import AppendAuditScript
from redirector.store.connection import NO_WAIT, Durability, Store
from redirector.store.keys import AUDIT_MAXLEN, audit_key

_Entries = list[tuple[bytes, dict[bytes, bytes]]]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str  # the stream entry's id: a page after it starts with the next older entry
    key_id: str
    action: str  # the operationId of the request
    target: str  # what it wrote, e.g. "link:Xk3dP9a"
    at_ms: int  # unix milliseconds


class AuditService:
    def __init__(
        self, redis: Store, durability: Durability = NO_WAIT, maxlen: int = AUDIT_MAXLEN
    ) -> None:
        self._redis = redis
        # Waited for on replicas as the write it records was.
        self._append = AppendAuditScript(redis, maxlen, durability)

    async def record(
        self, workspace: str, key_id: str, action: str, target: str, at_ms: int
    ) -> None:
        fields: list[tuple[str, str | int]] = [
            ("key", key_id),
            ("action", action),
            ("target", target),
            ("at", at_ms),
        ]
        await self._append(workspace, fields)

    async def page(
        self, workspace: str, before: str | None, limit: int
    ) -> tuple[list[AuditEntry], str | None]:
        """Up to `limit` entries, newest first, older than the entry `before` (from the
        newest without it); and where the next page starts (None after the oldest)."""
        if before is not None and _first(before):
            return [], None  # nothing is older; and Redis refuses "(0-0" as a range's end
        end = "+" if before is None else "(" + before
        # redis-py's annotation of XREVRANGE is looser than what it returns.
        rows = cast(
            _Entries, await self._redis.xrevrange(audit_key(workspace), end, "-", count=limit + 1)
        )
        # One more than asked for says whether there is a next page.
        entries = [_entry(as_text(entry_id), fields) for entry_id, fields in rows[:limit]]
        after = entries[-1].id if len(rows) > limit else None
        return entries, after


def _first(entry_id: str) -> bool:
    """Whether `entry_id` is 0-0 (leading zeros and all), the smallest there is."""
    return all(int(part) == 0 for part in entry_id.split("-"))


def _entry(entry_id: str, fields: Mapping[bytes, bytes]) -> AuditEntry:
    def get(name: str) -> str:
        return as_text(fields.get(name.encode(), b""))

    return AuditEntry(entry_id, get("key"), get("action"), get("target"), int(get("at") or 0))
