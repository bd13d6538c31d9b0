"""Form bodies of the dashboard: read within a small bound, decoded strictly, and checked for
the session's CSRF token before anything else is done with them. (The Send page's upload is
multipart and streamed: admin/dashboard/upload.py.)"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web

from admin.dashboard.viewer import same_token, viewer

FORM_MAX_BYTES = 64 * 1024  # a URL of MAX_URL_LENGTH and a few fields fit many times
FORM_MAX_FIELDS = 20
URLENCODED = "application/x-www-form-urlencoded"


class CsrfRefused(web.HTTPForbidden):
    """The form did not carry the token of the page it came from."""

    def __init__(self) -> None:
        super().__init__(
            text="This form has expired or did not come from this dashboard: "
            "go back, reload the page and send it again."
        )


def plain_body(request: web.Request, content_type: str) -> None:
    """Refuses (415) a body that is not of `content_type` as sent by a browser: the admin
    reads bodies as sent (admin.request_body), and a browser never compresses a form."""
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if request.content_type != content_type or coding not in ("", "identity"):
        raise web.HTTPUnsupportedMediaType(text="a form of the dashboard was expected")


async def read_form(request: web.Request) -> dict[str, str]:
    """The fields of an urlencoded form (the first value of each name), bounded."""
    plain_body(request, URLENCODED)
    body = await request.content.read(FORM_MAX_BYTES + 1)
    if len(body) > FORM_MAX_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=FORM_MAX_BYTES, actual_size=len(body), text="the form is too large"
        )
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=FORM_MAX_FIELDS,
        )
    except (UnicodeError, ValueError):
        raise web.HTTPBadRequest(text="the form could not be read") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


async def checked_form(request: web.Request) -> dict[str, str]:
    """The form of a signed-in page, refused (403) without the session's CSRF token."""
    fields = await read_form(request)
    if not same_token(fields.get("csrf", ""), viewer(request).csrf):
        raise CsrfRefused
    return fields
