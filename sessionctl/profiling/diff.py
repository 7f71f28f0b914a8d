"""Compare profiles: what moved per query between two runs, and what grows with concurrency.

Both comparisons normalise by queries, never by raw sample counts: a run that served more
queries takes more samples everywhere, and only "samples per query" says whether a function got
cheaper. When either side does not know its query count, we fall back to shares of all samples
(and say so), which still answers "did the hotspot shrink relative to everything else".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sessionctl.errors import UsageError
from sessionctl.profiling.report import (
    Profile,
    fmt,
    focus_matcher,
    function_totals,
    matched_samples,
)

By = Literal["self", "incl"]


def _normalizer(profiles: Sequence[Profile]) -> tuple[str, list[float]]:
    """Per query when every profile knows its queries, else per sample (shares)."""
    if all(p.queries for p in profiles):
        return "query", [float(p.queries or 1) for p in profiles]
    return "sample", [float(p.samples or 1) for p in profiles]


@dataclass(frozen=True)
class DiffRow:
    """One function (or focus/group) in both profiles: self and inclusive, per unit."""

    name: str
    a_self: float
    b_self: float
    a_incl: float
    b_incl: float

    @property
    def d_self(self) -> float:
        return self.b_self - self.a_self

    @property
    def d_incl(self) -> float:
        return self.b_incl - self.a_incl

    def delta(self, by: By) -> float:
        return self.d_self if by == "self" else self.d_incl

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "a_self": self.a_self,
            "b_self": self.b_self,
            "d_self": self.d_self,
            "a_incl": self.a_incl,
            "b_incl": self.b_incl,
            "d_incl": self.d_incl,
        }


@dataclass(frozen=True)
class ProfileDiff:
    """B minus A, per query (or per sample), sorted by the absolute change."""

    a_label: str
    b_label: str
    unit: str  # "query" or "sample"
    by: By
    a_total: float  # samples per unit in A (1.0 when unit == "sample")
    b_total: float
    rows: tuple[DiffRow, ...]
    focus: tuple[DiffRow, ...] = ()
    groups: tuple[DiffRow, ...] = ()

    def gained(self, n: int = 10) -> list[DiffRow]:
        return [r for r in self.rows if r.delta(self.by) > 0][:n]

    def lost(self, n: int = 10) -> list[DiffRow]:
        return [r for r in self.rows if r.delta(self.by) < 0][:n]

    def to_dict(self, *, top: int = 30) -> dict[str, Any]:
        return {
            "a": self.a_label,
            "b": self.b_label,
            "unit": self.unit,
            "by": self.by,
            "a_samples_per_unit": self.a_total,
            "b_samples_per_unit": self.b_total,
            "rows": [r.to_dict() for r in self.rows[:top]],
            "focus": [r.to_dict() for r in self.focus],
            "groups": [r.to_dict() for r in self.groups],
        }

    def to_markdown(self, *, top: int = 15) -> str:
        per = f"samples/{self.unit}"
        d = self.b_total - self.a_total
        lines = [
            f"Profile diff {self.a_label} → {self.b_label}: "
            f"{fmt(self.a_total)} → {fmt(self.b_total)} "
            f"{per} ({_signed(d)}, {_rel(d, self.a_total)}).",
            "",
            f"**Largest changes by {self.by} {per}**",
            "",
            f"| function | A {self.by} | B {self.by} | Δ | Δ % | A incl | B incl | Δ incl |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows[:top]:
            a, b = (r.a_self, r.b_self) if self.by == "self" else (r.a_incl, r.b_incl)
            lines.append(
                f"| `{_md(r.name)}` | {fmt(a)} | {fmt(b)} | {_signed(b - a)} | {_rel(b - a, a)} "
                f"| {fmt(r.a_incl)} | {fmt(r.b_incl)} | {_signed(r.d_incl)} |"
            )
        lines.append("")
        for title, rows in (("Focus functions", self.focus), ("Groups", self.groups)):
            if not rows:
                continue
            lines += [
                f"**{title}** (inclusive {per})",
                "",
                "| name | A | B | Δ | Δ % |",
                "|---|---:|---:|---:|---:|",
            ]
            lines += [
                f"| `{_md(r.name)}` | {fmt(r.a_incl)} | {fmt(r.b_incl)} | {_signed(r.d_incl)} "
                f"| {_rel(r.d_incl, r.a_incl)} |"
                for r in rows
            ]
            lines.append("")
        if self.unit == "sample":
            lines.append(
                "> note: a query count is missing on one side: figures are shares of all samples"
            )
        return "\n".join(lines).rstrip() + "\n"


def _signed(x: float) -> str:
    return ("+" if x > 0 else "") + fmt(x)


def _rel(d: float, base: float) -> str:
    if base:
        return f"{d / base:+.0%}"
    return "new" if d else "—"


def _md(name: str) -> str:
    short = name if len(name) <= 80 else name[:77] + "…"
    return short.replace("|", "\\|").replace("`", "'")


def diff_profiles(
    a: Profile,
    b: Profile,
    *,
    by: By = "self",
    focus: Iterable[str] = (),
    groups: Mapping[str, str] | None = None,
) -> ProfileDiff:
    """Compare ``b`` against baseline ``a``: every function's change per query, largest first."""
    if by not in ("self", "incl"):
        raise UsageError(f"--by {by}: use self or incl")
    unit, (na, nb) = _normalizer([a, b])
    a_self, a_incl = function_totals(a)
    b_self, b_incl = function_totals(b)
    names = set(a_incl) | set(b_incl)
    rows = [
        DiffRow(n, a_self[n] / na, b_self[n] / nb, a_incl[n] / na, b_incl[n] / nb) for n in names
    ]
    rows.sort(key=lambda r: (-abs(r.delta(by)), r.name))

    def matched(name: str, pattern: Any) -> DiffRow:
        ai, as_ = matched_samples(a, pattern)
        bi, bs = matched_samples(b, pattern)
        return DiffRow(name, as_ / na, bs / nb, ai / na, bi / nb)

    focus_rows = tuple(matched(f, focus_matcher(f)) for f in focus)
    group_rows = tuple(matched(g, re.compile(p)) for g, p in (groups or {}).items())
    return ProfileDiff(
        a_label=a.label or "A",
        b_label=b.label or "B",
        unit=unit,
        by=by,
        a_total=a.samples / na,
        b_total=b.samples / nb,
        rows=tuple(rows),
        focus=focus_rows,
        groups=group_rows,
    )


# --- concurrency sweeps ---------------------------------------------------------------------


@dataclass(frozen=True)
class SweepRow:
    """One function's samples per query at each concurrency level of a sweep."""

    name: str
    per_query: tuple[float, ...]

    @property
    def growth(self) -> float:
        """Change from the lowest to the highest concurrency (samples per query)."""
        return self.per_query[-1] - self.per_query[0]

    @property
    def ratio(self) -> float | None:
        return self.per_query[-1] / self.per_query[0] if self.per_query[0] else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "per_query": list(self.per_query),
            "growth": self.growth,
            "ratio": self.ratio,
        }


@dataclass(frozen=True)
class Sweep:
    """Per-query samples across concurrency levels; rows sorted by growth, largest first."""

    concurrency: tuple[int, ...]
    unit: str
    by: By
    totals: tuple[float, ...]
    rows: tuple[SweepRow, ...]

    def to_dict(self, *, top: int = 30) -> dict[str, Any]:
        return {
            "concurrency": list(self.concurrency),
            "unit": self.unit,
            "by": self.by,
            "samples_per_unit": list(self.totals),
            "rows": [r.to_dict() for r in self.rows[:top]],
        }

    def to_markdown(self, *, top: int = 15) -> str:
        cols = " | ".join(f"c{c}" for c in self.concurrency)
        lines = [
            f"**What grows per {self.unit} with concurrency** ({self.by} samples/{self.unit})",
            "",
            f"| function | {cols} | growth | × |",
            "|---|" + "---:|" * (len(self.concurrency) + 2),
            f"| (all samples) | {' | '.join(fmt(t) for t in self.totals)} | "
            f"{_signed(self.totals[-1] - self.totals[0])} "
            f"| {_ratio(self.totals[0], self.totals[-1])} |",
        ]
        for r in self.rows[:top]:
            lines.append(
                f"| `{_md(r.name)}` | {' | '.join(fmt(v) for v in r.per_query)} "
                f"| {_signed(r.growth)} "
                f"| {_ratio(r.per_query[0], r.per_query[-1])} |"
            )
        return "\n".join(lines) + "\n"


def _ratio(a: float, b: float) -> str:
    return f"{b / a:.2f}" if a else "new"


def sweep(profiles: Sequence[Profile], *, by: By = "self") -> Sweep:
    """Line up profiles taken at increasing concurrency; rank functions by per-query growth."""
    if len(profiles) < 2:
        raise UsageError("a concurrency sweep needs profiles at two or more concurrency levels")
    seen: dict[int, str] = {}
    for p in profiles:
        if not p.concurrency:
            raise UsageError(
                f"sweep: {p.label or 'a profile'} has no concurrency recorded; pass profile "
                "folders written by `sessionctl profile` (one per concurrency level)"
            )
        if p.concurrency in seen:
            raise UsageError(
                f"sweep: {seen[p.concurrency]} and {p.label} are both at c{p.concurrency}; a sweep "
                "needs one profile per concurrency level (`sessionctl profile diff` compares two)"
            )
        seen[p.concurrency] = p.label or "a profile"
    ordered = sorted(profiles, key=lambda p: p.concurrency or 0)
    unit, norms = _normalizer(ordered)
    counters = [function_totals(p)[0 if by == "self" else 1] for p in ordered]
    names = set().union(*counters)
    rows = [
        SweepRow(n, tuple(c[n] / k for c, k in zip(counters, norms, strict=True))) for n in names
    ]
    rows.sort(key=lambda r: (-r.growth, r.name))
    return Sweep(
        concurrency=tuple(p.concurrency or 0 for p in ordered),
        unit=unit,
        by=by,
        totals=tuple(p.samples / k for p, k in zip(ordered, norms, strict=True)),
        rows=tuple(rows),
    )
