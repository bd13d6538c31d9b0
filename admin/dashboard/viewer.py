"""Who is looking at a page: the session of the request's cookie and the key it was made with,
read again on every request (`KeyService.principal_of`), so that the session has exactly the
key's workspace and scopes, and a revoked or expired key ends it at once (its record is kept
0.5 s per process at most)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web

from admin.access import DASHBOARD_PREFIX, Principal
from admin.appkeys import api_keys_key, sessions_key
from admin.service.sessions import Session, is_token, new_token

SESSION_COOKIE = "smsl_session"
# The sign-in form's CSRF token, also in this cookie (double submit: there is no session yet).
SIGNIN_COOKIE = "smsl_signin"
SIGNIN_COOKIE_AGE = 3600


@dataclass(frozen=True, slots=True)
class Viewer:
    token: str  # the cookie's
    session: Session
    principal: Principal

    @property
    def csrf(self) -> str:
        return self.session.csrf


viewer_key = web.RequestKey("viewer", Viewer)


async def find_viewer(request: web.Request) -> Viewer | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not is_token(token):
        return None
    session = await request.config_dict[sessions_key].get(token)
    if session is None:
        return None
    principal = await request.config_dict[api_keys_key].principal_of(session.key_id)
    if principal is None:  # the key was revoked or expired: so is the session
        await request.config_dict[sessions_key].end(token)
        return None
    return Viewer(token, session, principal)


def viewer(request: web.Request) -> Viewer:
    """The viewer of a page that needs one (the session middleware found it)."""
    return request[viewer_key]


def same_token(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def secure(request: web.Request) -> bool:
    """Whether the browser reached us over https: directly, or through a proxy that says so.
    A client that lies only makes its own cookie Secure, so the header is safe to believe."""
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or proto == "https"


def set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=DASHBOARD_PREFIX,
        httponly=True,
        samesite="Strict",
        secure=secure(request),
    )


def clear_cookie(request: web.Request, response: web.StreamResponse, name: str) -> None:
    response.del_cookie(
        name, path=DASHBOARD_PREFIX, httponly=True, samesite="Strict", secure=secure(request)
    )


def signin_token(request: web.Request) -> str:
    """The sign-in form's CSRF token: the one its cookie holds, or a new one."""
    token = request.cookies.get(SIGNIN_COOKIE, "")
    return token if is_token(token) else new_token()
