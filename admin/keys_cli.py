"""`python -m admin keys create --workspace ID --scopes ...`: makes an API key straight in the
store (REDIS_URL, REDIS_CLUSTER, ... as the admin reads them; no ADMIN_API_KEYS needed), to
bootstrap a workspace without a running admin. The same operation as `POST
/api/workspaces/{id}/keys` (admin.service.keys), audited as made by `cli`.

The key goes to stdout alone (`KEY=$(python -m admin keys create ...)`), once; what it is
to stderr. Exit status: 0 made, 1 the workspace does not exist or Redis failed, 2 bad
arguments or settings."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Mapping, Sequence

from redis.exceptions import RedisError

from admin.access import SCOPES
from admin.exceptions import ValidationFailed, WorkspaceNotFound
from admin.models import KeyIn, UrlRules, parse
from admin.service.audit import AuditService
from admin.service.keys import KeyService
from admin.service.workspaces import WorkspaceService
from redirector.store.connection import SettingsError, StoreSettings, connect

# The key id in the audit entry of a key made here.
CLI_KEY_ID = "cli"
REDIS_TIMEOUT = 5.0


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m admin keys", description="Manage API keys straight in the store."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create", help="make a key of a workspace and print it (shown this once)"
    )
    create.add_argument("--workspace", required=True, help="`default`, or a workspace's id")
    create.add_argument(
        "--scopes",
        required=True,
        nargs="+",
        help=f"space- or comma-separated, of: {', '.join(SCOPES)}",
    )
    create.add_argument("--name", default="made by python -m admin keys", help="what it is for")
    create.add_argument("--expires-at", help="RFC 3339, e.g. 2027-06-30T00:00:00Z (default: never)")
    args = parser.parse_args(argv)
    scopes = [scope for given in args.scopes for scope in given.split(",") if scope]
    body = {"name": args.name, "scopes": scopes, "expires_at": args.expires_at}
    try:
        data = parse(KeyIn, body, UrlRules(0, None))
        settings = StoreSettings.from_env(env)
    except ValidationFailed as exc:
        for problem in exc.errors:
            print(f"keys create: {problem.field}: {problem.message}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"keys create: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_create(settings, args.workspace, data))


async def _create(settings: StoreSettings, workspace: str, data: KeyIn) -> int:
    redis = connect(settings.redis_url, timeout=REDIS_TIMEOUT, cluster=settings.redis_cluster)
    try:
        await WorkspaceService(redis).get(workspace)
        expires = None if data.expires_at is None else int(data.expires_at.timestamp())
        keys = KeyService(redis, (), settings.durability)
        record, key = await keys.create_key(workspace, data.name, data.scopes, expires)
        audit = AuditService(redis, settings.durability)
        now_ms = int(time.time() * 1000)
        await audit.record(workspace, CLI_KEY_ID, "createKey", f"key:{record.id}", now_ms)
    except WorkspaceNotFound as exc:
        print(f"keys create: {exc.message}", file=sys.stderr)
        return 1
    except RedisError as exc:
        print(f"keys create: the store failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await redis.aclose()
    print(key, flush=True)
    print(
        f"key {record.id} of workspace {workspace}, scopes {' '.join(record.scopes)}; "
        "it is not shown again",
        file=sys.stderr,
    )
    return 0
