"""CLI for compare: the paired, interleaved A/B protocol and the A/A calibration."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from sessionctl.cli.common import CampaignOpt, JsonOpt


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("compare")(compare)


def compare(
    bench: Annotated[
        str | None, typer.Argument(help="Benchmark name (default: the campaign's first).")
    ] = None,
    campaign: CampaignOpt = None,
    pairs: Annotated[
        int | None, typer.Option("--pairs", "-n", help="A/B pairs to run (default: compare.pairs).")
    ] = None,
    order: Annotated[
        str | None,
        typer.Option(
            "--order", help="abba (AB BA BA AB ...) or random (balanced shuffle; seed printed)."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for --order random and the bootstrap.")
    ] = None,
    aa: Annotated[
        bool,
        typer.Option(
            "--aa",
            help="A/A calibration: the baseline against itself; false verdicts and noise floor "
            "(recorded as a calibration, never as the session's verdict).",
        ),
    ] = False,
    trials: Annotated[
        int,
        typer.Option(
            "--trials",
            help="With --aa: repeat the calibration N times and report the share of trials with "
            "a false verdict (target: under 5%), its 95% interval and the pooled noise floor.",
        ),
    ] = 1,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            help="Connections per run (default: the benchmark's highest level).",
        ),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration", "-d", help="Seconds per run, e.g. 5s (default: the benchmark's)."
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate", help="Queries/s of an extra open-loop run per slot for tail latency."
        ),
    ] = None,
    a_sql: Annotated[
        list[str] | None,
        typer.Option(
            "--a-sql", help="SQL putting the server in state A (repeatable); with --b-sql."
        ),
    ] = None,
    b_sql: Annotated[
        list[str] | None,
        typer.Option(
            "--b-sql", help="SQL putting the server in state B (repeatable); with --a-sql."
        ),
    ] = None,
    no_record: Annotated[
        bool, typer.Option("--no-record", help="Do not record into the open session.")
    ] = False,
    restart_target: Annotated[
        bool,
        typer.Option(
            "--restart-target",
            help="With a long-lived target (restart: never) and a side from another build: stop "
            "it, run each side on its own server, bring the current build back up at the end.",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Compare a baseline (A) and the candidate (B) in interleaved pairs and judge every metric."""
    from sessionctl import console
    from sessionctl.cli import common
    from sessionctl.errors import UsageError
    from sessionctl.verdict.protocol import SqlSides, run_compare

    ws, name = common.campaign(campaign)
    seconds = common.seconds("--duration", duration)
    sides = SqlSides(a_sql=tuple(a_sql or ()), b_sql=tuple(b_sql or ())) if a_sql or b_sql else None
    if trials != 1:
        if not aa:
            raise UsageError("--trials repeats an A/A calibration: add --aa")
        from sessionctl.verdict.calibration import run_calibration

        cal = run_calibration(ws, name, trials=trials, bench=bench, seed=seed,
                              record=not no_record, reporter=common.reporter(json_output),
                              sides=sides, pairs=pairs, order=order, concurrency=concurrency,
                              duration=seconds, rate=rate)  # fmt: skip
        common.emit(json_output, cal.to_dict(), lambda: _show_calibration(console, cal))
        return
    result = run_compare(
        ws,
        name,
        sides=sides,
        bench=bench,
        pairs=pairs,
        order=order,
        seed=seed,
        aa=aa,
        concurrency=concurrency,
        duration=seconds,
        rate=rate,
        record=not no_record,
        reporter=common.reporter(json_output),
        restart_target=restart_target,
    )
    common.emit(json_output, result.to_dict(), lambda: _show(console, result, record=not no_record))


def _show_calibration(console: Any, cal: Any) -> None:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x * 100:.1f}%"

    console.print_text(f"A/A calibration of {cal.benchmark}: {len(cal.trials)} trials")
    rows = [
        (r["reading"], f"{r['quiet_trials']}/{r['trials']}", pct(r["share"]),
         f"{pct(r['ci_low'])} … {pct(r['ci_high'])}", "met" if r["passed"] else "NOT MET")
        for r in cal.readings()
    ]  # fmt: skip
    console.table(
        "trials saying only no change / inconclusive (lenient: no improved/regressed; "
        "strict: no probably … either)",
        ["reading", "quiet trials", "share", "95% CI", "target >= 95%"],
        rows,
    )
    console.print_text(cal.false_share_line())
    counts = cal.verdict_counts()
    floor = [
        (f["metric"], pct(f["median_cv"]), pct(f["median_mde"]),
         "n/a" if f["median_pairs_needed"] is None else f"{f['median_pairs_needed']:g}",
         ", ".join(f"{k} {v}" for k, v in sorted(counts.get(f["metric"], {}).items())))
        for f in cal.noise_floor()
    ]  # fmt: skip
    console.table(
        "noise floor on this machine (medians over the trials)",
        ["metric", "CV", "MDE", "pairs for threshold", "verdicts"],
        floor,
    )
    if cal.session is not None:
        console.print_text(
            f"recorded into session {cal.session} as a calibration (never the session's verdict)"
        )


def _show(console: Any, result: Any, *, record: bool = True) -> None:
    from sessionctl.verdict.judgement import interval, pct

    def num(x: float | None) -> str:
        from sessionctl.units import format_number

        return "n/a" if x is None else format_number(x)

    def p(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3g}"

    kind = "A/A calibration" if result.aa else "A/B comparison"
    console.print_text(
        f"{kind} of {result.benchmark}: {len(result.plan)} pairs, order {result.order} "
        f"(seed {result.seed}): {' '.join(result.plan)}"
    )
    console.print_text(f"A: {result.sides.a.description}")
    console.print_text(f"B: {result.sides.b.description}")
    console.print_text(f"latency from the {result.tail}")
    for j in result.judgements:
        items = {
            "A / B": f"{num(j.a)} / {num(j.b)}",
            "ratio B/A": pct(j.ratio) if j.ratio else "n/a",
            "95% CI (paired t)": interval(j.ci_low, j.ci_high),
            "p (t / Wilcoxon)": f"{p(j.p_t)} / {p(j.p_wilcoxon)}",
            **({f"p (t, Holm over {j.family})": p(j.p_family)} if j.family > 1 else {}),
            "bootstrap 95% CI": interval(j.boot_low, j.boot_high),
            "verdict": j.verdict.upper() if j.verdict in ("improved", "regressed") else j.verdict,
            "detectable (MDE)": _pct(j.mde),
            "pairs for threshold": j.pairs_needed if j.pairs_needed is not None else "n/a",
        }
        for i, w in enumerate(j.warnings):
            items["warnings" if i == 0 else " " * i] = w
        better = f"{j.better} is better" if j.better else "direction unknown"
        console.kv(f"{j.metric} ({better}, threshold ±{j.threshold * 100:g}%)", items)
    for w in result.warnings:
        console.warn(w)
    rows = [(j.metric, pct(j.ratio) if j.ratio else "n/a", interval(j.ci_low, j.ci_high), j.verdict)
            for j in result.judgements]  # fmt: skip
    console.table("summary", ["metric", "B/A", "95% CI", "verdict"], rows)
    if result.aa:
        floor = result.noise_floor()
        console.table(
            "noise floor on this machine",
            ["metric", "CV A", "CV B", "MDE", "pairs for threshold"],
            [
                (
                    f["metric"],
                    _pct(f["cv_a"]),
                    _pct(f["cv_b"]),
                    _pct(f["mde"]),
                    str(f["pairs_needed"]) if f["pairs_needed"] is not None else "n/a",
                )
                for f in floor
            ],
        )
        console.print_text(result.false_verdict_text())
    if result.session is not None:
        what = " as a calibration (never the session's verdict)" if result.aa else ""
        console.print_text(
            f"recorded into session {result.session}{what}; raw data in {result.raw_dir}"
        )
    else:
        if not record:
            console.print_text(f"--no-record: not recorded; raw data in {result.raw_dir}")
        else:
            why = result.not_recorded or "no open session"
            console.print_text(f"not recorded: {why}; raw data in {result.raw_dir}")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"
