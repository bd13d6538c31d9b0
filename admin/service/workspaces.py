"""Workspaces: create one, and find one (`default` always exists)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from admin.exceptions import WorkspaceNotFound
from admin.service import as_text
from redirector.store.connection import NO_WAIT, Durability, Store
from redirector.store.keys import (
    DEFAULT_WORKSPACE,
    WORKSPACE_ID,
    WORKSPACE_SEQ_KEY,
    workspace_key,
)
from redirector.store.record import b36
from redirector.store.scripts import SingleKeyWrites, create_numbered

_WORKSPACE_ID = re.compile(WORKSPACE_ID)


@dataclass(frozen=True, slots=True)
class Workspace:
    id: str
    name: str
    created_at: int  # unix seconds; 0 for `default`, which was there from the start


def workspace_id(number: int) -> str:
    return "w" + b36(number)


class WorkspaceService:
    def __init__(self, redis: Store, durability: Durability = NO_WAIT) -> None:
        self._redis = redis
        self._writes = SingleKeyWrites(redis, durability)

    async def create(self, name: str) -> Workspace:
        now = int(time.time())
        fields: dict[str, str | int] = {"name": name, "created_at": now}
        number = await create_numbered(
            self._writes, WORKSPACE_SEQ_KEY, lambda n: workspace_key(workspace_id(n)), fields
        )
        return Workspace(workspace_id(number), name, now)

    async def get(self, workspace: str) -> Workspace:
        """The workspace; WorkspaceNotFound for an id that is none (or cannot be one)."""
        if workspace == DEFAULT_WORKSPACE:
            return Workspace(DEFAULT_WORKSPACE, DEFAULT_WORKSPACE, 0)
        if not _WORKSPACE_ID.fullmatch(workspace):
            raise WorkspaceNotFound(workspace)
        fields = await self._redis.hgetall(workspace_key(workspace))
        if not fields:
            raise WorkspaceNotFound(workspace)
        text = {as_text(k): as_text(v) for k, v in fields.items()}
        return Workspace(workspace, text["name"], int(text["created_at"]))
