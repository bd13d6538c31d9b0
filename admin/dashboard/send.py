"""The Send page: a CSV of recipients (and URLs) uploaded for a campaign, made into one link
each in batches by the API's batch operation, its progress on a page that refreshes itself
(no script needed), and the links CSV (`recipient,code,short_url`) to download.

The upload is checked and spooled while it arrives (admin/dashboard/upload.py); the send then
runs in this process's background (`SendTasks`), writing its progress and links to Redis
(admin/service/sends.py), so any admin process can show and serve them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from admin.access import DASHBOARD_PREFIX
from admin.api import campaign_id_of, rules
from admin.appkeys import campaigns_key, send_jobs_key
from admin.dashboard.forms import CsrfRefused, plain_body
from admin.dashboard.render import render, see_other
from admin.dashboard.upload import (
    MAX_ROWS,
    MAX_UPLOAD_BYTES,
    Spooled,
    read_batches,
    refused,
    remove,
    spool,
)
from admin.dashboard.viewer import same_token, viewer
from admin.models import MAX_BATCH, UrlRules
from admin.service.send_jobs import SendJob, SendJobService

SMALL_FIELD_MAX = 8 * 1024  # the token and the URL of the form, before its file
# Seconds between the progress page's refreshes while the send runs.
REFRESH = 1


class SendTasks:
    """The sends this process is working through, kept so that shutdown can cancel them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, send: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(send)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_all(self) -> None:
        """Until every send started so far is over (for tests and a graceful stop)."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


send_tasks_key = web.AppKey("send_tasks", SendTasks)


async def send_form(request: web.Request) -> web.StreamResponse:
    principal = viewer(request).principal
    principal.check("links:write")
    campaign = await request.config_dict[campaigns_key].get_campaign(
        campaign_id_of(request), principal.workspace, count_links=False
    )
    return render(
        request, "send.html", campaign=campaign, max_rows=MAX_ROWS, max_bytes=MAX_UPLOAD_BYTES
    )


async def start_send(request: web.Request) -> web.StreamResponse:
    principal = viewer(request).principal
    principal.check("links:write")
    campaign = await request.config_dict[campaigns_key].get_campaign(
        campaign_id_of(request), principal.workspace, count_links=False
    )
    plain_body(request, "multipart/form-data")
    try:
        spooled, url = await _upload(request, campaign.id)
    except (ValueError, AssertionError, LookupError, HttpProcessingError) as exc:
        # aiohttp's multipart reader says so of a body that is not multipart as announced.
        raise web.HTTPBadRequest(text=f"the upload could not be read: {exc}") from None
    if spooled.rows == 0:
        remove(spooled)
        raise refused(None, "the file has no rows")
    service = request.config_dict[send_jobs_key]
    job = await service.start(principal, campaign.id, spooled.rows)
    request.config_dict[send_tasks_key].start(_run(service, job, spooled, url, rules(request)))
    raise see_other(f"{DASHBOARD_PREFIX}/sends/{job.id}")


async def _upload(request: web.Request, campaign_id: int) -> tuple[Spooled, str | None]:
    """The form's file, checked and spooled, and its URL for the rows without one."""
    reader = await request.multipart()
    # The form's fields come in its order: the token first, so nothing is read unchecked.
    first = await reader.next()
    csrf = await _small_field(first, "csrf") if isinstance(first, BodyPartReader) else ""
    if not same_token(csrf, viewer(request).csrf):
        raise CsrfRefused
    url: str | None = None
    while True:
        part = await reader.next()
        if not isinstance(part, BodyPartReader):
            raise refused(None, "choose a CSV file to send")
        if part.name == "url":
            url = (await _small_field(part, "url")).strip() or None
        elif part.name == "file":
            return await spool(part, campaign_id, url, rules(request)), url


async def _run(
    service: SendJobService, job: SendJob, spooled: Spooled, url: str | None, url_rules: UrlRules
) -> None:
    try:
        await service.run(job, read_batches(spooled, job.campaign_id, url, url_rules))
    finally:
        remove(spooled)


async def _small_field(part: BodyPartReader, name: str) -> str:
    if part.name != name:
        return ""
    data = bytearray()
    while chunk := await part.read_chunk(SMALL_FIELD_MAX):
        data += chunk
        if len(data) > SMALL_FIELD_MAX:
            raise web.HTTPRequestEntityTooLarge(
                max_size=SMALL_FIELD_MAX, actual_size=len(data), text=f"the {name} is too long"
            )
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text=f"the {name} is not UTF-8 text") from None


async def send_progress(request: web.Request) -> web.StreamResponse:
    principal = viewer(request).principal
    principal.check("links:read")
    job = await request.config_dict[send_jobs_key].get(
        request.match_info["job"], principal.workspace
    )
    return render(
        request,
        "send_job.html",
        job=job,
        stalled=job.stalled(time.time()),
        batch=MAX_BATCH,
        refresh=REFRESH,
    )


async def send_links_csv(request: web.Request) -> web.StreamResponse:
    principal = viewer(request).principal
    principal.check("links:read")
    service = request.config_dict[send_jobs_key]
    job = await service.get(request.match_info["job"], principal.workspace)
    if job.state != "done":
        raise web.HTTPConflict(text="the links are ready once the send is done")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="campaign-{job.campaign_id}-links.csv"',
        }
    )
    chunks = service.links_csv(job.id)
    first = await anext(chunks)  # the header: Redis errors before this are an error page
    await response.prepare(request)
    await response.write(first)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response
