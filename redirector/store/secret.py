"""The random secrets that every process of both apps must share: the salt of the visitor
hashes (`cfg:click_salt`, made by the click workers) and the key of the per-recipient codes
(`cfg:code_key`, made by the admin). Whichever process asks first makes one; nobody uses it
before it is on the replicas that `Durability` asks for, as a link is acknowledged only then:
a secret lost in a failover would be made again, different, and every recipient's code (or
every visitor's hash) would change with it.
"""

from __future__ import annotations

import logging
import secrets
import time

from redis.exceptions import RedisError

from redirector.store.connection import NO_WAIT, Durability, Store, run_replicated

log = logging.getLogger(__name__)

# -- KEEP_SECRET ---------------------------------------------------------------------------
#
# The secret under KEYS[1], made ARGV[1] if there is none. Written back when it was there
# too: the WAIT behind this call then covers the write of whoever made it, which may not be
# on a replica yet, so that no process starts using a secret that a failover could still lose.
KEEP_SECRET = """
local secret = KEYS[1]
local value = redis.call('GET', secret) or ARGV[1]
redis.call('SET', secret, value)
return value
"""


class SecretChanged(RedisError):
    """The stored secret is no longer the one this process uses: it was lost (a failover
    without replica, a restore from an old backup) and another process made a new one. Using
    either silently would split the recipients' codes in two; an operator must choose (set
    the key back to the old value, or restart every process on the new one)."""


class SharedSecret:
    """The secret under `key` (`size` random bytes, in hex), read once and then re-checked
    every `recheck` seconds (never when None). A re-check that finds the key gone writes this
    process's value back; one that finds another value raises `SecretChanged` until the key
    holds this process's value again."""

    def __init__(
        self,
        redis: Store,
        key: str,
        size: int,
        durability: Durability = NO_WAIT,
        *,
        recheck: float | None = None,
    ) -> None:
        self._redis, self._key, self._size, self._durability = redis, key, size, durability
        self._keep = redis.register_script(KEEP_SECRET)
        self.recheck = recheck
        self._value: bytes | None = None
        self._checked_until = 0.0

    async def value(self) -> bytes:
        known = self._value
        if known is not None and (self.recheck is None or time.monotonic() < self._checked_until):
            return known
        offered = known or secrets.token_hex(self._size).encode()
        reply = await run_replicated(
            self._redis, self._keep, [self._key], [offered], self._durability
        )
        stored = reply if isinstance(reply, bytes) else str(reply).encode()
        if known is not None and stored != known:
            log.error("%s changed under this process; refusing to use either value", self._key)
            raise SecretChanged(
                f"{self._key} is not the value this process has been using (lost and made"
                " again?); set it back, or restart every process to adopt the new one"
            )
        self._value = stored
        if self.recheck is not None:
            self._checked_until = time.monotonic() + self.recheck
        return stored
