"""What one visitor's connections may hold (redirector/connections.py), seen through raw
sockets: a request's header must arrive within REDIRECTOR_HEADER_TIMEOUT, and a process keeps
at most REDIRECTOR_MAX_CONNECTIONS connections open."""

from __future__ import annotations

import asyncio
import resource
import time

import pytest
from prometheus_client import REGISTRY

from redirector.server import allow_open_files
from redirector.settings import Settings
from tests.conftest import Client

HEADER_TIMEOUT = 0.5
MAX_CONNECTIONS = 4
REQUEST = b"HEAD /a.b HTTP/1.1\r\nHost: sho.rt\r\n\r\n"  # junk code: a 404 without Redis

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
def redirector_settings(redirector_settings: Settings) -> Settings:
    limits = {"header_timeout": HEADER_TIMEOUT, "max_connections": MAX_CONNECTIONS}
    return redirector_settings.model_copy(update={**limits, "click_tracking": False})


async def _connect(client: Client) -> Connection:
    return await asyncio.open_connection(client.server.host, client.server.port)


async def _answered(connection: Connection) -> bool:
    """Sends a whole request; True once its answer came back on the same connection."""
    reader, writer = connection
    writer.write(REQUEST)
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    return head.startswith(b"HTTP/1.1 404")


async def _closed_after(connection: Connection, within: float) -> float:
    """Seconds until the server closed the connection, having answered nothing."""
    started = time.monotonic()
    try:
        rest = await asyncio.wait_for(connection[0].read(), timeout=within)
    except ConnectionResetError:
        rest = b""
    assert rest == b""
    return time.monotonic() - started


async def test_a_connection_that_sends_half_a_header_is_closed_after_the_timeout(
    redirector: Client,
) -> None:
    half = await _connect(redirector)
    half[1].write(b"GET /a.b HTTP/1.1\r\nHost: sho")
    assert HEADER_TIMEOUT * 0.8 < await _closed_after(half, within=5) < HEADER_TIMEOUT + 1.5
    # A byte now and then does not keep it open either (slowloris).
    started = time.monotonic()
    assert not await _trickled(await _connect(redirector), b"GET /a.b HTTP/1.1\r\nX: " + b"x" * 99)
    assert time.monotonic() - started < HEADER_TIMEOUT + 1.5


async def _trickled(connection: Connection, data: bytes) -> bool:
    """Sends `data` a byte every tenth of the timeout; False once the server closed."""
    reader, writer = connection
    for byte in data:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            return False
        await asyncio.sleep(HEADER_TIMEOUT / 10)
        if reader.at_eof():
            return False
    return True


async def test_a_silent_connection_is_closed_but_an_idle_keep_alive_one_is_not(
    redirector: Client,
) -> None:
    silent = await _connect(redirector)
    assert await _closed_after(silent, within=5) < HEADER_TIMEOUT + 1.5
    kept = await _connect(redirector)
    assert await _answered(kept)
    await asyncio.sleep(HEADER_TIMEOUT * 2)  # idle between requests: the keep-alive's to judge
    assert await _answered(kept)
    kept[1].write(b"GET /a.b HTTP/1.1\r\n")  # but a late header, again, is not
    assert await _closed_after(kept, within=5) < HEADER_TIMEOUT + 1.5


async def test_at_the_cap_a_new_connection_is_closed_at_once_when_none_is_idle(
    redirector: Client,
) -> None:
    # Opened, or with a header arriving: not idle (the header timeout is theirs to judge).
    held = [await _connect(redirector) for _ in range(MAX_CONNECTIONS)]
    held[0][1].write(b"GET /a.b HTTP/1.1\r\n")
    started = time.monotonic()
    assert not await _answered(await _connect(redirector))
    assert time.monotonic() - started < HEADER_TIMEOUT  # closed on arrival, not timed out
    held.pop()[1].close()  # one fewer: room for another

    async def _served() -> bool:
        return await _answered(await _connect(redirector))

    for _ in range(50):
        if await _served():
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("no connection was served again once one closed")
    for connection in held:
        connection[1].close()


def test_the_open_files_limit_is_raised_for_the_connections_allowed() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        assert allow_open_files(ceiling) == ceiling
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == ceiling
        if hard != resource.RLIM_INFINITY:  # never past the hard limit: it says how far
            assert allow_open_files(hard + 1) == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_at_the_cap_an_idle_keep_alive_connection_gives_way_to_a_new_one(
    redirector: Client,
) -> None:
    """One request per connection every 75 s (the keep-alive timeout) would otherwise hold
    the cap and keep every new visitor out."""
    held = [await _connect(redirector) for _ in range(MAX_CONNECTIONS)]
    for connection in held:  # each served once, then idle on keep-alive: what an attacker pays
        assert await _answered(connection)
    held[0][1].write(b"GET /a.b HTTP/1.1\r\n")  # its next request arriving: not idle
    await asyncio.sleep(HEADER_TIMEOUT / 5)
    before = _idle_closed()
    try:
        newcomer = await _connect(redirector)
        assert await _answered(newcomer)
        # The oldest idle one made room: closed, unanswered; the others kept.
        assert await _closed_after(held[1], within=5) < 1
        held[0][1].write(b"Host: sho.rt\r\n\r\n")
        assert (await asyncio.wait_for(held[0][0].readuntil(b"\r\n\r\n"), 5)).startswith(
            b"HTTP/1.1 404"
        )
        for connection in (*held[2:], newcomer):
            assert await _answered(connection)
        assert _idle_closed() == before + 1
    finally:
        for connection in held:
            connection[1].close()


def _idle_closed() -> float:
    """The server runs in this process: its counter, read without a connection of ours."""
    return REGISTRY.get_sample_value("smslinks_idle_connections_closed_total") or 0.0
