"""Sends of the dashboard: a CSV of recipients made into one link each, in batches through the
same operation as `POST /api/links/batch` (`LinkService.create_links`), with the progress and
the links CSV kept in Redis, so that any admin process can show and serve them while the one
that took the upload works through it.

Every batch is idempotent (a recipient has one link per campaign), so a send that failed or
stopped midway is finished by sending the same file again.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from admin.access import Principal
from admin.batch_body import Batch
from admin.exceptions import AdminError, NotFound
from admin.service import as_text
from admin.service.audit import AuditService
from admin.service.links import Created, LinkService
from redirector.store.connection import Store
from redirector.store.keys import SEND_JOB_TTL, send_job_key, send_output_key

log = logging.getLogger(__name__)

JobState = Literal["running", "done", "failed"]
_STATES: tuple[JobState, ...] = ("running", "done", "failed")
# A running send whose progress has not moved for this long lost its process (a restart):
# the page says so, and that sending the file again finishes it.
STALLED_AFTER = 60
_JOB_ID = 16  # hex digits of a job id (64 random bits: not guessable, nor listed anywhere)


class SendJobNotFound(NotFound):
    code = "send_not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__("no such send (its progress is kept for an hour)")


@dataclass(frozen=True, slots=True)
class SendJob:
    id: str
    workspace: str
    campaign_id: int
    key_id: str  # who sent it (the audit log's key id)
    rows: int
    done: int  # rows made into links so far
    created: int  # of those, new links (the others were their recipient's link already)
    state: JobState
    error: str
    started_at: float
    updated_at: float

    def stalled(self, now: float) -> bool:
        return self.state == "running" and now - self.updated_at > STALLED_AFTER


class SendJobService:
    def __init__(
        self,
        redis: Store,
        links: LinkService,
        audit: AuditService,
        links_csv: Callable[[Sequence[Created]], bytes],
    ) -> None:
        self._redis = redis
        self._links = links
        self._audit = audit
        self._links_csv = links_csv  # the rows of the links CSV of a batch (admin.export)

    async def start(self, principal: Principal, campaign_id: int, rows: int) -> SendJob:
        now = time.time()
        job = SendJob(
            secrets.token_hex(_JOB_ID // 2),
            principal.workspace,
            campaign_id,
            principal.key_id,
            rows,
            0,
            0,
            "running",
            "",
            now,
            now,
        )
        key = send_job_key(job.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=_fields(job))
            pipe.expire(key, SEND_JOB_TTL)
            await pipe.execute()
        return job

    async def get(self, job_id: str, workspace: str) -> SendJob:
        """The send, if it is one of `workspace` (another workspace's is SendJobNotFound)."""
        fields: Mapping[bytes | str, bytes | str] = {}
        if len(job_id) == _JOB_ID and all(c in "0123456789abcdef" for c in job_id):
            fields = await self._redis.hgetall(send_job_key(job_id))
        if not fields:
            raise SendJobNotFound(job_id)
        job = _job(job_id, fields)
        if job.workspace != workspace:
            raise SendJobNotFound(job_id)
        return job

    async def links_csv(self, job_id: str) -> AsyncIterator[bytes]:
        """The links CSV (`recipient,code,short_url`), a batch at a time."""
        yield b"recipient,code,short_url\r\n"
        key, at = send_output_key(job_id), 0
        while True:
            chunk = await self._redis.lindex(key, at)
            if chunk is None:
                return
            yield cast(bytes, chunk)
            at += 1

    async def run(self, job: SendJob, batches: Iterable[Batch]) -> None:
        """Makes the batches into links, in order, keeping the progress up to date; a failure
        is kept in the job (its message) for the page to show, and logged."""
        done = created = 0
        try:
            for batch in batches:
                results = await self._links.create_links(
                    job.workspace, job.campaign_id, batch.links, url=batch.url, tagged=batch.tag
                )
                made = sum(result.created for result in results)
                await self._audit.record(
                    job.workspace,
                    job.key_id,
                    "createLinkBatch",
                    f"campaign:{job.campaign_id} ({len(results)} links)",
                    int(time.time() * 1000),
                )
                done, created = done + len(results), created + made
                await self._progress(job.id, done, created, self._links_csv(results))
            await self._finish(job.id, "done", "")
        except (AdminError, RedisError, OSError) as exc:
            log.warning("send %s stopped after %d rows: %s", job.id, done, exc)
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            await self._finish(job.id, "failed", f"stopped after {done} rows: {message}")

    async def _progress(self, job_id: str, done: int, created: int, chunk: bytes) -> None:
        job, output = send_job_key(job_id), send_output_key(job_id)
        async with self._redis.pipeline(transaction=True) as pipe:  # one tag: the job's id
            pipe.rpush(output, chunk)
            progress: dict[FieldT, EncodableT] = {
                "done": done,
                "created": created,
                "updated_at": time.time(),
            }
            pipe.hset(job, mapping=progress)
            pipe.expire(output, SEND_JOB_TTL)
            pipe.expire(job, SEND_JOB_TTL)
            await pipe.execute()

    async def _finish(self, job_id: str, state: JobState, error: str) -> None:
        try:
            fields: dict[FieldT, EncodableT] = {
                "state": state,
                "error": error,
                "updated_at": time.time(),
            }
            await self._redis.hset(send_job_key(job_id), mapping=fields)
        except RedisError as exc:  # the page will call it stalled
            log.warning("send %s: its end could not be recorded: %s", job_id, exc)


def _fields(job: SendJob) -> dict[FieldT, EncodableT]:
    return {
        "workspace": job.workspace,
        "campaign": job.campaign_id,
        "key": job.key_id,
        "rows": job.rows,
        "done": job.done,
        "created": job.created,
        "state": job.state,
        "error": job.error,
        "started_at": job.started_at,
        "updated_at": job.updated_at,
    }


def _job(job_id: str, fields: Mapping[bytes | str, bytes | str]) -> SendJob:
    text = {as_text(k): as_text(v) for k, v in fields.items()}
    state = cast(JobState, text.get("state", "failed"))
    return SendJob(
        job_id,
        text["workspace"],
        int(text["campaign"]),
        text["key"],
        int(text["rows"]),
        int(text["done"]),
        int(text["created"]),
        state if state in _STATES else "failed",
        text.get("error", ""),
        float(text["started_at"]),
        float(text["updated_at"]),
    )
