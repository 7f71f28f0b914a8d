"""CLI for ``sessionctl demo``: one real session against an embedded PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sessionctl.cli.common import JsonOpt, emit, reporter


def demo(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Create the demo workspace here (kept). Default: a temp folder."
        ),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the workspace afterwards to continue from it.")
    ] = False,
    duration: Annotated[
        str | None,
        typer.Option("--duration", help="Seconds per benchmark run (default: the campaign's 3s)."),
    ] = None,
    pairs: Annotated[
        int,
        typer.Option(
            "--pairs", min=3, help="Interleaved A/B pairs for the verdict (a direction needs 3)."
        ),
    ] = 6,
    json_output: JsonOpt = False,
) -> None:
    """Run one complete measured session on a tiny app against an embedded PostgreSQL."""
    from sessionctl import console
    from sessionctl.cli.common import seconds
    from sessionctl.demo import run_demo

    result = run_demo(
        directory=directory,
        keep=keep,
        duration=seconds("--duration", duration),
        pairs=pairs,
        reporter=reporter(json_output),
    )

    def show() -> None:
        console.print_markup("\n[bold]Verdicts[/]")
        if result.verdicts:
            console.table(
                None,
                ["metric", "verdict", "ratio", "95% CI", "method"],
                [
                    [
                        v.get("metric"),
                        v.get("verdict"),
                        _ratio(v.get("ratio")),
                        f"{_ratio(v.get('ci_low'))} … {_ratio(v.get('ci_high'))}",
                        v.get("method"),
                    ]
                    for v in result.verdicts
                ],
            )
        else:
            console.print_text("(no verdicts were computed)")
        console.print_markup("\n[bold]New perf-log entry[/] (logs/demo-perf-log.md)")
        console.print_text(result.log_entry)
        console.print_markup("[bold]git log[/]")
        console.print_text(result.git_log)
        console.print_markup("[bold]Next steps now[/] (prompts/demo.md, re-rendered)")
        for i, step in enumerate(result.next_steps, 1):
            console.print_text(f"  {i}. {step}")
        console.print_markup(f"\nDone in {result.seconds:.0f}s.")
        if result.kept:
            console.print_text(
                f"\nContinue from here:\n  cd {result.root}\n  sessionctl status\n"
                "  sessionctl next list                 # what the next session will work on\n"
                "  sessionctl bench --phase baseline    # starts and stops the server itself\n"
                "  sessionctl run demo --agent claude --sessions 3"
            )
        else:
            console.print_text(
                "The workspace was removed; run `sessionctl demo --keep` to continue from it."
            )

    emit(json_output, result.to_dict(), show)


def _ratio(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the root app."""
    app.command("demo")(demo)
