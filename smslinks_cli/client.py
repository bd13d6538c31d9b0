"""The admin API over HTTP (aiohttp's client): one session per command, every answer JSON,
every failure an `ApiError` (the API's own error) or a `CliError` (no answer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
from yarl import URL

from smslinks_cli.errors import ApiError, CliError

# A batch of 10,000 links takes the admin a second or two; a busy one, longer.
READ_TIMEOUT = 120.0
CONNECT_TIMEOUT = 10.0
USER_AGENT = "smslinks-cli"
# A key's rate limit (ADMIN_RATE_LIMIT per 60 s window) is waited out, as long as a window
# lasts at most, and this many times per request (another client may spend the next one).
RATE_LIMIT_WAIT_MAX = 120
RATE_LIMIT_WAITS = 5


def api_base(raw: str | None) -> URL:
    """SMSLINKS_URL checked: an http(s) URL with a host (any path is kept as a prefix)."""
    if not raw:
        raise CliError(
            "set SMSLINKS_URL (or --api-url) to the admin API, e.g. http://127.0.0.1:8081"
        )
    try:
        url = URL(raw.strip())
    except ValueError:
        url = URL()
    if url.scheme not in ("http", "https") or not url.host:
        raise CliError(
            f"SMSLINKS_URL must be an http(s) URL such as http://127.0.0.1:8081: {raw!r}"
        )
    return url.with_query(None).with_fragment(None)


def api_key(raw: str | None) -> str:
    if not raw or not raw.strip():
        raise CliError("set SMSLINKS_KEY (or --api-key) to an API key of the admin")
    return raw.strip()


class Api:
    """Calls of the admin API with one key; `call` returns the decoded JSON answer (None for
    an empty one, as a 204). A 429 (the key's rate limit spent) is waited out and the request
    sent again: the limit refuses a request before anything is done for it, so any request
    may be; `on_wait` hears of each wait."""

    def __init__(
        self, session: aiohttp.ClientSession, base: URL, on_wait: Callable[[int], None]
    ) -> None:
        self._session = session
        self._base = base
        self._on_wait = on_wait

    def url(self, path: str) -> URL:
        return self._base.with_path(self._base.path.rstrip("/") + path, encoded=False)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        for _ in range(RATE_LIMIT_WAITS):
            status, retry_after, body = await self._send(method, path, json, params)
            if status != 429 or retry_after is None or retry_after > RATE_LIMIT_WAIT_MAX:
                break
            self._on_wait(retry_after)
            await asyncio.sleep(retry_after)
        if status >= 400:
            raise _error(status, body, f"{method} {self.url(path)}")
        try:
            return orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            raise CliError(f"{method} {self.url(path)}: HTTP {status}, not JSON") from None

    async def _send(
        self, method: str, path: str, json: Any, params: Mapping[str, str] | None
    ) -> tuple[int, int | None, bytes]:
        """The answer's status, Retry-After (whole seconds, if given) and body."""
        url = self.url(path)
        try:
            async with self._session.request(method, url, json=json, params=params) as resp:
                retry_after = resp.headers.get("Retry-After", "")
                seconds = (
                    int(retry_after) if retry_after.isascii() and retry_after.isdigit() else None
                )
                return resp.status, seconds, await resp.read()
        except aiohttp.ClientConnectorError as exc:
            raise CliError(f"cannot reach the admin API at {self._base}: {exc.strerror}") from None
        except aiohttp.ClientResponseError as exc:
            raise CliError(f"{method} {url}: {exc.message}") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise CliError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise CliError(f"{method} {url}: no answer within {READ_TIMEOUT:.0f} s") from None


def _error(status: int, body: bytes, what: str) -> CliError:
    """The API's JSON error, or what a proxy in between said."""
    try:
        detail = orjson.loads(body)["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        text = body.decode(errors="replace").strip()[:200] or "(no body)"
        return CliError(f"{what}: HTTP {status}: {text}")
    if status == 401:
        message += " (check SMSLINKS_KEY)"
    return ApiError(status, code, message, detail)


@asynccontextmanager
async def connect(base: URL, key: str, on_wait: Callable[[int], None]) -> AsyncIterator[Api]:
    timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
    headers = {"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT}
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        yield Api(session, base, on_wait)
