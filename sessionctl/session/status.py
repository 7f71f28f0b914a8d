"""Looking at the open session: phases, measurements, findings, what ``close`` would do, and what
to run next.

``status`` is a read command: it never writes to the repository or finishes an interrupted close
(it reports one, and names the command that resumes it). What it needs of the campaign is read
once and cached (:func:`campaign_facts`), so ``status`` stays fast in a large workspace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sessionctl.errors import SessionctlError
from sessionctl.session import record as store_
from sessionctl.session.record import OpenSession
from sessionctl.session.workflow import (
    OPTIMIZATION_PHASES,
    findings,
    missing_requirements,
    phase_counts,
)
from sessionctl.workspace import Workspace


@dataclass(frozen=True)
class PhaseState:
    """One workflow phase and how many entries it has so far."""

    name: str
    done: bool
    entries: int


@dataclass(frozen=True)
class SessionStatus:
    """The open session (if any), its progress, and what ``close`` would do."""

    campaign: str
    open: bool
    session: int | None = None
    step_id: str | None = None
    step_title: str | None = None
    diagnostic: bool = False
    started_at: str | None = None
    start_revision: dict[str, Any] = field(default_factory=dict)
    artifacts: str | None = None  # the baseline build `start` preserved (side A of compare)
    phases: tuple[PhaseState, ...] = ()
    measurements: tuple[dict[str, Any], ...] = ()
    findings: tuple[dict[str, Any], ...] = ()
    files: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    close_plan: dict[str, Any] | None = None
    plan_error: str | None = None
    pending_close: dict[str, Any] | None = None
    close_request: dict[str, Any] | None = None  # the agent's latest, under `sessionctl run`
    recovered: str | None = None  # always None: status never finishes a close (kept for --json)
    last_session: int | None = None
    next_step: str | None = None
    headline: str | None = None  # the campaign's headline metric (None: the default rule)
    headline_now: dict[str, Any] | None = None  # its latest baseline/re-measure values, unjudged
    commands: tuple[str, ...] = ()

    @property
    def can_close(self) -> bool:
        return self.open and not self.missing

    def to_dict(self) -> dict[str, Any]:
        # Shallow, not asdict(): the entries are plain JSON data already, and a deep copy of
        # 10k of them costs more than the rest of `status --json`.
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["phases"] = [asdict(p) for p in self.phases]
        d["measurements"] = list(self.measurements)
        d["findings"] = list(self.findings)
        d["files"] = list(self.files)
        d["missing"] = list(self.missing)
        d["commands"] = list(self.commands)
        d["can_close"] = self.can_close
        return d


# --- what to run next ------------------------------------------------------------------------


def next_commands(session: OpenSession) -> list[str]:
    """The exact commands to run next in this session, in workflow order."""
    c = session.campaign
    if session.diagnostic:
        return [
            f"sessionctl record {c} --phase profile --finding 'what you found'",
            f"sessionctl record {c} --file PATH   # attach a profile summary, a metrics diff...",
            f"sessionctl close {c} --summary 'what we learned' --add-step 'id: title'",
        ]
    resolve = f" --resolve {session.step_id}" if session.step_id else ""
    return [
        "sessionctl bench --phase baseline"
        f"   # or: sessionctl record {c} --phase baseline --metric qps=1234",
        f"sessionctl record {c} --phase profile --finding 'where the time goes'",
        "# make ONE change, then: "
        f"sessionctl record {c} --phase change --finding 'what changed and why'",
        "sessionctl bench --phase remeasure"
        f"  # or: sessionctl record {c} --phase remeasure --metric qps=1300",
        f"sessionctl close {c}{resolve} --summary 'what it did'"
        " [--include NEW_FILE] [--add-step 'id: title']",
    ]


# --- status -----------------------------------------------------------------------------------


def status(ws: Workspace, campaign: str, *, plan: bool = True) -> SessionStatus:
    """The open session's progress and what ``close`` would do.

    A read command: an interrupted close is reported (``pending_close``, and the command that
    finishes it first in ``commands``), never finished or rolled back from here.
    """
    from sessionctl.session import close as close_mod
    from sessionctl.session.request import TYPES as request_types

    pending = None
    try:
        pending = close_mod.pending(ws, campaign)
    except SessionctlError as exc:
        pending = {"journal": str(close_mod.journal_path(ws, campaign)), "error": str(exc)}
    if pending is not None:
        pending["resume"] = f"sessionctl close {campaign}"
    camp = campaign_facts(ws, campaign)  # all status needs of the campaign, cached (see there)
    session = store_.current(ws, campaign)
    top = camp.top
    if session is None:
        return SessionStatus(
            campaign=campaign,
            open=False,
            pending_close=pending,
            last_session=camp.last_session,
            next_step=top,
            headline=camp.headline_text,
            commands=(
                f"sessionctl close {campaign}"
                if pending is not None
                else f"sessionctl start {campaign}" + ("" if top else " --diagnostic"),
            ),
        )
    entries = store_.entries(ws, campaign, session.number)
    counts = phase_counts(entries)
    names = ("finding",) if session.diagnostic else OPTIMIZATION_PHASES
    phases = []
    for name in names:
        n = len(findings(entries)) if name == "finding" else counts.get(name, 0)
        phases.append(PhaseState(name=name, done=n > 0, entries=n))
    measurements = tuple(
        {
            "phase": e.get("phase"),
            "at": e.get("at"),
            "source": e["measurement"].get("source"),
            "name": e["measurement"].get("name"),
            "aa": bool((e["measurement"].get("details") or {}).get("aa")),
            "values": [
                {"name": v["name"], "value": v["value"], "unit": v.get("unit", "")}
                for v in e["measurement"].get("values", ())
            ],
        }
        for e in entries
        if e.get("type") == "measurement"
    )
    found = tuple(
        {"phase": e.get("phase"), "text": e.get("text"), "by": e.get("by"), "at": e.get("at")}
        for e in entries
        if e.get("type") == "finding"
    )
    files = tuple(str(e.get("name")) for e in entries if e.get("type") == "file")
    requests = [e for e in entries if e.get("type") in request_types]
    close_plan = None
    plan_error = None
    if plan and pending is None:
        try:
            close_plan = _plan_summary(ws, campaign, session, camp.vcs)
        except SessionctlError as exc:
            plan_error = str(exc)
    if close_plan is not None and len(close_plan["code"]["paths"]) > 1:
        # Edited code counts as the change phase even before anyone records it.
        phases = [PhaseState(p.name, True, p.entries) if p.name == "change" else p for p in phases]
    return SessionStatus(
        campaign=campaign,
        open=True,
        session=session.number,
        step_id=session.step_id,
        step_title=str(session.extra.get("step_title") or session.step_id or ""),
        diagnostic=session.diagnostic,
        started_at=session.started_at,
        start_revision=session.start_revision,
        artifacts=session.extra.get("artifacts"),
        phases=tuple(phases),
        measurements=measurements,
        findings=found,
        files=files,
        missing=tuple(missing_requirements(session, entries)),
        close_plan=close_plan,
        plan_error=plan_error,
        pending_close=pending,
        close_request=requests[-1] if requests else None,
        last_session=camp.last_session,
        next_step=top,
        headline=camp.headline_text,
        headline_now=_headline_now(measurements, camp.headline),
        commands=(
            (f"sessionctl close {campaign}",)
            if pending is not None
            else tuple(next_commands(session))
        ),
    )


def _plan_summary(ws: Workspace, campaign: str, session: OpenSession, vcs: str) -> dict[str, Any]:
    """What close would do, on the campaign's ``vcs:`` (from the cached facts: no YAML parse)."""
    from sessionctl.session.plan import preview
    from sessionctl.vcs import detect

    return preview(ws, campaign, session, vcs=detect(ws.root, prefer=vcs))


def _headline_now(
    measurements: Sequence[dict[str, Any]], metric: str | None
) -> dict[str, Any] | None:
    """The headline's latest baseline and re-measure values as recorded (no statistics: close
    judges them); None before a baseline has it."""
    if metric is None:
        return None

    def latest(phase: str) -> dict[str, Any] | None:
        found = None
        for m in measurements:
            if m["phase"] == phase:
                for v in m["values"]:
                    if metric in (v["name"], f"{m['name']}:{v['name']}"):
                        found = v
        return found

    before, after = latest("baseline"), latest("remeasure")
    if before is None:
        return None
    unit = before.get("unit") or (after or {}).get("unit") or ""
    return {"metric": metric, "before": before["value"],
            "after": after["value"] if after else None, "unit": unit}  # fmt: skip


class CampaignFacts:
    """The few campaign fields ``status`` shows: ``vcs``, ``last_session``, the top step's id."""

    __slots__ = ("better", "headline", "last_session", "top", "vcs")

    def __init__(
        self,
        vcs: str,
        last_session: int,
        top: str | None,
        headline: str | None = None,
        better: str | None = None,
    ) -> None:
        self.vcs = vcs
        self.last_session = last_session
        self.top = top
        self.headline = headline  # the campaign's headline metric: what the verdict will be on
        self.better = better

    @property
    def headline_text(self) -> str | None:
        """``p50_ms (lower is better)``."""
        if self.headline is None:
            return None
        return self.headline + (f" ({self.better} is better)" if self.better else "")


def campaign_facts(ws: Workspace, campaign: str) -> CampaignFacts:
    """``vcs``, ``last_session`` and the top next step, exactly as ``store.load`` gives them.

    Validating the YAML (ruamel, a round-trip parse, the typed model) is most of what ``status``
    would spend, so the facts are kept in ``.sessionctl/cache/`` with the exact text they were
    validated from and a fingerprint of the validating code. Any other text (edited, broken) or
    code goes through ``store.load``, so errors are reported exactly as before.
    """
    from sessionctl.campaign import cache

    key = cache.fingerprint(__file__)  # the facts are this module's reading of the campaign
    facts = cache.lookup(ws, campaign, "facts", key, _facts)
    if facts is not None:
        return facts
    from sessionctl.campaign import store

    cf = store.load(ws, campaign)
    camp = cf.campaign
    head = camp.headline
    facts = CampaignFacts(
        camp.vcs,
        camp.last_session,
        camp.next_steps[0].id if camp.next_steps else None,
        head.metric if head else None,
        head.better if head else None,
    )
    data = {
        "vcs": facts.vcs,
        "last_session": facts.last_session,
        "top": facts.top,
        "headline": facts.headline,
        "better": facts.better,
    }
    cache.save(ws, campaign, "facts", key, cf.text, data)
    return facts


def _facts(f: dict[str, Any]) -> CampaignFacts:
    return CampaignFacts(
        str(f["vcs"]), int(f["last_session"]), f["top"], f.get("headline"), f.get("better")
    )
