"""The campaign's performance log: ``logs/<campaign>-perf-log.md``, one entry per session.

Entries are rendered from ``templates/log-entry.md.j2`` (user-overridable) and appended; an
existing hand-written log is kept byte for byte, entries only go after it. The helpers here
also format what an entry and a commit message share: the results table and the diff stat.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sessionctl.files import atomic_write
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

    return (
        render_template(LOG_TEMPLATE, dict(context), ws=ws, campaign=campaign).rstrip("\n") + "\n"
    )


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
    import re

    return (
        re.search(rf"^#+\s*Session\s+{number}\b", text, flags=re.MULTILINE | re.IGNORECASE)
        is not None
    )
