"""The per-key rate limit: ADMIN_RATE_LIMIT requests per RATE_WINDOW seconds for each API
key, counted in Redis so that every admin process (ADMIN_WORKERS, other hosts) spends one
budget. The window is fixed and starts with its first request: a key may spend all of it at
once, and is then refused until the window ends. `admin.auth` applies it to each request,
and sends each answer's RateLimit fields (`Quota.fields`)."""

from __future__ import annotations

from dataclasses import dataclass

from redirector.store.access import CountRequestScript
from redirector.store.connection import Store
from redirector.store.keys import RATE_WINDOW


@dataclass(frozen=True, slots=True)
class Quota:
    """Where a key stands in its window, this request counted."""

    limit: int
    requests: int  # made in the window, this one included
    reset: int  # whole seconds until the window ends, rounded up (at least 1)

    @property
    def exceeded(self) -> bool:
        return self.requests > self.limit

    def fields(self) -> dict[str, str]:
        """The header fields of draft-ietf-httpapi-ratelimit-headers-06; RateLimit-Reset is a
        number of seconds (a delta, immune to the client's clock), as Retry-After."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.limit - self.requests, 0)),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": f"{self.limit};w={RATE_WINDOW}",
        }


class RateLimiter:
    def __init__(self, redis: Store, limit: int) -> None:
        self.limit = limit  # 0: no limit, and nothing counted
        self._count = CountRequestScript(redis, RATE_WINDOW)

    async def spend(self, key_id: str) -> Quota | None:
        """Counts one request made with the key (one Redis call); None when there is no
        limit."""
        if self.limit == 0:
            return None
        counted = await self._count(key_id)
        return Quota(self.limit, counted.requests, -(-counted.left_ms // 1000))
