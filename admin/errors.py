"""The HTTP edge of errors: domain errors and aiohttp's own become JSON error bodies.

Every error response is `{"error": {"code": "<machine_code>", "message": "<human text>"}}`;
validation errors add `"fields": [{"field", "message", "index"?}, ...]`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from admin.appkeys import settings_key
from admin.exceptions import AdminError, CodeTaken, Contention, NotFound, ValidationFailed

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body = orjson.dumps({"error": {"code": code, "message": message, **extra}})
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _domain(exc: AdminError) -> web.Response:
    if isinstance(exc, ValidationFailed):
        fields = [
            {"field": e.field, "message": e.message}
            | ({"index": e.index} if e.index is not None else {})
            for e in exc.errors
        ]
        return error_response(422, exc.code, exc.message, fields=fields)
    if isinstance(exc, CodeTaken):
        extra: dict[str, Any] = {"index": exc.index} if exc.index is not None else {}
        return error_response(409, exc.code, exc.message, **extra)
    if isinstance(exc, NotFound):
        return error_response(404, exc.code, exc.message)
    return error_response(400, exc.code, exc.message)  # pragma: no cover - every kind above


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AdminError as exc:
        return _domain(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "http_error")
        message = exc.text if exc.status != 413 else "request body is too large"
        return error_response(exc.status, code, message or exc.reason)
    except Contention as exc:
        return error_response(409, "conflict", str(exc))
    except RedisError as exc:
        log.warning("redis error on %s %s: %s", request.method, request.path, exc)
        return error_response(503, "storage_unavailable", "the link store is unavailable")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/") and not _authorized(request):
        return error_response(
            401,
            "unauthorized",
            "send 'Authorization: Bearer <key>' with a key from ADMIN_API_KEYS",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return await handler(request)


def _authorized(request: web.Request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    given = token.strip().encode()
    # Compare with every key, without stopping at a match, so timing reveals nothing.
    matched = False
    for key in request.app[settings_key].api_keys:
        matched |= hmac.compare_digest(given, key.encode())
    return matched
