"""The campaign's performance log: ``logs/<campaign>-perf-log.md``, one entry per session.

Entries are rendered from ``templates/log-entry.md.j2`` (user-overridable) and appended; an
existing hand-written log is kept byte for byte, entries only go after it. The helpers here
also format what an entry and a commit message share: the results table and the diff stat.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sessionctl.files import atomic_write
from sessionctl.measurement import Measurement, Value
from sessionctl.units import format_number
from sessionctl.vcs.base import NumStat
from sessionctl.workspace import Workspace

LOG_TEMPLATE = "log-entry.md.j2"


@dataclass(frozen=True)
class ResultRow:
    """One line of the before/after table: a value both the baseline and the re-measure have."""

    name: str
    unit: str
    better: str | None
    before: float
    after: float
    verdict: str = "n/a"
    ci_low: float | None = None
    ci_high: float | None = None
    method: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.before == 0 or math.isnan(self.before) or math.isnan(self.after):
            return None
        return self.after / self.before

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ResultRow:
        def opt(key: str) -> float | None:
            v = d.get(key)
            return None if v is None else float(v)

        return cls(
            name=str(d["name"]),
            unit=str(d.get("unit") or ""),
            better=d.get("better"),
            before=float(d["before"]),
            after=float(d["after"]),
            verdict=str(d.get("verdict") or "n/a"),
            ci_low=opt("ci_low"),
            ci_high=opt("ci_high"),
            method=d.get("method"),
        )


def format_value(value: float, unit: str) -> str:
    """``307,123 qps``, ``3.2 ms``."""
    text = format_number(value)
    return f"{text} {unit}" if unit else text


def format_delta(row: ResultRow) -> str:
    """Signed percent change, or n/a when the baseline is zero."""
    ratio = row.ratio
    return "n/a" if ratio is None else f"{(ratio - 1) * 100:+.1f}%"


def results_table(rows: Sequence[ResultRow]) -> str:
    """The markdown before/after/delta/verdict table (empty string when there is nothing)."""
    if not rows:
        return ""
    lines = ["| metric | before | after | delta | verdict |", "|---|---:|---:|---:|---|"]
    for r in rows:
        verdict = r.verdict
        if r.ci_low is not None and r.ci_high is not None:
            verdict += f" (95% CI {(r.ci_low - 1) * 100:+.1f}%..{(r.ci_high - 1) * 100:+.1f}%)"
        lines.append(
            f"| `{r.name}` | {format_value(r.before, r.unit)} | {format_value(r.after, r.unit)} "
            f"| {format_delta(r)} | {verdict} |"
        )
    return "\n".join(lines)


def format_diffstat(stats: Iterable[NumStat]) -> str:
    """A git-style diff stat: one ``path | +A -R`` line per file and a total line."""
    stats = list(stats)
    if not stats:
        return ""
    width = max(len(s.path) for s in stats)
    lines = []
    added = removed = 0
    for s in stats:
        if s.added is None:
            lines.append(f"{s.path.ljust(width)} | binary")
            continue
        added += s.added
        removed += s.removed or 0
        lines.append(f"{s.path.ljust(width)} | +{s.added} -{s.removed or 0}")
    n = len(stats)

    def pl(k: int) -> str:
        return "" if k == 1 else "s"

    lines.append(
        f"{n} file{pl(n)} changed, {added} insertion{pl(added)}(+), "
        f"{removed} deletion{pl(removed)}(-)"
    )
    return "\n".join(lines)


# --- results: the before/after rows a baseline and a re-measure share ------------------------

_THROUGHPUT = re.compile(r"^(qps|tps|ops|throughput|rps)", re.IGNORECASE)


def latest_values(measurements: Sequence[Measurement], phase: str) -> dict[str, tuple[str, Value]]:
    """Each value name's latest (benchmark, value) among the ``phase`` measurements."""
    out: dict[str, tuple[str, Value]] = {}
    for m in measurements:
        if m.phase == phase:
            for v in m.values:
                out[v.name] = (m.name, v)
    return out


def results(
    measurements: Sequence[Measurement], compare: Any, *, judge: bool = True
) -> tuple[list[ResultRow], list[str], list[dict[str, Any]]]:
    """Rows for every value name baseline and re-measure share, their warnings and judgements.

    ``judge=False`` skips the statistics (verdicts read "n/a"): for quick previews.
    """
    before = latest_values(measurements, "baseline")
    after = latest_values(measurements, "remeasure")
    judgements, warnings = _judge(measurements, compare) if judge else ({}, [])
    rows = []
    for name, (bench, b) in before.items():
        if name not in after:
            continue
        a = after[name][1]
        # The verdict module labels a value "bench:name" when several benchmarks share it.
        j = judgements.get(name) or judgements.get(f"{bench}:{name}")
        rows.append(
            ResultRow(
                name=name,
                unit=b.unit or a.unit,
                better=b.better or a.better,
                before=b.value,
                after=a.value,
                verdict=str(j.verdict) if j is not None else "n/a",
                ci_low=getattr(j, "ci_low", None),
                ci_high=getattr(j, "ci_high", None),
                method=getattr(j, "method", None),
            )
        )
    judged = [j.to_dict() for j in judgements.values()]
    return rows, warnings, judged


def _judge(measurements: Sequence[Measurement], compare: Any) -> tuple[dict[str, Any], list[str]]:
    """Verdicts from the verdict module (none, so "n/a", when it is not installed)."""
    try:
        from sessionctl.verdict import summarize_session
    except ModuleNotFoundError as exc:
        if exc.name == "sessionctl.verdict":
            return {}, []
        raise
    judged = summarize_session(list(measurements), compare=compare)
    warnings = [f"{j.metric}: {w}" for j in judged for w in j.warnings]
    return {j.metric: j for j in judged}, warnings


def primary(rows: Sequence[ResultRow]) -> ResultRow | None:
    """The row the trailers and the overall verdict speak for: throughput first."""
    for r in rows:
        if _THROUGHPUT.match(r.name):
            return r
    return rows[0] if rows else None


def measurement_view(measurements: Sequence[Measurement], phase: str) -> list[dict[str, Any]]:
    """The ``phase`` measurements as template data (summary, or values as text)."""
    return [
        {
            "name": m.name,
            "source": m.source,
            "summary_md": m.summary_md,
            "values": [{"name": v.name, "text": format_value(v.value, v.unit)} for v in m.values],
        }
        for m in measurements
        if m.phase == phase
    ]


def agent_view(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The session's latest ``agent`` entry (what ``sessionctl run`` recorded) as template data.

    None when no agent ran the session (a person did, without ``sessionctl run``).
    """
    from sessionctl.units import format_duration

    found = [e for e in entries if e.get("type") == "agent"]
    if not found:
        return None
    e = found[-1]
    cost = e.get("cost_usd")
    tokens = e.get("tokens") or {}
    inp, cached, out = (int(tokens.get(k) or 0) for k in ("input", "cached_input", "output"))
    token_text = None
    if inp or cached or out:
        token_text = f"{inp:,} in" + (f", {cached:,} cached" if cached else "") + f", {out:,} out"
    duration = float(e.get("duration_s") or 0.0)
    reason = str(e.get("exit_reason") or "unknown")
    if reason == "exited":
        code = e.get("exit_code")
        end = "exited" if code is None else f"exited with code {code}"
    else:
        end = f"stopped: {e.get('detail') or reason}"
    audit = e.get("audit") or {}
    verdict = None
    if "passed" in audit:
        verdict = "passed" if audit["passed"] else "failed"
    return {
        "preset": str(e.get("preset") or "agent"),
        "model": e.get("model"),
        "turns": int(e.get("turns") or 0),
        "cost_usd": cost,
        "cost": _usd(cost),
        "tokens": token_text,
        "duration": format_duration(round(duration) if duration >= 60 else round(duration, 1)),
        "exit_reason": reason,
        "end": end,
        "tool_calls": int(e.get("tool_calls") or 0),
        "transcript": e.get("transcript"),
        "audit": verdict,
        "problems": [str(p.get("message")) for p in audit.get("problems") or ()],
    }


def _usd(value: float | None) -> str:
    if value is None:
        return "cost n/a"
    return f"${value:.2f}" if value == 0 or abs(value) >= 0.01 else f"${value:.4f}"


def trailers(
    *,
    session: int,
    step_id: str | None,
    kind: str,
    verdict: str | None,
    main: ResultRow | None,
    force_reason: str | None,
) -> list[tuple[str, str]]:
    """Machine-readable trailers for change #1 (``Session: 47``, ``Baseline-QPS: ...``)."""
    out = [("Session", str(session))]
    if step_id:
        out.append(("Step", step_id))
    out.append(("Session-Kind", kind))
    if verdict is not None:
        out.append(("Verdict", verdict))
    if main is not None:
        base = main.name.split("@", 1)[0].split("{", 1)[0]
        key = re.sub(r"[^A-Za-z0-9]+", "-", base).strip("-").upper() or "VALUE"
        if key != main.name.upper():
            out.append(("Metric", main.name))
        for side, value in (("Baseline", main.before), ("After", main.after)):
            text = f"{value:.6g}"
            if main.unit and main.unit.lower() != key.lower():
                text += f" {main.unit}"
            out.append((f"{side}-{key}", text))
    if force_reason:
        out.append(("Forced", " ".join(force_reason.split())))
    return out


def collapse(text: str) -> str:
    """Collapse the blank-line runs that optional template sections leave behind."""
    return re.sub(r"\n{3,}", "\n\n", text).lstrip("\n")


# --- the log file -------------------------------------------------------------------------------


def header(title: str) -> str:
    """The first lines of a log sessionctl creates itself."""
    return f"# {title}: performance log\n\nOne entry per session, appended by `sessionctl close`.\n"


def appended(existing: str | None, entry: str, *, title: str) -> str:
    """The log's new text: ``existing`` untouched, then a blank line, then ``entry``."""
    base = header(title) if existing is None else existing
    if not base or base.endswith("\n\n"):
        sep = ""
    elif base.endswith("\n"):
        sep = "\n"
    else:
        sep = "\n\n"
    return base + sep + entry.rstrip("\n") + "\n"


def render_entry(context: Mapping[str, Any], *, ws: Workspace, campaign: Any = None) -> str:
    """Render one log entry from the template (the user's override folder wins)."""
    from sessionctl.render import render_template

    text = render_template(LOG_TEMPLATE, dict(context), ws=ws, campaign=campaign)
    return collapse(text).rstrip("\n") + "\n"


def read(ws: Workspace, campaign: str) -> str | None:
    """The log's current text, or None when there is no log yet."""
    try:
        return ws.log_path(campaign).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def append(ws: Workspace, campaign: str, entry: str, *, title: str) -> Path:
    """Append ``entry`` to the campaign's log (atomically, under the campaign lock)."""
    path = ws.log_path(campaign)
    with ws.lock(campaign):
        atomic_write(path, appended(read(ws, campaign), entry, title=title))
    return path


def has_session(text: str | None, number: int) -> bool:
    """True when the log already has a heading for session ``number`` (hand-written or ours)."""
    if not text:
        return False
    return (
        re.search(rf"^#+\s*Session\s+{number}\b", text, flags=re.MULTILINE | re.IGNORECASE)
        is not None
    )
