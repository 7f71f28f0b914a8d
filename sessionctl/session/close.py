"""Closing a session: a journaled, crash-safe sequence of writes and two VCS changes.

``close`` computes the whole :class:`~sessionctl.session.plan.ClosePlan` first, then writes a
journal (``.sessionctl/sessions/<campaign>/close-journal.json``) holding the plan, the original
file texts and a VCS checkpoint, and carries the plan out step by step, updating the journal
atomically after each one:

``log``            write the perf log with the session's entry appended (the full planned text)
``prompt``         write the campaign YAML and the re-rendered prompt
``commit_code``    change #1: the code change and the log file
``commit_prompt``  change #2: only the YAML and its rendered markdown (jj: a fresh @ follows)
``discard``        (abort --discard) restore the session's edits of tracked files
``finish``         archive the session record and clear the open session

Every file step writes a precomputed full text, so repeating it is harmless. Before a VCS step
the journal records a checkpoint; if the process dies during the step, recovery restores that
checkpoint and does the step again, so each change is made exactly once. If a VCS step *fails*,
the whole close is rolled back to the first checkpoint, the index as it was before the close
(a copy is kept beside the journal) and the original texts, and the session stays open. Before
any write (and before recovery redoes a VCS step) :meth:`Vcs.preflight` refuses a repository
with a git lock file or a merge in progress. ``start`` and ``close`` call :func:`recover` first;
``status`` only reports the pending close.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Unpack

from sessionctl.errors import CommandError, SessionctlError, SessionStateError, VcsError
from sessionctl.files import atomic_write, atomic_write_json, read_exact
from sessionctl.measurement import now_iso
from sessionctl.reporting import NULL, Reporter
from sessionctl.session import record
from sessionctl.session.plan import ClosePlan, NewStep, build
from sessionctl.session.workflow import CloseArgs, require_reason
from sessionctl.vcs import Vcs, detect
from sessionctl.vcs.base import Commit
from sessionctl.workspace import Workspace

__all__ = [
    "AbortResult",
    "CloseResult",
    "NewStep",
    "abort",
    "close",
    "journal_path",
    "pending",
    "recover",
]

ENV_CRASH = "SESSIONCTL_CRASH_AT"
JOURNAL_VERSION = 1
CLOSE_STEPS = ("log", "prompt", "commit_code", "commit_prompt", "finish")
ABORT_STEPS = ("log", "prompt", "commit_code", "commit_prompt", "discard", "finish")
VCS_STEPS = ("commit_code", "commit_prompt")


@dataclass(frozen=True)
class CloseResult:
    """What ``close`` did (or, with ``dry_run``, would do)."""

    plan: ClosePlan
    commits: tuple[Commit, ...] = ()
    dry_run: bool = False
    recovered: str | None = None

    @property
    def judgements(self) -> tuple[dict[str, Any], ...]:
        """The verdict module's judgement of every compared metric (as dicts)."""
        return self.plan.judgements

    def to_dict(self) -> dict[str, Any]:
        from sessionctl.redaction import redact_data

        return {
            "campaign": self.plan.campaign,
            "session": self.plan.session,
            "dry_run": self.dry_run,
            "verdict": self.plan.verdict,
            "commits": [c.to_dict() for c in self.commits],
            "recovered": self.recovered,
            # The planned texts may quote the campaign's DSN: shown, never with its password.
            "plan": redact_data(self.plan.to_dict(texts=self.dry_run)),
        }


@dataclass(frozen=True)
class AbortResult:
    """What ``abort`` did: the log/prompt commits, and the code left in place or discarded."""

    plan: ClosePlan
    commits: tuple[Commit, ...] = ()
    kept: tuple[str, ...] = ()
    discarded: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.plan.campaign,
            "session": self.plan.session,
            "commits": [c.to_dict() for c in self.commits],
            "kept": list(self.kept),
            "discarded": list(self.discarded),
            "discard_patch": self.plan.discard_patch if self.discarded else None,
            "plan": self.plan.to_dict(texts=False),
        }


def journal_path(ws: Workspace, campaign: str) -> Path:
    return record.journal_path(ws, campaign)


def pending(ws: Workspace, campaign: str) -> dict[str, Any] | None:
    """The interrupted close's journal summary, or None when there is none."""
    j = _read_journal(ws, campaign)
    if j is None:
        return None
    plan = j["plan"]
    steps = j["steps"]
    return {
        "kind": plan["kind"],
        "session": plan["session"],
        "done": list(j["done"]),
        "remaining": [s for s in steps if s not in j["done"]],
        "started_at": j.get("started_at"),
        "journal": str(journal_path(ws, campaign)),
    }


def close(
    ws: Workspace,
    campaign: str,
    *,
    dry_run: bool = False,
    reporter: Reporter = NULL,
    **args: Unpack[CloseArgs],
) -> CloseResult:
    """Close the open session: log entry, YAML update, the code change and the prompt change.

    ``args``: ``resolve``, ``add_steps``, ``status_text``, ``summary``, ``force_reason`` (close
    without the required measurements, logged) and ``include`` (untracked paths to commit).
    """
    args = _redacted_args(args)
    if dry_run:
        journal = _read_journal(ws, campaign)
        if journal is not None:
            plan = ClosePlan.from_dict(journal["plan"])
            left = [s for s in journal["steps"] if s not in journal["done"]]
            note = (
                f"would finish the interrupted {plan.kind} of session {plan.session} "
                f"(steps: {', '.join(left)})"
            )
            return CloseResult(plan=plan, dry_run=True, recovered=note)
    recovered = None if dry_run else recover(ws, campaign, reporter=reporter)
    with ws.lock(campaign):
        if not dry_run and recovered is not None and record.current(ws, campaign) is None:
            # The interrupted close was this close: it has now finished.
            return CloseResult(
                plan=_last_plan(ws, campaign),
                commits=_last_commits(ws, campaign),
                recovered=recovered,
            )
        session = record.require_open(ws, campaign)
        cf = _load(ws, campaign)  # parsed once: `vcs:` here, everything else in build
        vcs = detect(ws.root, prefer=cf.campaign.vcs)
        reporter.phase(f"Closing session {session.number}")
        plan = build(ws, campaign, session, vcs=vcs, cf=cf, **args)
        from sessionctl.verdict.session import grouped_warnings

        for w in grouped_warnings(plan.warnings):
            reporter.warn(w)
        if dry_run:
            return CloseResult(plan=plan, dry_run=True)
        commits = _run(ws, vcs, plan, CLOSE_STEPS, reporter=reporter)
    return CloseResult(plan=plan, commits=commits, recovered=recovered)


def abort(
    ws: Workspace,
    campaign: str,
    *,
    reason: str,
    status_text: str | None = None,
    discard: bool = False,
    dry_run: bool = False,
    reporter: Reporter = NULL,
    set_aside_to: str | None = None,
    leave: Collection[str] = (),
    retire: bool = False,
) -> AbortResult:
    """Abort the open session: an aborted log entry and the prompt update, no code change.

    With ``discard`` the session's edits of tracked files are saved as a patch, then thrown
    away. ``retire`` moves the session's step to the retired list ("tried, did not help") with
    ``reason``. ``set_aside_to``/``leave``: see :func:`sessionctl.session.plan.build`.
    """
    require_reason(reason)
    from sessionctl.redaction import redact

    reason = redact(reason)
    status_text = redact(status_text) if status_text else status_text
    if not dry_run:
        recover(ws, campaign, reporter=reporter)
    with ws.lock(campaign):
        session = record.require_open(ws, campaign)
        cf = _load(ws, campaign)
        vcs = detect(ws.root, prefer=cf.campaign.vcs)
        reporter.phase(f"Aborting session {session.number}")
        plan = build(
            ws,
            campaign,
            session,
            vcs=vcs,
            cf=cf,
            kind="abort",
            status_text=status_text,
            reason=reason,
            discard=discard,
            check=False,
            set_aside_to=set_aside_to,
            leave=leave,
            retire=retire,
        )
        commits: tuple[Commit, ...] = ()
        if not dry_run:
            commits = _run(ws, vcs, plan, ABORT_STEPS, reporter=reporter)
    return AbortResult(plan=plan, commits=commits, kept=plan.kept, discarded=plan.discard)


def recover(ws: Workspace, campaign: str, *, reporter: Reporter = NULL) -> str | None:
    """Finish an interrupted close/abort from its journal; return what was done, or None."""
    with ws.lock(campaign):
        journal = _read_journal(ws, campaign)
        if journal is None:
            return None
        plan = ClosePlan.from_dict(journal["plan"])
        remaining = [s for s in journal["steps"] if s not in journal["done"]]
        reporter.warn(
            f"finishing the interrupted {plan.kind} of session {plan.session} "
            f"(remaining: {', '.join(remaining) or 'cleanup'})"
        )
        vcs = _vcs(ws, campaign, kind=journal.get("vcs"))
        if any(s in VCS_STEPS for s in remaining):
            try:
                vcs.preflight()
            except VcsError as exc:
                raise VcsError(
                    f"{exc.args[0].removesuffix(', then rerun the command')}, then run "
                    f"`sessionctl close {campaign}` to finish the interrupted {plan.kind} of "
                    f"session {plan.session} (nothing was changed)"
                ) from None
        _execute(ws, vcs, plan, journal, reporter=reporter)
        return (
            f"finished the interrupted {plan.kind} of session {plan.session} "
            f"(steps: {', '.join(remaining)})"
        )


def _redacted_args(args: CloseArgs) -> CloseArgs:
    """The texts a user typed for the log and the commits, with any password masked."""
    from sessionctl.redaction import redact

    out = dict(args)
    for key in ("status_text", "summary", "force_reason"):
        text = out.get(key)
        if isinstance(text, str):
            out[key] = redact(text)
    return out  # type: ignore[return-value]


# --- the journaled executor -------------------------------------------------------------------


def _load(ws: Workspace, campaign: str) -> Any:
    from sessionctl.campaign import store

    return store.load(ws, campaign)


def _vcs(ws: Workspace, campaign: str, *, kind: str | None = None) -> Vcs:
    if kind in ("git", "jj"):
        return detect(ws.root, prefer=kind)
    from sessionctl.campaign import store

    return detect(ws.root, prefer=store.load(ws, campaign).campaign.vcs)


def _read_journal(ws: Workspace, campaign: str) -> dict[str, Any] | None:
    path = journal_path(ws, campaign)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise SessionStateError(
            f"{path}: unreadable close journal ({exc}); inspect it, then remove it to start over"
        ) from None
    if data.get("version") != JOURNAL_VERSION:
        raise SessionStateError(
            f"{path}: journal version {data.get('version')} unknown; remove it to start over"
        )
    return data


def _write_journal(ws: Workspace, campaign: str, journal: dict[str, Any]) -> None:
    atomic_write_json(journal_path(ws, campaign), journal)


def _crash(point: str) -> None:
    """Die here, without cleanup, when the crash-test hook names this point."""
    if os.environ.get(ENV_CRASH) == point:
        os._exit(99)


def _run(
    ws: Workspace, vcs: Vcs, plan: ClosePlan, steps: Sequence[str], *, reporter: Reporter
) -> tuple[Commit, ...]:
    """Journal ``plan`` with a checkpoint and the original texts, then carry it out."""
    root = vcs.root
    for warning in vcs.preflight():  # a lock or a merge in progress stops us before any write
        reporter.warn(warning)
    index_copy = record.session_path(ws, plan.campaign, plan.session) / "index.pre-close"
    saved_index = vcs.save_index(index_copy)
    journal: dict[str, Any] = {
        "version": JOURNAL_VERSION,
        "started_at": now_iso(),
        "vcs": vcs.kind,
        "checkpoint": vcs.checkpoint(),
        "index": str(index_copy) if saved_index else None,
        "steps": list(steps),
        "done": [],
        "pre": {},
        "commits": {},
        "originals": {
            "log": read_exact(root / plan.log_path),
            "yaml": read_exact(root / plan.yaml_path),
            "md": read_exact(root / plan.md_path),
        },
        "plan": plan.to_dict(),
    }
    _write_journal(ws, plan.campaign, journal)
    _crash("journal")
    return _execute(ws, vcs, plan, journal, reporter=reporter)


def _execute(
    ws: Workspace, vcs: Vcs, plan: ClosePlan, journal: dict[str, Any], *, reporter: Reporter
) -> tuple[Commit, ...]:
    root = vcs.root
    campaign = plan.campaign
    for step in journal["steps"]:
        if step in journal["done"]:
            continue
        if step == "log":
            reporter.info(f"appending session {plan.session} to {plan.log_path}")
            atomic_write(root / plan.log_path, plan.log_text)
        elif step == "prompt":
            reporter.info(
                f"updating {plan.yaml_path} (revision {plan.revision}) and {plan.md_path}"
            )
            original_md = journal["originals"].get("md")
            if plan.md_hand_edited and original_md is not None:
                backup = ws.scratch / "backups" / f"{campaign}.md.session{plan.session}"
                atomic_write(backup, original_md)
            atomic_write(root / plan.yaml_path, plan.yaml_text)
            atomic_write(root / plan.md_path, plan.md_text)
        elif step in VCS_STEPS:
            change = plan.code if step == "commit_code" else plan.prompt
            pre = journal["pre"].get(step)
            try:
                if pre is None:
                    journal["pre"][step] = vcs.checkpoint()
                    _write_journal(ws, campaign, journal)
                    _crash(f"{step}:pre")
                else:
                    # An earlier attempt died during this step: it may or may not have
                    # committed. Return to just before it and do it once more.
                    vcs.restore(pre, keep_index=True)
                reporter.info(f"committing {change.title}")
                session_dir = record.session_path(ws, campaign, plan.session)
                session_dir.mkdir(parents=True, exist_ok=True)
                made = vcs.commit_paths(
                    title=change.title,
                    message=change.message,
                    paths=change.paths,
                    scratch=session_dir,
                )
            except (VcsError, CommandError) as exc:
                try:
                    _rollback(ws, vcs, plan, journal, reporter=reporter)
                except (VcsError, CommandError, OSError) as again:
                    raise VcsError(
                        f"session {plan.session}: {step.replace('_', ' ')} failed ({exc}) and "
                        f"so did the rollback ({again}); fix that, then run `sessionctl close "
                        f"{campaign}` to finish the close (the journal "
                        f"{journal_path(ws, campaign)} is kept)"
                    ) from None
                raise VcsError(
                    f"session {plan.session}: {step.replace('_', ' ')} failed ({exc}); rolled "
                    f"back to {str(journal['checkpoint'])[:12]}: nothing committed, the session "
                    "is still open"
                ) from None
            journal["commits"][step] = made.to_dict()
        elif step == "discard":
            if plan.discard:
                _save_patch(ws, vcs, plan, reporter=reporter)
                reporter.info(f"discarding the session's edits of {len(plan.discard)} file(s)")
                vcs.discard(plan.discard)
        elif step == "finish":
            _finish(ws, plan, journal, reporter=reporter)
        _crash(step)
        journal["done"].append(step)
        if step != "finish":
            _write_journal(ws, campaign, journal)
        _crash(f"{step}:done")
    _drop_journal(ws, campaign, journal)
    return tuple(_commit(journal["commits"][s]) for s in VCS_STEPS if s in journal["commits"])


def _save_patch(ws: Workspace, vcs: Vcs, plan: ClosePlan, *, reporter: Reporter) -> None:
    """Keep the edits about to be discarded as a patch, written before anything is discarded.

    A crash during or after the discard repeats this step; by then some or all of the edits are
    gone, so a patch already written is never replaced.
    """
    if plan.discard_patch is None or (ws.root / plan.discard_patch).exists():
        return
    patch = vcs.diff(plan.discard)
    if patch.strip():
        atomic_write(ws.root / plan.discard_patch, patch)
        reporter.info(f"saved the edits to discard as {plan.discard_patch}")
    else:
        reporter.warn(f"no edits to save for {', '.join(plan.discard)}")


def _commit(d: dict[str, Any]) -> Commit:
    return Commit(commit=d["commit"], change=d.get("change"), extra=dict(d.get("extra") or {}))


def _finish(ws: Workspace, plan: ClosePlan, journal: dict[str, Any], *, reporter: Reporter) -> None:
    """Remove the session's baseline worktree, archive what it ended as, forget the session."""
    current = record.current(ws, plan.campaign)
    if current is not None and current.number == plan.session:
        _remove_baseline_worktree(ws, current, reporter=reporter)
    outcome = {
        "kind": plan.kind,
        "session": plan.session,
        "closed_at": now_iso(),
        "verdict": plan.verdict,
        "results": [r.to_dict() for r in plan.results],
        "judgements": list(plan.judgements),
        "commits": journal["commits"],
        "left_out": list(plan.left_out),
        "kept": list(plan.kept),
        "discarded": list(plan.discard),
        "discard_patch": plan.discard_patch,
        "set_aside": list(plan.set_aside),
        "reason": plan.reason,
        "headline": plan.headline,
        "retired": plan.retired,
        "plan": journal["plan"],
    }
    atomic_write_json(record.session_path(ws, plan.campaign, plan.session) / "closed.json", outcome)
    if current is not None and current.number == plan.session:
        record.clear_current(ws, plan.campaign)


def _remove_baseline_worktree(
    ws: Workspace, session: record.OpenSession, *, reporter: Reporter
) -> None:
    """Remove the worktree `sessionctl compare` made of the starting revision (if it made one)."""
    from sessionctl.verdict.sides import remove_baseline_worktree

    try:
        remove_baseline_worktree(ws, session.campaign, session)
    except (SessionctlError, OSError) as exc:
        # The session's changes are already made: a leftover worktree must not undo the close.
        reporter.warn(
            f"session {session.number}: its baseline worktree was not removed ({exc}); "
            "remove it by hand (`git worktree remove --force PATH` / `jj workspace forget NAME`)"
        )


def _rollback(
    ws: Workspace, vcs: Vcs, plan: ClosePlan, journal: dict[str, Any], *, reporter: Reporter
) -> None:
    """Undo a failed close: the VCS checkpoint, the original texts; drop the journal."""
    reporter.warn(f"rolling back the close of session {plan.session}")
    if journal.get("index"):
        # Only the branch (a failure here changes nothing), then exactly what was staged.
        vcs.restore(str(journal["checkpoint"]), keep_index=True)
        vcs.restore_index(Path(journal["index"]))
    else:
        vcs.restore(str(journal["checkpoint"]))  # jj, or a git repository without an index
    root = vcs.root
    for key, rel in (("log", plan.log_path), ("yaml", plan.yaml_path), ("md", plan.md_path)):
        text = journal["originals"].get(key)
        if text is None:
            with contextlib.suppress(FileNotFoundError):
                (root / rel).unlink()
        else:
            atomic_write(root / rel, text)
    _drop_journal(ws, plan.campaign, journal)


def _drop_journal(ws: Workspace, campaign: str, journal: dict[str, Any]) -> None:
    with contextlib.suppress(FileNotFoundError):
        journal_path(ws, campaign).unlink()
    if journal.get("index"):
        with contextlib.suppress(FileNotFoundError):
            Path(journal["index"]).unlink()


def _closed(ws: Workspace, campaign: str) -> dict[str, Any] | None:
    from sessionctl.campaign import store

    n = store.load(ws, campaign).campaign.last_session
    try:
        return load_closed(ws, campaign, n)
    except json.JSONDecodeError:
        return None


def _last_plan(ws: Workspace, campaign: str) -> ClosePlan:
    data = _closed(ws, campaign)
    if data is None:
        raise record.no_open_session(campaign)
    return ClosePlan.from_dict(data["plan"])


def _last_commits(ws: Workspace, campaign: str) -> tuple[Commit, ...]:
    data = _closed(ws, campaign) or {}
    commits = data.get("commits") or {}
    return tuple(_commit(commits[s]) for s in VCS_STEPS if s in commits)


def load_closed(ws: Workspace, campaign: str, number: int) -> dict[str, Any] | None:
    """The archived outcome of session ``number`` (kind, verdict, results, commits), if closed."""
    try:
        data: dict[str, Any] = json.loads(
            (record.session_path(ws, campaign, number) / "closed.json").read_text(encoding="utf-8")
        )
    except FileNotFoundError:
        return None
    return data
