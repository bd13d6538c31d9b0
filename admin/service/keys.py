"""API keys: made (shown once, stored as a SHA-256 hash), listed, deleted, and each request's
key found (`authenticate`).

A key is `smsl_` and 43 base-62 characters (256 random bits); its id is the first 16 hex
digits of its SHA-256, so a key's record is found with one read. Each process keeps a record
it read for KEY_CACHE_TTL: a deleted key is refused by every admin process within that.
Expiry is checked at every request. The root keys (ADMIN_API_KEYS) are not stored: they are
compared, by hash and in constant time, with the one given.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from admin import codes
from admin.access import (
    KEY_PREFIX,
    ROOT_KEY_PREFIX,
    Principal,
    key_digest,
    root_key_id,
    root_principal,
)
from admin.exceptions import KeyNotFound, NotAuthenticated
from admin.service import as_text
from redirector.store.access import TouchKeyScript
from redirector.store.connection import NO_WAIT, Durability, Store
from redirector.store.keys import api_key_key, workspace_api_keys_key
from redirector.store.scripts import SingleKeyWrites

KEY_LENGTH = 43  # base-62 characters after the prefix: 43 * log2(62) = 256 bits
KEY_ID_LENGTH = 16  # hex digits of the key's SHA-256
# Seconds a process trusts a key record it read: the issue asks for a revoked key to be
# refused within 1 s in every process; the other half of it is left to the request.
KEY_CACHE_TTL = 0.5
# Records kept at most per process (then forgotten all at once: read again on next use).
KEY_CACHE_SIZE = 10_000
# A key's last use is written at most this often (seconds).
LAST_USED_EVERY = 60
LAST_USED = "last_used_at"

_KEY = re.compile(re.escape(KEY_PREFIX) + f"[0-9A-Za-z]{{{KEY_LENGTH}}}")
_KEY_ID = re.compile(f"[0-9a-f]{{{KEY_ID_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    workspace: str
    name: str
    scopes: tuple[str, ...]
    created_at: int  # unix seconds
    expires_at: int | None
    last_used_at: int | None
    digest: str  # SHA-256 of the key, hex

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def principal(self) -> Principal:
        return Principal(self.id, self.workspace, frozenset(self.scopes))


class KeyService:
    def __init__(
        self, redis: Store, root_keys: Sequence[str], durability: Durability = NO_WAIT
    ) -> None:
        self._redis = redis
        # A key made or deleted is acknowledged once on the replicas asked for: a deletion
        # lost in a failover would bring a revoked key back.
        self._writes = SingleKeyWrites(redis, durability)
        self._touch = TouchKeyScript(redis, LAST_USED, LAST_USED_EVERY)
        self._roots = [key_digest(key.encode()) for key in root_keys]
        self._cache: dict[str, tuple[float, ApiKey]] = {}  # id -> (when read, record)
        self._touched: dict[str, float] = {}  # id -> when this process last wrote its use

    async def authenticate(self, given: bytes) -> Principal:
        """The caller whose key `given` is; NotAuthenticated if it is none, or is revoked or
        expired. A root key costs no Redis read, and neither does anything not shaped like a
        key of ours."""
        digest = key_digest(given)
        # Compared with every root key, without stopping at a match: timing says nothing.
        root = False
        for known in self._roots:
            root |= hmac.compare_digest(digest, known)
        if root:
            return root_principal(digest)
        if not _KEY.fullmatch(given.decode(errors="replace")):
            raise NotAuthenticated
        record = await self._record(digest[:KEY_ID_LENGTH])
        now = time.time()
        if record is None or not hmac.compare_digest(record.digest, digest) or record.expired(now):
            raise NotAuthenticated
        await self._used(record, now)
        return record.principal()

    async def principal_of(self, key_id: str) -> Principal | None:
        """The caller a dashboard session made with the key `key_id` acts as, read as
        `authenticate` reads a key (a record is kept KEY_CACHE_TTL at most); None once the key
        is deleted or expired, or for a root key no longer in ADMIN_API_KEYS."""
        if key_id.startswith(ROOT_KEY_PREFIX):
            found = None
            for digest in self._roots:
                if hmac.compare_digest(root_key_id(digest), key_id):
                    found = root_principal(digest)
            return found
        if not _KEY_ID.fullmatch(key_id):
            return None
        record = await self._record(key_id)
        now = time.time()
        if record is None or record.expired(now):
            return None
        await self._used(record, now)
        return record.principal()

    async def create_key(
        self, workspace: str, name: str, scopes: Sequence[str], expires_at: int | None
    ) -> tuple[ApiKey, str]:
        """A new key of `workspace`, and the key itself (shown once: only its hash is kept)."""
        now = int(time.time())
        while True:
            key = KEY_PREFIX + codes.draw(1, KEY_LENGTH)[0]
            digest = key_digest(key.encode())
            record = ApiKey(
                digest[:KEY_ID_LENGTH],
                workspace,
                name,
                tuple(scopes),
                now,
                expires_at,
                None,
                digest,
            )
            # The record first: one written by a request that fails before the answer is a
            # key nobody was shown. Another key with this id (2**-64): draw again.
            if await self._writes.create_hash(api_key_key(record.id), _fields(record)):
                break
        await self._writes.command(workspace_api_keys_key(workspace), "SADD", record.id)
        return record, key

    async def list_keys(self, workspace: str) -> list[ApiKey]:
        """The workspace's keys, oldest first."""
        members = await self._redis.smembers(workspace_api_keys_key(workspace))
        ids = sorted(as_text(member) for member in members)
        found = await self._records(ids)
        keys = [k for k in found if k is not None and k.workspace == workspace]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    async def delete_key(self, workspace: str, key_id: str) -> None:
        """Revokes the key (KeyNotFound if `workspace` has no such key): its record goes
        first, so that a failure after it leaves the key revoked, and listed at most."""
        if not _KEY_ID.fullmatch(key_id):
            raise KeyNotFound(key_id)
        [record] = await self._records([key_id])
        if record is None or record.workspace != workspace:
            raise KeyNotFound(key_id)
        await self._writes.command(api_key_key(key_id), "DEL")
        await self._writes.command(workspace_api_keys_key(workspace), "SREM", key_id)
        self._cache.pop(key_id, None)

    async def _record(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < KEY_CACHE_TTL:
            return cached[1]
        [record] = await self._records([key_id])
        if record is None:
            self._cache.pop(key_id, None)
            return None
        if len(self._cache) >= KEY_CACHE_SIZE:
            self._cache.clear()
        self._cache[key_id] = (now, record)
        return record

    async def _records(self, ids: Sequence[str]) -> list[ApiKey | None]:
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.hgetall(api_key_key(key_id))
            found: list[Mapping[bytes, bytes]] = await pipe.execute()
        return [_key(i, fields) if fields else None for i, fields in zip(ids, found, strict=True)]

    async def _used(self, record: ApiKey, now: float) -> None:
        """Writes the key's last use when the record says it is LAST_USED_EVERY old; asks
        at most that often per process, and the script writes at most that often overall."""
        last = max(record.last_used_at or 0, self._touched.get(record.id, 0))
        if now - last < LAST_USED_EVERY:
            return
        self._touched[record.id] = now
        if len(self._touched) > KEY_CACHE_SIZE:
            self._touched.clear()
        await self._touch(record.id, int(now))


def _fields(record: ApiKey) -> dict[str, str | int]:
    fields: dict[str, str | int] = {
        "workspace": record.workspace,
        "name": record.name,
        "scopes": " ".join(record.scopes),
        "hash": record.digest,
        "created_at": record.created_at,
    }
    if record.expires_at is not None:
        fields["expires_at"] = record.expires_at
    return fields


def _key(key_id: str, fields: Mapping[bytes, bytes]) -> ApiKey:
    text = {as_text(k): as_text(v) for k, v in fields.items()}
    expires, used = text.get("expires_at"), text.get(LAST_USED)
    return ApiKey(
        key_id,
        text["workspace"],
        text["name"],
        tuple(text["scopes"].split()),
        int(text["created_at"]),
        int(expires) if expires else None,
        int(used) if used else None,
        text["hash"],
    )
