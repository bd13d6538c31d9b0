"""The one Redis client factory of both apps."""

from __future__ import annotations

from redis.asyncio import Redis


def connect(url: str, *, timeout: float) -> Redis:
    """A client for `url` whose commands (and connects) give up after `timeout` seconds."""
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
