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
from sessionctl.errors import UsageError
from sessionctl.session import record
from sessionctl.session.describe import (
    ChangePlan,
    CloseArgs,
    Judged,
    StepText,
    WorkingCopy,
    code_change_title,
    describe_changes,
    log_entry,
    prompt_change_title,
)
from sessionctl.session.record import OpenSession
from sessionctl.session.workflow import (
    NewStep,
    check_requirements,
    missing_requirements,
)
from sessionctl.session.working_copy import split_changes
from sessionctl.vcs import Vcs
from sessionctl.workspace import Workspace

if TYPE_CHECKING:  # the verdict module (statistics) is imported only when a close needs it
    from sessionctl.verdict.session import ResultRow


@dataclass
class _Prompt:
    """The campaign after the session: its YAML, model and rendering; hand edits noticed."""

    yaml_text: str
    campaign: Any
    md_text: str
    hand_edited: bool
    warnings: list[str]


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
    reason: str | None = None  # why an abort ended the session
    headline: dict[str, Any] | None = None  # metric, better, source, note (see choose_headline)
    retired: str | None = None  # the step an abort --retire moved to the retired list

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


# --- building the plan ------------------------------------------------------------------------


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
    retire: str | None = None,
) -> tuple[str, Any]:
    """The campaign YAML after closing ``session`` and the Campaign it validates to.

    ``retire``: the reason the session's step goes to the retired list (``abort --retire``).

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
    if retire and session.step_id:
        if session.step_id in {r.id for r in camp.retired}:
            pass  # retired by hand during the session (`next retire`): nothing left to move
        elif session.step_id not in {s.id for s in camp.next_steps}:
            raise UsageError(
                f"--retire: step {session.step_id!r} is no longer in next_steps "
                f"(resolved or dropped during the session); retire nothing, or add it back"
            )
        else:
            next_steps.retire_step(cf.doc, session.step_id, why=retire, session=n)
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
    metric: str | None = None,
    retire: bool = False,
    cf: Any = None,
) -> ClosePlan:
    """Compute the plan for closing (or aborting) ``session``; touches nothing.

    ``set_aside_to``: the caller moves the new files the session leaves (``kept``, except those
    in ``leave``) into that folder after the abort, and the log entry says so. ``metric``:
    judge the session on this value instead of the campaign's ``headline:``. ``retire`` (abort):
    move the session's step to the retired list, with ``reason`` as the why. ``cf``: the
    campaign file when the caller has loaded it already (it is edited in memory, not saved).

    The steps, in order: check the session's requirements, sort the working copy, judge the
    measurements, update the campaign, write the log entry, describe the two changes.
    """
    from sessionctl.campaign import store

    n = session.number
    if retire and kind == "abort" and not session.step_id:
        raise UsageError(
            f"session {n} is a diagnostic session on no step: there is nothing to retire; "
            "drop --retire"
        )
    retired = session.step_id if retire and kind == "abort" else None
    args = CloseArgs(kind, resolve, tuple(add_steps), status_text, summary, force_reason, reason,
                     retired)  # fmt: skip
    cf = store.load(ws, campaign) if cf is None else cf
    camp = cf.campaign
    entries = record.entries(ws, campaign, n)
    measurements = record.measurements(ws, campaign, n)
    missing = missing_requirements(session, entries) if kind == "close" else []
    if check:
        check_requirements(campaign, n, missing, force_reason=force_reason)
    step = _step_of(camp, session)
    wc = _sort_working_copy(ws, campaign, session, vcs, kind, include, discard, set_aside_to, leave)
    judged = _judge(session, measurements, camp, kind, metric)
    prompt = _update_campaign(ws, campaign, session, cf, args, wc.split.md)
    entry, log_text, log_warnings = log_entry(
        ws, campaign, session, camp, prompt.campaign, step, wc, judged, entries, measurements, args
    )
    code, prompt_change = describe_changes(
        ws, campaign, session, camp, prompt.campaign, step, wc, judged, args
    )
    split = wc.split
    return ClosePlan(
        kind=kind,
        campaign=campaign,
        session=n,
        step_id=session.step_id,
        step_title=step.title,
        diagnostic=session.diagnostic,
        vcs=vcs.kind,
        log_path=split.log,
        log_text=log_text,
        entry=entry,
        yaml_path=split.yaml,
        yaml_text=prompt.yaml_text,
        md_path=split.md,
        md_text=prompt.md_text,
        code=code,
        prompt=prompt_change,
        left_out=tuple(split.left_out),
        discard=tuple(split.discard),
        kept=tuple(split.kept),
        discard_patch=wc.patch,
        set_aside=tuple(wc.aside),
        set_aside_to=set_aside_to,
        results=tuple(judged.rows),
        verdict=judged.verdict,
        warnings=(*wc.warnings, *judged.warnings, *prompt.warnings, *log_warnings),
        missing=tuple(missing),
        force_reason=force_reason,
        resolved=resolve,
        added_steps=tuple(s.id for s in add_steps),
        revision=prompt.campaign.revision,
        md_hand_edited=prompt.hand_edited,
        judgements=tuple(j.to_dict() for j in judged.judgements),
        reason=reason,
        headline=judged.headline,
        retired=retired,
    )


def _step_of(camp: Any, session: OpenSession) -> StepText:
    """The title, body and effect of the session's step (as the campaign says now)."""
    for s in camp.next_steps:
        if s.id == session.step_id:
            return StepText(s.title, s.body, s.effect)
    return StepText(str(session.extra.get("step_title") or session.step_id or "diagnostic session"))


def _sort_working_copy(
    ws: Workspace,
    campaign: str,
    session: OpenSession,
    vcs: Vcs,
    kind: str,
    include: Sequence[str | Path],
    discard: bool,
    set_aside_to: str | None,
    leave: Collection[str],
) -> WorkingCopy:
    """What goes into the code change, what is left out, discarded, kept or set aside."""
    split = split_changes(ws, campaign, vcs, kind=kind, include=include, discard=discard)
    aside = [p for p in split.kept if p not in leave] if set_aside_to else []
    patch = discard_patch_path(ws, campaign, session.number) if split.discard else None
    warnings = list(split.warnings)
    start_commit = session.start_revision.get("commit")
    if vcs.kind == "git" and start_commit and vcs.checkpoint() != start_commit:
        warnings.append(
            f"HEAD moved since the session started ({str(start_commit)[:12]}): commits made "
            "during the session are not part of its change"
        )
    diffstat = (
        perflog.format_diffstat(vcs.numstat(split.code, untracked=split.untracked))
        if split.code
        else ""
    )
    return WorkingCopy(split, aside, set_aside_to, patch, diffstat, warnings)


def _judge(
    session: OpenSession, measurements: Sequence[Any], camp: Any, kind: str, metric: str | None
) -> Judged:
    """The verdicts, the results rows and their trailers: all from the verdict package.

    The session verdict is the headline's (``close --metric``, else the campaign's
    ``headline:``, else the default rule). An abort judges what it measured too: its entry
    keeps every measurement with its numbers.
    """
    from sessionctl.verdict import session as verdicts

    spec = camp.headline
    primary = metric or (spec.metric if spec else None)
    better = spec.better if spec is not None and primary == spec.metric else None
    judgements = verdicts.summarize_session(
        measurements, compare=camp.compare, primary=primary, better=better
    )
    choice = verdicts.choose_headline(
        judgements, metric=primary, source="option" if metric else "campaign"
    )
    rows = verdicts.rows_from(judgements, measurements)
    warnings = [f"{j.metric}: {w}" for j in judgements for w in j.warnings]
    verdict = None
    measured: list[tuple[str, str]] = []
    outcome = ""
    if kind == "close" and not session.diagnostic:
        verdict = choice.verdict
        measured = verdicts.trailers(judgements, measurements, choice=choice)
        if choice.judgement is None and primary:
            warnings.append(choice.note)
        if primary:  # a declared headline names its outcome in the subject
            at = [i for i, j in enumerate(judgements) if j is choice.judgement]
            effect = f" {rows[at[0]].delta_text}" if at else ""
            outcome = f"{primary}{effect}, {verdict}"
    elif kind == "abort" and primary and choice.judgement is not None:
        # No verdict for an abort, but what it measured on the headline stays in its change's
        # trailers, where `history` on a fresh clone (no .sessionctl/) reads it.
        measured = [
            (k, v) for k, v in verdicts.trailers(judgements, measurements, choice=choice)
            if k != "Verdict"
        ]  # fmt: skip
    headline = {
        "metric": choice.metric,
        "label": choice.judgement.metric if choice.judgement else None,  # 'bench:name' maybe
        "better": better if choice.metric == primary else None,
        "source": choice.source,
        "note": choice.note,
    }
    return Judged(list(judgements), list(rows), warnings, verdict, measured, headline, outcome)


def _update_campaign(
    ws: Workspace, campaign: str, session: OpenSession, cf: Any, args: CloseArgs, md_rel: str
) -> _Prompt:
    """The campaign YAML after the session, validated and rendered; hand edits of the .md."""
    from sessionctl import render

    camp = cf.campaign
    yaml_text, new_camp = updated_campaign(
        ws,
        campaign,
        session,
        cf=cf,
        resolve=args.resolve,
        add_steps=args.add_steps,
        status_text=args.status_text,
        summary=args.summary,
        retire=args.reason if args.retired else None,
    )
    md_text = render.render_prompt(new_camp, ws=ws)
    md_path = ws.rendered_path(campaign)
    if not md_path.exists():
        return _Prompt(yaml_text, new_camp, md_text, False, [])
    current_md = md_path.read_text(encoding="utf-8")
    # Unchanged since `start` rendered it (same YAML revision)? Then no render is needed to
    # know it carries no hand edits.
    untouched = session.extra.get("prompt_revision") == camp.revision and session.extra.get(
        "prompt_sha"
    ) == text_sha(current_md)
    if untouched or current_md == md_text or current_md == render.render_prompt(camp, ws=ws):
        return _Prompt(yaml_text, new_camp, md_text, False, [])
    warning = (
        f"{md_rel} has hand edits; they are kept in .sessionctl/backups/ "
        "and the file is re-rendered"
    )
    return _Prompt(yaml_text, new_camp, md_text, True, [warning])


def text_sha(text: str) -> str:
    """A short digest of a text (to notice hand edits without re-rendering)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
