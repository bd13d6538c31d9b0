"""`python -m loadtests.bare_aiohttp PORT LOCATION`: the benchmark's reference row, the least
aiohttp + uvloop can do to answer GET /{code} with a 302, started the way the redirector starts."""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web


def main(port: int, location: str) -> None:
    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": location})

    app = web.Application()
    app.router.add_get("/{code}", redirect)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
