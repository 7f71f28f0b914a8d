"""``sessionctl run``: one agent per session, bounded, audited, closed or failed — then the next.

Per session: ``start`` → the freshly rendered prompt → the agent (bounded by time and money) →
audit → accept (the agent closed the session itself), ``close`` on its behalf (audit passed),
or mark it failed (``abort`` with the audit's reasons in the log and the prompt's status, its
code edits discarded and its new files moved to ``.sessionctl/failed/<N>/``) → next.

The loop journals where it is in ``.sessionctl/run/<campaign>.json`` (session, phase, agent
pid, what the log looked like before) after every step. If ``sessionctl run`` dies, the next
one finds that state, makes sure the old agent's process group is gone, audits the interrupted
session and closes or fails it — it never silently continues or repeats it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sessionctl.agent import audit as audit_mod
from sessionctl.agent import launch as launch_mod
from sessionctl.agent import presets
from sessionctl.agent.transcript import parse_file
from sessionctl.campaign.model import Campaign
from sessionctl.errors import Interrupted, SessionctlError, SessionStateError
from sessionctl.files import LockTimeout, append_line, atomic_write, atomic_write_json, locked
from sessionctl.measurement import now_iso
from sessionctl.reporting import NULL, Reporter
from sessionctl.workspace import Workspace

STATE_VERSION = 1
_FAIL_MARK = re.compile(r"\n*^Session \d+ was marked failed by the audit:.*$", re.MULTILINE)


@dataclass(frozen=True)
class RunOptions:
    """What ``sessionctl run`` was asked for (None: the campaign's setting)."""

    sessions: int = 1
    preset: str | None = None
    timeout: float | None = None
    grace: float | None = None
    budget_usd: float | None = None
    total_budget_usd: float | None = None
    max_turns: int | None = None
    allow_dirty: bool = False
    term_grace: float = 5.0


@dataclass(frozen=True)
class SessionOutcome:
    """One row of the final table."""

    session: int
    step: str | None
    outcome: str  # closed | closed by agent | aborted by agent | failed
    verdict: str | None = None
    exit_reason: str = ""
    detail: str = ""
    turns: int = 0
    cost_usd: float | None = None
    duration_s: float = 0.0
    problems: tuple[str, ...] = ()
    transcript: str = ""
    recovered: bool = False
    moved: tuple[str, ...] = ()  # new files set aside into .sessionctl/failed/<N>/

    @property
    def improved(self) -> bool:
        return self.verdict == "improved"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["problems"] = list(self.problems)
        d["moved"] = list(self.moved)
        return d


@dataclass(frozen=True)
class RunResult:
    """What a ``sessionctl run`` did and why it stopped."""

    campaign: str
    sessions: tuple[SessionOutcome, ...] = ()
    stop_reason: str = ""
    total_cost_usd: float = 0.0
    plan: dict[str, Any] | None = None  # --dry-run: what would run

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "sessions": [s.to_dict() for s in self.sessions],
            "stop_reason": self.stop_reason,
            "total_cost_usd": round(self.total_cost_usd, 6),
            "plan": self.plan,
        }


@dataclass(frozen=True)
class Progress:
    """What the live view shows, sent from the loop at every step and agent tick."""

    index: int
    total: int
    session: int | None
    step: str | None
    phase: str  # starting | agent | auditing | closing | failing | done
    elapsed: float = 0.0
    cost_usd: float | None = None
    run_cost_usd: float = 0.0
    turns: int = 0
    activity: str | None = None
    outcome: SessionOutcome | None = None


OnProgress = Callable[[Progress], None]


def state_path(ws: Workspace, campaign: str) -> Path:
    return ws.scratch / "run" / f"{campaign}.json"


def journal_path(ws: Workspace, campaign: str) -> Path:
    return ws.scratch / "run" / f"{campaign}.journal.jsonl"


@dataclass
class _Loop:
    ws: Workspace
    campaign: str
    opts: RunOptions
    reporter: Reporter
    on_progress: OnProgress | None
    state: dict[str, Any] = field(default_factory=dict)
    outcomes: list[SessionOutcome] = field(default_factory=list)
    total_cost: float = 0.0
    index: int = 0

    # --- state ---------------------------------------------------------------------------------

    def save(self, **current: Any) -> None:
        """Update the current session's state (``None`` clears it) and persist atomically."""
        if current.get("clear"):
            self.state["current"] = None
        else:
            self.state["current"] = {**(self.state.get("current") or {}), **current}
        self.state["total_cost_usd"] = self.total_cost
        atomic_write_json(state_path(self.ws, self.campaign), self.state)

    def log(self, event: str, **data: Any) -> None:
        line = {"at": now_iso(), "event": event, "pid": os.getpid(), **data}
        import json

        append_line(journal_path(self.ws, self.campaign), json.dumps(line, default=str))

    def progress(self, phase: str, session: int | None, step: str | None, **kw: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(
                Progress(
                    self.index,
                    self.opts.sessions,
                    session,
                    step,
                    phase,
                    run_cost_usd=self.total_cost,
                    **kw,
                )
            )

    def campaign_now(self) -> Campaign:
        from sessionctl.campaign import store

        return store.load(self.ws, self.campaign).campaign

    # --- stop rules ----------------------------------------------------------------------------

    def stop_reason(self, camp: Campaign) -> str | None:
        stop_file = self.ws.root / camp.run.stop_file
        if stop_file.exists():
            return f"stop file {camp.run.stop_file} exists (remove it to run again)"
        if not camp.next_steps:
            return "no next steps left"
        k = camp.run.max_without_improvement
        if k:
            streak = 0
            for o in reversed(self.outcomes):
                if o.improved:
                    break
                streak += 1
            if streak >= k:
                return f"{streak} sessions in a row without an improved verdict"
        total = self.total_budget(camp)
        if total is not None and self.total_cost >= total:
            return f"total budget spent (${self.total_cost:.2f} of ${total:.2f})"
        return None

    def total_budget(self, camp: Campaign) -> float | None:
        return (
            self.opts.total_budget_usd
            if self.opts.total_budget_usd is not None
            else camp.run.budget_usd
        )

    def session_budget(self, camp: Campaign) -> float | None:
        per = self.opts.budget_usd if self.opts.budget_usd is not None else camp.agent.budget_usd
        total = self.total_budget(camp)
        if total is None:
            return per
        left = max(total - self.total_cost, 0.0)
        return left if per is None else min(per, left)


# --- the public entry points --------------------------------------------------------------------


def run(
    ws: Workspace,
    campaign: str,
    *,
    options: RunOptions,
    reporter: Reporter = NULL,
    on_progress: OnProgress | None = None,
) -> RunResult:
    """Run up to ``options.sessions`` agent sessions; recover an interrupted one first."""
    ws.ensure_scratch()
    with _run_lock(ws, campaign), _sigterm_as_interrupt():
        loop = _Loop(ws, campaign, options, reporter, on_progress)
        loop.state = _load_state(ws, campaign)
        interrupted = loop.state.get("current")
        loop.state.update(
            {
                "version": STATE_VERSION,
                "pid": os.getpid(),
                "started_at": now_iso(),
                "current": interrupted,
            }
        )
        loop.log("run", options=asdict(options))
        if interrupted:
            outcome = _recover(loop, interrupted)
            if outcome is not None:
                loop.outcomes.append(outcome)
                loop.total_cost += outcome.cost_usd or 0.0
                loop.progress("done", outcome.session, outcome.step, outcome=outcome)
        stop = f"{options.sessions} session(s) run"
        while loop.index < options.sessions:
            camp = loop.campaign_now()
            why = loop.stop_reason(camp)
            if why:
                stop = why
                break
            outcome = _one_session(loop, camp)
            loop.outcomes.append(outcome)
            loop.index += 1
            loop.progress("done", outcome.session, outcome.step, outcome=outcome)
        loop.log("stop", reason=stop, total_cost_usd=loop.total_cost)
        loop.save(clear=True)
        return RunResult(campaign, tuple(loop.outcomes), stop, loop.total_cost)


def plan(ws: Workspace, campaign: str, *, options: RunOptions) -> RunResult:
    """What ``run`` would do (``--dry-run``): the agent command, bounds, stop rules; touches nothing."""
    from sessionctl.campaign import store

    camp = store.load(ws, campaign).campaign
    loop = _Loop(ws, campaign, options, NULL, None)
    n = camp.last_session + 1
    prompt = "<the rendered prompt>"
    cmd = presets.build(
        camp.agent,
        prompt=prompt,
        prompt_file=launch_mod.prompt_path(ws, campaign, n),
        session=n,
        campaign=campaign,
        root=ws.root,
        preset=options.preset,
        budget_usd=loop.session_budget(camp),
        max_turns=options.max_turns,
        source=f"prompts/{campaign}.yaml",
    )
    pending = _load_state(ws, campaign).get("current")
    result = {
        "next_session": n,
        "next_step": camp.next_steps[0].id if camp.next_steps else None,
        "agent": cmd.to_dict(),
        "env": sorted(
            {**camp.agent.env, presets.ENV_SESSION: str(n), presets.ENV_CAMPAIGN: campaign}.keys()
            | {presets.ENV_ROOT, presets.ENV_AUTHOR}
        ),
        "timeout_s": options.timeout if options.timeout is not None else camp.agent.timeout,
        "grace_s": options.grace if options.grace is not None else camp.agent.grace,
        "session_budget_usd": loop.session_budget(camp),
        "total_budget_usd": loop.total_budget(camp),
        "max_without_improvement": camp.run.max_without_improvement,
        "stop_file": camp.run.stop_file,
        "would_stop": loop.stop_reason(camp),
        "interrupted_session": (pending or {}).get("session"),
        "transcript": str(launch_mod.transcript_path(ws, campaign, n).relative_to(ws.root)),
    }
    return RunResult(campaign, (), "dry run", 0.0, plan=result)


def pending(ws: Workspace, campaign: str) -> dict[str, Any] | None:
    """The interrupted session a previous ``sessionctl run`` left behind, if any."""
    current: dict[str, Any] | None = _load_state(ws, campaign).get("current")
    return current


# --- one session -------------------------------------------------------------------------------


def _one_session(loop: _Loop, camp: Campaign) -> SessionOutcome:
    from sessionctl.session import engine

    ws, c, opts = loop.ws, loop.campaign, loop.opts
    # Fail before opening a session when the agent cannot even be found.
    probe = _command(loop, camp, camp.last_session + 1, "")
    from sessionctl.process import which

    which(probe.argv[0], hint=_install_hint(probe.preset))
    loop.save(phase="starting", session=camp.last_session + 1, agent_pid=None)
    loop.progress("starting", camp.last_session + 1, camp.next_steps[0].id)
    try:
        opened = engine.start(ws, c, allow_dirty=opts.allow_dirty, reporter=loop.reporter)
    except BaseException:
        loop.save(clear=True)  # nothing was opened: nothing to settle later
        raise
    n = opened.number
    snap = audit_mod.snapshot(
        ws,
        c,
        start_commit=str(opened.start_revision.get("commit") or "") or None,
        dirty=opened.extra.get("dirty_at_start") or (),
    )
    prompt = ws.rendered_path(c).read_text(encoding="utf-8")
    command = _command(loop, camp, n, prompt)
    pfile = launch_mod.prompt_path(ws, c, n)
    atomic_write(pfile, prompt)
    transcript = launch_mod.transcript_path(ws, c, n)
    loop.save(
        phase="started",
        session=n,
        step=opened.step_id,
        diagnostic=opened.diagnostic,
        snapshot=snap.to_dict(),
        transcript=str(transcript),
        format=command.format,
        preset=command.preset,
        argv=list(command.shown),
        started_at=now_iso(),
    )
    loop.log("session", session=n, step=opened.step_id, argv=list(command.shown))
    loop.reporter.info(
        f"session {n}: launching {command.preset} agent ({opened.step_id or 'diagnostic'})"
    )
    timeout = opts.timeout if opts.timeout is not None else camp.agent.timeout
    grace = opts.grace if opts.grace is not None else camp.agent.grace
    total = loop.total_budget(camp)

    def on_tick(st: launch_mod.LiveStatus) -> None:
        loop.progress(
            "agent",
            n,
            opened.step_id,
            elapsed=st.elapsed,
            cost_usd=st.cost_usd,
            turns=st.turns,
            activity=st.activity,
        )

    def should_stop(cost: float | None) -> str | None:
        if total is not None and cost is not None and loop.total_cost + cost > total:
            return f"total budget ${total:.2f} of the run spent"
        return None

    run = launch_mod.launch(
        command,
        env=presets.agent_env(camp.agent, session=n, campaign=c, root=ws.root),
        cwd=ws.root,
        transcript=transcript,
        timeout=timeout,
        grace=grace,
        budget_usd=loop.session_budget(camp),
        token_prices=camp.agent.token_prices,
        on_spawn=lambda pid: loop.save(phase="agent", agent_pid=pid),
        on_tick=on_tick,
        should_stop=should_stop,
        term_grace=opts.term_grace,
    )
    loop.total_cost += run.summary.cost_usd or 0.0
    outcome = _finish(loop, camp, n, opened.step_id, opened.diagnostic, snap, run)
    if run.exit_reason == launch_mod.INTERRUPTED:
        loop.outcomes.append(outcome)
        loop.save(clear=True)
        raise Interrupted(f"interrupted during session {n}; it was {outcome.outcome}")
    return outcome


def _command(loop: _Loop, camp: Campaign, n: int, prompt: str) -> presets.AgentCommand:
    return presets.build(
        camp.agent,
        prompt=prompt,
        prompt_file=launch_mod.prompt_path(loop.ws, loop.campaign, n),
        session=n,
        campaign=loop.campaign,
        root=loop.ws.root,
        preset=loop.opts.preset,
        budget_usd=loop.session_budget(camp),
        max_turns=loop.opts.max_turns,
        source=f"prompts/{loop.campaign}.yaml",
    )


def _install_hint(preset: str) -> str:
    return {
        "claude": "install Claude Code (npm install -g @anthropic-ai/claude-code) or set agent.argv",
        "codex": "install Codex (npm install -g @openai/codex) or set agent.argv",
    }.get(preset, "fix agent.argv in the campaign file")


# --- after the agent: audit, then accept, close or fail -----------------------------------------


def _finish(
    loop: _Loop,
    camp: Campaign,
    n: int,
    step_id: str | None,
    diagnostic: bool,
    snap: audit_mod.Snapshot,
    run: launch_mod.AgentRun,
    *,
    recovered: bool = False,
) -> SessionOutcome:
    from sessionctl.session import close as close_mod
    from sessionctl.session import record

    ws, c = loop.ws, loop.campaign
    loop.save(phase="auditing", exit_reason=run.exit_reason)
    loop.progress("auditing", n, step_id, cost_usd=run.summary.cost_usd, turns=run.summary.turns)
    still_open = (cur := record.current(ws, c)) is not None and cur.number == n
    closed = close_mod.load_closed(ws, c, n)
    step = next((s for s in camp.next_steps if s.id == step_id), None)
    result = audit_mod.audit_session(
        ws,
        c,
        number=n,
        diagnostic=diagnostic,
        step=step,
        spec=camp.audit,
        snap=snap,
        closed=None if still_open else closed,
        exit_reason=run.exit_reason,
        exit_code=run.exit_code,
        detail=run.detail,
        prefer=camp.vcs,
    )
    _record_agent(ws, c, n, run, result, still_open=still_open)
    base: dict[str, Any] = {
        "session": n,
        "step": step_id,
        "exit_reason": run.exit_reason,
        "detail": run.detail,
        "turns": run.summary.turns,
        "cost_usd": run.summary.cost_usd,
        "duration_s": round(run.duration_s, 3),
        "transcript": _rel(ws, Path(run.transcript)),
        "recovered": recovered,
    }
    problems = tuple(p.message for p in result.problems)
    if not still_open:
        kind = (closed or {}).get("kind")
        moved = _set_aside(
            ws, n, [p for p in (closed or {}).get("left_out") or () if p not in snap.dirty]
        )
        word = "aborted by agent" if kind == "abort" else "closed by agent"
        if closed is None:
            word = "lost"
            problems += (f"session {n} is no longer open but was neither closed nor aborted",)
        outcome = SessionOutcome(
            outcome=word,
            verdict=(closed or {}).get("verdict"),
            problems=problems,
            moved=moved,
            **base,
        )
    elif result.passed:
        loop.save(phase="closing")
        loop.progress("closing", n, step_id)
        try:
            done = close_mod.close(
                ws,
                c,
                summary=run.summary.result_text,
                status_text=_cleaned_status(camp.status),
                include=[f.path for f in result.diff.files if f.new],
                reporter=loop.reporter,
            )
            outcome = SessionOutcome(outcome="closed", verdict=done.plan.verdict, **base)
        except SessionctlError as exc:
            problems = (f"close failed: {exc}",)
            outcome = _fail(loop, camp, n, snap, problems, run, base)
    else:
        outcome = _fail(loop, camp, n, snap, problems, run, base)
    loop.log("outcome", **outcome.to_dict())
    loop.save(clear=True)
    said = f"session {n}: {outcome.outcome}" + (f" ({outcome.verdict})" if outcome.verdict else "")
    loop.reporter.info(said + (f": {'; '.join(outcome.problems)}" if outcome.problems else ""))
    return outcome


def _fail(
    loop: _Loop,
    camp: Campaign,
    n: int,
    snap: audit_mod.Snapshot,
    problems: tuple[str, ...],
    run: launch_mod.AgentRun,
    base: dict[str, Any],
) -> SessionOutcome:
    """Abort the session with the audit's reasons in the log and the prompt's status."""
    from sessionctl.session import close as close_mod

    ws, c = loop.ws, loop.campaign
    loop.save(phase="failing")
    loop.progress("failing", n, base.get("step"))
    log = ws.log_path(c)
    current_log = log.read_text(encoding="utf-8") if log.exists() else None
    if current_log != snap.log_text:
        # Only sessionctl writes the log: keep the hand edit aside, restore what close wrote.
        atomic_write(ws.scratch / "backups" / f"{c}-perf-log.session{n}.md", current_log or "")
        if snap.log_text is None:
            log.unlink(missing_ok=True)
        else:
            atomic_write(log, snap.log_text)
    reasons = "; ".join(problems)
    status = _failed_status(camp.status, n, reasons)
    done = close_mod.abort(
        ws,
        c,
        reason=f"audit failed: {reasons}",
        status_text=status,
        discard=True,
        reporter=loop.reporter,
    )
    moved = _set_aside(ws, n, [p for p in done.kept if p not in snap.dirty])
    return SessionOutcome(outcome="failed", problems=problems, moved=moved, **base)


def _record_agent(
    ws: Workspace,
    campaign: str,
    n: int,
    run: launch_mod.AgentRun,
    result: audit_mod.Audit,
    *,
    still_open: bool,
) -> None:
    """Record the agent's summary (an ``agent`` entry) and a note the log entry shows."""
    import json

    from sessionctl.session import record

    entry = {
        **run.to_entry(),
        "transcript": _rel(ws, Path(run.transcript)),
        "audit": result.to_dict(),
        "by": "sessionctl",
    }
    note = f"Agent ({run.preset}): {run.text_summary()}; transcript {entry['transcript']}"
    if still_open:
        record.append(ws, campaign, entry)
        record.append(
            ws, campaign, {"type": "finding", "phase": "note", "text": note, "by": "sessionctl"}
        )
        return
    # Closed by the agent itself: the entry still belongs with the session's archived record.
    with ws.lock(campaign):
        line = json.dumps({"at": now_iso(), **entry}, default=str)
        append_line(record.entries_path(ws, campaign, n), line)


def _set_aside(ws: Workspace, n: int, paths: list[str]) -> tuple[str, ...]:
    """Move new files a failed or half-closed session left behind into the scratch folder."""
    moved = []
    for rel in paths:
        src = ws.root / rel
        if not src.exists():
            continue
        dest = ws.scratch / "failed" / str(n) / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dest))
        moved.append(rel)
        # Drop folders the move emptied, so the next session starts from a clean tree.
        parent = src.parent
        while parent != ws.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    return tuple(moved)


def _cleaned_status(status: str | None) -> str | None:
    """The status without an earlier audit-failure paragraph (None when there was none)."""
    if not status or not _FAIL_MARK.search(status):
        return None
    return _FAIL_MARK.sub("", status).strip() or "(no status)"


def _failed_status(status: str | None, n: int, reasons: str) -> str:
    base = _FAIL_MARK.sub("", status or "").strip()
    line = f"Session {n} was marked failed by the audit: {reasons}. Avoid this in the next session."
    return f"{base}\n\n{line}" if base else line


def _rel(ws: Workspace, path: Path) -> str:
    try:
        return str(path.relative_to(ws.root))
    except ValueError:
        return str(path)


# --- resume ------------------------------------------------------------------------------------


def _recover(loop: _Loop, cur: dict[str, Any]) -> SessionOutcome | None:
    """Settle the session a killed ``sessionctl run`` left: reap its agent, audit, close or fail."""
    from sessionctl.session import close as close_mod
    from sessionctl.session import record

    ws, c = loop.ws, loop.campaign
    n = cur.get("session")
    loop.reporter.warn(
        f"a previous `sessionctl run` stopped during session {n} ({cur.get('phase')}); settling it"
    )
    loop.log("recover", **{k: v for k, v in cur.items() if k != "snapshot"})
    pid = cur.get("agent_pid")
    found = launch_mod.reap_session(int(pid)) if pid else []
    close_mod.recover(ws, c, reporter=loop.reporter)
    camp = loop.campaign_now()
    open_now = record.current(ws, c)
    if n is None or (open_now is None and close_mod.load_closed(ws, c, int(n)) is None):
        # It died before the session opened: nothing was started, nothing to settle.
        loop.save(clear=True)
        return None
    n = int(n)
    if open_now is not None and open_now.number != n:
        loop.save(clear=True)
        raise SessionStateError(
            f"{c}: the interrupted run was in session {n} but session {open_now.number} is open; "
            f"settle it with `sessionctl close {c}` or `sessionctl abort {c} --reason TEXT`"
        )
    transcript = Path(cur.get("transcript") or launch_mod.transcript_path(ws, c, n))
    parsed = parse_file(
        transcript, cur.get("format") or "auto", token_prices=camp.agent.token_prices
    )
    if found:
        reason, detail = (
            launch_mod.LOST,
            f"sessionctl run died; its agent (pid {pid}) was stopped on resume",
        )
    elif pid:
        reason, detail = launch_mod.EXITED, "the agent ended while sessionctl run was down"
    else:
        reason, detail = (
            launch_mod.LOST,
            f"sessionctl run died during {cur.get('phase')} before the agent ran",
        )
    run = launch_mod.AgentRun(
        argv=tuple(cur.get("argv") or ()),
        preset=str(cur.get("preset") or "?"),
        pid=int(pid) if pid else None,
        exit_code=None,
        exit_reason=reason,
        duration_s=_since(cur.get("started_at")),
        transcript=str(transcript),
        summary=parsed.summary(),
        detail=detail,
    )
    snap = audit_mod.Snapshot.from_dict(cur.get("snapshot") or {})
    outcome = _finish(
        loop, camp, n, cur.get("step"), bool(cur.get("diagnostic")), snap, run, recovered=True
    )
    return replace(outcome, recovered=True)


def _since(stamp: str | None) -> float:
    import datetime as dt

    if not stamp:
        return 0.0
    try:
        t = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max((dt.datetime.now(dt.UTC) - t).total_seconds(), 0.0)


def _load_state(ws: Workspace, campaign: str) -> dict[str, Any]:
    import json

    path = state_path(ws, campaign)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise SessionStateError(
            f"{path}: unreadable run state ({exc}); inspect it, then remove it"
        ) from None
    return data


@contextlib.contextmanager
def _run_lock(ws: Workspace, campaign: str) -> Iterator[None]:
    """One ``sessionctl run`` per campaign (an flock: released even by SIGKILL)."""
    try:
        with locked(ws.scratch / "locks" / f"{campaign}.run.lock", timeout=0.2):
            yield
    except LockTimeout:
        pid = _load_state(ws, campaign).get("pid")
        raise SessionStateError(
            f"{campaign}: another `sessionctl run` is running (pid {pid}); wait for it, or touch its stop file"
        ) from None


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so the agent tree is stopped and the session settled."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
