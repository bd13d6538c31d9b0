"""The admin API keeps the OpenAPI document it serves: schemathesis (`st run`) generates
requests from `/api/openapi.json` of a running `python -m admin`, valid and invalid ones, for
every operation, then chains them (a created link is read, changed, deleted...), and checks
every answer: no 5xx, only documented statuses, headers and content types, answers that fit
their schemas, invalid requests refused, unsupported methods 405 with their Allow, deleted
things gone, a missing key refused. What it runs and what it leaves out, and why:
tests/admin/schemathesis.toml.

The admin runs on a redis-server of the test's own, with a root key and no rate limit
(ADMIN_RATE_LIMIT=0: the run makes thousands of requests with one key within a minute; the
limit has its own tests). The run is bounded by the number of requests generated (the
config's max-examples), so that a slow machine does the same work; TIMEOUT only stops one
that went wrong.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.admin.helpers import admin_process
from tests.conftest import API_KEY
from tests.redis_server import RedisServer

CONFIG = Path(__file__).with_name("schemathesis.toml")
TIMEOUT = 600
# The end of schemathesis's report (its failures and their curl commands) shown on failure.
REPORT_TAIL = 20_000


def schemathesis_command() -> str:
    """The `st` of this virtualenv (the test extras install it), else of PATH."""
    st = Path(sys.executable).with_name("st")
    found = str(st) if st.exists() else shutil.which("st")
    if found is None:
        pytest.fail("schemathesis is not installed: pip install -e '.[test]'")
    return found


@pytest.mark.timeout(TIMEOUT + 60)
async def test_the_admin_keeps_its_openapi_document(own_redis: RedisServer, tmp_path: Path) -> None:
    env = {"REDIS_URL": own_redis.url, "ADMIN_RATE_LIMIT": "0", "PUBLIC_BASE_URL": "http://sho.rt"}
    async with admin_process([], env) as (_, url):
        run = await asyncio.create_subprocess_exec(
            schemathesis_command(),
            f"--config-file={CONFIG}",
            "run",
            f"{url}/api/openapi.json",
            "--no-color",
            cwd=tmp_path,
            env=os.environ | {"SMSLINKS_ROOT_KEY": API_KEY},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            report, _ = await asyncio.wait_for(run.communicate(), TIMEOUT)
        finally:
            if run.returncode is None:
                run.kill()
                await run.wait()
    text = report.decode(errors="replace")
    assert run.returncode == 0, text[-REPORT_TAIL:]
