"""The 302 as the client receives it (redirector/redirect.py writes its bytes itself): the
headers, keep-alive and close as HTTP/1.1 and HTTP/1.0 ask, pipelined requests, and a
destination that cannot be a header."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest
from redis.asyncio import Redis

from redirector.appkeys import clicks_key
from redirector.clicks import Hit
from redirector.metrics import COUNTS
from redirector.redirect import DateLine, Heads
from redirector.store.keys import link_key
from redirector.store.record import Link, encode
from tests.conftest import Client

DEST = "https://shop.example/p?utm_source=instasent&utm_medium=sms&utm_campaign=x"
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _put(redis: Redis, code: str, destination: str = DEST) -> None:
    await redis.hset(link_key(code), code, encode(Link(destination, created_at=1)))


async def _connect(client: Client) -> Connection:
    return await asyncio.open_connection(client.server.host, client.server.port)


async def _answer(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    """The status line and the headers of the next answer (a 302 has no body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    status, *lines = head.decode("ascii").removesuffix("\r\n\r\n").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert len(headers) == len(lines), "a header twice"
    return status, headers


async def _closed(reader: asyncio.StreamReader) -> bool:
    """True if the server closes the connection (with nothing more sent) within 5 s."""
    try:
        return await asyncio.wait_for(reader.read(), timeout=5) == b""
    except TimeoutError:
        return False


async def test_pipelined_taps_get_whole_answers_on_one_connection(
    redirector: Client, redis: Redis
) -> None:
    await _put(redis, "wire001")
    reader, writer = await _connect(redirector)
    request = b"GET /wire001 HTTP/1.1\r\nHost: sho.rt\r\n\r\n"
    writer.write(request * 3 + b"HEAD /wire001 HTTP/1.1\r\nHost: sho.rt\r\n\r\n")
    for _ in range(4):
        status, headers = await _answer(reader)
        assert status == "HTTP/1.1 302 Found"
        assert headers.keys() == {"Location", "Cache-Control", "Content-Length", "Date"}
        assert headers["Location"] == DEST
        assert headers["Cache-Control"] == "private, max-age=0"
        assert headers["Content-Length"] == "0"
        date = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
        assert abs(date - time.time()) < 5
    writer.write(request)  # still open
    assert (await _answer(reader))[0] == "HTTP/1.1 302 Found"
    writer.close()


@pytest.mark.parametrize(
    ("request_line", "status", "connection", "closes"),
    [
        (b"GET /wire002 HTTP/1.1\r\nHost: sho.rt\r\nConnection: close", "HTTP/1.1", "close", True),
        (b"GET /wire002 HTTP/1.0", "HTTP/1.0", None, True),
        (b"GET /wire002 HTTP/1.0\r\nConnection: keep-alive", "HTTP/1.0", "keep-alive", False),
    ],
)
async def test_the_connection_closes_when_the_client_asks(
    redirector: Client,
    redis: Redis,
    request_line: bytes,
    status: str,
    connection: str | None,
    closes: bool,
) -> None:
    await _put(redis, "wire002")
    reader, writer = await _connect(redirector)
    writer.write(request_line + b"\r\n\r\n")
    got_status, headers = await _answer(reader)
    assert got_status == f"{status} 302 Found"
    assert headers["Location"] == DEST
    assert headers.get("Connection") == connection
    if closes:
        assert await _closed(reader)
    else:
        writer.write(request_line + b"\r\n\r\n")
        assert (await _answer(reader))[0] == f"{status} 302 Found"
    writer.close()


async def test_a_destination_that_cannot_be_a_header_is_a_500_not_an_injection(
    redirector: Client, redis: Redis
) -> None:
    # Never written by the admin (it stores checked URLs): a record from elsewhere.
    await _put(redis, "wire003", "https://a.example/\r\nSet-Cookie: session=stolen")
    found, buffer = COUNTS.found, redirector.app[clicks_key]
    reader, writer = await _connect(redirector)
    writer.write(b"GET /wire003 HTTP/1.1\r\nHost: sho.rt\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    assert head.startswith(b"HTTP/1.1 500 ")
    assert b"Set-Cookie" not in head and b"stolen" not in head
    # Neither counted as a redirect nor recorded as a click.
    assert COUNTS.found == found
    assert not [hit for hit in buffer.hits if Hit(*hit).code == "wire003"]
    writer.close()


def test_heads_are_made_once_each_and_bounded_in_bytes() -> None:
    head_bytes = len(b"Location: https://a.example/\r\nCache-Control: x\r\nContent-Length: 0\r\n")
    entry = len("https://a.example/") + head_bytes
    heads = Heads("x", max_bytes=2 * entry)  # two destinations of this length
    first = heads("https://a.example/")
    assert first == b"Location: https://a.example/\r\nCache-Control: x\r\nContent-Length: 0\r\n"
    assert heads("https://a.example/") is first
    heads("https://b.example/")
    heads("https://c.example/")  # over the bound: the oldest goes
    assert heads("https://a.example/") is not first
    assert heads("https://a.example/") == first
    long = "https://d.example/" + "x" * 1000  # alone over the bound: kept, all others go
    assert heads(long).startswith(b"Location: https://d.example/x")
    assert heads(long) is heads(long)
    for bad in ("https://a.example/\r\nX: y", "https://a.example/\u00e9"):
        with pytest.raises(ValueError, match="cannot be a header"):
            heads(bad)


def test_the_date_line_is_made_once_a_second() -> None:
    date = DateLine()
    line = date.at(1_764_500_000.2)
    assert line == b"Date: Sun, 30 Nov 2025 10:53:20 GMT\r\n\r\n"
    assert date.at(1_764_500_000.9) is line
    assert date.at(1_764_500_001.0) == b"Date: Sun, 30 Nov 2025 10:53:21 GMT\r\n\r\n"
