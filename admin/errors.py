"""The HTTP edge of errors: domain errors, aiohttp's own and any unexpected exception become
the JSON error body of `admin.responses.Error`: `{"error": {"code", "message", ...}}`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from admin import responses
from admin.exceptions import (
    AdminError,
    CodeTaken,
    Contention,
    Forbidden,
    NotAuthenticated,
    NotFound,
    RateLimited,
    ValidationFailed,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, error: responses.ErrorDetail, *, headers: dict[str, str] | None = None
) -> web.Response:
    body: responses.Error = {"error": error}
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _domain(exc: AdminError) -> web.Response:
    error: responses.ErrorDetail = {"code": exc.code, "message": exc.message}
    if isinstance(exc, ValidationFailed):
        error["fields"] = [responses.field_error(problem) for problem in exc.errors]
        return error_response(422, error)
    if isinstance(exc, CodeTaken):
        if exc.index is not None:
            error["index"] = exc.index
        return error_response(409, error)
    if isinstance(exc, NotFound):
        return error_response(404, error)
    if isinstance(exc, NotAuthenticated):
        return error_response(401, error, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, Forbidden):
        return error_response(403, error)
    if isinstance(exc, RateLimited):
        # RateLimit-* come with every answer to a known key (admin.auth.send_quota).
        return error_response(429, error, headers={"Retry-After": str(exc.retry_after)})
    return error_response(400, error)  # pragma: no cover - every kind above


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
        # A 405 must say which methods the resource has (RFC 9110 15.5.6).
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        error: responses.ErrorDetail = {"code": code, "message": message or exc.reason}
        return error_response(exc.status, error, headers=allow)
    except Contention as exc:
        return error_response(409, {"code": "conflict", "message": str(exc)})
    except RedisError as exc:
        log.warning("redis error on %s %s: %s", request.method, request.path, exc)
        return error_response(
            503, {"code": "storage_unavailable", "message": "the link store is unavailable"}
        )
    except Exception:
        if request.writer.output_size > 0:
            raise  # part of the answer is sent: only dropping the connection is left (aiohttp)
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, {"code": "internal", "message": "internal error"})
