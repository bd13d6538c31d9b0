"""Dashboard sessions: made when someone signs in with an API key, found by the token of their
cookie, ended by signing out or by their expiry. A session holds only the id of the key it was
made with: its workspace and scopes are read from the key on every request
(`KeyService.principal_of`), so a revoked key ends its sessions as soon as its record is gone
from every process's cache (0.5 s)."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis.typing import EncodableT, FieldT

from admin.service import as_text
from redirector.store.connection import NO_WAIT, Durability, Store
from redirector.store.keys import dashboard_session_key
from redirector.store.scripts import SingleKeyWrites

# 256 random bits, URL-safe base 64: the cookie's token and each session's CSRF token.
TOKEN_BYTES = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str  # the API key it acts as
    csrf: str  # the token every form of the session carries
    expires_at: int  # unix seconds


class SessionService:
    def __init__(self, redis: Store, ttl: int, durability: Durability = NO_WAIT) -> None:
        self._redis = redis
        self.ttl = ttl
        # Ending a session is waited for on replicas: a failover must not sign anyone back in.
        self._writes = SingleKeyWrites(redis, durability)

    async def create(self, key_id: str) -> tuple[str, Session]:
        """A new session of the key; and its token, for the cookie (stored only hashed)."""
        token = new_token()
        session = Session(key_id, new_token(), int(time.time()) + self.ttl)
        key = dashboard_session_key(_digest(token))
        fields: dict[FieldT, EncodableT] = {
            "key": key_id,
            "csrf": session.csrf,
            "expires_at": session.expires_at,
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.ttl)
            await pipe.execute()
        return token, session

    async def get(self, token: str) -> Session | None:
        """The live session of the cookie's token, or None (anything else a cookie holds is
        none, without a read)."""
        if not is_token(token):
            return None
        fields: Mapping[bytes | str, bytes | str] = await self._redis.hgetall(
            dashboard_session_key(_digest(token))
        )
        if not fields:
            return None
        text = {as_text(k): as_text(v) for k, v in fields.items()}
        session = Session(text["key"], text["csrf"], int(text["expires_at"]))
        # Redis expires the key to the millisecond; this is for a clock read a moment later.
        return session if session.expires_at > time.time() else None

    async def end(self, token: str) -> None:
        if is_token(token):
            await self._writes.command(dashboard_session_key(_digest(token)), "DEL")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
