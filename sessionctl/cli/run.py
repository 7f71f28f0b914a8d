"""CLI for ``sessionctl run``: the agent loop, with a live view and a final table."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from sessionctl import console
from sessionctl.cli.common import CampaignArg, JsonOpt, campaign, emit, option, reporter


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("run")(run_cmd)


def run_cmd(
    name: CampaignArg = None,
    sessions: Annotated[
        int, typer.Option("--sessions", "-n", min=1, help="How many sessions to run (at most).")
    ] = 1,
    agent: Annotated[
        str | None,
        option(
            "--agent",
            help="Agent preset: claude, codex or command. Default: the campaign's agent.preset.",
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        option(
            "--timeout",
            help="Wall clock per session, e.g. 45m (SIGINT, grace, then SIGTERM/SIGKILL). "
            "Default: agent.timeout.",
        ),
    ] = None,
    grace: Annotated[
        str | None,
        option("--grace", help="Wait after SIGINT before SIGTERM, e.g. 30s. Default: agent.grace."),
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget",
            help="USD per session; the agent is stopped past it. Default: agent.budget_usd.",
        ),
    ] = None,
    total_budget: Annotated[
        float | None,
        typer.Option(
            "--total-budget",
            help="USD for the whole run; no session starts past it. Default: run.budget_usd.",
        ),
    ] = None,
    max_turns: Annotated[
        int | None,
        typer.Option(
            "--max-turns",
            min=1,
            help="Turn limit passed to the agent (Claude Code). Default: agent.max_turns.",
        ),
    ] = None,
    allow_dirty: Annotated[
        bool,
        typer.Option("--allow-dirty", help="Start sessions even if the working copy has changes."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show the agent command, bounds and stop rules; run nothing."
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Run the agent for up to N sessions: start, launch, bound, audit, close or fail, repeat.

    The agent's own `sessionctl close`/`abort` only records a request (SESSIONCTL_RUN is set
    in its environment): the session is closed with those arguments after the agent exits and
    its audit passes, so the log entry carries the agent's summary and the audit's verdict.

    How each agent ended is named in the table, the log entry and --json: finished, refused
    tools, API error (with the API's message), turn limit, budget limit, timeout or killed. A
    session whose agent never reached its model is aborted without blaming its step, and
    run.max_infra_failures (default 2) such sessions in a row stop the run. Exits 1 when the
    run ended on such a session (so a wrapper script stops), else 0.

    A killed `sessionctl run` is picked up by the next one: the interrupted session is audited
    and closed or marked failed, never continued (it does not count toward N). Touch the
    campaign's stop file (run.stop_file, default .sessionctl/STOP) to stop after the current
    session.
    """
    from sessionctl.agent import loop
    from sessionctl.cli.common import seconds

    ws, cname = campaign(name)
    options = loop.RunOptions(
        sessions=sessions,
        preset=agent,
        timeout=seconds("--timeout", timeout),
        grace=seconds("--grace", grace),
        budget_usd=budget,
        total_budget_usd=total_budget,
        max_turns=max_turns,
        allow_dirty=allow_dirty,
    )
    if dry_run:
        result = loop.plan(ws, cname, options=options)
        emit(json_output, result.to_dict(), lambda: _show_plan(result.plan or {}))
        return
    rep = reporter(json_output)
    with _live_view(enabled=not json_output) as on_progress:
        result = loop.run(ws, cname, options=options, reporter=rep, on_progress=on_progress)
    emit(json_output, result.to_dict(), lambda: _show_result(result))
    if result.infrastructure_failure:
        # A wrapper script looping over `sessionctl run` must stop: the agent has no working
        # model (rejected key, unreachable API), and the next session would fail the same way.
        from sessionctl.errors import EXIT_USER

        raise typer.Exit(EXIT_USER)


def _show_plan(plan: dict[str, Any]) -> None:
    from sessionctl.process import describe_argv

    prompt = plan["prompt"]
    console.kv(
        "sessionctl run --dry-run",
        {
            "next session": plan.get("next_session"),
            "next step": plan.get("next_step") or "(none)",
            "prompt": f"{prompt['path']} as `start` renders it ({prompt['chars']:,} chars)",
            "agent": describe_argv(plan["agent"]["argv"]),
            "output format": plan["agent"]["format"],
            "environment": ", ".join(plan.get("env") or ()),
            "timeout": _secs(plan.get("timeout_s")),
            "grace": _secs(plan.get("grace_s")),
            "session budget": _usd(plan.get("session_budget_usd")),
            "total budget": _usd(plan.get("total_budget_usd")),
            "stop after": _stop_rules(plan),
            "stop file": plan.get("stop_file"),
            "transcript": plan.get("transcript"),
            "would stop now": plan.get("would_stop") or "no",
            "interrupted session": plan.get("interrupted_session") or "none",
        },
    )


def _stop_rules(plan: dict[str, Any]) -> str:
    rules = []
    if plan.get("max_without_improvement"):
        rules.append(f"{plan['max_without_improvement']} sessions without improvement")
    if plan.get("max_infra_failures"):
        rules.append(f"{plan['max_infra_failures']} in a row whose agent never reached its model")
    return ", or ".join(rules) or "only the session count, budget and stop file"


def _show_result(result: Any) -> None:
    rows = []
    for s in result.sessions:
        rows.append(
            [
                s.session,
                s.step or "",
                s.outcome + (" (recovered)" if s.recovered else ""),
                s.verdict or "",
                _ending(s),
                s.turns,
                _usd(s.cost_usd),
                _secs(s.duration_s),
                "not judged (infrastructure)"
                if s.outcome == "infrastructure"
                else "; ".join(s.problems),
            ]
        )
    if rows:
        console.table(
            f"sessionctl run: {result.campaign}",
            ["session", "step", "outcome", "verdict", "agent", "turns", "cost", "time", "audit"],
            rows,
        )
    console.print_text(f"stopped: {result.stop_reason}; spent {_usd(result.total_cost_usd)}")


def _ending(s: Any) -> str:
    """The agent column: how it ended (``API error: Invalid API key``, ``finished``)."""
    from sessionctl.agent.ending import label as ending_label

    ending = s.ending or {}
    kind = str(ending.get("kind") or s.exit_reason or "")
    label = ending_label(kind)
    if kind in ("", "finished", "timeout", "killed"):
        return label or "exited"
    return f"{label}: {ending.get('message') or ''}".rstrip(": ")


def _usd(v: float | None) -> str:
    return "n/a" if v is None else f"${v:.2f}"


def _secs(v: float | None) -> str:
    from sessionctl.units import format_duration

    return "none" if v is None else format_duration(round(float(v), 1))


@contextlib.contextmanager
def _live_view(*, enabled: bool) -> Iterator[Any]:
    """A rich Live status line on stderr while the loop runs (only on a terminal)."""
    if not enabled or not (console.err.is_terminal or os.environ.get("SESSIONCTL_PROGRESS") == "1"):
        yield None
        return
    from rich.live import Live
    from rich.text import Text

    live = Live(Text(""), console=console.err, refresh_per_second=4, transient=True)

    def update(p: Any) -> None:
        if p.phase == "done":
            live.update(Text(""))  # the loop reports the outcome itself; the table follows
            return
        line = Text.assemble(
            (f"[{p.index + 1}/{p.total}] ", "bold"),
            f"session {p.session or '?'} · {p.step or 'diagnostic'} · {p.phase} · ",
            f"{_secs(p.elapsed)} · {_usd(p.cost_usd)} (run {_usd(p.run_cost_usd)}) · ",
            f"{p.turns} turns",
            ("\n  " + p.activity if p.activity else "", "dim"),
        )
        live.update(line)

    with live:
        yield update
