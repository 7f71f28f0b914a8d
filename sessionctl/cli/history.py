"""CLI for the view across sessions: ``history`` (table, JSON, CSV) and ``report`` (HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sessionctl import console
from sessionctl.cli.common import CampaignArg, JsonOpt, campaign, emit, option

SinceOpt = Annotated[
    int | None,
    option("--since", metavar="N", help="Only sessions numbered N and later (cumulative too)."),
]


def history_cmd(
    name: CampaignArg = None,
    since: SinceOpt = None,
    csv: Annotated[bool, typer.Option("--csv", help="Print the rows as CSV.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """One row per session: outcome, headline before → after, effect, verdict, change, cost."""
    from sessionctl import history
    from sessionctl.errors import UsageError

    if csv and json_output:
        raise UsageError("--csv and --json: choose one")
    ws, cname = campaign(name)
    h = history.collect(ws, cname, since=since)
    if csv:
        console.out.out(history.csv_text(h), end="", highlight=False)
        return

    def human() -> None:
        if not h.rows:
            console.print_text(f"{cname}: no sessions yet; start one with `sessionctl start`")
            return
        head = f"{cname}: {len(h.rows)} session(s)"
        if h.metric:
            head += f", headline {h.metric}" + (f" ({h.better} is better)" if h.better else "")
        left_out = console.fitted_table(
            head,
            history.table_columns(h),
            history.table_rows(h),
            drop_order=history.TABLE_DROP_ORDER,
            shrink=history.TABLE_SHRINKS,
        )
        if left_out:
            console.print_text(f"(left out to fit: {', '.join(left_out)}; see --json or --csv)")
        if h.cumulative is not None:
            console.print_text("Cumulative: " + history.cumulative_text(h.cumulative))
        for w in h.warnings:
            console.warn(w)

    emit(json_output, h.to_dict(), human)


def report_cmd(
    name: CampaignArg = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    since: SinceOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Write one self-contained HTML report: the headline over sessions, the table, the gain."""
    from sessionctl import report

    ws, cname = campaign(name)
    written = report.write(ws, cname, output, since=since)
    emit(
        json_output,
        {"campaign": cname, "path": str(written.path), "bytes": written.size,
         "sessions": written.sessions, "plotted": written.plotted},
        f"wrote {written.path} ({written.size:,} bytes; {written.sessions} session(s), "
        f"{written.plotted} plotted)",
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("history")(history_cmd)
    app.command("report")(report_cmd)
