"""What the commands print: rich tables on stdout, and a sparkline of a stats series."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[int], width: int) -> tuple[str, int]:
    """`values` as bars, and how many values each bar sums: one each, or as many as keep the
    bars within `width` (the last may sum fewer). The lowest bar is zero, the highest the
    largest sum, and any click shows above the lowest."""
    per_bar = max(1, -(-len(values) // max(1, width)))
    sums = [sum(values[i : i + per_bar]) for i in range(0, len(values), per_bar)]
    top = max(sums, default=0)
    bars = "".join(
        BARS[0] if v == 0 else BARS[max(1, round(v / top * (len(BARS) - 1)))] for v in sums
    )
    return bars, per_bar


def number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def campaigns_table(campaigns: list[dict[str, Any]]) -> Table:
    columns = ("id", "name", "kind", "utm_source", "utm_medium", "code_length", "links")
    table = Table(*columns, "created_at")
    for c in campaigns:
        table.add_row(
            str(c["id"]),
            c["name"],
            c["kind"],
            c["utm_source"] or "",
            c["utm_medium"] or "",
            str(c.get("code_length") or ""),
            number(c["links"]),
            c["created_at"],
        )
    return table


def keys_table(keys: list[dict[str, Any]]) -> Table:
    table = Table("id", "name", "workspace", "scopes", "created_at", "expires_at", "last_used_at")
    for k in keys:
        table.add_row(
            k["id"],
            k["name"],
            k["workspace_id"],
            " ".join(k["scopes"]),
            k["created_at"],
            k["expires_at"] or "never",
            k["last_used_at"] or "",
        )
    return table


def stats_table(title: str, stats: dict[str, Any]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("all time", justify="right")
    for name in ("clicks", "unique_clicks", "recipients_clicked", "bot_hits"):
        table.add_row(name.replace("_", " "), number(stats[name]))
    return table


def breakdowns_table(breakdowns: dict[str, dict[str, int]], top: int = 5) -> Table:
    """The `top` values of each breakdown, side by side."""
    kinds = list(breakdowns)
    table = Table(*kinds, title="clicks by", title_justify="left")
    columns = [
        [f"{name} {count:,}" for name, count in list(breakdowns[kind].items())[:top]]
        for kind in kinds
    ]
    for i in range(max((len(c) for c in columns), default=0)):
        table.add_row(*(column[i] if i < len(column) else "" for column in columns))
    return table
