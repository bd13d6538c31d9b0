"""The `smslinks` commands: each one a call or a few of the admin API, its answer printed as
a table (stdout), what happened said on stderr, every error in one line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from smslinks_cli import render
from smslinks_cli.client import Api, api_base, api_key, connect
from smslinks_cli.csvfiles import LinksFile, Recipient, read_recipients, read_rows
from smslinks_cli.errors import CliError, Interrupted
from smslinks_cli.imports import CONVERSIONS, SENDS, Events, import_rows
from smslinks_cli.send import MAX_BATCH, SendPlan, check_resumed, send

T = TypeVar("T")
PAGE = 1000  # the API's largest page of campaigns

# Tables as wide as their content when printed to a file or a pipe (rich would fit them in
# 80 columns, cutting values short); the terminal's width otherwise.
out = Console(soft_wrap=False)
if not out.is_terminal:
    out = Console(soft_wrap=False, width=1000)
err = Console(stderr=True, highlight=False, soft_wrap=True)
SPARKLINE_MAX = 120  # bars, when the terminal is wider or there is none


@dataclass(frozen=True, slots=True)
class Target:
    """Where the API is and the key to call it with, as given (checked when first used, so
    that --help needs neither)."""

    url: str | None
    key: str | None

    def check(self) -> None:
        """Refuses a missing or malformed URL or key before a command does anything else."""
        api_base(self.url), api_key(self.key)

    def run(self, work: Callable[[Api], Awaitable[T]]) -> T:
        base, key = api_base(self.url), api_key(self.key)

        async def connected() -> T:
            async with connect(base, key, _say_wait) as api:
                return await work(api)

        return asyncio.run(connected())


def _say_wait(seconds: int) -> None:
    err.print(f"the key's rate limit is spent: waiting {seconds} s (ADMIN_RATE_LIMIT)")


class Commands(click.Group):
    """Turns an unexpected exception into one line too: a bug should still not greet the
    user with a traceback (click already does so for its own errors)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise CliError(f"unexpected error: {type(exc).__name__}: {exc}") from None


@click.group(cls=Commands)
@click.option(
    "--api-url",
    envvar="SMSLINKS_URL",
    show_envvar=True,
    help="The admin API, e.g. http://127.0.0.1:8081",
)
@click.option("--api-key", envvar="SMSLINKS_KEY", show_envvar=True, help="An API key of the admin.")
@click.pass_context
def cli(ctx: click.Context, api_url: str | None, api_key: str | None) -> None:
    """The smslinks admin API from the command line: SMSLINKS_URL says where it is and
    SMSLINKS_KEY is the key to call it with."""
    ctx.obj = Target(api_url, api_key)


pass_target = click.make_pass_decorator(Target)


# -- campaigns ----------------------------------------------------------------------------


@cli.group()
def campaigns() -> None:
    """List and create campaigns."""


@campaigns.command("list")
@pass_target
def list_campaigns(target: Target) -> None:
    """Every campaign of the key's workspace, oldest first."""

    async def every(api: Api) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            params = {"offset": str(len(found)), "limit": str(PAGE)}
            page = await api.call("GET", "/api/campaigns", params=params)
            found += page["campaigns"]
            if not page["campaigns"] or len(found) >= page["total"]:
                return found

    found = target.run(every)
    out.print(render.campaigns_table(found))
    err.print(f"{len(found):,} campaign(s)")


@campaigns.command("create")
@click.argument("name")
@click.option("--kind", type=click.Choice(["campaign", "automation"]), default="campaign")
@click.option("--utm-source", help="Instead of the service's UTM_SOURCE.")
@click.option("--utm-medium", help="Instead of the service's UTM_MEDIUM.")
@click.option("--code-length", type=int, help="Of its codes, instead of CODE_LENGTH.")
@pass_target
def create_campaign(
    target: Target,
    name: str,
    kind: str,
    utm_source: str | None,
    utm_medium: str | None,
    code_length: int | None,
) -> None:
    """Create a campaign named NAME (its links' utm_campaign); prints its id."""
    body = {
        "name": name,
        "kind": kind,
        "utm_source": utm_source,
        "utm_medium": utm_medium,
        "code_length": code_length,
    }
    made = target.run(lambda api: api.call("POST", "/api/campaigns", json=body))
    click.echo(made["id"])
    err.print(f"created {made['kind']} {made['id']}: {made['name']}")


# -- send ---------------------------------------------------------------------------------


def _progress() -> Progress:
    """A progress bar on a terminal; nothing in a log or a pipe, where only the line that
    says what was done is of use."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )


@cli.command("send")
@click.option("--campaign", "campaign_id", type=click.IntRange(min=1), required=True)
@click.option("--url", help="The URL of every recipient whose line gives none.")
@click.option(
    "--recipients",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="CSV: recipient[,url] per line, an optional header line (as on the Send page).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="CSV written: recipient,code,short_url. If it exists, the send resumes from it.",
)
@click.option(
    "--batch-size", type=click.IntRange(1, MAX_BATCH), default=MAX_BATCH, show_default=True
)
@pass_target
def send_links(
    target: Target,
    campaign_id: int,
    url: str | None,
    recipients: Path,
    out: Path,
    batch_size: int,
) -> None:
    """Create a link per recipient of a campaign and write them to --out.

    Interrupted (Ctrl-C, a lost connection, an error), the same command again finishes the
    send: the recipients in --out are skipped, and the others get the codes they had been
    given, if any (one link per recipient and campaign)."""
    target.check()
    given = read_recipients(recipients)
    if url is None and (first := next((r for r in given.items if r.url is None), None)):
        raise CliError(f"{recipients} line {first.line}: no URL; give --url, or recipient,url")
    links = LinksFile.open(out)
    try:
        _send(target, campaign_id, url, given.items, recipients, links, batch_size)
    finally:
        links.close()
    if given.repeated:
        err.print(f"{given.repeated:,} line(s) named a recipient again: one link each")


def _send(
    target: Target,
    campaign_id: int,
    url: str | None,
    items: Sequence[Recipient],
    recipients: Path,
    links: LinksFile,
    batch_size: int,
) -> None:
    wanted = {item.recipient for item in items}
    if stray := next((r for r in links.done if r not in wanted), None):
        raise CliError(
            f"{links.path} holds a recipient that {recipients} has not ({stray}): it is the "
            "output of another send; choose another --out"
        )
    todo = [item for item in items if item.recipient not in links.done]
    plan = SendPlan(campaign_id, url, todo, str(recipients), batch_size)
    earlier, started = len(links.done), time.monotonic()
    written = earlier
    with _progress() as progress:
        task = progress.add_task("links", total=len(items), completed=earlier)

        def advance(count: int) -> None:
            nonlocal written
            written += count
            progress.advance(task, count)

        async def work(api: Api) -> None:
            await check_resumed(api, links, campaign_id)
            await send(api, plan, links, advance)

        try:
            target.run(work)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted: {written:,} of {len(items):,} links are in {links.path}; "
                "run the same command again to finish"
            ) from None
        except CliError as exc:
            if written == earlier:
                raise
            raise CliError(
                f"{exc.message}; {written:,} of {len(items):,} links are in {links.path}: "
                "run the same command again to finish"
            ) from None
    err.print(
        f"{links.path}: {len(items):,} links of campaign {campaign_id} ({written - earlier:,} "
        f"now, {earlier:,} from an earlier run) in {time.monotonic() - started:.1f} s"
    )


# -- stats --------------------------------------------------------------------------------


@cli.command("stats")
@click.argument("campaign_id", type=click.IntRange(min=1))
@click.option(
    "--from", "start", help="RFC 3339, e.g. 2026-03-01T00:00:00Z (default: a week or a month ago)"
)
@click.option("--to", "end", help="RFC 3339 (default: now)")
@click.option(
    "--granularity", type=click.Choice(["hour", "day"]), default="hour", show_default=True
)
@pass_target
def stats(
    target: Target, campaign_id: int, start: str | None, end: str | None, granularity: str
) -> None:
    """A campaign's clicks: all-time totals, and a sparkline of clicks over the window."""
    params = {"granularity": granularity}
    params |= {"from": start} if start else {}
    params |= {"to": end} if end else {}
    path = f"/api/campaigns/{campaign_id}/stats"
    found = target.run(lambda api: api.call("GET", path, params=params))
    out.print(render.stats_table(f"campaign {campaign_id}", found))
    series = [bucket["clicks"] for bucket in found["series"]]
    line, per_bar = render.sparkline(series, min(SPARKLINE_MAX, out.width - 2))
    bar = granularity if per_bar == 1 else f"{per_bar} {granularity}s"
    peak = max(series, default=0)
    out.print(f"clicks, a bar per {bar}, {found['from']} to {found['to']} (peak {peak:,}):")
    out.print(line)
    if any(found["breakdowns"].values()):
        out.print(render.breakdowns_table(found["breakdowns"]))


# -- sends and conversions ----------------------------------------------------------------


def _import(target: Target, events: Events, file: Path) -> list[Any]:
    target.check()
    rows = read_rows(file, events.integers)
    with _progress() as progress:
        task = progress.add_task(events.field, total=len(rows))
        try:
            return target.run(
                lambda api: import_rows(
                    api, events, rows, str(file), lambda n: progress.advance(task, n)
                )
            )
        except KeyboardInterrupt:
            raise Interrupted(
                "interrupted; the whole file may be imported again (repeats count once)"
            ) from None


@cli.group("sends")
def sends() -> None:
    """Record sends (delivery reports) for attribution."""


@sends.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_target
def import_sends(target: Target, file: Path) -> None:
    """POST /api/sends from a CSV whose header names its fields: campaign_id, recipient,
    sent_at, and optionally delivered_at and status. Repeats are counted once."""
    answers = _import(target, SENDS, file)
    err.print(f"{sum(a['accepted'] for a in answers):,} sends recorded")


@cli.group("conversions")
def conversions() -> None:
    """Record conversions (orders) for attribution."""


@conversions.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_target
def import_conversions(target: Target, file: Path) -> None:
    """POST /api/conversions from a CSV whose header names its fields: order_id, recipient,
    currency, amount, occurred_at. An order id is stored once."""
    answers = _import(target, CONVERSIONS, file)
    attributed = [item for a in answers for item in a["attributed"]]
    by_type = {kind: sum(1 for a in attributed if a["type"] == kind) for kind in ("click", "view")}
    err.print(
        f"{sum(a['accepted'] for a in answers):,} conversions stored, "
        f"{sum(a['duplicates'] for a in answers):,} duplicates; attributed: "
        f"{by_type['click']:,} after a click, {by_type['view']:,} after a view, "
        f"{len(attributed) - sum(by_type.values()):,} unattributed"
    )


# -- keys ---------------------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """API keys of a workspace (root keys: of any workspace)."""


WORKSPACE_HELP = "Default: the key's own (root keys: default)."


async def _own_workspace(api: Api) -> str:
    """The workspace of the key calling: a key that may list keys is listed itself (it is
    stored in its workspace), save root keys, which are not stored and act in default."""
    listed = await api.call("GET", "/api/keys")
    return str(listed["keys"][0]["workspace_id"]) if listed["keys"] else "default"


@keys.command("create")
@click.option("--name", required=True, help="Whose or what for, e.g. 'shop backend'.")
@click.option("--scopes", required=True, help="Comma-separated, e.g. links:write,stats:read")
@click.option("--expires-at", help="RFC 3339, e.g. 2027-06-30T00:00:00Z (default: never)")
@click.option("--workspace", help=WORKSPACE_HELP)
@pass_target
def create_key(
    target: Target, name: str, scopes: str, expires_at: str | None, workspace: str | None
) -> None:
    """Make a key; prints it, shown this once."""
    body = {
        "name": name,
        "scopes": [scope for scope in scopes.replace(" ", ",").split(",") if scope],
        "expires_at": expires_at,
    }

    async def work(api: Api) -> Any:
        where = workspace or await _own_workspace(api)
        return await api.call("POST", f"/api/workspaces/{where}/keys", json=body)

    made = target.run(work)
    click.echo(made["key"])
    err.print(
        f"key {made['id']} of workspace {made['workspace_id']}, scopes "
        f"{' '.join(made['scopes'])}; it is not shown again"
    )


@keys.command("list")
@click.option("--workspace", help=WORKSPACE_HELP)
@pass_target
def list_keys(target: Target, workspace: str | None) -> None:
    """The keys of a workspace (never the keys themselves), oldest first."""
    path = f"/api/workspaces/{workspace}/keys" if workspace else "/api/keys"
    found = target.run(lambda api: api.call("GET", path))["keys"]
    out.print(render.keys_table(found))
    err.print(f"{len(found):,} key(s); root keys are not listed")


@keys.command("revoke")
@click.argument("key_id")
@click.option("--workspace", help=WORKSPACE_HELP)
@pass_target
def revoke_key(target: Target, key_id: str, workspace: str | None) -> None:
    """Delete the key KEY_ID (its id, not the key): refused within a second."""
    path = f"/api/workspaces/{workspace}/keys/{key_id}" if workspace else f"/api/keys/{key_id}"
    target.run(lambda api: api.call("DELETE", path))
    err.print(f"key {key_id} revoked")
