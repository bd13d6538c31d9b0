"""The benchmark's reference row: the least aiohttp + uvloop can do to answer GET /{code} with
a 302, started the way the redirector starts (uvloop, then web.run_app without an access log).
Its throughput is what the framework costs on this machine, the part of the gap to nginx that
our code does not add.

    python -m loadtests.bare_aiohttp PORT LOCATION
"""

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
