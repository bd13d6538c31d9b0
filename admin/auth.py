"""The key on every /api/ request: who is calling (authentication), whether they may
(the scope the route's `Operation` names), and the audit entry of what they wrote.

A request goes through, in order: the key is found (401 if none: `KeyService.authenticate`),
it spends one request of its rate-limit window (429 when none is left: `RateLimiter`), the
operation's scope is checked (403), the handler runs, and a write that succeeded is recorded
in its workspace's audit log. Every answer to a known key carries its RateLimit fields.
"""

from __future__ import annotations

import time

from aiohttp import web

from admin.access import needs_key
from admin.appkeys import (
    AuditTarget,
    api_keys_key,
    audit_log_key,
    audit_target_key,
    principal_key,
    quota_key,
    rate_limiter_key,
)
from admin.errors import Handler
from admin.exceptions import NotAuthenticated, RateLimited
from admin.openapi import operation_of
from redirector.store.keys import RATE_WINDOW

# The methods that write: each such request that succeeds is audited.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not needs_key(request.path):
        return await handler(request)
    principal = await request.app[api_keys_key].authenticate(_bearer(request))
    request[principal_key] = principal
    # Before anything else is done for the request: a refused one costs one Redis call.
    quota = await request.app[rate_limiter_key].spend(principal.key_id)
    if quota is not None:
        request[quota_key] = quota  # for its answer's fields, whatever the answer
        if quota.exceeded:
            raise RateLimited(quota.limit, RATE_WINDOW, quota.reset)
    operation = operation_of(request.match_info.handler)
    principal.check(operation.access if operation is not None else None)
    return await handler(request)


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Records a write request that succeeded: an error (raised, answered by the errors
    middleware outside) wrote nothing, or nothing to speak of. The entry is written before
    the answer is sent, so that no acknowledged write goes unrecorded."""
    response = await handler(request)
    principal = request.get(principal_key)
    if request.method not in WRITES or principal is None or response.status >= 300:
        return response
    operation = operation_of(request.match_info.handler)
    action = operation.id if operation is not None else request.method
    written = request.get(audit_target_key) or AuditTarget(request.path)
    await request.app[audit_log_key].record(
        written.workspace or principal.workspace,
        principal.key_id,
        action,
        written.target,
        int(time.time() * 1000),
    )
    return response


async def send_quota(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the RateLimit fields on every answer to a known key, the errors
    answered after authentication (403, 404, 429, ...) and streamed answers included."""
    quota = request.get(quota_key)
    if quota is not None:
        response.headers.update(quota.fields())


def audit(request: web.Request, target: str, workspace: str | None = None) -> None:
    """Says what a write handler wrote (e.g. "link:Xk3dP9a"), for the audit entry."""
    request[audit_target_key] = AuditTarget(target, workspace)


def _bearer(request: web.Request) -> bytes:
    """The key of `Authorization: Bearer <key>`, as the bytes sent; NotAuthenticated for a
    missing or malformed header (another scheme, no key, bytes that are not UTF-8: a 401
    like a wrong key, never a 500)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated
    try:
        # aiohttp decodes header bytes that are not UTF-8 to surrogates; this gives them back.
        return token.strip().encode(errors="surrogateescape")
    except UnicodeError:
        raise NotAuthenticated from None
