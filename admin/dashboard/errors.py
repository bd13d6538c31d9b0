"""Every failure of a dashboard request as an HTML page: what went wrong in words, with the
status the API would answer (401, 403, 404, 409, 413, 422...; 503 while Redis is away), never
a traceback; an unexpected exception is logged and is a 500 that says no more. And the headers
every dashboard answer carries."""

from __future__ import annotations

import logging

from aiohttp import web
from redis.exceptions import RedisError

from admin.dashboard.render import render
from admin.errors import Handler
from admin.exceptions import (
    AdminError,
    CodeTaken,
    Contention,
    FieldError,
    Forbidden,
    NotAuthenticated,
    NotFound,
    ValidationFailed,
)

log = logging.getLogger(__name__)

# Scripts and styles only from here (the charts are SVG images, drawn without script); no
# framing, no referrer beyond this site.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Conflict",
    413: "Too large",
    415: "Not a form",
    422: "Not valid",
    503: "Storage unavailable",
}


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            _secure_headers(exc)
            raise
        text = exc.text or ""
        # aiohttp's own text is "404: Not Found": the title says as much.
        response = _page(request, exc.status, "" if text.startswith(f"{exc.status}:") else text)
    except AdminError as exc:
        response = _domain(request, exc)
    except Contention as exc:
        response = _page(request, 409, str(exc))
    except RedisError as exc:
        log.warning("redis error on %s %s: %s", request.method, request.path, exc)
        response = _page(request, 503, "The link store is unavailable: try again shortly.")
    except Exception:
        if request.writer.output_size > 0:
            raise  # part of the answer is sent: only dropping the connection is left
        log.exception("unexpected error on %s %s", request.method, request.path)
        response = _page(request, 500, "Something went wrong on our side.")
    _secure_headers(response)
    return response


def _secure_headers(response: web.StreamResponse) -> None:
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")


def _domain(request: web.Request, exc: AdminError) -> web.Response:
    if isinstance(exc, ValidationFailed):
        return _page(request, 422, "Please correct these fields:", exc.errors)
    if isinstance(exc, CodeTaken):
        return _page(request, 409, exc.message)
    if isinstance(exc, NotFound):
        return _page(request, 404, exc.message)
    if isinstance(exc, NotAuthenticated):
        return _page(request, 401, "Sign in with a valid API key.")
    if isinstance(exc, Forbidden):
        return _page(request, 403, f"Your key cannot do this: {exc.message}.")
    return _page(request, 400, exc.message)  # pragma: no cover - every kind above


def _page(
    request: web.Request, status: int, message: str, problems: list[FieldError] | None = None
) -> web.Response:
    title = _TITLES.get(status, "Error")
    return render(
        request, "error.html", status, title=title, message=message, problems=problems or []
    )
