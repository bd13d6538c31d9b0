"""`python -m admin migrate [--delete-old]`: moves a store written by a release before the
tagged key schema into it (admin/service/migration.py says how), with the admin's
environment (REDIS_URL, CODE_LENGTH, ...); prints progress and a summary. Exit status: 0 done
or nothing to migrate, 1 done but some data could not be migrated (listed; it stays where it
was), 2 refused (a cluster, or bad settings)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from redis.asyncio import Redis

from admin.service.migration import Migration, Tally, refusal
from admin.settings import AdminSettings
from redirector.store.connection import SettingsError, connect

# Seconds between two progress lines of one phase.
PROGRESS_EVERY = 2.0

Print = Callable[[str], None]


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m admin migrate",
        description="Move the Redis data of a release before the tagged key schema into it. "
        "Safe to run again, and to run again after it stopped midway.",
    )
    parser.add_argument(
        "--delete-old",
        action="store_true",
        help="delete each old link and recipient entry once it is in the new layout, and the "
        "old campaign hashes at the end (without it they stay, and so does a way back)",
    )
    args = parser.parse_args(argv)
    try:
        settings = AdminSettings.from_env(env)
    except SettingsError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(migrate(settings, delete_old=args.delete_old))


async def migrate(settings: AdminSettings, *, delete_old: bool, out: Print = print) -> int:
    if settings.redis_cluster:
        out("refused: the store is a Redis Cluster (REDIS_CLUSTER=true); layout 1 ran on one Redis")
        return 2
    redis = connect(settings.redis_url, timeout=settings.redis_timeout)
    assert isinstance(redis, Redis)  # not a cluster client: redis_cluster is false
    try:
        why = await refusal(redis)
        if why is not None:
            out(f"refused: {why}; layout 1 ran on one Redis")
            return 2
        migration = Migration(redis, settings, delete_old=delete_old, progress=_Progress(out))
        if not await migration.old_layout_present():
            out("nothing to migrate: no key of the old layout in this database")
            return 0
        started = time.monotonic()
        tally = await migration.run()
        for line in summary(tally, time.monotonic() - started, delete_old):
            out(line)
        return 1 if tally.problem_count else 0
    finally:
        await redis.aclose()


class _Progress:
    """Prints a phase's counts every PROGRESS_EVERY seconds, and when it ends."""

    def __init__(self, out: Print) -> None:
        self._out = out
        self._started = self._printed = time.monotonic()

    def __call__(self, phase: str, tally: Tally, done: bool) -> None:
        now = time.monotonic()
        if done or now - self._printed >= PROGRESS_EVERY:
            self._printed = now
            mark = "done" if done else "..."
            self._out(f"[{now - self._started:7.1f} s] {phase} {mark} {_counts(phase, tally)}")


def _counts(phase: str, tally: Tally) -> str:
    match phase:
        case "campaigns":
            return f"{tally.campaigns:,} read, {tally.campaigns_written:,} written"
        case "links":
            return (
                f"{tally.links:,} read, {tally.links_written:,} written, "
                f"{tally.links_already:,} already there, {tally.links_changed:,} changed since"
            )
        case "recipients":
            return (
                f"{tally.recipients:,} read, {tally.aliases_written:,} aliases written, "
                f"{tally.aliases_already:,} already there"
            )
        case "clicks":
            return f"{tally.click_keys_moved:,} keys moved, {tally.tombstones:,} tombstones"
    return f"{len(tally.count_differences):,} link counts differ"


def summary(tally: Tally, seconds: float, delete_old: bool) -> list[str]:
    rate = tally.links / seconds if seconds > 0 else 0.0
    lines = [
        f"migrated in {seconds:.1f} s ({rate:,.0f} old links/s):",
        f"  campaigns   {_counts('campaigns', tally)}",
        f"  links       {_counts('links', tally)}",
        f"  recipients  {_counts('recipients', tally)}, "
        f"{tally.recipients_relinked:,} have another link now, "
        f"{tally.recipients_dangling:,} named no link of theirs",
        f"  clicks      {_counts('clicks', tally)}",
    ]
    if delete_old:
        lines.append(f"  old entries deleted: {tally.old_deleted:,}")
    else:
        lines.append("  old keys kept: run again with --delete-old once the new release serves")
    lines += [f"  note: {difference}" for difference in tally.count_differences]
    if tally.problem_count:
        lines.append(f"{tally.problem_count:,} could not be migrated (they stay where they were):")
        lines += [f"  {problem}" for problem in tally.problems]
        if tally.problem_count > len(tally.problems):
            lines.append(f"  ... and {tally.problem_count - len(tally.problems):,} more")
    return lines
