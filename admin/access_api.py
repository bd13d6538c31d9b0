"""Thin HTTP handlers of workspaces, API keys and the audit log (admin.api has the rest).

Root keys (ADMIN_API_KEYS) make workspaces and manage the keys of any workspace; a key with
keys:admin manages its own workspace's keys and reads its audit log. A workspace the caller
may not manage is a 404, as one that does not exist."""

from __future__ import annotations

from aiohttp import web

from admin import responses
from admin.api import json_response
from admin.appkeys import api_keys_key, audit_log_key, principal_key, workspaces_key
from admin.auth import audit
from admin.exceptions import WorkspaceNotFound
from admin.models import AuditQuery, KeyIn, UrlRules, WorkspaceIn, parse, parse_query
from admin.openapi import Operation
from admin.request_body import read_json

# Models without URLs still go through `parse`, which wants the rules of URLs.
_NO_URLS = UrlRules(0, None)
STORED = (503,)
FOUND = (404, 503)


async def _workspace(request: web.Request) -> str:
    """The workspace of the path, if the caller may manage it (its own; root keys: any)."""
    workspace = request.match_info["workspace_id"]
    if not request[principal_key].sees(workspace):
        raise WorkspaceNotFound(workspace)
    return (await request.app[workspaces_key].get(workspace)).id


@Operation(
    "createWorkspace",
    "access",
    responses.Workspace,
    (201,),
    body=WorkspaceIn,
    errors=STORED,
    access="root",
)
async def create_workspace(request: web.Request) -> web.StreamResponse:
    data = parse(WorkspaceIn, await read_json(request), _NO_URLS)
    workspace = await request.app[workspaces_key].create(data.name)
    audit(request, f"workspace:{workspace.id}")
    return json_response(responses.workspace(workspace), status=201)


@Operation(
    "createKey",
    "access",
    responses.NewApiKey,
    (201,),
    body=KeyIn,
    errors=FOUND,
    access="keys:admin",
)
async def create_key(request: web.Request) -> web.StreamResponse:
    workspace = await _workspace(request)
    data = parse(KeyIn, await read_json(request), _NO_URLS)
    expires = None if data.expires_at is None else int(data.expires_at.timestamp())
    record, key = await request.app[api_keys_key].create_key(
        workspace, data.name, data.scopes, expires
    )
    audit(request, f"key:{record.id}", workspace)
    return json_response(responses.new_api_key(record, key), status=201)


@Operation("listWorkspaceKeys", "access", responses.ApiKeyList, errors=FOUND, access="root")
async def list_workspace_keys(request: web.Request) -> web.StreamResponse:
    keys = await request.app[api_keys_key].list_keys(await _workspace(request))
    body: responses.ApiKeyList = {"keys": [responses.api_key(k) for k in keys]}
    return json_response(body)


@Operation("deleteWorkspaceKey", "access", statuses=(204,), errors=FOUND, access="root")
async def delete_workspace_key(request: web.Request) -> web.StreamResponse:
    workspace = await _workspace(request)
    key_id = request.match_info["key_id"]
    await request.app[api_keys_key].delete_key(workspace, key_id)
    audit(request, f"key:{key_id}", workspace)
    return web.Response(status=204)


@Operation("listKeys", "access", responses.ApiKeyList, errors=STORED, access="keys:admin")
async def list_keys(request: web.Request) -> web.StreamResponse:
    keys = await request.app[api_keys_key].list_keys(request[principal_key].workspace)
    body: responses.ApiKeyList = {"keys": [responses.api_key(k) for k in keys]}
    return json_response(body)


@Operation("deleteKey", "access", statuses=(204,), errors=FOUND, access="keys:admin")
async def delete_key(request: web.Request) -> web.StreamResponse:
    key_id = request.match_info["key_id"]
    await request.app[api_keys_key].delete_key(request[principal_key].workspace, key_id)
    audit(request, f"key:{key_id}")
    return web.Response(status=204)


@Operation(
    "listAudit", "access", responses.AuditPage, query=AuditQuery, errors=STORED, access="keys:admin"
)
async def list_audit(request: web.Request) -> web.StreamResponse:
    query = parse_query(AuditQuery, request.query)
    log = request.app[audit_log_key]
    entries, after = await log.page(request[principal_key].workspace, query.before, query.limit)
    return json_response(responses.audit_page(entries, after))


def setup_access_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/workspaces", create_workspace)
    r.add_post("/api/workspaces/{workspace_id}/keys", create_key)
    r.add_get("/api/workspaces/{workspace_id}/keys", list_workspace_keys)
    r.add_delete("/api/workspaces/{workspace_id}/keys/{key_id}", delete_workspace_key)
    r.add_get("/api/keys", list_keys)
    r.add_delete("/api/keys/{key_id}", delete_key)
    r.add_get("/api/audit", list_audit)
