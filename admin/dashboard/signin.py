"""Signing in with an API key (a form whose field is `key`) and out. A session acts as its key,
in the key's workspace with its scopes; it lasts DASHBOARD_SESSION_TTL, or until the key is
revoked or expires, or its owner signs out."""

from __future__ import annotations

from aiohttp import web

from admin.access import DASHBOARD_PREFIX
from admin.appkeys import api_keys_key, sessions_key
from admin.dashboard.forms import CsrfRefused, checked_form, read_form
from admin.dashboard.render import render, see_other
from admin.dashboard.viewer import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    SIGNIN_COOKIE_AGE,
    clear_cookie,
    same_token,
    set_cookie,
    signin_token,
    viewer_key,
)
from admin.exceptions import NotAuthenticated

HOME = f"{DASHBOARD_PREFIX}/campaigns"
# A key longer than this is no key of ours, nor a root key anyone would type.
KEY_MAX = 1024


async def index(request: web.Request) -> web.StreamResponse:
    raise see_other(HOME if viewer_key in request else f"{DASHBOARD_PREFIX}/signin")


async def signin_form(request: web.Request) -> web.StreamResponse:
    if viewer_key in request:
        raise see_other(HOME)
    return _form(request, 200, "")


def _form(request: web.Request, status: int, problem: str) -> web.Response:
    token = signin_token(request)
    response = render(request, "signin.html", status, csrf=token, problem=problem)
    set_cookie(request, response, SIGNIN_COOKIE, token, SIGNIN_COOKIE_AGE)
    return response


async def sign_in(request: web.Request) -> web.StreamResponse:
    fields = await read_form(request)
    # Double submit: the form's token must be the one its cookie holds (SameSite=Strict).
    if not same_token(fields.get("csrf", ""), request.cookies.get(SIGNIN_COOKIE, "")):
        raise CsrfRefused
    key = fields.get("key", "").strip()
    try:
        if not key or len(key) > KEY_MAX:
            raise NotAuthenticated
        principal = await request.config_dict[api_keys_key].authenticate(key.encode())
    except NotAuthenticated:
        return _form(request, 401, "That key was not accepted: check it and try again.")
    token, _ = await request.config_dict[sessions_key].create(principal.key_id)
    response = see_other(HOME)
    set_cookie(request, response, SESSION_COOKIE, token, request.config_dict[sessions_key].ttl)
    clear_cookie(request, response, SIGNIN_COOKIE)
    raise response


async def sign_out(request: web.Request) -> web.StreamResponse:
    await checked_form(request)
    await request.config_dict[sessions_key].end(request[viewer_key].token)
    response = see_other(f"{DASHBOARD_PREFIX}/signin")
    clear_cookie(request, response, SESSION_COOKIE)
    raise response
