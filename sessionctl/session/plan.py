"""The close plan: every text and path ``close`` (or ``abort``) will write, computed up front.

Nothing here touches the disk. :func:`build` reads the open session, the campaign and the
working copy and returns a :class:`ClosePlan`: the new log text, the new YAML and rendered
prompt, both change descriptions and the files of each change. ``close --dry-run`` prints it;
``close`` journals it and then carries it out step by step.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionctl import perflog
from sessionctl.measurement import now_iso
from sessionctl.session import record
from sessionctl.session.record import OpenSession
from sessionctl.session.workflow import (
    NewStep,
    check_requirements,
    findings,
    missing_requirements,
)
from sessionctl.vcs import Vcs, relpath
from sessionctl.vcs.base import ADDED, UNTRACKED, FileChange
from sessionctl.workspace import Workspace

if TYPE_CHECKING:  # the verdict module (statistics) is imported only when a close needs it
    from sessionctl.verdict.session import ResultRow

COMMIT_TEMPLATE = "commit-message.txt.j2"
_TITLE_MAX = 72


@dataclass(frozen=True)
class ChangePlan:
    """One change (commit) to make: its title line, full description and exact paths."""

    title: str
    message: str
    paths: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "message": self.message, "paths": list(self.paths)}


@dataclass(frozen=True)
class ClosePlan:
    """Everything a close (kind ``close``) or abort (kind ``abort``) will do."""

    kind: str
    campaign: str
    session: int
    step_id: str | None
    step_title: str
    diagnostic: bool
    vcs: str
    log_path: str
    log_text: str
    entry: str
    yaml_path: str
    yaml_text: str
    md_path: str
    md_text: str
    code: ChangePlan
    prompt: ChangePlan
    left_out: tuple[str, ...] = ()
    discard: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    discard_patch: str | None = None  # where the discarded edits are saved first (relative)
    set_aside: tuple[str, ...] = ()  # kept new files the caller moves to set_aside_to
    set_aside_to: str | None = None
    results: tuple[ResultRow, ...] = ()
    verdict: str | None = None
    warnings: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    force_reason: str | None = None
    resolved: str | None = None
    added_steps: tuple[str, ...] = ()
    revision: int = 0
    md_hand_edited: bool = False
    judgements: tuple[dict[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, texts: bool = True) -> dict[str, Any]:
        """The plan as JSON-able data (``texts=False`` leaves out the full file texts)."""
        d = asdict(self)
        d["code"] = self.code.to_dict()
        d["prompt"] = self.prompt.to_dict()
        d["results"] = [r.to_dict() for r in self.results]
        if not texts:
            for key in ("log_text", "yaml_text", "md_text"):
                d.pop(key)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClosePlan:
        data = dict(d)
        data["code"] = ChangePlan(**{**data["code"], "paths": tuple(data["code"]["paths"])})
        data["prompt"] = ChangePlan(**{**data["prompt"], "paths": tuple(data["prompt"]["paths"])})
        data["results"] = ()
        if d.get("results"):
            from sessionctl.verdict.session import ResultRow

            data["results"] = tuple(ResultRow.from_dict(r) for r in d["results"])
        for key in (
            "left_out",
            "discard",
            "kept",
            "set_aside",
            "warnings",
            "missing",
            "added_steps",
            "judgements",
        ):
            data[key] = tuple(data.get(key, ()))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _short(text: str, limit: int = _TITLE_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --- building the plan ------------------------------------------------------------------------


def _classify(
    changes: Sequence[FileChange],
    *,
    kind: str,
    skip: set[str],
    include: Sequence[str],
    discard: bool,
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Split working-copy changes into (code, left_out, discard, kept)."""
    code: list[str] = []
    left_out: list[str] = []
    to_discard: list[str] = []
    kept: list[str] = []

    def included(path: str) -> bool:
        return any(path == inc or path.startswith(inc.rstrip("/") + "/") for inc in include)

    for ch in changes:
        if ch.path in skip or ch.path.startswith(".sessionctl/"):
            continue
        if kind == "abort":
            if discard and ch.status not in (UNTRACKED, ADDED):
                to_discard.append(ch.path)
            else:
                kept.append(ch.path)
        elif ch.is_new and not included(ch.path):
            left_out.append(ch.path)
        else:
            code.append(ch.path)
    return code, left_out, to_discard, kept


@dataclass(frozen=True)
class Split:
    """The working copy sorted for a close: the code change's paths and everything else."""

    log: str
    yaml: str
    md: str
    code: list[str]
    left_out: list[str]
    discard: list[str]
    kept: list[str]
    warnings: list[str]


def split_changes(
    ws: Workspace,
    campaign: str,
    vcs: Vcs,
    *,
    kind: str = "close",
    include: Sequence[str | Path] = (),
    discard: bool = False,
) -> Split:
    """Sort the working copy's changes into the code change, left-out, discarded and kept."""
    log_rel = relpath(vcs, ws.log_path(campaign))
    yaml_rel = relpath(vcs, ws.campaign_path(campaign))
    md_rel = relpath(vcs, ws.rendered_path(campaign))
    include_rel = [_include_rel(vcs, ws, p) for p in include]
    code, left_out, to_discard, kept = _classify(
        vcs.working_changes(),
        kind=kind,
        skip={log_rel, yaml_rel, md_rel},
        include=include_rel,
        discard=discard,
    )
    warnings = [
        f"--include {inc}: matches no changed file"
        for inc in include_rel
        if not any(c == inc or c.startswith(inc.rstrip("/") + "/") for c in code)
    ]
    return Split(log_rel, yaml_rel, md_rel, code, left_out, to_discard, kept, warnings)


def code_change_title(campaign: str, session: OpenSession, step_title: str, *, kind: str) -> str:
    """The first line of change #1's description."""
    n = session.number
    if kind == "abort":
        return f"perf({campaign}): session {n} aborted: {_short(step_title)}"
    if session.diagnostic:
        return f"perf({campaign}): session {n} (diagnostic): {_short(step_title)}"
    return f"perf({campaign}): session {n}: {_short(step_title)}"


def prompt_change_title(
    campaign: str,
    n: int,
    *,
    kind: str = "close",
    resolve: str | None = None,
    add_steps: Sequence[NewStep] = (),
    status_text: str | None = None,
) -> tuple[str, list[str]]:
    """The first line of change #2's description, and its bullet lines."""
    lines: list[str] = []
    what: list[str] = []
    if resolve:
        lines.append(f"resolve next step `{resolve}` (session {n})")
        what.append(f"resolve {resolve}")
    if add_steps:
        lines.extend(f"add next step `{s.id}`: {s.title}" for s in add_steps)
        what.append("add " + ", ".join(s.id for s in add_steps))
    if status_text:
        lines.append("update the status")
        what.append("update status")
    after = f"after session {n}" + (" (aborted)" if kind == "abort" else "")
    title = f"prompt({campaign}): {after}: {_short('; '.join(what) or 'record the session', 60)}"
    return title, lines


def preview(ws: Workspace, campaign: str, session: OpenSession, *, vcs: Vcs) -> dict[str, Any]:
    """What a plain ``close`` would do, cheaply: the files of each change and their titles.

    No rendering and no statistics (``status`` must stay quick; it lists the measurements
    itself); ``close --dry-run`` shows the full texts, the results and the verdicts.
    """
    split = split_changes(ws, campaign, vcs)
    step_title = str(session.extra.get("step_title") or session.step_id or "diagnostic session")
    return {
        "code": {
            "title": code_change_title(campaign, session, step_title, kind="close"),
            "paths": [*split.code, split.log],
        },
        "prompt": {
            "title": prompt_change_title(campaign, session.number)[0],
            "paths": [split.yaml, split.md],
        },
        "left_out": split.left_out,
        "warnings": split.warnings,
    }


def updated_campaign(
    ws: Workspace,
    campaign: str,
    session: OpenSession,
    *,
    cf: Any = None,
    resolve: str | None = None,
    add_steps: Sequence[NewStep] = (),
    status_text: str | None = None,
    summary: str | None = None,
) -> tuple[str, Any]:
    """The campaign YAML after closing ``session`` and the Campaign it validates to.

    Raises a one-line UsageError/ConfigError for an unknown ``--resolve`` id, a duplicate or
    malformed ``--add-step``, or a YAML the schema would reject.
    """
    from sessionctl.campaign import next_steps, store

    n = session.number
    cf = store.load(ws, campaign) if cf is None else cf
    camp = cf.campaign
    if resolve:
        next_steps.resolve_step(
            cf.doc,
            resolve,
            session=n,
            kind="diagnostic" if session.diagnostic else "optimization",
            summary=summary,
        )
    for st in add_steps:
        next_steps.add_step(
            cf.doc,
            id=st.id,
            title=st.title,
            body=st.body,
            effect=st.effect,
            paths=st.paths,
            added_in=n,
            group=st.group,
            rank=st.rank,
        )
    if status_text:
        next_steps.set_status(cf.doc, status_text)
    next_steps.set_last_session(cf.doc, max(n, camp.last_session))
    cf.doc["revision"] = camp.revision + 1
    yaml_text = store.dumps(cf)
    source = store.display_path(ws, ws.campaign_path(campaign))
    new_camp = store.loads(
        yaml_text, name=campaign, source=f"{source} (as it would be written)"
    ).campaign
    return yaml_text, new_camp


def discard_patch_path(ws: Workspace, campaign: str, number: int) -> str:
    """Where an abort with discard saves the edits first (relative to the workspace root)."""
    path = record.session_path(ws, campaign, number) / "discarded.patch"
    return path.resolve().relative_to(ws.root.resolve()).as_posix()


def build(
    ws: Workspace,
    campaign: str,
    session: OpenSession,
    *,
    vcs: Vcs,
    kind: str = "close",
    resolve: str | None = None,
    add_steps: Sequence[NewStep] = (),
    status_text: str | None = None,
    summary: str | None = None,
    force_reason: str | None = None,
    reason: str | None = None,
    include: Sequence[str | Path] = (),
    discard: bool = False,
    check: bool = True,
    set_aside_to: str | None = None,
    leave: Collection[str] = (),
) -> ClosePlan:
    """Compute the plan for closing (or aborting) ``session``; touches nothing.

    ``set_aside_to``: the caller moves the new files the session leaves (``kept``, except those
    in ``leave``) into that folder after the abort, and the log entry says so.
    """
    from sessionctl import render
    from sessionctl.campaign import store

    n = session.number
    cf = store.load(ws, campaign)
    camp = cf.campaign
    entries = record.entries(ws, campaign, n)
    measurements = record.measurements(ws, campaign, n)
    missing = missing_requirements(session, entries) if kind == "close" else []
    if check:
        check_requirements(campaign, n, missing, force_reason=force_reason)
    step_title = str(session.extra.get("step_title") or session.step_id or "diagnostic session")
    step_body = None
    effect = None
    for s in camp.next_steps:
        if s.id == session.step_id:
            step_title, step_body, effect = s.title, s.body, s.effect

    # The working copy: what goes into the code change, what is left out.
    split = split_changes(ws, campaign, vcs, kind=kind, include=include, discard=discard)
    log_rel, yaml_rel, md_rel = split.log, split.yaml, split.md
    code, left_out, to_discard, kept = split.code, split.left_out, split.discard, split.kept
    aside = [p for p in kept if p not in leave] if set_aside_to else []
    patch_rel = discard_patch_path(ws, campaign, n) if to_discard else None
    warnings = list(split.warnings)
    start_commit = session.start_revision.get("commit")
    if vcs.kind == "git" and start_commit and vcs.checkpoint() != start_commit:
        warnings.append(
            f"HEAD moved since the session started ({str(start_commit)[:12]}): commits made "
            "during the session are not part of its change"
        )
    diffstat = perflog.format_diffstat(vcs.numstat(code)) if code else ""

    # The verdicts, the results rows and their trailers: all from the verdict module.
    from sessionctl.verdict import session as verdicts

    judgements = (
        verdicts.summarize_session(measurements, compare=camp.compare) if kind == "close" else []
    )
    rows = verdicts.rows_from(judgements, measurements)
    verdict_warnings = [f"{j.metric}: {w}" for j in judgements for w in j.warnings]
    warnings.extend(verdict_warnings)
    verdict = None
    measured: list[tuple[str, str]] = []
    if kind == "close" and not session.diagnostic:
        head = verdicts.headline(judgements)
        verdict = head.verdict if head is not None else "n/a"
        measured = verdicts.trailers(judgements, measurements)

    # The campaign YAML after the session, validated and rendered.
    yaml_text, new_camp = updated_campaign(
        ws,
        campaign,
        session,
        cf=cf,
        resolve=resolve,
        add_steps=add_steps,
        status_text=status_text,
        summary=summary,
    )
    md_text = render.render_prompt(new_camp, ws=ws)
    md_path = ws.rendered_path(campaign)
    md_hand_edited = False
    if md_path.exists():
        current_md = md_path.read_text(encoding="utf-8")
        # Unchanged since `start` rendered it (same YAML revision)? Then no render is needed
        # to know it carries no hand edits.
        untouched = session.extra.get("prompt_revision") == camp.revision and session.extra.get(
            "prompt_sha"
        ) == text_sha(current_md)
        if (
            not untouched
            and current_md != md_text
            and current_md != render.render_prompt(camp, ws=ws)
        ):
            md_hand_edited = True
            warnings.append(
                f"{md_rel} has hand edits; they are kept in .sessionctl/backups/ "
                "and the file is re-rendered"
            )

    # The log entry.
    kind_word = (
        "aborted" if kind == "abort" else ("diagnostic" if session.diagnostic else "optimization")
    )
    all_findings = findings(entries)
    existing_log = perflog.read(ws, campaign)
    if perflog.has_session(existing_log, n):
        warnings.append(
            f"{log_rel} already has a heading for session {n}; appending this entry anyway"
        )
    table = perflog.results_table(rows)
    context: dict[str, Any] = {
        "session": n,
        "campaign": campaign,
        "campaign_title": camp.title,
        "title": step_title,
        "kind": kind_word,
        "date": now_iso()[:10],
        "step_id": session.step_id,
        "goal": step_title,
        "step_body": step_body,
        "effect": effect,
        "reason": reason,
        "force_reason": force_reason,
        "baseline": perflog.measurement_view(measurements, "baseline"),
        "remeasure": perflog.measurement_view(measurements, "remeasure"),
        "profile_findings": findings(entries, "profile"),
        "change_findings": findings(entries, "change"),
        "findings": all_findings
        if session.diagnostic
        else findings(entries, "baseline", "remeasure"),
        "notes": [] if session.diagnostic else findings(entries, "note", None),
        "diffstat": diffstat,
        "results_table": table,
        "results": [r.to_dict() for r in rows],
        "verdict": verdict,
        "warnings": verdict_warnings,
        "summary": summary,
        "attachments": [str(e.get("name")) for e in entries if e.get("type") == "file"],
        "kept": [p for p in kept if p not in aside],
        "set_aside": aside,
        "set_aside_to": set_aside_to,
        "discarded": to_discard,
        "discard_patch": patch_rel,
        "left_out": left_out,
        "resolved": resolve,
        "added_steps": [{"id": s.id, "title": s.title} for s in add_steps],
        "status": status_text,
        "agent": perflog.agent_view(entries),
    }
    entry = perflog.render_entry(context, ws=ws, campaign=new_camp)
    log_text = perflog.appended(existing_log, entry, title=camp.title)

    # The two change descriptions.
    code_title = code_change_title(campaign, session, step_title, kind=kind)
    trailers = perflog.trailers(
        session=n,
        step_id=session.step_id,
        kind=kind_word,
        verdict=verdict,
        measured=measured,
        force_reason=force_reason,
    )
    code_message = _render_message(
        ws,
        new_camp,
        {
            "change": "code",
            "title": code_title,
            "summary": summary,
            "reason": reason,
            "goal": None,
            "results_table": table,
            "diffstat": diffstat,
            "force_reason": force_reason,
            "prompt_changes": [],
            "trailers": [{"key": k, "value": v} for k, v in trailers],
        },
    )
    prompt_title, prompt_lines = prompt_change_title(
        campaign, n, kind=kind, resolve=resolve, add_steps=add_steps, status_text=status_text
    )
    prompt_lines.append(f"last_session: {max(n, camp.last_session)}, revision {new_camp.revision}")
    prompt_message = _render_message(
        ws,
        new_camp,
        {
            "change": "prompt",
            "title": prompt_title,
            "summary": None,
            "reason": None,
            "goal": None,
            "results_table": "",
            "diffstat": "",
            "force_reason": None,
            "prompt_changes": prompt_lines,
            "trailers": [
                {"key": "Session", "value": str(n)},
                {"key": "Prompt-Revision", "value": str(new_camp.revision)},
            ],
        },
    )
    return ClosePlan(
        kind=kind,
        campaign=campaign,
        session=n,
        step_id=session.step_id,
        step_title=step_title,
        diagnostic=session.diagnostic,
        vcs=vcs.kind,
        log_path=log_rel,
        log_text=log_text,
        entry=entry,
        yaml_path=yaml_rel,
        yaml_text=yaml_text,
        md_path=md_rel,
        md_text=md_text,
        code=ChangePlan(code_title, code_message, tuple([*code, log_rel])),
        prompt=ChangePlan(prompt_title, prompt_message, (yaml_rel, md_rel)),
        left_out=tuple(left_out),
        discard=tuple(to_discard),
        kept=tuple(kept),
        discard_patch=patch_rel,
        set_aside=tuple(aside),
        set_aside_to=set_aside_to,
        results=tuple(rows),
        verdict=verdict,
        warnings=tuple(warnings),
        missing=tuple(missing),
        force_reason=force_reason,
        resolved=resolve,
        added_steps=tuple(s.id for s in add_steps),
        revision=new_camp.revision,
        md_hand_edited=md_hand_edited,
        judgements=tuple(j.to_dict() for j in judgements),
    )


def text_sha(text: str) -> str:
    """A short digest of a text (to notice hand edits without re-rendering)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _include_rel(vcs: Vcs, ws: Workspace, path: str | Path) -> str:
    p = Path(path)
    return relpath(vcs, p if p.is_absolute() else ws.root / p)


def _render_message(ws: Workspace, campaign: Any, context: dict[str, Any]) -> str:
    from sessionctl.render import render_template

    text = render_template(COMMIT_TEMPLATE, context, ws=ws, campaign=campaign)
    return perflog.collapse(text).strip("\n") + "\n"
