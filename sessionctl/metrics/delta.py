"""Before/after deltas of a scrape pair, with counter resets handled once per histogram.

PromQL corrects resets per series, which turns a restarted classic histogram into
non-cumulative garbage; here a histogram (all ``_bucket``s, ``_sum`` and ``_count`` of one label
set) is either continued or restarted as a whole. A restart shows as: any bucket or ``_count``
decreasing, a changed ``<name>_created``, or a changed ``process_start_time_seconds``. Then the
delta is the "after" value (what PromQL's ``increase`` does with two samples) and the result is
flagged: observations between the "before" scrape and the restart are lost, so it is a lower
bound. ``_sum`` is never used to detect resets (negative observations may lower it).
Series missing before count from zero (a Materialize ``*Vec`` series appears on first use);
series missing after are reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sessionctl.metrics.exposition import RESTART_FAMILY, Labels, Snapshot, label_key
from sessionctl.metrics.quantile import QuantileResult, bucket_quantile, parse_go_float

COUNTER_KINDS = ("counter", "histogram", "summary")


@dataclass(frozen=True)
class SeriesDelta:
    """One series' change between the scrapes (buckets, sums and counts included)."""

    name: str
    labels: Labels
    family: str
    kind: str
    before: float | None
    after: float | None
    delta: float
    reset: bool = False
    new: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "labels": dict(self.labels),
            "family": self.family,
            "kind": self.kind,
            "before": _j(self.before),
            "after": _j(self.after),
            "delta": _j(self.delta),
            "reset": self.reset,
            "new": self.new,
        }


@dataclass(frozen=True)
class GroupDelta:
    """One histogram (or summary) label set: its bucket, ``_sum`` and ``_count`` deltas."""

    family: str
    kind: str
    labels: Labels  # without ``le`` / ``quantile``
    buckets: tuple[tuple[str, float], ...] = ()  # (le as exposed, Δ cumulative count), ascending
    sum: float = 0.0
    count: float = 0.0
    reset: bool = False
    new: bool = False

    def bounds(self) -> list[tuple[float, float]]:
        """The buckets as ``(upper_bound, count)`` floats; unparsable ``le`` values are dropped."""
        out = []
        for le, c in self.buckets:
            ub = parse_go_float(le)
            if ub is not None:
                out.append((ub, c))
        return out

    def quantile(self, q: float) -> QuantileResult:
        """PromQL ``histogram_quantile(q, ...)`` over the bucket deltas."""
        return bucket_quantile(q, self.bounds())

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "kind": self.kind,
            "labels": dict(self.labels),
            "buckets": [[le, _j(c)] for le, c in self.buckets],
            "sum": _j(self.sum),
            "count": _j(self.count),
            "reset": self.reset,
            "new": self.new,
        }


@dataclass(frozen=True)
class Delta:
    """Everything that changed between two snapshots."""

    before_at: float
    after_at: float
    before_source: str
    after_source: str
    families: Mapping[str, str] = field(default_factory=dict)  # family name -> type
    series: tuple[SeriesDelta, ...] = ()
    groups: tuple[GroupDelta, ...] = ()
    missing: tuple[tuple[str, Labels], ...] = ()
    restarted: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def window_s(self) -> float | None:
        """Seconds between the scrapes, when both times are known."""
        if self.before_at > 0 and self.after_at > self.before_at:
            return self.after_at - self.before_at
        return None

    def select(self, family: str, labels: Mapping[str, str] | None = None) -> list[GroupDelta]:
        """Histogram/summary groups of ``family`` whose labels include all of ``labels``."""
        return [g for g in self.groups if g.family == family and _matches(g.labels, labels)]

    def select_series(
        self, name: str, labels: Mapping[str, str] | None = None
    ) -> list[SeriesDelta]:
        """Series named ``name`` (a sample name, e.g. a counter) matching ``labels``."""
        return [s for s in self.series if s.name == name and _matches(s.labels, labels)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": {"source": self.before_source, "taken_at": self.before_at},
            "after": {"source": self.after_source, "taken_at": self.after_at},
            "window_s": self.window_s,
            "restarted": self.restarted,
            "families": dict(self.families),
            "series": [s.to_dict() for s in self.series],
            "groups": [g.to_dict() for g in self.groups],
            "missing": [{"name": n, "labels": dict(lb)} for n, lb in self.missing],
            "warnings": list(self.warnings),
        }


EMPTY = Snapshot({}, 0.0, "<empty>")


def diff(before: Snapshot, after: Snapshot) -> Delta:
    """Compute per-series and per-histogram deltas from ``before`` to ``after``."""
    warnings: list[str] = []
    restarted = _restarted(before, after)
    if restarted:
        warnings.append(
            f"{RESTART_FAMILY} changed between the scrapes: the process restarted, so every "
            "counter and histogram counts from the restart (a lower bound for the window)"
        )
    kinds: dict[str, str] = {}
    for snap in (before, after):
        for fam in snap.families.values():
            kinds.setdefault(fam.name, fam.type)
    for fam in after.families.values():
        kinds[fam.name] = fam.type
    series: list[SeriesDelta] = []
    groups: list[GroupDelta] = []
    missing: list[tuple[str, Labels]] = []
    names = list(after.families) + [n for n in before.families if n not in after.families]
    for name in names:
        kind = kinds[name]
        b_idx = _index(before, name, warnings)
        a_idx = _index(after, name, warnings)
        missing.extend(k for k in b_idx if k not in a_idx)
        if kind in ("histogram", "summary"):
            g, s = _diff_groups(name, kind, before, after, b_idx, a_idx, restarted, warnings)
            groups.extend(g)
            series.extend(s)
        else:
            series.extend(_diff_plain(name, kind, before, after, b_idx, a_idx, restarted))
    return Delta(
        before_at=before.taken_at,
        after_at=after.taken_at,
        before_source=before.source,
        after_source=after.source,
        families=kinds,
        series=tuple(series),
        groups=tuple(groups),
        missing=tuple(missing),
        restarted=restarted,
        warnings=tuple(warnings),
    )


def _index(snap: Snapshot, family: str, warnings: list[str]) -> dict[tuple[str, Labels], float]:
    fam = snap.families.get(family)
    out: dict[tuple[str, Labels], float] = {}
    if fam is None:
        return out
    for name, raw, value, _ts in fam.samples:
        key = (name, label_key(raw))
        if key in out:
            warnings.append(f"{snap.source}: duplicate series {name}{{{raw}}}; kept the first")
            continue
        out[key] = value
    return out


def _restarted(before: Snapshot, after: Snapshot) -> bool:
    b = [s[2] for s in before.samples(RESTART_FAMILY)]
    a = [s[2] for s in after.samples(RESTART_FAMILY)]
    return bool(a and b) and sorted(a) != sorted(b)


def _created(snap: Snapshot, name: str) -> dict[Labels, float]:
    """``<name>_created`` values by label set (OpenMetrics, or prometheus_client's gauges)."""
    return {label_key(raw): v for _n, raw, v, _ts in snap.samples(name)}


def _diff_plain(
    family: str,
    kind: str,
    before: Snapshot,
    after: Snapshot,
    b_idx: dict[tuple[str, Labels], float],
    a_idx: dict[tuple[str, Labels], float],
    restarted: bool,
) -> Iterable[SeriesDelta]:
    counter = kind == "counter"
    created_b: dict[str, dict[Labels, float]] = {}
    created_a: dict[str, dict[Labels, float]] = {}
    for (name, labels), a in a_idx.items():
        if counter and name.endswith("_created") and name != family:
            continue  # an OpenMetrics start timestamp, not a counter value
        b = b_idx.get((name, labels))
        if b is None:
            yield SeriesDelta(name, labels, family, kind, None, a, a, new=True)
            continue
        reset = False
        if counter:
            cname = (name[:-6] if name.endswith("_total") else name) + "_created"
            if cname not in created_a:
                created_b[cname] = _created(before, cname)
                created_a[cname] = _created(after, cname)
            cb, ca = created_b[cname].get(labels), created_a[cname].get(labels)
            reset = restarted or a < b or (cb is not None and ca is not None and cb != ca)
        yield SeriesDelta(name, labels, family, kind, b, a, a if reset else a - b, reset=reset)


@dataclass
class _Group:
    buckets: dict[str, float] = field(default_factory=dict)
    sum: float | None = None
    count: float | None = None
    other: list[tuple[str, Labels, float]] = field(default_factory=list)


def _groups(family: str, kind: str, idx: dict[tuple[str, Labels], float]) -> dict[Labels, _Group]:
    strip = "le" if kind == "histogram" else "quantile"
    out: dict[Labels, _Group] = {}
    bucket, sum_, count = family + "_bucket", family + "_sum", family + "_count"
    for (name, labels), v in idx.items():
        if name == sum_:
            out.setdefault(labels, _Group()).sum = v
        elif name == count:
            out.setdefault(labels, _Group()).count = v
        elif kind == "histogram" and name == bucket:
            le = next((val for k, val in labels if k == strip), None)
            key = tuple(p for p in labels if p[0] != strip)
            if le is not None:
                out.setdefault(key, _Group()).buckets[le] = v
        elif kind == "summary" and name == family:
            key = tuple(p for p in labels if p[0] != strip)
            out.setdefault(key, _Group()).other.append((name, labels, v))
    return out


def _diff_groups(
    family: str,
    kind: str,
    before: Snapshot,
    after: Snapshot,
    b_idx: dict[tuple[str, Labels], float],
    a_idx: dict[tuple[str, Labels], float],
    restarted: bool,
    warnings: list[str],
) -> tuple[list[GroupDelta], list[SeriesDelta]]:
    b_groups = _groups(family, kind, b_idx)
    a_groups = _groups(family, kind, a_idx)
    created_b = _created(before, family + "_created")
    created_a = _created(after, family + "_created")
    groups: list[GroupDelta] = []
    series: list[SeriesDelta] = []
    for labels, a in a_groups.items():
        b = b_groups.get(labels)
        new = b is None or (not b.buckets and b.count is None and b.sum is None)
        reset = False
        where = f"{family}{_fmt(labels)}"
        if b is not None and not new:
            cb, ca = created_b.get(labels), created_a.get(labels)
            reset = (
                restarted
                or (cb is not None and ca is not None and cb != ca)
                or _lt(a.count, b.count)
                or any(_lt(v, b.buckets.get(le)) for le, v in a.buckets.items())
            )
            if b.buckets and set(a.buckets) != set(b.buckets):
                warnings.append(
                    f"{where}: bucket layout changed between the scrapes; treated as a restart"
                )
                reset = True
            if reset and not restarted:
                warnings.append(
                    f"{where}: counter reset detected; the delta counts from the restart"
                )
        base = b if (b is not None and not new and not reset) else _Group()
        ordered = sorted(a.buckets, key=_le_order)
        buckets = tuple((le, a.buckets[le] - base.buckets.get(le, 0.0)) for le in ordered)
        d_sum = (a.sum or 0.0) - (base.sum or 0.0)
        d_count = (a.count or 0.0) - (base.count or 0.0)
        groups.append(GroupDelta(family, kind, labels, buckets, d_sum, d_count, reset, new))
        _check(where, buckets, d_count, a.count is not None, reset, warnings)
        for le, d in buckets:
            lb = tuple(sorted((*labels, ("le", le))))
            bv = None if b is None else b.buckets.get(le)
            series.append(
                SeriesDelta(family + "_bucket", lb, family, kind, bv, a.buckets[le], d, reset, new)
            )
        if a.sum is not None:
            bv = None if b is None else b.sum
            series.append(
                SeriesDelta(family + "_sum", labels, family, kind, bv, a.sum, d_sum, reset, new)
            )
        if a.count is not None:
            bv = None if b is None else b.count
            series.append(
                SeriesDelta(
                    family + "_count", labels, family, kind, bv, a.count, d_count, reset, new
                )
            )
        for name, lb, v in a.other:  # summary quantiles: gauges of the lifetime, not deltas
            bv = b_idx.get((name, lb))
            series.append(
                SeriesDelta(name, lb, family, kind, bv, v, v - (bv or 0.0), False, bv is None)
            )
    return groups, series


def _check(
    where: str,
    buckets: tuple[tuple[str, float], ...],
    d_count: float,
    has_count: bool,
    reset: bool,
    warnings: list[str],
) -> None:
    """Warn about deltas that cannot be right: the +Inf bucket disagreeing with _count, or
    bucket deltas that shrink with ``le`` (an unseen restart or a torn scrape)."""
    if not buckets:
        return
    inf = next((c for le, c in buckets if parse_go_float(le) == math.inf), None)
    if inf is not None and has_count and not math.isclose(inf, d_count, rel_tol=1e-9, abs_tol=1e-9):
        warnings.append(
            f"{where}: Δ+Inf bucket {inf:g} differs from Δ_count {d_count:g} (torn scrape?)"
        )
    if not reset:
        prev = -math.inf
        for _le, c in buckets:
            if c < prev and not math.isclose(c, prev, rel_tol=1e-9):
                warnings.append(
                    f"{where}: bucket deltas decrease with le: "
                    "probably a restart between the scrapes"
                )
                break
            prev = max(prev, c)


def _lt(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a < b


def _le_order(le: str) -> tuple[int, float]:
    v = parse_go_float(le)
    return (1, 0.0) if v is None or math.isnan(v) else (0, v)


def _matches(labels: Labels, want: Mapping[str, str] | None) -> bool:
    if not want:
        return True
    have = dict(labels)
    return all(have.get(k) == v for k, v in want.items())


def _fmt(labels: Labels) -> str:
    return "{" + ",".join(f"{k}={v}" for k, v in labels) + "}" if labels else ""


def _j(v: float | None) -> float | str | None:
    if v is None:
        return None
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return v
