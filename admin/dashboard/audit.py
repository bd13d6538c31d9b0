"""The audit entry of a write made through the dashboard: the same log, the same entry as the
API's request would record (its operationId as the action), by the session's key."""

from __future__ import annotations

import time

from aiohttp import web

from admin.appkeys import audit_log_key
from admin.dashboard.viewer import viewer


async def record(request: web.Request, action: str, target: str) -> None:
    principal = viewer(request).principal
    await request.config_dict[audit_log_key].record(
        principal.workspace, principal.key_id, action, target, int(time.time() * 1000)
    )
