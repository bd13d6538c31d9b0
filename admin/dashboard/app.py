"""The dashboard's sub-application, mounted at /dashboard by `setup_dashboard`: its routes,
templates and static files, and its two middlewares (HTML errors outside, the session
inside). The services it calls are the admin app's, found through `request.config_dict`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from admin.access import DASHBOARD_PREFIX
from admin.dashboard import campaigns, links, present, send, signin
from admin.dashboard.errors import errors_middleware
from admin.dashboard.send import SendTasks, send_tasks_key
from admin.dashboard.viewer import find_viewer, viewer_key
from admin.errors import Handler

HERE = Path(__file__).parent
_PUBLIC = "dashboard_public"


def public(handler: Handler) -> Handler:
    """Marks a page that needs no session (signing in)."""
    setattr(handler, _PUBLIC, True)
    return handler


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Finds the viewer of every request; one without a live session is sent to sign in
    (a page that needs none, and the static files, are let by)."""
    if request.path == DASHBOARD_PREFIX:  # the sub-application's routes all start with a /
        raise web.HTTPMovedPermanently(f"{DASHBOARD_PREFIX}/")
    found = await find_viewer(request)
    if found is not None:
        request[viewer_key] = found
    elif not getattr(request.match_info.handler, _PUBLIC, False):
        raise web.HTTPSeeOther(f"{DASHBOARD_PREFIX}/signin")
    return await handler(request)


async def send_tasks_ctx(app: web.Application) -> AsyncIterator[None]:
    """The sends this process is working through: cancelled and awaited at shutdown (a send
    cut short says it stalled; sending its file again finishes it)."""
    app[send_tasks_key] = tasks = SendTasks()
    yield
    await tasks.cancel_all()


def create_dashboard() -> web.Application:
    app = web.Application(middlewares=[errors_middleware, session_middleware])
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    present.register(env)
    r = app.router
    r.add_get("/", public(signin.index))
    r.add_get("/signin", public(signin.signin_form))
    r.add_post("/signin", public(signin.sign_in))
    r.add_post("/signout", signin.sign_out)
    r.add_get("/campaigns", campaigns.campaign_list)
    r.add_post("/campaigns", campaigns.create_campaign)
    r.add_get("/campaigns/new", campaigns.new_campaign)
    r.add_get("/campaigns/{id}", campaigns.campaign_page)
    r.add_get("/campaigns/{id}/chart.svg", campaigns.campaign_chart)
    r.add_get("/campaigns/{id}/clicks.csv", campaigns.campaign_clicks_csv)
    r.add_get("/campaigns/{id}/send", send.send_form)
    r.add_post("/campaigns/{id}/send", send.start_send)
    r.add_get("/sends/{job}", send.send_progress)
    r.add_get("/sends/{job}/links.csv", send.send_links_csv)
    r.add_get("/links", links.find_link)
    r.add_get("/links/{code}", links.link_page)
    r.add_post("/links/{code}", links.edit_link)
    r.add_get("/links/{code}/qr.{format:svg|png}", links.link_qr)
    # Static files need no session: a stylesheet says nothing.
    r.add_get("/static/dashboard.css", public(static_file("dashboard.css", "text/css")))
    return app


def static_file(name: str, content_type: str) -> Handler:
    body = (HERE / "static" / name).read_bytes()  # read once: it is small and never changes

    async def serve(request: web.Request) -> web.StreamResponse:
        headers = {"Cache-Control": "public, max-age=3600"}
        return web.Response(body=body, content_type=content_type, headers=headers)

    return serve


def setup_dashboard(app: web.Application) -> None:
    # In the admin app's own cleanup_ctx, after its Redis client: the sends stop first.
    app.cleanup_ctx.append(send_tasks_ctx)
    app.add_subapp(DASHBOARD_PREFIX, create_dashboard())
