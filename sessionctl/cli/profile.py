"""CLI for ``sessionctl profile``: profile a benchmark, report a profile, diff two profiles.

``sessionctl profile [BENCH] ...`` runs (the group's default command), so the short form in the
docs works; ``profile report DIR``, ``profile diff A B`` and ``profile sweep DIR...`` read
profile folders that an earlier run wrote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from sessionctl.cli.common import CampaignOpt, JsonOpt, emit, reporter, workspace

if TYPE_CHECKING:
    from sessionctl.profiling.benchmark import ProfileOutcome
    from sessionctl.profiling.diff import ProfileDiff, Sweep
    from sessionctl.profiling.report import ProfileReport


class _DefaultRun(TyperGroup):
    """A group whose first word, when it is not a subcommand, belongs to the ``run`` command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer vendors its own click
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


profile_app = typer.Typer(
    cls=_DefaultRun,
    help="Sample the target while a benchmark runs; report samples per query per function.",
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(profile_app, name="profile")


TopOpt = Annotated[int, typer.Option("--top", min=1, help="Rows in each top-functions table.")]
FocusOpt = Annotated[
    list[str] | None,
    typer.Option("--focus", help="A function to report inclusive samples/query for (repeatable)."),
]


@profile_app.command("run")
def run_cmd(
    name: Annotated[
        str | None,
        typer.Argument(
            help="Benchmark to profile (default: the campaign's first).", show_default=False
        ),
    ] = None,
    campaign: CampaignOpt = None,
    concurrency: Annotated[
        str | None,
        typer.Option(
            "--concurrency",
            "-c",
            help="Level(s), e.g. 64 or 1,16,64 (a sweep: what grows per query).",
        ),
    ] = None,
    duration: Annotated[
        str | None, typer.Option("--duration", "-d", help="Profiled time per level, e.g. 20s.")
    ] = None,
    phase: Annotated[
        str | None,
        typer.Option("--phase", help="Session phase: baseline or remeasure (default: profile)."),
    ] = None,
    tool: Annotated[
        str | None,
        typer.Option(
            "--tool", help="perf, py-spy or command (default: the campaign's profile.tool)."
        ),
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="Diff against 'baseline' (the session's baseline profile) or a profile folder.",
        ),
    ] = None,
    overhead_duration: Annotated[
        str | None,
        typer.Option(
            "--overhead-duration",
            help="Length of the unprofiled run that measures profiler overhead (default: ≤5s).",
        ),
    ] = None,
    no_overhead: Annotated[
        bool, typer.Option("--no-overhead", help="Skip the unprofiled run (no overhead figure).")
    ] = False,
    call_graph: Annotated[
        str | None,
        typer.Option(
            "--call-graph",
            help="perf call graphs: auto, fp, dwarf, lbr, none (default: profile.call_graph).",
        ),
    ] = None,
    frequency: Annotated[
        int | None, typer.Option("--frequency", "-F", min=1, help="Samples per second per CPU.")
    ] = None,
    focus: FocusOpt = None,
    top: TopOpt = 15,
    no_record: Annotated[
        bool, typer.Option("--no-record", help="Do not record into the open session.")
    ] = False,
    no_start: Annotated[
        bool,
        typer.Option(
            "--no-start", help="Use the running server even if target.start is configured."
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Run the benchmark with a profiler attached to the target; record samples per query."""
    from sessionctl.cli.bench import int_list, resolve
    from sessionctl.cli.common import seconds
    from sessionctl.profiling.benchmark import profile_benchmark

    levels = int_list("--concurrency", concurrency, minimum=1, noun="levels", example="64,128")
    secs = seconds("--duration", duration)
    quick = seconds("--overhead-duration", overhead_duration)
    ws = workspace()
    camp, bench = resolve(ws, name, campaign)
    outcome = profile_benchmark(
        ws,
        camp,
        bench=bench,
        concurrency=levels,
        duration=secs,
        phase=phase,
        tool=tool,
        against=against,
        overhead=not no_overhead,
        overhead_duration=quick,
        call_graph=call_graph,
        frequency=frequency,
        focus=tuple(focus or ()),
        top=top,
        record=not no_record,
        start=not no_start,
        reporter=reporter(json_output),
    )
    emit(
        json_output,
        outcome.to_dict(),
        lambda: _show_outcome(outcome, top=top, recorded=not no_record),
    )


@profile_app.command("report")
def report_cmd(
    folder: Annotated[
        str,
        typer.Argument(
            help="A profile folder, a folded-stacks file, or saved `perf script` text (.gz too)."
        ),
    ],
    focus: FocusOpt = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", help="NAME=REGEX: samples/query of frames matching (repeatable)."),
    ] = None,
    queries: Annotated[
        int | None,
        typer.Option(
            "--queries",
            min=1,
            help="Queries completed while sampling, for per-query figures from a bare file.",
        ),
    ] = None,
    top: TopOpt = 20,
    json_output: JsonOpt = False,
) -> None:
    """Show a saved profile: samples per query, top functions, focus functions and groups."""
    import dataclasses
    from pathlib import Path

    from sessionctl.profiling.report import Profile, analyze

    profile = Profile.load(Path(folder))
    if queries is not None:
        profile = dataclasses.replace(profile, queries=queries)
    focus_list, groups = _focus_groups(profile.meta, focus, group)
    rep = analyze(profile, focus=focus_list, groups=groups, top=top)
    emit(json_output, rep.to_dict(), lambda: _show_report(rep, top=top))


@profile_app.command("diff")
def diff_cmd(
    a: Annotated[str, typer.Argument(help="Baseline profile folder (A).")],
    b: Annotated[str, typer.Argument(help="Profile folder to compare (B).")],
    by: Annotated[str, typer.Option("--by", help="Rank by 'self' or 'incl' samples.")] = "self",
    focus: FocusOpt = None,
    top: TopOpt = 20,
    json_output: JsonOpt = False,
) -> None:
    """Which functions gained or lost samples per query from A to B, largest change first."""
    from pathlib import Path

    from sessionctl.profiling.diff import diff_profiles
    from sessionctl.profiling.report import Profile

    pa, pb = Profile.load(Path(a)), Profile.load(Path(b))
    focus_list, groups = _focus_groups(pb.meta, focus, None)
    d = diff_profiles(pa, pb, by=by, focus=focus_list, groups=groups)  # type: ignore[arg-type]
    emit(json_output, d.to_dict(top=top), lambda: _show_diff(d, top=top))


@profile_app.command("sweep")
def sweep_cmd(
    folders: Annotated[
        list[str], typer.Argument(help="Profile folders taken at different concurrency.")
    ],
    by: Annotated[str, typer.Option("--by", help="Rank by 'self' or 'incl' samples.")] = "self",
    top: TopOpt = 20,
    json_output: JsonOpt = False,
) -> None:
    """Which functions grow per query as concurrency grows, across saved profiles."""
    from pathlib import Path

    from sessionctl.profiling.diff import sweep
    from sessionctl.profiling.report import Profile

    s = sweep([Profile.load(Path(f)) for f in folders], by=by)  # type: ignore[arg-type]
    emit(json_output, s.to_dict(top=top), lambda: _show_sweep(s, top=top))


# --- helpers ----------------------------------------------------------------------------------


def _focus_groups(
    meta: dict[str, Any], focus: list[str] | None, group: list[str] | None
) -> tuple[list[str], dict[str, str]]:
    """Focus and groups: the ones recorded with the profile, plus any given on the command line."""
    from sessionctl.errors import UsageError

    focus_list = list(dict.fromkeys([*(meta.get("focus") or []), *(focus or [])]))
    groups = dict(meta.get("groups") or {})
    for g in group or []:
        name, sep, pattern = g.partition("=")
        if not sep or not name or not pattern:
            raise UsageError(f"--group {g!r}: use NAME=REGEX, e.g. allocator='malloc|free'")
        groups[name] = pattern
    return focus_list, groups


def _show_report(rep: ProfileReport, *, top: int, warnings: bool = True) -> None:
    from sessionctl import console
    from sessionctl.profiling.report import fmt

    q = f"{rep.queries:,}" if rep.queries is not None else "unknown"
    conc = f" at c{rep.concurrency}" if rep.concurrency else ""
    cpu = f", ≈{fmt(rep.cpu_us_per_query)} µs CPU/query" if rep.cpu_us_per_query is not None else ""
    console.print_text(
        f"{rep.label}{conc}: {rep.samples:,} samples, {q} queries, "
        f"{fmt(rep.samples_per_query)} samples/query{cpu}"
    )
    cols = ["function", "self/q", "self %", "incl/q", "incl %"]
    for title, rows in (
        ("Top by self samples", rep.top_self),
        ("Top by inclusive samples", rep.top_incl),
    ):
        console.table(
            title,
            cols,
            [
                [
                    r.name,
                    fmt(r.self_per_query),
                    f"{r.self_share:.1%}",
                    fmt(r.incl_per_query),
                    f"{r.incl_share:.1%}",
                ]
                for r in rows[:top]
            ],
        )
    for title, match_rows in (("Focus functions", rep.focus), ("Groups", rep.groups)):
        if match_rows:
            console.table(
                title,
                ["name", "incl/q", "self/q", "incl %"],
                [
                    [m.name, fmt(m.incl_per_query), fmt(m.self_per_query), f"{m.incl_share:.1%}"]
                    for m in match_rows
                ],
            )
    for w in rep.warnings if warnings else ():
        console.warn(w)


def _show_diff(d: ProfileDiff, *, top: int) -> None:
    from sessionctl import console
    from sessionctl.profiling.report import fmt

    console.print_text(
        f"{d.a_label} → {d.b_label}: {fmt(d.a_total)} → {fmt(d.b_total)} samples/{d.unit}"
    )
    console.table(
        f"Largest changes by {d.by} samples/{d.unit}",
        ["function", f"A {d.by}", f"B {d.by}", "Δ", "A incl", "B incl", "Δ incl"],
        [
            [
                r.name,
                fmt(r.a_self if d.by == "self" else r.a_incl),
                fmt(r.b_self if d.by == "self" else r.b_incl),
                fmt(r.delta(d.by)),
                fmt(r.a_incl),
                fmt(r.b_incl),
                fmt(r.d_incl),
            ]
            for r in d.rows[:top]
        ],
    )
    for title, rows in (("Focus functions (inclusive)", d.focus), ("Groups (inclusive)", d.groups)):
        if rows:
            console.table(
                title,
                ["name", "A", "B", "Δ"],
                [[r.name, fmt(r.a_incl), fmt(r.b_incl), fmt(r.d_incl)] for r in rows],
            )
    if d.unit == "sample":
        console.warn("a query count is missing on one side: figures are shares of all samples")


def _show_sweep(s: Sweep, *, top: int) -> None:
    from sessionctl import console
    from sessionctl.profiling.report import fmt

    console.table(
        f"What grows per {s.unit} with concurrency ({s.by} samples/{s.unit})",
        ["function", *(f"c{c}" for c in s.concurrency), "growth"],
        [["(all samples)", *(fmt(t) for t in s.totals), fmt(s.totals[-1] - s.totals[0])]]
        + [[r.name, *(fmt(v) for v in r.per_query), fmt(r.growth)] for r in s.rows[:top]],
    )


def _show_outcome(outcome: ProfileOutcome, *, top: int, recorded: bool) -> None:
    from sessionctl import console

    for run in outcome.runs:
        _show_report(run.report, top=top, warnings=False)  # already shown while running
        if run.overhead is not None:
            console.print_text(run.overhead_md().strip())
        d = outcome.diffs.get(run.profile.concurrency or 0)
        if d is not None:
            _show_diff(d, top=top)
        console.print_text(f"files: {run.folder} (flamegraph.svg, speedscope.json, stacks.folded)")
    if outcome.sweep is not None:
        _show_sweep(outcome.sweep, top=top)
    if outcome.session is not None:
        phase = f" as {outcome.measurement.phase}" if outcome.measurement.phase else ""
        console.print_text(f"recorded into session {outcome.session}{phase}")
    elif recorded:
        console.print_text(f"not recorded: {outcome.not_recorded or 'no session is open'}")
