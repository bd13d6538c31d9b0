"""What one visitor's connections may hold: aiohttp's low-level server with a cap on open
connections and a deadline for each request's header.

aiohttp reads a request's header without a deadline of its own: a connection that sends half
a header and then a byte now and then (slowloris) is only closed by the keep-alive timer,
75 s after it opened, and thousands of them hold as many sockets. Here:
- a request's header must be complete within `header_timeout` seconds of its first byte (a
  new connection's first request, of the connection's opening), else the connection is
  closed; a connection idle between requests is left to the keep-alive timeout;
- at `max_connections` open connections, a new one takes the place of an idle keep-alive
  connection, which is closed, as a server may close one at any time (RFC 9112 9.3: clients
  open another); with none idle among those looked at, the new one is closed as soon as it is
  accepted. Idle: answered in full (nothing left to write) and waiting for its next request,
  none of whose bytes arrived. A new connection looks at up to IDLE_LOOKED_AT connections,
  oldest first, and sends each one it finds busy to the back of that order, so connections
  that stay busy (a header arriving, an answer the visitor does not read) cannot hide the
  idle ones behind them. Without this, one request every 75 s on each of `max_connections`
  connections would keep every other visitor out.

The cost on the redirect path is one comparison per received packet (at the cap, a look at
up to IDLE_LOOKED_AT connections per new one): the deadline is a timer
only while a header is incomplete, and a request that arrives whole in one packet never arms
one. (A partial request that follows whole ones in the same packet is not timed: it is left to
the keep-alive timeout.)
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from redirector import metrics

# At the cap, how many connections a new one looks at for an idle one to replace: a bounded
# cost per connection accepted, whatever the cap.
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
        # The accepted connections, in the order a new one at the cap looks at them.
        self.order: OrderedDict[GuardedConnection, None] = OrderedDict()

    def __call__(self) -> RequestHandler:
        return GuardedConnection(self, loop=self._loop, **self._kwargs)

    def make_room(self) -> bool:
        """At the cap: the first idle connection of `order` (IDLE_LOOKED_AT looked at, each
        busy one sent to the back) closed, its place taken by a new one; False if none of
        them was idle."""
        order = self.order
        for _ in range(min(IDLE_LOOKED_AT, len(order))):
            connection = next(iter(order))
            if connection.idle:
                del order[connection]  # still counted open until it is lost (next turn)
                connection.force_close()
                metrics.IDLE_CONNECTIONS_CLOSED.inc()
                return True
            order.move_to_end(connection)
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
        if guard.open_connections >= guard.max_connections and not guard.make_room():
            # Never handed to aiohttp: connection_lost then finds no server and does nothing.
            self._manager = None
            transport.close()
            metrics.CONNECTIONS_REFUSED.inc()
            return
        guard.open_connections += 1
        guard.order[self] = None
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._manager is not None:  # an accepted connection, lost once
            self._guard.open_connections -= 1
            self._guard.order.pop(self, None)
            self._disarm()
        super().connection_lost(exc)

    @property
    def idle(self) -> bool:
        """Answered in full (nothing left to write: closed, it goes at once), and waiting for
        its next request, none of whose bytes arrived: what aiohttp's keep-alive timer would
        close."""
        waiter, transport = self._waiter, self.transport
        return (
            waiter is not None
            and not waiter.done()
            and self._request_count > 0
            and self._header_deadline is None
            and transport is not None
            and transport.get_write_buffer_size() == 0
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
