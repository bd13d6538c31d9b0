"""What one visitor's connections may hold (redirector/connections.py), seen through raw
sockets: a request's header must arrive within REDIRECTOR_HEADER_TIMEOUT; and the open files
a process may hold for REDIRECTOR_MAX_CONNECTIONS (the cap itself: test_connection_cap.py)."""

from __future__ import annotations

import asyncio
import resource
import time

import pytest

from redirector.server import allow_open_files
from redirector.settings import Settings
from tests.conftest import Client
from tests.redirector.raw_connections import Connection, answered, closed_after, connect

HEADER_TIMEOUT = 0.5


@pytest.fixture
def redirector_settings(redirector_settings: Settings) -> Settings:
    update = {"header_timeout": HEADER_TIMEOUT, "click_tracking": False}
    return redirector_settings.model_copy(update=update)


async def test_a_connection_that_sends_half_a_header_is_closed_after_the_timeout(
    redirector: Client,
) -> None:
    half = await connect(redirector)
    half[1].write(b"GET /a.b HTTP/1.1\r\nHost: sho")
    assert HEADER_TIMEOUT * 0.8 < await closed_after(half, within=5) < HEADER_TIMEOUT + 1.5
    # A byte now and then does not keep it open either (slowloris).
    started = time.monotonic()
    assert not await _trickled(await connect(redirector), b"GET /a.b HTTP/1.1\r\nX: " + b"x" * 99)
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
    silent = await connect(redirector)
    assert await closed_after(silent, within=5) < HEADER_TIMEOUT + 1.5
    kept = await connect(redirector)
    assert await answered(kept)
    await asyncio.sleep(HEADER_TIMEOUT * 2)  # idle between requests: the keep-alive's to judge
    assert await answered(kept)
    kept[1].write(b"GET /a.b HTTP/1.1\r\n")  # but a late header, again, is not
    assert await closed_after(kept, within=5) < HEADER_TIMEOUT + 1.5


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
