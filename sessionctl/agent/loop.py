"""``sessionctl run``: one agent per session, bounded, audited, closed or failed — then the next.

Per session: ``start`` → the freshly rendered prompt → the agent (bounded by time and money) →
audit → ``close`` (audit passed: with the arguments of the agent's own ``sessionctl close``,
which under the loop only records a request, or with defaults if it made none), ``abort`` (the
agent asked to), or mark it failed (``abort`` with the audit's reasons in the log and the
prompt's status, its code edits discarded and its new files moved to
``.sessionctl/failed/<N>/``) → next. Closing after the agent has exited is what lets the log
entry carry the agent's summary (turns, cost, duration, how it ended) and the audit's verdict.

Auditing and settling a session after its agent lives in :mod:`sessionctl.agent.settle`.
The loop journals where it is in ``.sessionctl/run/<campaign>.json`` (session, phase, agent
pid, what the log looked like before) after every step. If ``sessionctl run`` dies, the next
one finds that state, makes sure the old agent's process group is gone, audits the interrupted
session and closes or fails it — it never silently continues or repeats it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sessionctl.agent import audit as audit_mod
from sessionctl.agent import launch as launch_mod
from sessionctl.agent import presets, settle
from sessionctl.agent.settle import SessionOutcome
from sessionctl.campaign.model import Campaign
from sessionctl.errors import Interrupted, SessionStateError
from sessionctl.files import LockTimeout, append_line, atomic_write, atomic_write_json, locked
from sessionctl.measurement import now_iso
from sessionctl.reporting import NULL, Reporter
from sessionctl.workspace import Workspace

__all__ = [
    "Loop",
    "Progress",
    "RunOptions",
    "RunResult",
    "SessionOutcome",
    "pending",
    "plan",
    "run",
]

STATE_VERSION = 1


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
class RunResult:
    """What a ``sessionctl run`` did and why it stopped."""

    campaign: str
    sessions: tuple[SessionOutcome, ...] = ()
    stop_reason: str = ""
    total_cost_usd: float = 0.0
    plan: dict[str, Any] | None = None  # --dry-run: what would run
    # The run ended on a session whose agent never reached a working model (`run` exits 1).
    infrastructure_failure: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "sessions": [s.to_dict() for s in self.sessions],
            "stop_reason": self.stop_reason,
            "infrastructure_failure": self.infrastructure_failure,
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
    phase: str  # starting | agent | auditing | closing | aborting | failing | done
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
class Loop:
    """The running loop: options, persisted state, outcomes so far (passed to :mod:`settle`)."""

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
        """Merge ``current`` into the current session's state (``clear=True``: none) and persist."""
        if current.get("clear"):
            self.state["current"] = None
        else:
            self.state["current"] = {**(self.state.get("current") or {}), **current}
        self.state["total_cost_usd"] = self.total_cost
        atomic_write_json(state_path(self.ws, self.campaign), self.state)

    def log(self, event: str, **data: Any) -> None:
        """Append one event to the run's history (``.sessionctl/run/<campaign>.journal.jsonl``)."""
        line = {"at": now_iso(), "event": event, "pid": os.getpid(), **data}
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
        infra = self.infra_streak()
        limit = camp.run.max_infra_failures
        if limit and len(infra) >= limit:
            last = infra[0].ending or {}
            return (
                f"{len(infra)} session{'s' if len(infra) != 1 else ''} in a row whose agent "
                "never reached a working model "
                f"(run.max_infra_failures is {limit}); last: {last.get('message') or '?'}"
            )
        k = camp.run.max_without_improvement
        if k:
            streak = 0
            for o in reversed(self.outcomes):
                if o.improved:
                    break
                if o.infrastructure:
                    continue  # not the steps' fault: says nothing about improving
                streak += 1
            if streak >= k:
                on = f" on {camp.headline.metric}" if camp.headline else ""
                return f"{streak} sessions in a row without an improved verdict{on}"
        total = self.total_budget(camp)
        if total is not None and self.total_cost >= total:
            return f"total budget spent (${self.total_cost:.2f} of ${total:.2f})"
        return None

    def infra_streak(self) -> list[SessionOutcome]:
        """The latest sessions in a row that failed for infrastructure reasons (newest first)."""
        out: list[SessionOutcome] = []
        for o in reversed(self.outcomes):
            if not o.infrastructure:
                break
            out.append(o)
        return out

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
        loop = Loop(ws, campaign, options, reporter, on_progress)
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
        _warn_unpriced(loop, loop.campaign_now())
        _warn_sandboxed_root(loop, loop.campaign_now())
        if interrupted:
            outcome = settle.recover(loop, interrupted)
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
        infra = loop.infra_streak()
        if infra and "never reached a working model" not in stop:
            # Stopped by the session count (or the stop file) right after one: say so.
            said = (infra[0].ending or {}).get("message") or "?"
            stop += f"; the last session's agent never reached a working model: {said}"
        loop.log("stop", reason=stop, total_cost_usd=loop.total_cost)
        loop.save(clear=True)
        ended_on_infra = bool(infra)
        return RunResult(
            campaign,
            tuple(loop.outcomes),
            stop,
            loop.total_cost,
            infrastructure_failure=ended_on_infra,
        )


def plan(ws: Workspace, campaign: str, *, options: RunOptions) -> RunResult:
    """What ``run`` would do (``--dry-run``): agent command, bounds, stop rules; touches nothing."""
    from sessionctl import render
    from sessionctl.campaign import store

    camp = store.load(ws, campaign).campaign
    loop = Loop(ws, campaign, options, NULL, None)
    from sessionctl.session.engine import next_number

    n = next_number(ws, campaign, camp.last_session, reporter=NULL)
    # The prompt `start` would render now: the agent's argv shows its real size, and a
    # prompt too long for one argument fails here rather than at launch.
    prompt = render.render_prompt(camp, ws=ws)
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
        allow_commands=bench_commands(camp),
    )
    pending = _load_state(ws, campaign).get("current")
    result = {
        "next_session": n,
        "next_step": camp.next_steps[0].id if camp.next_steps else None,
        "prompt": {
            "path": str(ws.rendered_path(campaign).relative_to(ws.root)),
            "chars": len(prompt),
        },
        "agent": cmd.to_dict(),
        "env": sorted(
            {**camp.agent.env, presets.ENV_SESSION: str(n), presets.ENV_CAMPAIGN: campaign}.keys()
            | {presets.ENV_ROOT, presets.ENV_AUTHOR, presets.ENV_RUN}
        ),
        "timeout_s": options.timeout if options.timeout is not None else camp.agent.timeout,
        "grace_s": options.grace if options.grace is not None else camp.agent.grace,
        "session_budget_usd": loop.session_budget(camp),
        "total_budget_usd": loop.total_budget(camp),
        "max_without_improvement": camp.run.max_without_improvement,
        "max_infra_failures": camp.run.max_infra_failures,
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


def _one_session(loop: Loop, camp: Campaign) -> SessionOutcome:
    from sessionctl.process import which
    from sessionctl.session import engine

    ws, c, opts = loop.ws, loop.campaign, loop.opts
    # Fail before opening a session when the agent cannot even be found.
    upcoming = engine.next_number(ws, c, camp.last_session, reporter=NULL)  # as `start` counts
    probe = _command(loop, camp, upcoming, "")

    exe = probe.argv[0]
    if os.sep in exe and not os.path.isabs(exe):
        exe = str(ws.root / exe)  # the agent runs in the workspace root
    which(exe, hint=_install_hint(probe.preset))
    loop.save(phase="starting", session=upcoming, agent_pid=None)
    loop.progress("starting", upcoming, camp.next_steps[0].id)
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
    outcome = settle.finish(loop, camp, n, opened.step_id, opened.diagnostic, snap, run)
    if run.exit_reason == launch_mod.INTERRUPTED:
        loop.outcomes.append(outcome)
        loop.save(clear=True)
        raise Interrupted(f"interrupted during session {n}; it was {outcome.outcome}")
    return outcome


def _warn_unpriced(loop: Loop, camp: Campaign) -> None:
    """Say so when a budget is set but the agent reports no money and no prices are known."""
    preset = loop.opts.preset or camp.agent.preset
    budget = loop.session_budget(camp) is not None or loop.total_budget(camp) is not None
    if budget and preset == "codex" and not camp.agent.token_prices:
        loop.reporter.warn(
            "Codex reports tokens, not money: set agent.token_prices (USD per million tokens: "
            "input, cached_input, output) in the campaign, or the budget cannot be enforced"
        )


def _warn_sandboxed_root(loop: Loop, camp: Campaign) -> None:
    """Say so when Codex's sandbox will keep the agent's `sessionctl bench` from the target.

    As root, workspace-write drops every capability; the embedded PostgreSQL target (the demo's)
    must switch to its own user to start, which it then cannot.
    """
    if os.geteuid() != 0 or (loop.opts.preset or camp.agent.preset) != "codex":
        return
    if not any("sessionctl.target.embedded_postgres" in a for a in camp.target.start or ()):
        return
    if "workspace-write" not in _command(loop, camp, 0, "").argv:
        return  # the campaign chose the sandbox itself
    loop.reporter.warn(
        "as root, Codex's workspace-write sandbox drops root's privileges, so the agent's "
        "`sessionctl bench` cannot start this campaign's embedded PostgreSQL (it runs as "
        "another user): run as a normal user, or set agent.codex_args: "
        "[--sandbox, danger-full-access] where the machine is itself a sandbox"
    )


def _command(loop: Loop, camp: Campaign, n: int, prompt: str) -> presets.AgentCommand:
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
        allow_commands=bench_commands(camp),
    )


def bench_commands(camp: Campaign) -> tuple[str, ...]:
    """The benchmark programs an agent may run by hand besides ``sessionctl bench``."""
    defaults = {"pgbench": "pgbench", "dbbench": "dbbench"}
    found = (b.binary or defaults.get(b.driver) for b in camp.benchmarks)
    return tuple(dict.fromkeys(x for x in found if x))


def _install_hint(preset: str) -> str:
    return {
        "claude": "install Claude Code (npm i -g @anthropic-ai/claude-code) or set agent.argv",
        "codex": "install Codex (npm install -g @openai/codex) or set agent.argv",
    }.get(preset, "fix agent.argv in the campaign file")


def _load_state(ws: Workspace, campaign: str) -> dict[str, Any]:
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
            f"{campaign}: another `sessionctl run` is running (pid {pid}); "
            "wait for it, or touch its stop file"
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
