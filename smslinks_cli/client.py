"""The admin API over HTTP (aiohttp's client): one session per command, every answer JSON,
every failure an `ApiError` (the API's own error) or a `CliError` (no answer)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from yarl import URL

from smslinks_cli.errors import ApiError, CliError

# A batch of 10,000 links takes the admin a second or two; a busy one, longer.
READ_TIMEOUT = 120.0
CONNECT_TIMEOUT = 10.0
USER_AGENT = "smslinks-cli"


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
    an empty one, as a 204)."""

    def __init__(self, session: aiohttp.ClientSession, base: URL) -> None:
        self._session = session
        self._base = base

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
        url = self.url(path)
        try:
            async with self._session.request(method, url, json=json, params=params) as resp:
                body = await resp.read()
                if resp.status >= 400:
                    raise _error(resp.status, body, f"{method} {url}")
                if not body:
                    return None
                return await resp.json(content_type=None)
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
        detail = json.loads(body)["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        text = body.decode(errors="replace").strip()[:200] or "(no body)"
        return CliError(f"{what}: HTTP {status}: {text}")
    if status == 401:
        message += " (check SMSLINKS_KEY)"
    return ApiError(status, code, message, detail)


@asynccontextmanager
async def connect(base: URL, key: str) -> AsyncIterator[Api]:
    timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
    headers = {"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT}
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        yield Api(session, base)
