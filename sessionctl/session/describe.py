"""What a close says: the perf-log entry and the two change descriptions.

:func:`sessionctl.session.plan.build` gathers the facts (the step, the sorted working copy, the
verdicts, the campaign after the session); this module turns them into text: the log entry
(:func:`sessionctl.perflog.render_entry`), change #1's description with the results table and
trailers, and change #2's with what happened to the campaign.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sessionctl import perflog
from sessionctl.measurement import now_iso
from sessionctl.session.record import OpenSession
from sessionctl.session.workflow import NewStep, findings
from sessionctl.session.working_copy import Split
from sessionctl.workspace import Workspace

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
class CloseArgs:
    """What the person (or the agent) asked ``close``/``abort`` for."""

    kind: str
    resolve: str | None
    add_steps: Sequence[NewStep]
    status_text: str | None
    summary: str | None
    force_reason: str | None
    reason: str | None
    retired: str | None = None  # the step abort --retire moves to the retired list


@dataclass(frozen=True)
class StepText:
    """The session's next step as the campaign describes it."""

    title: str
    body: str | None = None
    effect: str | None = None


@dataclass
class WorkingCopy:
    """The working copy sorted for the plan, the diff stat of the code change, and warnings."""

    split: Split
    aside: list[str]
    aside_to: str | None
    patch: str | None
    diffstat: str
    warnings: list[str]


@dataclass
class Judged:
    """The session's verdicts: judgements, results rows, the headline verdict and trailers."""

    judgements: list[Any]
    rows: list[Any]
    warnings: list[str]
    verdict: str | None
    measured: list[tuple[str, str]]
    headline: dict[str, Any] | None = None  # metric, better, source, note (choose_headline)
    outcome: str = ""  # for the subject: 'p50_ms -50.0%, improved' (a declared headline)


def _short(text: str, limit: int = _TITLE_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def code_change_title(
    campaign: str, session: OpenSession, step_title: str, *, kind: str, outcome: str = ""
) -> str:
    """The first line of change #1's description (``outcome``: ``p50_ms -50.0%, improved``)."""
    n = session.number
    if kind == "abort":
        return f"perf({campaign}): session {n} aborted: {_short(step_title)}"
    if session.diagnostic:
        return f"perf({campaign}): session {n} (diagnostic): {_short(step_title)}"
    head = f"perf({campaign}): session {n}: "
    if not outcome:
        return head + _short(step_title)
    tail = f" ({outcome})"
    return head + _short(step_title, max(24, _TITLE_MAX - len(head) - len(tail))) + tail


def prompt_change_title(
    campaign: str,
    n: int,
    *,
    kind: str = "close",
    resolve: str | None = None,
    add_steps: Sequence[NewStep] = (),
    status_text: str | None = None,
    retire: str | None = None,
) -> tuple[str, list[str]]:
    """The first line of change #2's description, and its bullet lines."""
    lines: list[str] = []
    what: list[str] = []
    if retire:
        lines.append(f"retire next step `{retire}` (tried in session {n}, did not help)")
        what.append(f"retire {retire}")
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


def kind_word(kind: str, session: OpenSession) -> str:
    if kind == "abort":
        return "aborted"
    return "diagnostic" if session.diagnostic else "optimization"


def log_entry(
    ws: Workspace,
    campaign: str,
    session: OpenSession,
    camp: Any,
    new_camp: Any,
    step: StepText,
    wc: WorkingCopy,
    judged: Judged,
    entries: Sequence[Mapping[str, Any]],
    measurements: Sequence[Any],
    args: CloseArgs,
) -> tuple[str, str, list[str]]:
    """The perf-log entry, the whole new log text, and a warning for a repeated heading."""
    n = session.number
    split = wc.split
    warnings = []
    existing_log = perflog.read(ws, campaign)
    if perflog.has_session(existing_log, n):
        warnings.append(
            f"{split.log} already has a heading for session {n}; appending this entry anyway"
        )
    context: dict[str, Any] = {
        "session": n,
        "campaign": campaign,
        "campaign_title": camp.title,
        "title": step.title,
        "kind": kind_word(args.kind, session),
        "date": now_iso()[:10],
        "step_id": session.step_id,
        "goal": step.title,
        "step_body": step.body,
        "effect": step.effect,
        "reason": args.reason,
        "force_reason": args.force_reason,
        "baseline": perflog.measurement_view(measurements, "baseline"),
        "remeasure": perflog.measurement_view(measurements, "remeasure"),
        "profile_findings": findings(entries, "profile"),
        "change_findings": findings(entries, "change"),
        "findings": findings(entries)
        if session.diagnostic
        else findings(entries, "baseline", "remeasure"),
        "notes": [] if session.diagnostic else findings(entries, "note", None),
        "diffstat": wc.diffstat,
        "results_table": perflog.results_table(judged.rows),
        "results": [r.to_dict() for r in judged.rows],
        "verdict": judged.verdict,
        "headline_metric": (judged.headline or {}).get("metric") if judged.verdict else None,
        "retired": args.retired,
        "warnings": judged.warnings,
        "summary": args.summary,
        "attachments": [str(e.get("name")) for e in entries if e.get("type") == "file"],
        "kept": [p for p in split.kept if p not in wc.aside],
        "set_aside": wc.aside,
        "set_aside_to": wc.aside_to,
        "discarded": split.discard,
        "discard_patch": wc.patch,
        "left_out": split.left_out,
        "resolved": args.resolve,
        "added_steps": [{"id": s.id, "title": s.title} for s in args.add_steps],
        "status": args.status_text,
        # What the next session starts on (the users' entries end with "Next step: ...").
        "next_step": (
            {"id": new_camp.next_steps[0].id, "title": new_camp.next_steps[0].title}
            if new_camp.next_steps
            else None
        ),
        "agent": perflog.agent_view(entries),
    }
    from sessionctl import perflog_compact

    head = judged.headline or {}
    context |= perflog_compact.context(
        ws, new_camp, n, rows=judged.rows, headline=head.get("label"),
        measurements=measurements, entries=entries, warnings=judged.warnings,
        diffstat=wc.diffstat,
        cumulative_metric=head.get("metric") if args.kind == "close" else None,
    )  # fmt: skip
    entry = perflog.render_entry(context, ws=ws, campaign=new_camp)
    return entry, perflog.appended(existing_log, entry, title=camp.title), warnings


def describe_changes(
    ws: Workspace,
    campaign: str,
    session: OpenSession,
    camp: Any,
    new_camp: Any,
    step: StepText,
    wc: WorkingCopy,
    judged: Judged,
    args: CloseArgs,
) -> tuple[ChangePlan, ChangePlan]:
    """The two changes: the code (with the log entry), then the campaign's prompt files."""
    n = session.number
    code_title = code_change_title(
        campaign, session, step.title, kind=args.kind, outcome=judged.outcome
    )
    trailers = perflog.trailers(
        session=n,
        step_id=session.step_id,
        kind=kind_word(args.kind, session),
        verdict=judged.verdict,
        measured=judged.measured,
        force_reason=args.force_reason,
    )
    code_message = _render_message(
        ws,
        new_camp,
        {
            "change": "code",
            "title": code_title,
            "summary": args.summary,
            "reason": args.reason,
            "goal": None,
            "results_table": perflog.results_table(judged.rows),
            "diffstat": wc.diffstat,
            "force_reason": args.force_reason,
            "prompt_changes": [],
            "trailers": [{"key": k, "value": v} for k, v in trailers],
        },
    )
    prompt_title, prompt_lines = prompt_change_title(
        campaign,
        n,
        kind=args.kind,
        resolve=args.resolve,
        add_steps=args.add_steps,
        status_text=args.status_text,
        retire=args.retired,
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
    split = wc.split
    return (
        ChangePlan(code_title, code_message, (*split.code, split.log)),
        ChangePlan(prompt_title, prompt_message, (split.yaml, split.md)),
    )


def _render_message(ws: Workspace, campaign: Any, context: dict[str, Any]) -> str:
    from sessionctl.render import render_template

    text = render_template(COMMIT_TEMPLATE, context, ws=ws, campaign=campaign)
    return perflog.collapse(text).strip("\n") + "\n"
