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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from sessionctl.metrics.exposition import (
    RESTART_FAMILY,
    Labels,
    Snapshot,
    bucket_labels,
    gc_paused,
    label_key,
    split_label,
)
from sessionctl.metrics.quantile import QuantileResult, bucket_quantile, parse_go_float

COUNTER_KINDS = ("counter", "histogram", "summary")


class SeriesDelta(NamedTuple):
    """One series' change between the scrapes (buckets, sums and counts included).

    A named tuple, not a dataclass: a full diff of a large exposition makes 100k of these, and
    a tuple is built three times faster than a frozen dataclass (and is just as immutable)."""

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
    with gc_paused():
        return _diff(before, after)


def _diff(before: Snapshot, after: Snapshot) -> Delta:
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
        if kind in ("histogram", "summary"):
            b_groups, b_idx = _group_index(before, name, kind, warnings)
            a_groups, a_idx = _group_index(after, name, kind, warnings)
            missing.extend(_missing_groups(name, b_groups, a_groups))
            missing.extend(k for k in b_idx if k not in a_idx)
            g, s = _diff_groups(
                name, kind, before, after, b_groups, a_groups, b_idx, restarted, warnings
            )
            groups.extend(g)
            series.extend(s)
        else:
            b_idx = _index(before, name, warnings)
            a_idx = _index(after, name, warnings)
            missing.extend(k for k in b_idx if k not in a_idx)
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
            warnings.append(_duplicate(snap, name, raw))
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
    labels: dict[str, Labels] = field(default_factory=dict)  # le -> the bucket's full labels
    sum: float | None = None
    count: float | None = None
    other: list[tuple[str, Labels, float]] = field(default_factory=list)


def _group_index(
    snap: Snapshot, family: str, kind: str, warnings: list[str]
) -> tuple[dict[Labels, _Group], dict[tuple[str, Labels], float]]:
    """A histogram's (or summary's) samples as groups by label set (without ``le``/``quantile``),
    plus every other sample of the family by (name, labels). Bucket label text is split once per
    distinct text (cached), so the after scrape, which repeats the before one's, costs a look-up."""
    groups: dict[Labels, _Group] = {}
    other: dict[tuple[str, Labels], float] = {}
    fam = snap.families.get(family)
    if fam is None:
        return groups, other
    bucket, sum_, count = family + "_bucket", family + "_sum", family + "_count"
    histogram = kind == "histogram"
    last_key: Labels | None = None
    g = _Group()
    for name, raw, value, _ts in fam.samples:
        if histogram and name == bucket:
            key, le, full = bucket_labels(raw)
            if le is not None:
                # A series' buckets come in a row and share one cached key: skip the hashing.
                if key is not last_key:
                    found = groups.get(key)
                    if found is None:
                        found = groups[key] = _Group()
                    g, last_key = found, key
                if le in g.buckets:
                    warnings.append(_duplicate(snap, name, raw))
                    continue
                g.buckets[le] = value
                g.labels[le] = full
                continue
        elif name in (sum_, count):
            key = label_key(raw)
            sc = groups.get(key)
            if sc is None:
                sc = groups[key] = _Group()
            if (sc.sum if name == sum_ else sc.count) is not None:
                warnings.append(_duplicate(snap, name, raw))
                continue
            if name == sum_:
                sc.sum = value
            else:
                sc.count = value
            continue
        labels = label_key(raw)
        if (name, labels) in other:
            warnings.append(_duplicate(snap, name, raw))
            continue
        other[(name, labels)] = value
        if not histogram and name == family:
            key, _q = split_label(labels, "quantile")
            groups.setdefault(key, _Group()).other.append((name, labels, value))
    return groups, other


def _duplicate(snap: Snapshot, name: str, raw: str) -> str:
    return f"{snap.source}: duplicate series {name}{{{raw}}}; kept the first"


def _missing_groups(
    family: str, before: dict[Labels, _Group], after: dict[Labels, _Group]
) -> Iterator[tuple[str, Labels]]:
    """Bucket, ``_sum`` and ``_count`` series of ``before`` that ``after`` no longer has."""
    for key, b in before.items():
        a = after.get(key)
        for le, full in b.labels.items():
            if a is None or le not in a.buckets:
                yield family + "_bucket", full
        if b.sum is not None and (a is None or a.sum is None):
            yield family + "_sum", key
        if b.count is not None and (a is None or a.count is None):
            yield family + "_count", key


def _diff_groups(
    family: str,
    kind: str,
    before: Snapshot,
    after: Snapshot,
    b_groups: dict[Labels, _Group],
    a_groups: dict[Labels, _Group],
    b_idx: dict[tuple[str, Labels], float],
    restarted: bool,
    warnings: list[str],
) -> tuple[list[GroupDelta], list[SeriesDelta]]:
    created_b = _created(before, family + "_created")
    created_a = _created(after, family + "_created")
    groups: list[GroupDelta] = []
    series: list[SeriesDelta] = []
    add = series.append
    new_tuple = tuple.__new__
    empty = _Group()
    bucket_name, sum_name, count_name = family + "_bucket", family + "_sum", family + "_count"
    for labels, a in a_groups.items():
        b = b_groups.get(labels)
        new = b is None or (not b.buckets and b.count is None and b.sum is None)
        reset = False
        if b is not None and not new:
            cb, ca = created_b.get(labels), created_a.get(labels)
            b_buckets = b.buckets
            reset = (
                restarted
                or (cb is not None and ca is not None and cb != ca)
                or _lt(a.count, b.count)
                or any(v < b_buckets.get(le, v) for le, v in a.buckets.items())
            )
            if b_buckets and a.buckets.keys() != b_buckets.keys():
                warnings.append(
                    f"{family}{_fmt(labels)}: bucket layout changed between the scrapes; "
                    "treated as a restart"
                )
                reset = True
            if reset and not restarted:
                warnings.append(
                    f"{family}{_fmt(labels)}: counter reset detected; "
                    "the delta counts from the restart"
                )
        base = b if (b is not None and not new and not reset) else empty
        a_buckets, base_buckets = a.buckets, base.buckets
        ordered = sorted(a_buckets, key=_le_order) if a_buckets else ()
        buckets = tuple([(le, a_buckets[le] - base_buckets.get(le, 0.0)) for le in ordered])
        d_sum = (a.sum or 0.0) - (base.sum or 0.0)
        d_count = (a.count or 0.0) - (base.count or 0.0)
        groups.append(GroupDelta(family, kind, labels, buckets, d_sum, d_count, reset, new))
        if buckets:
            _check(family, labels, buckets, d_count, a.count is not None, reset, warnings)
        b_buckets_of: dict[str, float] = {} if b is None else b.buckets
        b_get = b_buckets_of.get
        a_labels = a.labels
        # tuple.__new__ with all nine fields: a third of SeriesDelta(...)'s cost, 56k times.
        for le, d in buckets:
            row = (bucket_name, a_labels[le], family, kind, b_get(le), a_buckets[le], d, reset, new)
            add(new_tuple(SeriesDelta, row))
        if a.sum is not None:
            bv = None if b is None else b.sum
            row = (sum_name, labels, family, kind, bv, a.sum, d_sum, reset, new)
            add(new_tuple(SeriesDelta, row))
        if a.count is not None:
            bv = None if b is None else b.count
            row = (count_name, labels, family, kind, bv, a.count, d_count, reset, new)
            add(new_tuple(SeriesDelta, row))
        for name, lb, v in a.other:  # summary quantiles: gauges of the lifetime, not deltas
            bv = b_idx.get((name, lb))
            add(SeriesDelta(name, lb, family, kind, bv, v, v - (bv or 0.0), False, bv is None))
    return groups, series


def _check(
    family: str,
    labels: Labels,
    buckets: tuple[tuple[str, float], ...],
    d_count: float,
    has_count: bool,
    reset: bool,
    warnings: list[str],
) -> None:
    """Warn about deltas that cannot be right: the +Inf bucket disagreeing with _count, or
    bucket deltas that shrink with ``le`` (an unseen restart or a torn scrape)."""
    # Sorted by le: +Inf is last, or just before unparsable bounds.
    inf = next((c for le, c in reversed(buckets) if _le_order(le) == _INF_ORDER), None)
    if (
        has_count
        and inf is not None
        and inf != d_count
        and not math.isclose(inf, d_count, rel_tol=1e-9, abs_tol=1e-9)
    ):
        warnings.append(
            f"{family}{_fmt(labels)}: Δ+Inf bucket {inf:g} differs from Δ_count {d_count:g} "
            "(torn scrape?)"
        )
    if not reset:
        prev = -math.inf
        for _le, c in buckets:
            if c < prev and not math.isclose(c, prev, rel_tol=1e-9):
                warnings.append(
                    f"{family}{_fmt(labels)}: bucket deltas decrease with le: "
                    "probably a restart between the scrapes"
                )
                break
            if c > prev:
                prev = c


def _lt(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a < b


_INF_ORDER = (0, math.inf)


@lru_cache(maxsize=4096)
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
