"""A campaign's sessions side by side: one row each, its headline before → after, and the
cumulative effect of the headline since the first session (``sessionctl history``).

Rows come from what each session left behind: the archive ``close``/``abort`` writes
(``.sessionctl/sessions/<campaign>/<N>/closed.json``) and the session's entries (agent cost,
raw data); for sessions the log has a heading for but this machine has no archive of (a fresh
clone, another machine), the code change's subject and trailers; failing those, hand-written
log entries still get a row with their number and title. Archives written before campaigns had a
``headline:`` hold no headline choice: their results rows are read with the campaign's headline
now, else with the rule that picked the verdict then (:func:`sessionctl.verdict.session.headline`).

:func:`headline_gain` is the small entry point other code uses for "this session's headline
before/after and the campaign's cumulative gain".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sessionctl.history.commits import committed_rows
from sessionctl.history.model import (
    OUTCOMES,
    Cumulative,
    Gain,
    Headline,
    History,
    SessionRow,
)
from sessionctl.history.text import (
    CSV_COLUMNS,
    TABLE_COLUMNS,
    TABLE_DROP_ORDER,
    TABLE_SHRINKS,
    ci_text,
    csv_text,
    cumulative_text,
    effect_text,
    table_columns,
    table_rows,
    value_text,
)
from sessionctl.workspace import Workspace

__all__ = [
    "CSV_COLUMNS",
    "OUTCOMES",
    "TABLE_COLUMNS",
    "TABLE_DROP_ORDER",
    "TABLE_SHRINKS",
    "Cumulative",
    "Gain",
    "Headline",
    "History",
    "SessionRow",
    "archive",
    "ci_text",
    "collect",
    "committed_rows",
    "csv_text",
    "cumulative",
    "cumulative_text",
    "effect_text",
    "headline_from_rows",
    "headline_gain",
    "session_row",
    "table_columns",
    "table_rows",
    "value_text",
]

# --- reading one session --------------------------------------------------------------------


def _pct(ratio: Any) -> float | None:
    if ratio is None:
        return None
    r = float(ratio)
    return (r - 1) * 100 if math.isfinite(r) else None


def headline_from_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    metric: str | None,
    better: str | None = None,
    judgements: Sequence[Mapping[str, Any]] = (),
) -> Headline | None:
    """The headline among a session's results rows (``ResultRow.to_dict()`` shapes).

    ``metric``: the headline's value name (``bench:name`` labels match too); None picks what
    the default rule would (highest-concurrency QPS, first throughput, first judged).
    """
    from sessionctl.verdict.session import Judgement, headline, matches

    if not rows:
        return None
    chosen: Mapping[str, Any] | None = None
    if metric:
        chosen = next((r for r in rows if matches(str(r.get("metric")), metric)), None)
    elif judgements:
        pick = headline([Judgement.from_dict(dict(j)) for j in judgements])
        if pick is not None:
            chosen = next((r for r in rows if r.get("metric") == pick.metric), None)
    if chosen is None and not metric:
        labels = [str(r.get("metric")) for r in rows]
        fake = [Judgement(metric=m, verdict="n/a") for m in labels]
        pick = headline(fake)
        chosen = rows[labels.index(pick.metric)] if pick is not None else None
    if chosen is None:
        return None
    low, high = _pct(chosen.get("ci_low")), _pct(chosen.get("ci_high"))
    return Headline(
        metric=metric or str(chosen.get("metric")),
        better=better or chosen.get("better"),
        unit=str(chosen.get("unit") or ""),
        before=_num(chosen.get("before")),
        after=_num(chosen.get("after")),
        effect=_pct(chosen.get("ratio")),
        ci=(low, high) if low is not None and high is not None else None,
        verdict=chosen.get("verdict"),
        method=chosen.get("method"),
    )


def _num(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _outcome(closed: Mapping[str, Any]) -> str:
    if closed.get("kind") != "abort":
        return "closed"
    if closed.get("retired"):
        return "retired"
    reason = str(closed.get("reason") or "")
    if not reason:  # archives written before the reason was kept: read it off the log entry
        entry = str((closed.get("plan") or {}).get("entry") or "")
        m = re.search(r"^\*\*Aborted:\*\* (.*)$", entry, flags=re.MULTILINE)
        reason = m[1] if m else ""
    return "failed" if reason.startswith("audit failed") else "aborted"


def _entries(ws: Workspace, campaign: str, number: int) -> list[dict[str, Any]]:
    from sessionctl.errors import SessionStateError
    from sessionctl.session import record

    try:
        return record.entries(ws, campaign, number)
    except (OSError, SessionStateError):
        return []


def _rel(ws: Workspace, path: str) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(ws.root.resolve()).as_posix()
        except ValueError:
            return str(p)
    return p.as_posix()


def _raw(ws: Workspace, entries: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    raw: list[str] = []
    flames: list[str] = []
    for e in entries:
        m = e.get("measurement") if e.get("type") == "measurement" else None
        folder = (m or {}).get("raw_dir")
        if not folder:
            continue
        rel = _rel(ws, str(folder))
        if rel not in raw:
            raw.append(rel)
        svg = ws.root / rel / "flamegraph.svg"
        if svg.is_file() and f"{rel}/flamegraph.svg" not in flames:
            flames.append(f"{rel}/flamegraph.svg")
    return raw, flames


def _cost(entries: Sequence[Mapping[str, Any]]) -> float | None:
    costs = [e.get("cost_usd") for e in entries if e.get("type") == "agent"]
    known = [float(c) for c in costs if c is not None]
    return sum(known) if known else None


def _change(closed: Mapping[str, Any]) -> str | None:
    made = (closed.get("commits") or {}).get("commit_code") or {}
    commit = made.get("commit")
    if not commit:
        return None
    change = made.get("change")
    return f"{str(commit)[:12]}" + (f" ({change[:12]})" if change else "")


def session_row(
    ws: Workspace,
    campaign: str,
    number: int,
    closed: Mapping[str, Any],
    *,
    metric: str | None,
    better: str | None,
) -> SessionRow:
    """The row of an archived (closed or aborted) session."""
    plan = closed.get("plan") or {}
    chosen = closed.get("headline") or {}
    entries = _entries(ws, campaign, number)
    raw, flames = _raw(ws, entries)
    use = metric or chosen.get("metric")
    head = headline_from_rows(
        closed.get("results") or plan.get("results") or (),
        metric=use,
        better=better if use == metric else chosen.get("better"),
        judgements=closed.get("judgements") or (),
    )
    if head is None and use:
        head = Headline(metric=use, better=better)  # declared, not measured this session
    kind = "diagnostic" if plan.get("diagnostic") else "optimization"
    return SessionRow(
        number=number,
        date=str(closed.get("closed_at") or "")[:10] or None,
        step=plan.get("step_id"),
        title=plan.get("step_title"),
        kind=kind,
        outcome=_outcome(closed),
        verdict=closed.get("verdict"),
        headline=head,
        change=_change(closed),
        cost_usd=_cost(entries),
        reason=closed.get("reason") or None,
        raw=tuple(raw),
        flamegraphs=tuple(flames),
    )


# --- the whole campaign ---------------------------------------------------------------------

_LOG_HEADING = re.compile(r"^#+\s*Session\s+(\d+)\b[^\n]*?(?:[:—–-]\s*(.*))?$", re.MULTILINE)


def archive(folder: Path) -> dict[str, Any] | None:
    """A session folder's archive (``closed.json``); None when it has none or it is unreadable."""
    try:
        data = json.loads((folder / "closed.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _archived(ws: Workspace, campaign: str) -> dict[int, dict[str, Any]]:
    folder = ws.session_dir(campaign)
    found: dict[int, dict[str, Any]] = {}
    if not folder.is_dir():
        return found
    for sub in folder.iterdir():
        data = archive(sub) if sub.name.isdigit() else None
        if data is not None:
            found[int(sub.name)] = data
    return found


def collect(ws: Workspace, campaign: str, *, since: int | None = None) -> History:
    """Every session of the campaign, oldest first, and the cumulative headline effect."""
    from sessionctl import perflog
    from sessionctl.campaign import store
    from sessionctl.session import record

    camp = store.read(ws, campaign)
    metric = camp.headline.metric if camp.headline else None
    better = camp.headline.better if camp.headline else None
    archived = _archived(ws, campaign)
    rows = {
        n: session_row(ws, campaign, n, closed, metric=metric, better=better)
        for n, closed in archived.items()
    }
    warnings: list[str] = []
    log_text = perflog.read(ws, campaign) or ""
    headings = list(_LOG_HEADING.finditer(log_text))
    if {int(m[1]) for m in headings} - set(rows):
        # Logged sessions this machine has no archive of: their commits may say more.
        committed = committed_rows(ws, campaign, vcs=camp.vcs, metric=metric, better=better)
        retired = {n for step in camp.retired for n in step.sessions}
        rows.update({
            n: replace(r, outcome="retired") if r.outcome == "aborted" and n in retired else r
            for n, r in committed.items() if n not in rows
        })  # fmt: skip
    for m in headings:
        n = int(m[1])
        if n not in rows:
            title = (m[2] or "").strip() or None
            rows[n] = SessionRow(number=n, title=title, outcome="logged")
    current = record.current(ws, campaign)
    if current is not None and current.number not in rows:
        rows[current.number] = SessionRow(
            number=current.number,
            date=current.started_at[:10] or None,
            step=current.step_id,
            title=str(current.extra.get("step_title") or ""),
            kind="diagnostic" if current.diagnostic else "optimization",
            outcome="open",
            cost_usd=_cost(_entries(ws, campaign, current.number)),
        )
    ordered = [rows[n] for n in sorted(rows) if since is None or n >= since]
    if metric is None:
        # No declared headline: the cumulative effect follows the most recent session's metric.
        metric = next((r.headline.metric for r in reversed(ordered) if r.headline), None)
    mixed = sorted(
        {r.headline.metric for r in ordered if r.headline and r.outcome == "closed"} - {metric}
    )
    if mixed:
        warnings.append(
            f"sessions judged on other metrics ({', '.join(mixed)}) are left out of the "
            f"cumulative effect of {metric}"
        )
    return History(
        campaign=campaign,
        metric=metric,
        better=better,
        rows=tuple(ordered),
        cumulative=cumulative(ordered, metric=metric) if metric else None,
        since=since,
        warnings=tuple(warnings),
    )


def cumulative(rows: Sequence[SessionRow], *, metric: str) -> Cumulative | None:
    """The headline's change over the kept sessions (closed, with both sides of ``metric``)."""
    kept = [
        r
        for r in rows
        if r.outcome == "closed"
        and r.headline is not None
        and r.headline.metric == metric
        and r.headline.before is not None
        and r.headline.after is not None
    ]
    if not kept:
        return None
    first, last = kept[0].headline, kept[-1].headline
    assert first is not None and last is not None
    compounded = 1.0
    for r in kept:
        ratio = r.headline.ratio if r.headline else None
        if ratio is None:
            compounded = math.nan
            break
        compounded *= ratio
    before, after = first.before, last.after
    effect = (after / before - 1) * 100 if before and after is not None else None
    return Cumulative(
        metric=metric,
        better=first.better or last.better,
        unit=first.unit or last.unit,
        first_session=kept[0].number,
        last_session=kept[-1].number,
        sessions=len(kept),
        first_before=before,
        last_after=after,
        effect=effect,
        compounded=(compounded - 1) * 100 if math.isfinite(compounded) else None,
    )


def headline_gain(
    ws: Workspace, campaign: str, number: int, *, current: Headline | None = None
) -> Gain:
    """Session ``number``'s headline before/after, and the cumulative gain up to it.

    ``current``: the session's headline when it is not archived yet (a close in progress, e.g.
    :func:`headline_from_rows` over the close plan's results); it counts as a kept session.
    """
    h = collect(ws, campaign)
    rows = [r for r in h.rows if r.number < number]
    own = next((r for r in h.rows if r.number == number), None)
    if current is not None:
        own = replace(own or SessionRow(number=number), headline=current, outcome="closed")
    if own is not None:
        rows.append(own)
    metric = h.metric or (current.metric if current else None)
    return Gain(
        headline=own.headline if own else None,
        cumulative=cumulative(rows, metric=metric) if metric else None,
    )
