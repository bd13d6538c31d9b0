"""A visitor's connection as raw sockets, for the tests of what connections may hold."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import Client

REQUEST = b"HEAD /a.b HTTP/1.1\r\nHost: sho.rt\r\n\r\n"  # junk code: a 404 without Redis

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(client: Client) -> Connection:
    return await asyncio.open_connection(client.server.host, client.server.port)


async def answered(connection: Connection, request: bytes = REQUEST) -> bool:
    """Sends `request` (the rest of one); True once its answer came back on the same
    connection."""
    reader, writer = connection
    writer.write(request)
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    return head.startswith(b"HTTP/1.1 404")


async def closed_after(connection: Connection, within: float) -> float:
    """Seconds until the server closed the connection, having answered nothing."""
    started = time.monotonic()
    try:
        rest = await asyncio.wait_for(connection[0].read(), timeout=within)
    except ConnectionResetError:
        rest = b""
    assert rest == b""
    return time.monotonic() - started
