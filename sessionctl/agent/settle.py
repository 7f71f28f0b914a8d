"""After the agent: audit the session, then close it, abort it (as the agent asked), or fail it.

Also settles a session a killed ``sessionctl run`` left behind (:func:`recover`): the old
agent's process group is stopped, the session audited, then closed or failed like any other.
A failed session is aborted with the audit's reasons in the log and the prompt's status; its
edits of tracked files are discarded and the new files it made are moved to
``.sessionctl/failed/<N>/`` so the next session starts from a clean working copy.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sessionctl.agent import audit as audit_mod
from sessionctl.agent import launch as launch_mod
from sessionctl.agent.transcript import parse_file
from sessionctl.campaign.model import Campaign
from sessionctl.errors import ConfigError, SessionctlError, SessionStateError
from sessionctl.files import append_line, atomic_write, read_exact
from sessionctl.measurement import now_iso
from sessionctl.workspace import SCRATCH, Workspace

if TYPE_CHECKING:
    from sessionctl.reporting import Reporter
    from sessionctl.session.request import Request

_FAIL_MARK = re.compile(r"\n*^Session \d+ was marked failed by the audit:.*$", re.MULTILINE)


@dataclass(frozen=True)
class SessionOutcome:
    """One row of the final table."""

    session: int
    step: str | None
    # closed | aborted (by the loop, on the agent's request or not) | failed (by the audit) |
    # closed by agent | aborted by agent (outside the loop) | lost
    outcome: str
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
    requested: str | None = None  # "close" | "abort": what the agent asked the loop to do
    ending: dict[str, Any] | None = None  # how the agent ended (sessionctl.agent.ending)

    @property
    def improved(self) -> bool:
        return self.verdict == "improved"

    @property
    def infrastructure(self) -> bool:
        """The agent never reached a working model (or could use none of its tools)."""
        return bool((self.ending or {}).get("infrastructure"))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["problems"] = list(self.problems)
        d["moved"] = list(self.moved)
        return d


class Loop(Protocol):
    """What settling needs of the running loop (:class:`sessionctl.agent.loop.Loop` is one).

    A protocol, so the arrow runs one way: the loop calls settle, settle never imports the loop.
    """

    ws: Workspace
    campaign: str
    reporter: Reporter

    def save(self, **current: Any) -> None: ...

    def log(self, event: str, **data: Any) -> None: ...

    def progress(self, phase: str, session: int | None, step: str | None, **kw: Any) -> None: ...

    def campaign_now(self) -> Campaign: ...


# --- after the agent: audit, then close, abort or fail -------------------------------------------


def finish(
    loop: Loop,
    camp: Campaign,
    n: int,
    step_id: str | None,
    diagnostic: bool,
    snap: audit_mod.Snapshot,
    run: launch_mod.AgentRun,
    *,
    recovered: bool = False,
    phase_before: str | None = None,
) -> SessionOutcome:
    """Audit session ``n`` after its agent, then close it, abort it, or fail it.

    Under the loop an agent's ``sessionctl close``/``abort`` only records a request (see
    :mod:`sessionctl.session.request`); it is carried out here, after the audit, so the log
    entry shows the agent's summary and the audit's verdict. A session closed outside the loop
    (someone ran ``close`` by hand without ``SESSIONCTL_RUN``) is audited and accepted as is.

    ``camp`` is the campaign as it stood when the session started: its audit rules are the
    ones applied, whatever the agent did to the file since.
    """
    from sessionctl.session import close as close_mod
    from sessionctl.session import record
    from sessionctl.session import request as request_mod

    ws, c = loop.ws, loop.campaign
    loop.save(phase="auditing", exit_reason=run.exit_reason)
    # A close someone started by hand and did not finish is finished first, as `close` would.
    close_mod.recover(ws, c, reporter=loop.reporter)
    broken = _check_campaign_file(loop, n, snap)
    loop.progress("auditing", n, step_id, cost_usd=run.summary.cost_usd, turns=run.summary.turns)
    still_open = (cur := record.current(ws, c)) is not None and cur.number == n
    closed = close_mod.load_closed(ws, c, n)
    req = request_mod.latest(c, n, record.entries(ws, c, n))
    step = next((s for s in camp.next_steps if s.id == step_id), None)
    ending = run.ending
    result = audit_mod.audit_session(
        ws,
        c,
        number=n,
        diagnostic=diagnostic,
        step=step,
        spec=camp.audit,
        snap=snap,
        closed=None if still_open else closed,
        requested=req.kind if req is not None and still_open else None,
        ending=ending,
        prefer=camp.vcs,
        overspent=run.overspent,
    )
    problems = tuple(broken) + tuple(p.message for p in result.problems)
    infra = ending.infrastructure and still_open and req is None
    if infra:
        # Nothing the agent did (it could do nothing): the step is not judged, only the cause.
        problems = (*broken, f"infrastructure failure, not the step's fault: {ending.text()}")
    _record_agent(ws, c, n, run, result, problems, still_open=still_open, skipped=infra)
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
        "requested": req.kind if req is not None else None,
        "ending": ending.to_dict(),
    }
    status = _status_now(loop, camp)
    if not still_open:
        outcome = _settled(ws, c, n, snap, closed, problems, base, phase_before=phase_before)
    elif infra:
        outcome = _infrastructure(loop, n, snap, problems, base)
    elif problems:
        outcome = _fail(loop, status, n, snap, problems, base, request=req)
    elif req is not None and req.kind == "abort":
        outcome = _abort(loop, status, n, snap, req, base)
    else:
        loop.save(phase="closing")
        loop.progress("closing", n, step_id)
        new_files = [f.path for f in result.diff.files if f.new]
        try:
            if req is None:
                done = close_mod.close(
                    ws,
                    c,
                    summary=run.summary.result_text,
                    status_text=_cleaned_status(status),
                    include=new_files,
                    reporter=loop.reporter,
                )
            else:
                # What the agent asked for; the loop's defaults fill what it left out.
                done = close_mod.close(
                    ws,
                    c,
                    resolve=req.resolve,
                    add_steps=req.add_steps,
                    status_text=req.status or _cleaned_status(status),
                    summary=req.summary or run.summary.result_text,
                    force_reason=req.force,
                    include=sorted({*new_files, *req.include}),
                    metric=req.metric,
                    reporter=loop.reporter,
                )
            outcome = SessionOutcome(outcome="closed", verdict=done.plan.verdict, **base)
        except SessionctlError as exc:
            outcome = _fail(loop, status, n, snap, (f"close failed: {exc}",), base, request=req)
    loop.log("outcome", **outcome.to_dict())
    loop.save(clear=True)
    said = f"session {n}: {outcome.outcome}" + (f" ({outcome.verdict})" if outcome.verdict else "")
    loop.reporter.info(said + (f": {'; '.join(outcome.problems)}" if outcome.problems else ""))
    return outcome


def _settled(
    ws: Workspace,
    campaign: str,
    n: int,
    snap: audit_mod.Snapshot,
    closed: dict[str, Any] | None,
    problems: tuple[str, ...],
    base: dict[str, Any],
    *,
    phase_before: str | None,
) -> SessionOutcome:
    """The outcome of a session that is no longer open: closed by hand, or by us before a crash."""
    kind = (closed or {}).get("kind")
    ours = {"closing": "closed", "failing": "failed", "aborting": "aborted"}.get(phase_before or "")
    aside = list((closed or {}).get("left_out") or ())
    if ours is not None and kind == "abort":
        aside += list((closed or {}).get("kept") or ())  # we discard what a failed session made
    moved = _set_aside(ws, n, [p for p in aside if p not in snap.dirty])
    written = ((closed or {}).get("plan") or {}).get("log_text")
    log = ws.log_path(campaign)
    now = read_exact(log)
    if written is not None and now is not None and now != written:
        # Edited by hand after close wrote (and committed) it: keep the edit aside, restore.
        atomic_write(ws.scratch / "backups" / f"{campaign}-perf-log.session{n}.md", now)
        atomic_write(log, written)
    if closed is None:
        word = "lost"
        problems += (f"session {n} is no longer open but was neither closed nor aborted",)
    elif ours is not None:
        # We were closing, aborting or failing it ourselves when the previous run died.
        word = ours if (kind == "abort") == (ours != "closed") else "failed"
    else:
        word = "aborted by agent" if kind == "abort" else "closed by agent"
    return SessionOutcome(
        outcome=word,
        verdict=(closed or {}).get("verdict"),
        problems=problems,
        moved=moved,
        **base,
    )


def _check_campaign_file(loop: Loop, n: int, snap: audit_mod.Snapshot) -> list[str]:
    """Restore the campaign file if the agent left it unreadable (keeping its version aside)."""
    try:
        loop.campaign_now()
    except ConfigError as exc:
        path = loop.ws.campaign_path(loop.campaign)
        if snap.yaml_text is None:
            raise
        atomic_write(
            loop.ws.scratch / "backups" / f"{loop.campaign}.yaml.session{n}",
            path.read_text(encoding="utf-8") if path.exists() else "",
        )
        atomic_write(path, snap.yaml_text)
        return [f"the campaign file was broken by hand ({exc}); restored it"]
    return []


def _status_now(loop: Loop, camp: Campaign) -> str | None:
    """The campaign's status prose as it is now (the session may have changed it)."""
    try:
        return loop.campaign_now().status
    except ConfigError:
        return camp.status


def _fail(
    loop: Loop,
    status: str | None,
    n: int,
    snap: audit_mod.Snapshot,
    problems: tuple[str, ...],
    base: dict[str, Any],
    *,
    request: Request | None = None,
) -> SessionOutcome:
    """Abort the session with the audit's reasons in the log and the prompt's status."""
    reasons = "; ".join(problems)
    asked = ""
    if request is not None and request.kind == "abort":
        asked = f" (the agent asked to abort: {request.reason})"
    moved = _discard_session(
        loop,
        n,
        snap,
        base,
        phase="failing",
        restore_log=True,
        reason=f"audit failed: {reasons}{asked}",
        status_text=_failed_status(status, n, reasons),
    )
    return SessionOutcome(outcome="failed", problems=problems, moved=moved, **base)


def _infrastructure(
    loop: Loop,
    n: int,
    snap: audit_mod.Snapshot,
    problems: tuple[str, ...],
    base: dict[str, Any],
) -> SessionOutcome:
    """Abort a session whose agent never got a working model: logged, the step left alone.

    The session keeps its number and its aborted log entry (with the API's message), so
    nothing is lost; the prompt's status is left as it was (no "avoid this" line, and an
    earlier session's one stays for the next session that reaches its model) and the step
    stays first.
    """
    moved = _discard_session(
        loop,
        n,
        snap,
        base,
        phase="aborting",
        restore_log=True,
        reason="; ".join(problems),
        status_text=None,
    )
    return SessionOutcome(outcome="infrastructure", problems=problems, moved=moved, **base)


def _abort(
    loop: Loop,
    status: str | None,
    n: int,
    snap: audit_mod.Snapshot,
    request: Request,
    base: dict[str, Any],
) -> SessionOutcome:
    """Carry out the agent's abort request: its reason logged, its edits set aside."""
    moved = _discard_session(
        loop,
        n,
        snap,
        base,
        phase="aborting",
        restore_log=False,
        reason=request.reason or "the agent aborted the session",
        status_text=request.status or _cleaned_status(status),
        retire=request.retire,
    )
    return SessionOutcome(outcome="aborted", moved=moved, **base)


def _discard_session(
    loop: Loop,
    n: int,
    snap: audit_mod.Snapshot,
    base: dict[str, Any],
    *,
    phase: str,
    restore_log: bool,
    reason: str,
    status_text: str | None,
    retire: bool = False,
) -> tuple[str, ...]:
    """Abort the open session with its edits set aside (``phase`` shown meanwhile); return
    what was moved into ``.sessionctl/failed/<N>/`` (what the log entry names).

    ``restore_log``: put back the log as it was first (a hand edit kept aside).
    """
    from sessionctl.session import close as close_mod

    ws, c = loop.ws, loop.campaign
    loop.save(phase=phase)
    loop.progress(phase, n, base.get("step"))
    if restore_log:
        _restore_log(loop, n, snap)
    # The next session needs a clean working copy, whatever the agent said about --discard.
    done = close_mod.abort(
        ws,
        c,
        reason=reason,
        status_text=status_text,
        discard=True,
        reporter=loop.reporter,
        set_aside_to=failed_dir(n),
        leave=snap.dirty,
        retire=retire,
    )
    return _set_aside(ws, n, list(done.plan.set_aside))


def _restore_log(loop: Loop, n: int, snap: audit_mod.Snapshot) -> None:
    """Only sessionctl writes the log: keep a hand edit aside, restore the log as it was."""
    ws, c = loop.ws, loop.campaign
    log = ws.log_path(c)
    current_log = log.read_text(encoding="utf-8") if log.exists() else None
    if current_log == snap.log_text:
        return
    atomic_write(ws.scratch / "backups" / f"{c}-perf-log.session{n}.md", current_log or "")
    if snap.log_text is None:
        log.unlink(missing_ok=True)
    else:
        atomic_write(log, snap.log_text)


def _record_agent(
    ws: Workspace,
    campaign: str,
    n: int,
    run: launch_mod.AgentRun,
    result: audit_mod.Audit,
    problems: tuple[str, ...],
    *,
    still_open: bool,
    skipped: bool = False,
) -> None:
    """Record the agent's summary and the audit's verdict (an ``agent`` entry; the log shows it).

    ``skipped``: an infrastructure failure, so the step's work was not judged at all.
    """
    from sessionctl.session import record

    audit = result.to_dict()
    known = {p.message for p in result.problems}
    extra = [{"code": "settle", "message": m} for m in problems if m not in known]
    audit.update(passed=not problems, problems=[*extra, *audit["problems"]])
    if skipped:
        rows = [{"code": "infrastructure", "message": m} for m in problems]
        audit.update(passed=False, skipped=True, problems=rows)
    entry = {
        **run.to_entry(),
        "transcript": _rel(ws, Path(run.transcript)),
        "audit": audit,
        "by": "sessionctl",
    }
    if any(
        e.get("type") == "agent" and e.get("transcript") == entry["transcript"]
        for e in record.entries(ws, campaign, n)
    ):
        return  # recorded before a previous `sessionctl run` died
    if still_open:
        record.append(ws, campaign, entry)
        return
    # Closed outside the loop: the entry still belongs with the session's archived record.
    with ws.lock(campaign):
        line = json.dumps({"at": now_iso(), **entry}, default=str)
        append_line(record.entries_path(ws, campaign, n), line)


def failed_dir(n: int) -> str:
    """Where the new files of failed (or aborted) session ``n`` go, relative to the root."""
    return f"{SCRATCH}/failed/{n}/"


def _set_aside(ws: Workspace, n: int, paths: list[str]) -> tuple[str, ...]:
    """Move new files a failed or half-closed session left behind into the scratch folder."""
    moved = []
    for rel in paths:
        src = ws.root / rel
        if not src.exists():
            continue
        dest = ws.root / failed_dir(n) / rel
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


def recover(loop: Loop, cur: dict[str, Any]) -> SessionOutcome | None:
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
    if cur.get("snapshot"):
        snap = audit_mod.Snapshot.from_dict(cur["snapshot"])
    else:
        # It died between opening the session and noting the snapshot: no agent ran yet.
        rev = open_now.start_revision if open_now is not None else {}
        snap = audit_mod.snapshot(
            ws,
            c,
            start_commit=str(rev.get("commit") or "") or None,
            dirty=(open_now.extra.get("dirty_at_start") or ()) if open_now is not None else (),
        )
    outcome = finish(
        loop,
        camp,
        n,
        cur.get("step"),
        bool(cur.get("diagnostic")),
        snap,
        run,
        recovered=True,
        phase_before=cur.get("phase"),
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
