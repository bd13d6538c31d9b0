"""The 302 written as one block of bytes, most of it made once per destination.

aiohttp's response machinery (a `web.Response` with its headers multidict, `prepare`, the
header checks and serialization, `write_eof`) cost the hot path ~20% of its CPU (py-spy, bench
row hot, 2026-11-30): more than the lookup and the click record together. A redirect's
answer hardly varies: the status line, the Location and Cache-Control of its destination and
Content-Length: 0 are the same bytes for every tap of a campaign's links, the Date changes
once a second, and a Connection header is added only when the connection closes (or for
HTTP/1.0). So `Redirect` writes those pieces with one `transport.write`, the destination's
part taken from `Heads`, and tells aiohttp's request handler that nothing is left to write.
It subclasses `web.StreamResponse` through its public coroutines (`prepare`, `write_eof`) and
its `keep_alive` and `body_length` properties; what aiohttp does around a response
(keep-alive, a client gone away, back-pressure) is unchanged.

What differs from aiohttp's 302: no `Server` header (the other answers still have aiohttp's);
in the access log (ACCESS_LOG) `%b` is the bytes written, as before, but the response's
headers (`%{Location}o`) show as `-`: they are never put in a headers mapping.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from email.utils import formatdate

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11

# Characters a header value may not hold (what aiohttp refuses too): a destination is stored
# as checked ASCII, so this only guards against a record written by something else.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"  # asked by an HTTP/1.0 client
_STATUS_11 = b"HTTP/1.1 302 Found\r\n"


# What `Heads` keeps at most, counting each destination twice (the key and its head): a few
# thousand destinations of ordinary length (a campaign's links share one), and never more
# than this however long the URLs (up to the admin's MAX_URL_LENGTH).
HEADS_BYTES = 4 * 1024 * 1024


class Heads:
    """The headers of each destination's 302 (but for Date and Connection), made once;
    bounded by `max_bytes`, first in first out. An entry is never stale: its key is the
    destination itself (a link retargeted has another)."""

    def __init__(self, cache_control: str, max_bytes: int = HEADS_BYTES) -> None:
        self._tail = f"Cache-Control: {cache_control}\r\nContent-Length: 0\r\n".encode()
        self._max_bytes = max_bytes
        self._bytes = 0
        self._heads: OrderedDict[str, bytes] = OrderedDict()

    def __call__(self, destination: str) -> bytes:
        """Raises ValueError for a destination that cannot be a header value."""
        head = self._heads.get(destination)
        if head is None:
            if _FORBIDDEN.search(destination) is not None or not destination.isascii():
                raise ValueError(f"a destination that cannot be a header: {destination!r}")
            head = b"Location: " + destination.encode("ascii") + b"\r\n" + self._tail
            self._bytes += len(destination) + len(head)
            self._heads[destination] = head
            while self._bytes > self._max_bytes and len(self._heads) > 1:
                old, old_head = self._heads.popitem(last=False)
                self._bytes -= len(old) + len(old_head)
        return head


class DateLine:
    """The Date header's line and the blank line that ends the headers, made once a second."""

    __slots__ = ("line", "second")

    def __init__(self) -> None:
        self.second = -1
        self.line = b""

    def at(self, now: float) -> bytes:
        second = int(now)
        if second != self.second:
            self.line = f"Date: {formatdate(second, usegmt=True)}\r\n\r\n".encode()
            self.second = second
        return self.line


DATE = DateLine()


class Redirect(web.StreamResponse):
    """A 302 to the destination whose `head` is given (`Heads`), written by `prepare`."""

    def __init__(self, head: bytes, now: float) -> None:
        super().__init__(status=302)
        self._head: bytes | None = head
        self._now = now
        self._alive = False  # the connection stays open for the next request
        self._written = 0

    @property
    def body_length(self) -> int:
        """Bytes written, as aiohttp counts them for the access log's `%b`."""
        return self._written

    @property
    def keep_alive(self) -> bool:
        """What aiohttp's request handler asks once the response is written (the base class
        learns it in the header preparation this class does without)."""
        return self._alive

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._head is None:  # written already
            return None
        keep_alive = self._alive = request.keep_alive
        version = request.version
        if version == HttpVersion11:
            status = _STATUS_11
            connection = b"" if keep_alive else _CLOSE
        else:
            status = f"HTTP/{version.major}.{version.minor} 302 Found\r\n".encode()
            connection = _KEEP_ALIVE if keep_alive else b""
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away")
        answer = b"".join((status, self._head, connection, DATE.at(self._now)))
        transport.write(answer)
        self._head, self._written = None, len(answer)
        # As aiohttp after each response: a client that sends and never reads makes its
        # connection's buffer wait here, not grow.
        await request.writer.drain()
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        """Nothing: `prepare` wrote the whole answer (a 302 has no body)."""
