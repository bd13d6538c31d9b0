"""How one process serves the redirector app: aiohttp's low-level server in front of `Handler`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from redirector.appkeys import settings_key
from redirector.connections import GuardedServer
from redirector.handlers import Handler


class RedirectorRunner(web.BaseRunner):
    """AppRunner's lifecycle for the app's state and `cleanup_ctx` (set up before the server
    starts, torn down after its connections are done), with aiohttp's low-level server in place
    of the app's router: every request goes to one `Handler` (redirector/handlers.py), its
    connections bounded as redirector/connections.py says."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app

    async def shutdown(self) -> None:
        await self.app.shutdown()

    async def _make_server(self) -> web.Server:
        self.app.on_startup.freeze()
        await self.app.startup()
        self.app.freeze()
        settings = self.app[settings_key]
        return GuardedServer(
            Handler(self.app),
            max_connections=settings.max_connections,
            header_timeout=settings.header_timeout,
            **self._kwargs,
        )

    async def _cleanup_server(self) -> None:
        await self.app.cleanup()
