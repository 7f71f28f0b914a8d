"""CLI for ``sessionctl bench``: run a campaign's benchmark sweep and record it into the session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from sessionctl.cli.common import CampaignOpt, JsonOpt, emit, reporter, seconds, workspace

if TYPE_CHECKING:
    from sessionctl.bench.runner import BenchOutcome
    from sessionctl.workspace import Workspace


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("bench", no_args_is_help=False)(bench_cmd)


def bench_cmd(
    name: Annotated[
        str | None,
        typer.Argument(
            help="Benchmark to run (default: the campaign's first). A campaign name also works "
            "when --campaign is not given.",
            show_default=False,
        ),
    ] = None,
    campaign: CampaignOpt = None,
    phase: Annotated[
        str | None,
        typer.Option(
            "--phase", help="Session phase to record under: baseline, remeasure, change..."
        ),
    ] = None,
    concurrency: Annotated[
        str | None,
        typer.Option("--concurrency", "-c", help="Comma-separated levels, e.g. 1,16,64,128."),
    ] = None,
    duration: Annotated[
        str | None, typer.Option("--duration", "-d", help="Measured time per run, e.g. 20s, 1m.")
    ] = None,
    repeat: Annotated[
        int | None, typer.Option("--repeat", "-r", min=1, help="Runs per concurrency level.")
    ] = None,
    no_record: Annotated[
        bool, typer.Option("--no-record", help="Do not record into the open session.")
    ] = False,
    no_start: Annotated[
        bool,
        typer.Option(
            "--no-start", help="Use the running server even if target.start is configured."
        ),
    ] = False,
    ddl_levels: Annotated[
        str | None,
        typer.Option(
            "--levels",
            help="ddl driver: object counts to measure at, e.g. 0,2000,5000 (overrides the "
            "campaign's levels).",
        ),
    ] = None,
    keep_probes: Annotated[
        bool,
        typer.Option("--keep-probes", help="ddl driver: leave the probe objects in place."),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Run a benchmark across concurrency levels; print the sweep table and record it."""
    from sessionctl.bench.runner import run_bench

    levels = int_list("--concurrency", concurrency, minimum=1, noun="levels", example="1,16,64")
    secs = seconds("--duration", duration)
    ws = workspace()
    camp, bench = resolve(ws, name, campaign)
    outcome = run_bench(
        ws,
        camp,
        bench=bench,
        phase=phase,
        concurrency=levels,
        duration=secs,
        repeat=repeat,
        record=not no_record,
        reporter=reporter(json_output),
        start=not no_start,
        options=_ddl_options(ddl_levels, keep_probes),
    )
    emit(json_output, outcome.to_dict(), lambda: _show(outcome, recorded=not no_record))


def int_list(
    option: str, text: str | None, *, minimum: int, noun: str, example: str
) -> list[int] | None:
    """Parse a comma-separated list of integers given to ``option`` (None when not given)."""
    from sessionctl.errors import UsageError

    if text is None:
        return None
    try:
        values = [int(p) for p in text.replace(" ", "").split(",") if p]
    except ValueError:
        raise UsageError(f"{option} {text!r}: use comma-separated {noun} like {example}") from None
    if not values or any(n < minimum for n in values):
        raise UsageError(f"{option} {text!r}: {noun} must be integers >= {minimum}")
    return values


def _ddl_options(levels: str | None, keep_probes: bool) -> dict[str, Any]:
    """Driver extras for ``driver: ddl`` (ignored by the other drivers)."""
    out: dict[str, Any] = {"keep_probes": True} if keep_probes else {}
    counts = int_list("--levels", levels, minimum=0, noun="object counts", example="0,2000")
    if counts is not None:
        out["levels"] = counts
    return out


def resolve(ws: Workspace, name: str | None, campaign: str | None) -> tuple[str, str | None]:
    """Decide (campaign, benchmark) from ``bench [NAME] [--campaign C]``.

    NAME is a benchmark of the chosen campaign; when no campaign is given and NAME is not one of
    the default campaign's benchmarks but is a campaign, it names the campaign instead.
    """
    from sessionctl.bench.runner import load_campaign
    from sessionctl.errors import CampaignNotFound
    from sessionctl.workspace import resolve_campaign

    if campaign is not None or name is None:
        return resolve_campaign(ws, campaign), name
    names = ws.campaign_names()
    try:
        default = resolve_campaign(ws, None)
    except CampaignNotFound:
        if name in names:
            return name, None
        raise
    if name in names and name not in {b.name for b in load_campaign(ws, default).benchmarks}:
        return name, None
    return default, name


def _show(outcome: BenchOutcome, *, recorded: bool) -> None:
    from sessionctl import console

    m = outcome.measurement
    blocks = m.details.get("blocks")
    if blocks:  # a driver with its own report (ddl): its tables, as tables
        show_blocks(blocks)
    elif outcome.table:
        _show_sweep(f"{m.name} ({m.source})", outcome.table)
    else:
        console.print_text(m.summary_md)
    if outcome.session is not None:
        phase = f" as {m.phase}" if m.phase else ""
        console.print_text(f"recorded into session {outcome.session}{phase}")
    elif recorded:
        console.print_text(f"not recorded: {outcome.not_recorded or 'no session is open'}")
    console.print_text(f"raw data: {outcome.run_dir}")


def _show_sweep(title: str, rows: list[dict[str, Any]]) -> None:
    """The concurrency × (QPS, latency, metric statistics) table; metric columns get short
    two-line headers (family over statistic) and a legend with the full series names."""
    from sessionctl import console
    from sessionctl.bench.results import SWEEP_TITLES, metric_headers
    from sessionctl.units import format_number

    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys and k != "runs"]
    fixed = {**SWEEP_TITLES, "errors": "errors"}
    headers, legend = metric_headers([k for k in keys if k not in fixed])

    def cell(v: Any) -> str:
        return format_number(v) if isinstance(v, float) else str(v)

    console.table(
        title,
        [fixed.get(k) or headers[k] for k in keys],
        [[cell(row.get(k, "")) for k in keys] for row in rows],
    )
    for short, full in legend:
        if short != full:
            console.print_text(f"  {short} = {full}")


def show_blocks(blocks: list[dict[str, Any]]) -> None:
    """Print a report's text and table blocks (``{"text"}`` / ``{"title", "columns", "rows"}``)."""
    from sessionctl import console

    for b in blocks:
        if "text" in b:
            console.print_text(b["text"])
        else:
            console.table(b.get("title"), b["columns"], b["rows"])
