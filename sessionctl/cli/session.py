"""CLI for sessions: ``start``, ``status``, ``record``, ``close``, ``abort``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from sessionctl import console
from sessionctl.cli.common import CampaignArg, JsonOpt, campaign, emit, option, reporter
from sessionctl.session import digest

StatusOpt = Annotated[
    str | None, option("--status", help="New current-status prose for the campaign.")
]


def _path_lines(paths: Sequence[str]) -> None:
    """One path per line, the first few only; the count of the rest (all are in --json)."""
    shown, more = digest.capped(paths, digest.FIRST_PATHS * 2)
    console.print_text("\n".join(f"       {p}" for p in shown))
    if more:
        console.print_text(f"       … and {more:,} more (--json lists them all)")


def _plan_human(plan: Any, *, dry_run: bool) -> None:
    head = "Would make" if dry_run else "Made"
    console.print_text(f"{head} these changes for session {plan.session}:")
    for n, change in enumerate((plan.code, plan.prompt), start=1):
        console.print_text(f"  {n}. {change.title}")
        _path_lines(change.paths)
    if plan.left_out:
        count = len(plan.left_out)
        console.print_text(f"  Left out ({count:,} untracked; add with --include PATH):")
        _path_lines(plan.left_out)
    chosen = plan.headline or {}
    if plan.kind == "close" and not plan.diagnostic and chosen.get("note"):
        console.print_text(f"Verdict: {plan.verdict}; {chosen['note']}")
    if plan.retired:
        console.print_text(f"Retired step {plan.retired} (tried, did not help)")
    if plan.results:
        console.table(
            "Results",
            ["metric", "before", "after", "delta", "95% CI", "verdict"],
            [
                [r.metric, r.before_text, r.after_text, r.delta_text, r.interval_text, r.verdict]
                for r in plan.results
            ],
        )
    if dry_run:
        from sessionctl.redaction import redact

        console.print_text("")
        console.print_text(f"--- log entry ({plan.log_path}) ---")
        console.print_text(redact(plan.entry))
        console.print_text("--- change 1 description ---")
        console.print_text(redact(plan.code.message))
        console.print_text("--- change 2 description ---")
        console.print_text(redact(plan.prompt.message))


def start_cmd(
    name: CampaignArg = None,
    step: Annotated[
        str | None, option("--step", help="Next step id to work on (default: the top one).")
    ] = None,
    diagnostic: Annotated[
        bool,
        typer.Option("--diagnostic", help="A findings-only session (no code change required)."),
    ] = False,
    allow_dirty: Annotated[
        bool,
        typer.Option(
            "--allow-dirty",
            help="Start even though the working copy has changes (they join the session).",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Open the next session on a next step, on a clean working copy."""
    from sessionctl.session import engine

    ws, cname = campaign(name)
    s = engine.start(
        ws,
        cname,
        step=step,
        diagnostic=diagnostic,
        allow_dirty=allow_dirty,
        reporter=reporter(json_output),
    )
    commands = engine.next_commands(s)

    def human() -> None:
        title = s.extra.get("step_title") or ""
        what = f"step {s.step_id}: {title}" if s.step_id else "a diagnostic session"
        console.print_text(f"Session {s.number} of {cname} is open on {what}")
        log = ws.log_path(cname).relative_to(ws.root).as_posix()
        console.print_text(f"Prompt: prompts/{cname}.md   Log: {log}")
        if s.extra.get("artifacts"):
            console.print_text(
                f"Baseline build (side A of `sessionctl compare`): {s.extra['artifacts']}"
            )
        console.print_text("Next:")
        for c in commands:
            console.print_text(f"  {c}")
        console.print_text("Wrong step? `sessionctl abort --undo` takes this start back.")

    emit(json_output, {**s.to_dict(), "commands": commands}, human)


def status_cmd(
    name: CampaignArg = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show every measurement, finding and path.")
    ] = False,
    last: Annotated[
        int,
        typer.Option("--last", metavar="N", help="Show the last N measurements and findings."),
    ] = digest.LAST,
    json_output: JsonOpt = False,
) -> None:
    """Show the open session: phases, measurements, findings and what close will do."""
    from sessionctl.session import engine

    ws, cname = campaign(name)
    st = engine.status(ws, cname)
    if json_output:
        emit(True, st.to_dict())
        return
    _status_human(st, cname, None if show_all else max(last, 0))


def _status_human(st: Any, cname: str, last: int | None) -> None:
    """Phases with per-phase summaries, the last measurements (one value per row, grouped by
    phase and level) and findings, and the close plan with long path lists cut short."""
    if st.pending_close:
        p = st.pending_close
        why = f" ({p['error']})" if p.get("error") else ""
        left = f" (steps left: {', '.join(p['remaining'])})" if p.get("remaining") else ""
        console.warn(
            f"an interrupted {p.get('kind', 'close')} of session {p.get('session')} is "
            f"pending{left}{why}; run `sessionctl close {cname}` to finish it (if it cannot, "
            "close rolls it back and says why)"
        )
    if not st.open:
        nxt = f"; next step: {st.next_step}" if st.next_step else ""
        console.print_text(f"{cname}: no open session (last session {st.last_session}{nxt})")
        if st.headline:
            console.print_text(f"Headline: {st.headline}")
        console.print_text(f"Start one: {st.commands[0]}")
        return
    kind = "diagnostic" if st.diagnostic else "optimization"
    facts = {"step": f"{st.step_id or '-'}: {st.step_title}", "started": st.started_at}
    facts["verdict on"] = st.headline or "the default rule (the campaign sets no headline)"
    now = st.headline_now
    if now is not None:
        from sessionctl.perflog import format_value
        from sessionctl.units import format_percent

        moved = format_value(now["before"], now["unit"])
        if now["after"] is None:
            moved += " (no re-measure yet)"
        else:
            moved += f" → {format_value(now['after'], now['unit'])}"
            if now["before"]:
                moved += f" ({format_percent(now['after'] / now['before'])}, judged at close)"
        facts["headline so far"] = moved
    if st.artifacts:
        facts["baseline build"] = st.artifacts
    console.kv(f"{cname}: session {st.session} ({kind})", facts)
    summaries = {s.phase: s for s in digest.phase_summaries(st.measurements, st.findings)}
    empty = digest.PhaseSummary("", 0, 0, 0)
    rows = []
    for p in st.phases:
        s = summaries.get(p.name, empty)
        counts = (s.measurements, s.values, s.findings)
        rows.append([p.name, "yes" if p.done else "no", f"{p.entries:,}"])
        rows[-1].extend(f"{n:,}" if n else "" for n in counts)
    console.table(
        "Phases", ["phase", "done", "entries", "measurements", "numbers", "findings"], rows
    )
    shown, hidden = digest.last(st.measurements, last)
    if shown:
        more = f" (the last {len(shown):,} of {len(st.measurements):,})" if hidden else ""
        console.table(
            f"Measurements{more}", ["phase", "benchmark", "value"], measurement_rows(shown)
        )
    found, hidden_f = digest.last(st.findings, last)
    if found:
        more = f" (the last {len(found):,} of {len(st.findings):,})" if hidden_f else ""
        console.bullets(
            f"Findings{more}",
            [f["text"] + (f" ({f['phase']})" if f["phase"] else "") for f in found],
        )
    if hidden or hidden_f:
        console.print_text(
            "Earlier entries: `sessionctl status --all` shows them all (`--json` has everything)"
        )
    if st.missing:
        console.bullets("Before close:", st.missing)
    if st.close_request:
        r = st.close_request
        console.print_text(
            f"{r['type'].replace('_', ' ')} recorded at {r.get('at')}: "
            "`sessionctl run` carries it out after the agent exits"
        )
    if st.close_plan:
        cp = st.close_plan
        console.print_text("close will make:")
        for n, key in enumerate(("code", "prompt"), start=1):
            console.print_text(f"  {n}. {cp[key]['title']}")
            console.print_text(f"       {_paths(cp[key]['paths'], last is None)}")
        if cp["left_out"]:
            count = len(cp["left_out"])
            console.bullets(
                f"  left out ({count:,} untracked; add with close --include PATH):",
                [_paths(cp["left_out"], last is None)],
            )
    elif st.plan_error:
        console.warn(f"close plan unavailable: {st.plan_error}")


def _paths(paths: list[str], show_all: bool) -> str:
    """Paths on one line: the first few and a count of the rest (all of them with --all)."""
    shown, more = (paths, 0) if show_all else digest.capped(paths)
    tail = f", … and {more:,} more (--all or --json lists them)" if more else ""
    return ", ".join(shown) + tail


def measurement_rows(measurements: Sequence[dict[str, Any]]) -> list[list[str]]:
    """One row per value (a ddl bench has dozens), the phase and benchmark on a group's first;
    a measurement's values grouped by level (the part of a name after ``@``), first seen first."""
    from sessionctl.perflog import format_value

    rows: list[list[str]] = []
    for m in measurements:
        phase = m["phase"] or ("A/A" if m.get("aa") else str(m.get("source") or ""))
        values = digest.by_level(m["values"])
        cells = [f"{v['name']} = {format_value(v['value'], v['unit'])}" for v in values]
        if not cells:
            cells = ["A/A calibration (never the verdict)" if m.get("aa") else "(no values)"]
        for i, cell in enumerate(cells):
            rows.append([phase if i == 0 else "", m["name"] if i == 0 else "", cell])
    return rows


def record_cmd(
    name: CampaignArg = None,
    phase: Annotated[
        str | None, option("--phase", help="baseline | profile | change | remeasure | note.")
    ] = None,
    finding: Annotated[
        list[str] | None, option("--finding", help="A finding, in one sentence (repeatable).")
    ] = None,
    observation: Annotated[
        list[str] | None,
        option(
            "--observation",
            help="A key observation for the log entry's 'Key observations' (repeatable).",
        ),
    ] = None,
    root_cause: Annotated[
        list[str] | None,
        option("--root-cause", help="Why it was slow, for the log entry's 'Root cause'."),
    ] = None,
    file: Annotated[
        list[Path] | None,
        option(
            "--file", help="Attach a file (copied into the session's scratch folder; repeatable)."
        ),
    ] = None,
    metric: Annotated[
        list[str] | None,
        option(
            "--metric", help="A number: name=value[unit], e.g. qps=1234 or p99=3.2ms (repeatable)."
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Record work into the open session as it happens."""
    from sessionctl.session import engine

    ws, cname = campaign(name)
    s = engine.record(
        ws,
        cname,
        phase=phase,
        findings=finding or (),
        files=file or (),
        metrics=metric or (),
        observations=observation or (),
        root_causes=root_cause or (),
    )
    finding = [f.strip() for f in finding or ()]  # as stored (a blank one was refused)
    observation = [o.strip() for o in observation or ()]
    root_cause = [r.strip() for r in root_cause or ()]
    parts = [
        f"{len(finding)} finding(s)",
        *([f"{len(observation)} observation(s)"] if observation else []),
        *([f"{len(root_cause)} root cause(s)"] if root_cause else []),
        f"{len(file or ())} file(s)",
        f"{len(metric or ())} metric(s)",
    ]
    emit(
        json_output,
        {
            "campaign": cname,
            "session": s.number,
            "phase": phase,
            "findings": finding or [],
            "observations": observation,
            "root_causes": root_cause,
            "metrics": metric or [],
            "files": [str(f) for f in file or ()],
        },
        f"recorded into session {s.number}"
        + (f" ({phase})" if phase else "")
        + ": "
        + ", ".join(parts),
    )


def close_cmd(
    name: CampaignArg = None,
    resolve: Annotated[
        str | None,
        option("--resolve", help="Mark this next step done (moved to the completed list)."),
    ] = None,
    add_step: Annotated[
        list[str] | None, option("--add-step", help="Add a next step: 'id: title' (repeatable).")
    ] = None,
    status_text: StatusOpt = None,
    summary: Annotated[
        str | None,
        option("--summary", help="The conclusion, for the log and the change description."),
    ] = None,
    include: Annotated[
        list[Path] | None,
        option(
            "--include", help="Put this untracked file or folder into the code change (repeatable)."
        ),
    ] = None,
    force: Annotated[
        str | None,
        option(
            "--force",
            metavar="REASON",
            help="Close without the required measurements; REASON is logged.",
        ),
    ] = None,
    metric: Annotated[
        str | None,
        option(
            "--metric",
            help="Judge this session on this recorded value (overrides the campaign's headline).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the plan (texts, files per change); touch nothing."),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Close the session: log entry, YAML update, the code change, then the prompt change.

    Under `sessionctl run` (SESSIONCTL_RUN set) the arguments are checked and recorded as a
    request; the loop closes the session after the agent exits and its audit passes.
    """
    from sessionctl.session import request
    from sessionctl.session.workflow import CloseArgs, NewStep

    ws, cname = campaign(name)
    args: CloseArgs = {
        "resolve": resolve,
        "add_steps": [NewStep.parse(t) for t in add_step or ()],
        "status_text": status_text,
        "summary": summary,
        "force_reason": force,
        "include": [p.resolve() for p in include or ()],
        "metric": metric,
    }
    if not dry_run and request.deferred():
        req = request.request_close(ws, cname, **args)
        emit(json_output, req.to_dict(), req.message)
        return
    from sessionctl.session import close as close_mod

    result = close_mod.close(ws, cname, dry_run=dry_run, reporter=reporter(json_output), **args)

    if json_output:  # built only when asked for: 100k untracked paths make it costly
        emit(True, result.to_dict())
        return
    if result.recovered:
        console.warn(result.recovered)
    _plan_human(result.plan, dry_run=dry_run)
    if not dry_run:
        console.print_text(f"Next: sessionctl start {cname}")


def abort_cmd(
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why the session ends without a change (logged)."),
    ] = None,
    name: CampaignArg = None,
    status_text: StatusOpt = None,
    discard: Annotated[
        bool,
        typer.Option(
            "--discard", help="Restore the session's edits of tracked files (otherwise they stay)."
        ),
    ] = False,
    retire: Annotated[
        bool,
        typer.Option(
            "--retire",
            help="Move the session's step to 'tried, did not help' (start/run never pick it).",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; touch nothing.")
    ] = False,
    undo: Annotated[
        bool,
        typer.Option(
            "--undo",
            help="Right after `start` (nothing recorded, nothing changed): put git/jj, the "
            "prompt and the session state back as if start never ran; no log entry.",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """End the session without a code change: log why, keep the findings.

    Under `sessionctl run` (SESSIONCTL_RUN set) this records a request; the loop aborts the
    session after the agent exits. `--undo` instead takes back a `start` that did nothing yet.
    """
    from sessionctl.errors import UsageError
    from sessionctl.session import engine, request

    ws, cname = campaign(name)
    if undo:
        if reason is not None or discard or dry_run or status_text is not None:
            raise UsageError("abort --undo: takes no --reason, --discard, --dry-run or --status")
        if request.deferred():
            raise UsageError("abort --undo: not under `sessionctl run`; use --reason TEXT")
        _undo(ws, cname, json_output)
        return
    if reason is None:
        raise UsageError("abort: --reason TEXT is required (or --undo right after `start`)")
    if not dry_run and request.deferred():
        req = request.request_abort(
            ws, cname, reason=reason, status_text=status_text, discard=discard, retire=retire
        )
        emit(json_output, req.to_dict(), req.message)
        return
    result = engine.abort(
        ws,
        cname,
        reason=reason,
        status_text=status_text,
        discard=discard,
        dry_run=dry_run,
        reporter=reporter(json_output),
        retire=retire,
    )

    def human() -> None:
        _plan_human(result.plan, dry_run=dry_run)
        if result.kept:
            console.print_text(f"Left in the working copy ({len(result.kept):,}):")
            _path_lines(result.kept)
        if result.discarded:
            console.print_text(f"Discarded ({len(result.discarded):,}):")
            _path_lines(result.discarded)
            if result.plan.discard_patch:
                patch = result.plan.discard_patch
                console.print_text(f"Saved first as {patch} (`git apply {patch}` brings it back)")

    emit(json_output, result.to_dict(), human)


def _undo(ws: Any, cname: str, json_output: bool) -> None:
    from sessionctl.campaign import store
    from sessionctl.session import carry
    from sessionctl.vcs import detect

    prefer = store.load(ws, cname).campaign.vcs
    result = carry.undo(ws, cname, vcs=detect(ws.root, prefer=prefer))

    def human() -> None:
        console.print_text(
            f"undid the start of session {result.session} of {cname}: "
            f"back at {result.restored_to[:12]}, no log entry"
        )
        if result.uncommitted:
            console.print_text("Back in the working copy: " + ", ".join(result.uncommitted))

    emit(json_output, result.to_dict(), human)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("start")(start_cmd)
    app.command("status")(status_cmd)
    app.command("record")(record_cmd)
    app.command("close")(close_cmd)
    app.command("abort")(abort_cmd)
