"""Judge what an agent's session left behind, from the session record and the VCS diff.

Checks, each giving a one-line :class:`Problem`:

- the workflow was followed: a baseline and a re-measure recorded (optimization) or a finding
  (diagnostic);
- the perf log was written by ``sessionctl close`` only (compared with the log as it stood when
  the session started, and with the entry close appended);
- the diff looks like ONE change: at most ``audit.max_files`` files, within ``audit.max_areas``
  top-level folders (a step's ``paths`` count as one area, ``tests/`` is neutral);
- no added line matches an ``audit.forbidden`` pattern (e.g. caching query results);
- the rendered prompt ``.md`` was not edited by hand instead of the YAML;
- the agent ended on its own (not stopped by a bound) with exit code 0, no tool refused, and
  within its budget (Codex reports its usage only at exit, so only the audit can flag it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionctl import process
from sessionctl.agent.diff import (  # noqa: F401 - re-exported: the audit's view of a diff
    DiffSummary,
    FileDiff,
    Snapshot,
    file_hash,
    managed_paths,
    parse_unified_diff,
    session_diff,
)
from sessionctl.agent.ending import Ending, classify
from sessionctl.agent.transcript import TranscriptSummary
from sessionctl.campaign.model import AuditSpec, NextStep
from sessionctl.errors import ConfigError, SessionctlError
from sessionctl.workspace import Workspace

NEUTRAL_AREAS = frozenset({"tests", "test"})


@dataclass(frozen=True)
class Problem:
    """One audit failure: a stable code and the line shown in the log and the prompt's status."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Audit:
    """The verdict on one session."""

    session: int
    problems: tuple[Problem, ...] = ()
    diff: DiffSummary = field(default_factory=DiffSummary)
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.problems

    def reasons(self) -> str:
        """All problems on one line (what the log and the prompt's status say)."""
        return "; ".join(p.message for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "passed": self.passed,
            "problems": [p.to_dict() for p in self.problems],
            "diff": self.diff.to_dict(),
            "notes": list(self.notes),
        }


# --- before the agent runs ---------------------------------------------------------------


def snapshot(
    ws: Workspace, campaign: str, *, start_commit: str | None, dirty: Iterable[str] = ()
) -> Snapshot:
    """Note the log, the prompt backups and already-dirty files before the agent starts."""
    return Snapshot(
        _read(ws.log_path(campaign)),
        start_commit,
        tuple(_backups(ws, campaign)),
        {p: file_hash(ws.root / p) for p in dirty},
        _read(ws.campaign_path(campaign)),
        file_hash(ws.rendered_path(campaign)),
    )


def _backups(ws: Workspace, campaign: str) -> list[str]:
    folder = ws.scratch / "backups"
    return sorted(p.name for p in folder.glob(f"{campaign}.md.*")) if folder.is_dir() else []


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


# --- the checks ----------------------------------------------------------------------------------


def check_records(entries: Sequence[dict[str, Any]], *, diagnostic: bool) -> list[Problem]:
    """A baseline and a re-measure (optimization), or a finding (diagnostic)."""
    phases = {e.get("phase") for e in entries if e.get("type") == "measurement"}
    has_finding = any(_is_finding(e) for e in entries)
    if diagnostic:
        if has_finding:
            return []
        return [Problem("no-finding", "no finding recorded (`sessionctl record --finding TEXT`)")]
    out = []
    if "baseline" not in phases:
        out.append(Problem("no-baseline", "no baseline measurement recorded before the change"))
    if "remeasure" not in phases:
        out.append(Problem("no-remeasure", "no re-measure recorded after the change"))
    return out


def _is_finding(e: dict[str, Any]) -> bool:
    return e.get("type") == "finding" or bool(e.get("finding")) or bool(e.get("findings"))


def check_log(
    before: str | None,
    after: str | None,
    *,
    number: int,
    closed: bool,
    entry: str | None = None,
    log_text: str | None = None,
) -> list[Problem]:
    """The perf log changed only through ``sessionctl close``.

    ``entry`` and ``log_text`` are what close appended and the whole log it wrote (from the
    session's archived close plan): the log must be exactly the one before the session plus
    that entry.
    """
    from sessionctl.perflog import has_session

    by_hand = "the perf log was edited by hand; only `sessionctl close` writes it"
    if not closed:
        return [] if after == before else [Problem("log-edited", by_hand)]
    if not has_session(after, number):
        return [Problem("log-missing", f"session {number} was closed but the log has no entry")]
    if log_text is not None and after != log_text:
        return [Problem("log-edited", f"{by_hand} (changed after close wrote it)")]
    if before is not None and after is not None:
        if not after.startswith(before):
            return [Problem("log-edited", f"{by_hand} (earlier entries changed)")]
        if entry is not None and after[len(before) :].strip() != entry.strip():
            return [
                Problem("log-edited", f"{by_hand} (text added beside session {number}'s entry)")
            ]
    return []


def check_diff(diff: DiffSummary, spec: AuditSpec, *, step: NextStep | None) -> list[Problem]:
    """One change: few enough files, in one area; no forbidden patterns in added lines."""
    out: list[Problem] = []
    if spec.max_files is not None and len(diff.files) > spec.max_files:
        out.append(
            Problem(
                "many-files",
                f"looks like more than one change: {len(diff.files)} files changed "
                f"(audit.max_files is {spec.max_files})",
            )
        )
    if spec.max_areas is not None:
        areas = areas_of(diff.files, step)
        if len(areas) > spec.max_areas:
            out.append(
                Problem(
                    "many-areas",
                    "looks like more than one change: edits in unrelated areas "
                    + ", ".join(_area(a) for a in sorted(areas)),
                )
            )
    out.extend(check_forbidden(diff, spec))
    return out


def areas_of(files: Iterable[FileDiff], step: NextStep | None) -> set[str]:
    """Top-level folders touched (``tests/`` aside); the step's own folders count as one area."""
    step_areas = {p.strip("/").split("/")[0] for p in (step.paths if step else ()) if p.strip("/")}
    touched = {f.area for f in files} - NEUTRAL_AREAS
    groups = touched - step_areas
    if touched & step_areas:
        groups.add("+".join(sorted(touched & step_areas)))
    return groups


def check_forbidden(diff: DiffSummary, spec: AuditSpec) -> list[Problem]:
    """Each forbidden pattern found in an added line, with where and the configured message."""
    out: list[Problem] = []
    for i, fp in enumerate(spec.forbidden):
        try:
            rx = re.compile(fp.pattern)
        except re.error as exc:
            raise ConfigError(
                f"audit.forbidden[{i}].pattern: bad regular expression ({exc}); fix it"
            ) from None
        for f in diff.files:
            hit = next(((n, t) for n, t in f.added_lines if rx.search(t)), None)
            if hit is not None:
                out.append(
                    Problem(
                        "forbidden", f"{f.path}:{hit[0]}: {fp.message} (matches `{fp.pattern}`)"
                    )
                )
    return out


def check_prompt_edit(ws: Workspace, campaign: str, *, snap: Snapshot) -> list[Problem]:
    """The rendered prompt was not edited by hand (drift now, or a backup made by close)."""
    from sessionctl.campaign import store

    md = f"prompts/{campaign}.md"
    message = (
        f"{md} was edited by hand; change prompts/{campaign}.yaml "
        "(or use `sessionctl next`) instead"
    )
    new_backups = set(_backups(ws, campaign)) - set(snap.backups)
    if new_backups:
        return [Problem("prompt-edited", message)]
    if snap.md_hash is not None and file_hash(ws.rendered_path(campaign)) == snap.md_hash:
        return []  # untouched (a YAML edit not yet rendered is not a hand edit of the .md)
    drift = store.check_prompt(ws, campaign)
    if drift is not None and not drift.missing:
        return [Problem("prompt-edited", message)]
    return []


def check_agent(exit_reason: str, exit_code: int | None, detail: str) -> list[Problem]:
    """The agent finished by itself, successfully (judged without its transcript)."""
    summary = TranscriptSummary("auto")
    ending = classify(exit_reason=exit_reason, exit_code=exit_code, detail=detail, summary=summary)
    return check_ending(ending)


def check_ending(ending: Ending, *, overspent: str | None = None) -> list[Problem]:
    """The agent finished by itself and within its budget (else: how it ended, one line)."""
    out: list[Problem] = []
    if ending.kind != "finished":
        out.append(Problem(f"agent-{ending.kind.replace('_', '-')}", ending.message))
    if overspent:
        out.append(Problem("over-budget", overspent))
    return out


def check_commits(
    ws: Workspace, *, start_commit: str | None, prefer: str = "auto"
) -> list[Problem]:
    """With git, nothing was committed behind sessionctl's back while the session was open."""
    from sessionctl.vcs import detect

    try:
        vcs = detect(ws.root, prefer=prefer)
    except SessionctlError:
        return []
    if vcs.kind != "git" or not start_commit:
        return []  # jj rewrites @ on every snapshot; its commit id says nothing here
    head = process.run(
        ["git", "-C", str(vcs.root), "rev-parse", "HEAD"], check=False
    ).stdout.strip()
    if head and head != start_commit:
        return [
            Problem(
                "self-commit",
                f"the agent committed by itself (HEAD moved from {start_commit[:10]} "
                f"to {head[:10]}); "
                "only `sessionctl close` commits",
            )
        ]
    return []


def audit_session(
    ws: Workspace,
    campaign: str,
    *,
    number: int,
    diagnostic: bool,
    step: NextStep | None,
    spec: AuditSpec,
    snap: Snapshot,
    closed: dict[str, Any] | None,
    ending: Ending,
    prefer: str = "auto",
    requested: str | None = None,
    overspent: str | None = None,
) -> Audit:
    """Run every check on session ``number``.

    ``closed`` is its archived outcome if it was closed; ``requested`` what the agent asked
    the loop to do with it (``close`` or ``abort``: an abort needs no measurements).
    """
    from sessionctl.session import record

    problems: list[Problem] = []
    notes: list[str] = []
    kind = (closed or {}).get("kind") or requested
    if spec.require_measurements and kind != "abort":
        problems += check_records(record.entries(ws, campaign, number), diagnostic=diagnostic)
    written = (closed or {}).get("plan") or {}
    problems += check_log(
        snap.log_text,
        _read(ws.log_path(campaign)),
        number=number,
        closed=closed is not None,
        entry=written.get("entry"),
        log_text=written.get("log_text"),
    )
    if closed is None:
        problems += check_commits(ws, start_commit=snap.start_commit, prefer=prefer)
    diff = session_diff(ws, campaign, start_commit=snap.start_commit, snap=snap, prefer=prefer)
    problems += check_diff(diff, spec, step=step)
    problems += check_prompt_edit(ws, campaign, snap=snap)
    left_out = [p for p in (closed or {}).get("left_out") or () if p not in snap.dirty]
    if left_out:
        problems.append(
            Problem(
                "left-out",
                "new files were left out of the change: "
                + ", ".join(left_out)
                + " (pass them to `sessionctl close --include`)",
            )
        )
    problems += check_ending(ending, overspent=overspent)
    notes.append(f"diff: {diff.text()}")
    return Audit(number, tuple(problems), diff, tuple(notes))


def _area(label: str) -> str:
    return "(top level)" if label == "." else "+".join(f"{a}/" for a in label.split("+"))
