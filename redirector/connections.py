"""What one visitor's connections may hold: aiohttp's low-level server with a cap on open
connections and a deadline for each request's header.

aiohttp reads a request's header without a deadline of its own: a connection that sends half
a header and then a byte now and then (slowloris) is only closed by the keep-alive timer,
75 s after it opened, and thousands of them hold as many sockets. Here:
- a request's header must be complete within `header_timeout` seconds of its first byte (a
  new connection's first request, of the connection's opening), else the connection is
  closed; a connection idle between requests is left to the keep-alive timeout;
- at `max_connections` open connections, a new one takes the place of an idle keep-alive
  connection (one that was answered and waits for its next request; the oldest of the first
  IDLE_LOOKED_AT connections in the order they opened), which is closed, as a server may
  close an idle keep-alive connection at any time (RFC 9112 9.3: clients open another);
  with none of them idle, the new one is closed as soon as it is accepted. Without this, one
  request every 75 s on each of `max_connections` connections would keep every other
  visitor out. Only connections that are in a request, or whose header is still arriving
  (closed within `header_timeout`), hold their place.

The cost on the redirect path is one comparison per received packet (at the cap, a look at
up to IDLE_LOOKED_AT connections per new one): the deadline is a timer
only while a header is incomplete, and a request that arrives whole in one packet never arms
one. (A partial request that follows whole ones in the same packet is not timed: it is left to
the keep-alive timeout.)
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from redirector import metrics

# At the cap, how many of the oldest connections a new one looks at for an idle one to
# replace: a bounded cost per connection accepted, whatever the cap.
IDLE_LOOKED_AT = 64


class GuardedServer(web.Server):
    """`web.Server` whose connections are `GuardedConnection`s, at most `max_connections`."""

    def __init__(
        self,
        handler: Any,
        *,
        max_connections: int,
        header_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open_connections = 0

    def __call__(self) -> RequestHandler:
        return GuardedConnection(self, loop=self._loop, **self._kwargs)

    def make_room(self) -> bool:
        """At the cap: the first idle keep-alive connection among the IDLE_LOOKED_AT oldest
        closed (its place taken by a new one). False if none of them is idle."""
        for connection in itertools.islice(self._connections, IDLE_LOOKED_AT):
            if isinstance(connection, GuardedConnection) and connection.idle:
                connection.force_close()
                metrics.IDLE_CONNECTIONS_CLOSED.inc()
                return True
        return False


class GuardedConnection(RequestHandler):
    """One connection: refused when the server is full, closed when a header is late."""

    __slots__ = ("_guard", "_header_deadline", "_headers_done")

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._headers_done = 0  # the requests whose header had arrived when last looked
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        # The closed idle connection still counts until it is lost (the next loop turn).
        if guard.open_connections >= guard.max_connections and not guard.make_room():
            # Never handed to aiohttp: connection_lost then finds no server and does nothing.
            self._manager = None
            transport.close()
            metrics.CONNECTIONS_REFUSED.inc()
            return
        guard.open_connections += 1
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._manager is not None:  # an accepted connection, lost once
            self._guard.open_connections -= 1
            self._disarm()
        super().connection_lost(exc)

    @property
    def idle(self) -> bool:
        """Answered, and waiting for its next request (none of whose bytes arrived): what
        aiohttp's keep-alive timer would close."""
        waiter = self._waiter
        return (
            waiter is not None
            and not waiter.done()
            and self._request_count > 0
            and self._header_deadline is None
            and not self._messages
        )

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._request_count != self._headers_done:  # a header is complete: in time
            self._headers_done = self._request_count
            if self._header_deadline is not None:
                self._disarm()
        elif data and self._header_deadline is None:  # the first bytes of a request
            self._arm()

    def _arm(self) -> None:
        self._header_deadline = self._loop.call_later(self._guard.header_timeout, self._header_late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_late(self) -> None:
        self._header_deadline = None
        if self._request_count == self._headers_done:
            metrics.HEADER_TIMEOUTS.inc()
            self.force_close()
