"""``sessionctl report``: one self-contained HTML file about a campaign's sessions.

The page holds the headline over sessions (before → after with the 95 % interval of each
session's change) and the cumulative gain as an inline SVG drawn by matplotlib, the session
table, each session's verdict, and relative links to its flame graphs and raw data where they
exist. No scripts, no fonts, no network: the SVG draws its text as paths and the CSS is inline.
matplotlib is an optional extra (``pip install 'sessionctl[report]'``) imported only here.
The page comes from ``templates/report.html.j2`` (user-overridable like every template).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessionctl.files import atomic_write
from sessionctl.history import History, SessionRow, ci_text, collect, effect_text, value_text
from sessionctl.history.text import DRIFT_NOTE
from sessionctl.workspace import Workspace

TEMPLATE = "report.html.j2"
PLOT_ID = "headline-plot"
_COLORS = {"improved": "#1a7f37", "probably improved": "#4ac26b", "regressed": "#cf222e",
           "probably regressed": "#ff8182"}  # fmt: skip
_NEUTRAL = "#57606a"


@dataclass(frozen=True)
class Written:
    """What ``report`` wrote."""

    path: Path
    size: int
    sessions: int
    plotted: int


def write(ws: Workspace, campaign: str, output: Path, *, since: int | None = None) -> Written:
    """Collect the campaign's history, plot it and write the HTML page to ``output``."""
    from sessionctl.measurement import now_iso
    from sessionctl.render import render_template

    h = collect(ws, campaign, since=since)
    svg, plotted = plot_svg(h)
    out = output if output.is_absolute() else Path.cwd() / output
    context: dict[str, Any] = {
        "campaign": campaign,
        "title": _title(ws, campaign),
        "generated": now_iso(),
        "metric": h.metric,
        "better": h.better,
        "since": since,
        "plot": _markup(svg),
        "plot_id": PLOT_ID,
        "cumulative": _cumulative_view(h),
        "rows": [_row_view(ws, r, out.parent) for r in h.rows],
        "warnings": list(h.warnings),
    }
    html = render_template(TEMPLATE, context, ws=ws)
    atomic_write(out, html)
    return Written(path=out, size=len(html.encode("utf-8")), sessions=len(h.rows),
                   plotted=plotted)  # fmt: skip


def _title(ws: Workspace, campaign: str) -> str:
    """The campaign's one-line title (the rendered prompt's heading), for the page heading."""
    from sessionctl.campaign import store

    return store.read(ws, campaign).title or campaign


def _markup(svg: str) -> Any:
    from markupsafe import Markup

    return Markup(svg)  # our own matplotlib output, stripped of its XML prologue


def _link(ws: Workspace, rel: str, folder: Path) -> str:
    return Path(os.path.relpath(ws.root / rel, folder)).as_posix()


def _row_view(ws: Workspace, r: SessionRow, folder: Path) -> dict[str, Any]:
    hd = r.headline
    return {
        "number": r.number,
        "date": r.date or "",
        "step": r.step or "",
        "title": r.title or "",
        "kind": r.kind or "",
        "outcome": r.outcome,
        "verdict": r.verdict or (hd.verdict if hd and hd.verdict else ""),
        "before": value_text(hd.before, hd.unit) if hd else "",
        "after": value_text(hd.after, hd.unit) if hd else "",
        "effect": effect_text(hd.effect) if hd and hd.effect is not None else "",
        "ci": ci_text(hd.ci) if hd else "",
        "change": r.change or "",
        "cost": f"${r.cost_usd:.2f}" if r.cost_usd is not None else "",
        "reason": r.reason or "",
        "flamegraphs": [_link(ws, f, folder) for f in r.flamegraphs],
        "raw": [_link(ws, d, folder) for d in r.raw],
    }


def _cumulative_view(h: History) -> dict[str, Any] | None:
    c = h.cumulative
    if c is None:
        return None
    return {
        "metric": c.metric,
        "first": value_text(c.first_before, c.unit),
        "last": value_text(c.last_after, c.unit),
        "effect": effect_text(c.effect),
        "compounded": effect_text(c.compounded) if c.compounded is not None else "",
        "disagree": c.signs_disagree,  # then the compounded figure leads, with DRIFT_NOTE
        "drift_note": DRIFT_NOTE,
        "sessions": c.sessions,
        "span": f"{c.first_session}–{c.last_session}",
    }


# --- the plot -------------------------------------------------------------------------------


def _pyplot() -> Any:
    from sessionctl.errors import UsageError

    try:
        import matplotlib
    except ImportError:
        raise UsageError(
            "sessionctl report needs matplotlib: pip install 'sessionctl[report]'"
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_svg(h: History) -> tuple[str, int]:
    """The headline over sessions and the cumulative gain, as inline SVG; and how many sessions
    have a point on it."""
    plt = _pyplot()
    points = [r for r in h.rows if r.headline is not None and r.headline.metric == h.metric
              and r.headline.after is not None and r.headline.before is not None]  # fmt: skip
    with plt.rc_context({"svg.fonttype": "path", "svg.hashsalt": "sessionctl",
                         "font.size": 9}):  # fmt: skip
        fig, (top, bottom) = plt.subplots(
            2, 1, figsize=(8, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
        )
        try:
            _draw_headline(top, h, points)
            _draw_cumulative(bottom, h, points)
            fig.tight_layout()
            import io

            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None})
        finally:
            plt.close(fig)
    return _inline(buf.getvalue()), len(points)


def _draw_headline(ax: Any, h: History, points: Sequence[SessionRow]) -> None:
    unit = next((r.headline.unit for r in points if r.headline and r.headline.unit), "")
    label = f"{h.metric} ({unit})" if unit else (h.metric or "headline")
    ax.set_ylabel(label)
    better = f" — {h.better} is better" if h.better else ""
    ax.set_title(f"{h.campaign}: headline per session{better}", loc="left")
    if not points:
        ax.text(0.5, 0.5, "no session has measured the headline on both sides yet",
                ha="center", va="center", transform=ax.transAxes, color=_NEUTRAL)  # fmt: skip
        return
    for r in points:
        hd = r.headline
        assert hd is not None and hd.before is not None and hd.after is not None
        kept = r.outcome == "closed"
        color = _COLORS.get(hd.verdict or "", _NEUTRAL) if kept else "#afb8c1"
        ax.plot([r.number - 0.18, r.number + 0.18], [hd.before, hd.after], color=color, lw=1)
        ax.plot(r.number - 0.18, hd.before, "o", mfc="white", mec=color, ms=5)
        err = None
        if hd.ci is not None:
            lo, hi = (hd.before * (1 + c / 100) for c in hd.ci)
            err = [[max(0.0, hd.after - lo)], [max(0.0, hi - hd.after)]]
        ax.errorbar(r.number + 0.18, hd.after, yerr=err, fmt="o", color=color, ms=5, capsize=3,
                    mfc=color if kept else "white")  # fmt: skip
    ax.plot([], [], "o", mfc="white", mec=_NEUTRAL, label="before")
    ax.plot([], [], "o", color=_NEUTRAL, label="after (95% CI)")
    ax.plot([], [], "o", color="#afb8c1", mfc="white", label="aborted / not kept")
    ax.legend(loc="best", frameon=False)
    ax.grid(axis="y", color="#eaeef2")


def _draw_cumulative(ax: Any, h: History, points: Sequence[SessionRow]) -> None:
    ax.set_xlabel("session")
    ax.set_ylabel("cumulative change (%)")
    xs: list[int] = []
    ys: list[float] = []
    total = 1.0
    for r in points:
        if r.outcome != "closed" or r.headline is None or r.headline.ratio is None:
            continue
        total *= r.headline.ratio
        xs.append(r.number)
        ys.append((total - 1) * 100)
    ax.axhline(0, color="#d0d7de", lw=1)
    if xs:
        ax.step(xs, ys, where="post", color="#0969da", lw=1.5)
        ax.plot(xs, ys, "o", color="#0969da", ms=4)
        ax.annotate(effect_text(ys[-1]), (xs[-1], ys[-1]), textcoords="offset points",
                    xytext=(6, 4), color="#0969da")  # fmt: skip
    ax.grid(axis="y", color="#eaeef2")
    numbers = [r.number for r in h.rows]
    if numbers:
        ax.set_xlim(min(numbers) - 0.7, max(numbers) + 0.7)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _inline(svg: str) -> str:
    """matplotlib's SVG document as an element to put inside HTML (no prologue, an id)."""
    start = svg.find("<svg")
    body = svg[start:]
    body = re.sub(r"<svg\b", f'<svg id="{PLOT_ID}-svg" role="img"', body, count=1)
    return body.strip()
