"""At REDIRECTOR_MAX_CONNECTIONS (redirector/connections.py): a new connection takes the place
of an idle keep-alive one, else it is closed on arrival. Seen through raw sockets, and the
server's side of them (it runs in this process)."""

from __future__ import annotations

from typing import cast

import pytest
from prometheus_client import REGISTRY

from redirector import connections
from redirector.connections import GuardedConnection, GuardedServer
from redirector.settings import Settings
from tests.conftest import Client
from tests.redirector.raw_connections import Connection, answered, closed_after, connect
from tests.waiting import eventually

MAX_CONNECTIONS = 4
# Long enough that no connection of a test is closed for a late header meanwhile.
HEADER_TIMEOUT = 60.0
HALF = b"GET /a.b HTTP/1.1\r\n"  # a header begun: its connection is busy
REST = b"Host: sho.rt\r\n\r\n"


@pytest.fixture
def redirector_settings(redirector_settings: Settings) -> Settings:
    limits = {"header_timeout": HEADER_TIMEOUT, "max_connections": MAX_CONNECTIONS}
    return redirector_settings.model_copy(update={**limits, "click_tracking": False})


def _server_side(client: Client, connection: Connection) -> GuardedConnection:
    runner = client.server.runner
    assert runner is not None
    server = cast(GuardedServer, runner.server)
    port = connection[1].get_extra_info("sockname")[1]
    (found,) = [
        c for c in server.order if c.transport and c.transport.get_extra_info("peername")[1] == port
    ]
    return found


async def _busy(client: Client, connection: Connection) -> None:
    """Its next header begun, and seen begun by the server."""
    connection[1].write(HALF)

    async def seen() -> bool:
        return not _server_side(client, connection).idle

    await eventually(seen, within=5)


def _idle_closed() -> float:
    return REGISTRY.get_sample_value("smslinks_idle_connections_closed_total") or 0.0


async def test_at_the_cap_a_new_connection_is_closed_at_once_when_none_is_idle(
    redirector: Client,
) -> None:
    held = [await connect(redirector) for _ in range(MAX_CONNECTIONS)]
    try:
        for connection in held:  # each in its first request's header
            await _busy(redirector, connection)
        assert not await answered(await connect(redirector))
        held.pop()[1].close()  # one fewer: room for another

        async def served() -> bool:
            return await answered(await connect(redirector))

        await eventually(served, within=5)
        for connection in held:  # those kept meanwhile are still served
            assert await answered(connection, REST)
    finally:
        for connection in held:
            connection[1].close()


async def test_at_the_cap_an_idle_keep_alive_connection_gives_way_to_a_new_one(
    redirector: Client,
) -> None:
    """One request per connection every 75 s (the keep-alive timeout) would otherwise hold
    the cap and keep every new visitor out."""
    held = [await connect(redirector) for _ in range(MAX_CONNECTIONS)]
    try:
        for connection in held:  # served once, then idle on keep-alive: what an attacker pays
            assert await answered(connection)
        await _busy(redirector, held[0])  # its next request arriving: it keeps its place
        before = _idle_closed()
        newcomer = await connect(redirector)
        assert await answered(newcomer)
        # The first idle one in turn made room: closed, unanswered; the others kept.
        assert await closed_after(held[1], within=5) < 1
        assert await answered(held[0], REST)
        for connection in (*held[2:], newcomer):
            assert await answered(connection)
        assert _idle_closed() == before + 1
    finally:
        for connection in held:
            connection[1].close()


async def test_connections_that_stay_busy_cannot_hide_the_idle_ones_behind_them(
    redirector: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new connection looks at a few connections only, but each busy one it passes goes to
    the back: the next new one looks further."""
    monkeypatch.setattr(connections, "IDLE_LOOKED_AT", 2)
    held = [await connect(redirector) for _ in range(MAX_CONNECTIONS)]
    try:
        for connection in held:
            assert await answered(connection)
        for connection in held[:2]:  # the oldest two busy, the others idle
            await _busy(redirector, connection)
        assert not await answered(await connect(redirector))  # looked at the busy two only
        assert await answered(await connect(redirector))  # then at the idle ones
        assert await closed_after(held[2], within=5) < 1
    finally:
        for connection in held:
            connection[1].close()
