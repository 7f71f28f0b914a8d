"""``history``'s text forms: values, effects, intervals, the table rows and the CSV."""

from __future__ import annotations

from typing import Any

from sessionctl.history.model import Cumulative, History


def value_text(value: float | None, unit: str = "") -> str:
    from sessionctl.units import format_number

    if value is None:
        return "n/a"
    return f"{format_number(value)} {unit}".strip()


def effect_text(effect: float | None) -> str:
    return "n/a" if effect is None else f"{effect:+.1f}%"


def ci_text(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f"{ci[0]:+.1f}%..{ci[1]:+.1f}%"


# Said when as measured and compounded disagree in sign (history, report, log entry).
DRIFT_NOTE = "opposite signs: the level drifted between sessions"


def cumulative_text(c: Cumulative, *, markdown: bool = False) -> str:
    """``p50_ms: 444 ms → 127 ms = -71.4% over 5 sessions (1-9; compounded -69.8%)``.

    When the two figures disagree in sign the compounded one (each session against its own
    baseline) leads and the line says why they differ: ``p50_ms: compounded -23.0% over 3
    sessions (2-4); first→last as measured 10 ms → 11.1 ms = +10.6% (opposite signs: ...)``.
    ``markdown``: the metric in backticks (the log entry).
    """
    metric = f"`{c.metric}`" if markdown else c.metric
    span = f"{c.first_session}-{c.last_session}" if c.sessions > 1 else str(c.first_session)
    word = "session" if c.sessions == 1 else "sessions"
    moved = f"{value_text(c.first_before, c.unit)} → {value_text(c.last_after, c.unit)}"
    if c.signs_disagree:
        return (
            f"{metric}: compounded {effect_text(c.compounded)} over {c.sessions} {word} "
            f"({span}); first→last as measured {moved} = {effect_text(c.effect)} ({DRIFT_NOTE})"
        )
    compounded = f"; compounded {effect_text(c.compounded)}" if c.compounded is not None else ""
    return (
        f"{metric}: {moved} = {effect_text(c.effect)} over {c.sessions} {word} ({span}{compounded})"
    )


TABLE_COLUMNS = ("#", "date", "step", "kind", "outcome", "headline", "effect", "95% CI",
                 "verdict", "change", "agent")  # fmt: skip
# What a narrow terminal leaves out first (empty columns always go); ``--json`` has them all.
TABLE_DROP_ORDER = ("kind", "date", "95% CI", "change", "agent")
TABLE_SHRINKS = ("step",)  # cut with an ellipsis when even the fewest columns are too wide


def table_columns(h: History) -> list[str]:
    """TABLE_COLUMNS, the headline's named with its unit when every session shares one."""
    unit = _shared_unit(h)
    return [f"headline ({unit})" if c == "headline" and unit else c for c in TABLE_COLUMNS]


def _shared_unit(h: History) -> str:
    units = {r.headline.unit for r in h.rows if r.headline is not None and r.headline.unit}
    return units.pop() if len(units) == 1 else ""


def table_rows(h: History) -> list[list[Any]]:
    """The rows of ``history``'s table (see :func:`table_columns`), as short text."""
    shared = _shared_unit(h)
    out: list[list[Any]] = []
    for r in h.rows:
        hd = r.headline
        moved = effect = ci = ""
        if hd is not None:
            unit = "" if shared else hd.unit
            moved = f"{value_text(hd.before, unit)} → {value_text(hd.after, unit)}"
            effect, ci = effect_text(hd.effect), ci_text(hd.ci)
        out.append([
            r.number, r.date or "", r.step or r.title or "", r.kind or "",
            r.outcome, moved, effect, ci, r.verdict or (hd.verdict if hd and hd.verdict else ""),
            (r.change or "")[:8], f"${r.cost_usd:.2f}" if r.cost_usd is not None else "",
        ])  # fmt: skip
    return out


CSV_COLUMNS = (
    "session", "date", "step", "title", "kind", "outcome", "verdict", "metric", "better",
    "unit", "before", "after", "effect_pct", "ci_low_pct", "ci_high_pct", "headline_verdict",
    "change", "cost_usd",
)  # fmt: skip


def csv_text(h: History) -> str:
    """The rows as CSV (one header line; numbers unformatted)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in h.rows:
        hd = r.headline
        w.writerow([
            r.number, r.date or "", r.step or "", r.title or "", r.kind or "", r.outcome,
            r.verdict or "", hd.metric if hd else "", (hd.better or "") if hd else "",
            hd.unit if hd else "", _cell(hd.before if hd else None),
            _cell(hd.after if hd else None), _cell(hd.effect if hd else None),
            _cell(hd.ci[0] if hd and hd.ci else None), _cell(hd.ci[1] if hd and hd.ci else None),
            (hd.verdict or "") if hd else "", r.change or "", _cell(r.cost_usd),
        ])  # fmt: skip
    return buf.getvalue()


def _cell(x: float | None) -> str:
    return "" if x is None else repr(round(x, 6))
