"""Pages rendered from the templates, with what every page needs: the viewer (the navigation,
the sign-out form and the CSRF token of every form)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from admin.dashboard.viewer import viewer_key


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("viewer", request.get(viewer_key))
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def see_other(location: str) -> web.HTTPSeeOther:
    """The answer to a form that worked: the page to show next (POST, redirect, GET)."""
    return web.HTTPSeeOther(location)
