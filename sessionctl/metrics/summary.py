"""Per-operation statistics from a scrape delta: the numbers a perf log entry needs.

For each campaign :class:`~sessionctl.campaign.model.MetricSpec` the label filter selects series,
``by`` splits them (e.g. by ``step``), and every group becomes a few ``Value`` s named
``<metric>{k=v,...}.<stat>_<unit>``: ``count`` (Δ_count), ``rate`` (per second), ``mean``
(Δ_sum/Δ_count), ``pNN`` (PromQL ``histogram_quantile`` over Δbuckets), ``sum``, and with
``per_query`` the seconds spent per query executed. The time unit of a histogram is fixed by its
bucket layout (µs when the lowest bound is below 1 ms), never by the measured value, so a
baseline and a re-measure always produce the same value names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sessionctl.measurement import Value
from sessionctl.metrics.delta import Delta, GroupDelta, SeriesDelta
from sessionctl.metrics.quantile import histogram_quantile, parse_go_float


class Spec(Protocol):
    """What a statistic needs of a metric spec: a campaign's ``MetricSpec`` or an
    :class:`AdHocSpec` from the command line (which spares ``metrics diff`` the campaign model)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def by(self) -> tuple[str, ...]: ...
    @property
    def stats(self) -> tuple[str, ...]: ...
    @property
    def per_query(self) -> bool: ...


@dataclass(frozen=True)
class AdHocSpec:
    """A metric spec given on the command line (``metrics diff --metric``)."""

    name: str
    kind: str = "histogram"
    labels: dict[str, str] = field(default_factory=dict)
    by: tuple[str, ...] = ()
    stats: tuple[str, ...] = ("mean", "p50", "p99")
    per_query: bool = False


_PCT_RE = re.compile(r"p(\d+(?:\.\d+)?)")
_TIME_UNITS = (("us", "µs", 1e6), ("ms", "ms", 1e3), ("s", "s", 1.0))
TITLES = {
    "count": "count",
    "rate": "rate",
    "sum": "Σ time",
    "per_query": "time/query",
    "calls_per_query": "calls/query",
    "delta": "Δ",
}


@dataclass
class _Row:
    label: str
    cells: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def quantile_of(stat: str) -> float | None:
    """``p50`` → 0.5, ``p99`` → 0.99, ``p999`` → 0.999, ``p99.9`` → 0.999, ``p5`` → 0.05."""
    m = _PCT_RE.fullmatch(stat)
    if m is None:
        return None
    digits = m.group(1)
    if "." in digits or len(digits) <= 2:
        return float(digits) / 100
    return float("0." + digits)


@dataclass(frozen=True)
class Summary:
    """Per-operation statistics: the Values, and the same numbers as a table plus notes."""

    values: tuple[Value, ...]
    columns: tuple[str, ...]  # "metric", one per statistic shown, "notes"
    rows: tuple[tuple[str, ...], ...]  # the series label, its cells, its notes
    notes: tuple[str, ...]  # specs that matched nothing, a restart between the scrapes

    def markdown(self) -> str:
        """The table and notes as markdown (for a log entry)."""
        lines: list[str] = []
        if self.rows:
            lines.append("| " + " | ".join(self.columns) + " |")
            lines.append("|" + "---|" * len(self.columns))
            for label, *cells in self.rows:
                lines.append("| " + " | ".join([f"`{label}`", *cells]) + " |")
        lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines) + ("\n" if lines else "")


def summarize(
    delta: Delta,
    specs: Sequence[Spec],
    *,
    queries: int | None = None,
    window_s: float | None = None,
    suffix: str = "",
) -> tuple[list[Value], str]:
    """Turn a delta into ``Value`` s for each spec, plus a markdown table of them."""
    s = summary(delta, specs, queries=queries, window_s=window_s, suffix=suffix)
    return list(s.values), s.markdown()


def summary(
    delta: Delta,
    specs: Sequence[Spec],
    *,
    queries: int | None = None,
    window_s: float | None = None,
    suffix: str = "",
) -> Summary:
    """Turn a delta into ``Value`` s for each spec, and a table of them (see :class:`Summary`)."""
    window = window_s if window_s is not None else delta.window_s
    values: list[Value] = []
    rows: list[_Row] = []
    notes: list[str] = []
    for spec in specs:
        items: Sequence[GroupDelta] | Sequence[SeriesDelta]
        compute: Callable[..., list[Value]]
        if spec.kind in ("histogram", "summary"):
            items = delta.select(spec.name, spec.labels)
            compute = _group_values
        else:
            items = delta.select_series(spec.name, spec.labels)
            compute = _series_values
            if not items and spec.kind == "counter":
                items = delta.select_series(spec.name + "_total", spec.labels)
        if not items:
            notes.append(_absent(spec, delta))
            continue
        for key, members in _split(items, spec.by):
            label = _label(spec, key)
            row = _Row(label)
            values.extend(compute(spec, label, members, queries, window, suffix, row))
            rows.append(row)
    if delta.restarted:
        notes.append("the process restarted between the scrapes: deltas count from the restart")
    cols: list[str] = []
    for r in rows:
        cols.extend(c for c in r.cells if c not in cols)
    head = "metric" + (f" ({suffix.lstrip('@')})" if suffix else "")
    return Summary(
        values=tuple(values),
        columns=(head, *(TITLES.get(c, c) for c in cols), "notes"),
        rows=tuple(
            (r.label, *(r.cells.get(c, "") for c in cols), ", ".join(dict.fromkeys(r.notes)))
            for r in rows
        ),
        notes=tuple(notes),
    )


def _split(
    items: Sequence[GroupDelta] | Sequence[SeriesDelta], by: Sequence[str]
) -> list[tuple[tuple[str, ...], list[Any]]]:
    """Group items by the values of the ``by`` labels (all in one group when ``by`` is empty)."""
    out: dict[tuple[str, ...], list[Any]] = {}
    for item in items:
        labels = dict(item.labels)
        out.setdefault(tuple(labels.get(b, "") for b in by), []).append(item)
    return sorted(out.items())


def _label(spec: Spec, key: tuple[str, ...]) -> str:
    parts = [f"{k}={v}" for k, v in spec.labels.items()]
    parts += [f"{k}={v}" for k, v in zip(spec.by, key, strict=True) if v]  # empty = label absent
    return spec.name + ("{" + ",".join(parts) + "}" if parts else "")


def _time_unit(spec: Spec, groups: Sequence[GroupDelta]) -> tuple[str, str, float] | None:
    """(name suffix, display unit, factor) for seconds metrics, chosen by the bucket layout."""
    if not _is_seconds(spec.name):
        return None
    lows = [
        b
        for g in groups
        for le, _ in g.buckets
        if (b := parse_go_float(le)) is not None and 0 < b < math.inf
    ]
    low = min(lows) if lows else 0.0
    if not lows or low < 1e-3:
        return _TIME_UNITS[0]
    return _TIME_UNITS[1] if low < 1 else _TIME_UNITS[2]


def _is_seconds(name: str) -> bool:
    return name.endswith(("_seconds", "_seconds_total", "_secs"))


def _group_values(
    spec: Spec,
    label: str,
    groups: list[GroupDelta],
    queries: int | None,
    window: float | None,
    suffix: str,
    row: _Row,
) -> list[Value]:
    count = sum(g.count for g in groups)
    total = sum(g.sum for g in groups)
    merged: dict[float, float] = {}
    for g in groups:  # sum by (le), as PromQL's usual aggregation before histogram_quantile
        for ub, c in g.bounds():
            merged[ub] = merged.get(ub, 0.0) + c
    buckets = sorted(merged.items())
    unit = _time_unit(spec, groups)
    usfx, udisp, factor = unit if unit else ("", "", 1.0)
    out: list[Value] = []
    if any(g.reset for g in groups):
        row.notes.append("reset")
    if groups and all(g.new for g in groups):
        row.notes.append("new")

    def add(stat: str, value: float, disp: str, better: str | None, col: str) -> None:
        _add(out, row, f"{label}.{stat}{suffix}", value, disp, better, col)

    stats = list(spec.stats) + (
        ["per_query"] if spec.per_query and "per_query" not in spec.stats else []
    )
    for stat in stats:
        q = quantile_of(stat)
        if stat == "count":
            add("count", count, "", None, "count")
        elif stat == "rate":
            if window:
                add("rate", count / window, "/s", None, "rate")
        elif stat == "sum":
            add("sum_s" if unit else "sum", total, "s" if unit else "", "lower", "sum")
        elif stat == "mean":
            add(f"mean{_sfx(usfx)}", _ratio(total, count) * factor, udisp, "lower", "mean")
        elif q is not None:
            if spec.kind == "histogram":
                add(
                    f"{stat}{_sfx(usfx)}",
                    histogram_quantile(q, buckets) * factor,
                    udisp,
                    "lower",
                    stat,
                )
            else:
                row.notes.append(f"{stat}: summaries have no windowed quantiles")
        elif stat == "per_query":
            if queries:
                pq_unit = unit or ("", "", 1.0)
                add(
                    f"per_query{_sfx(pq_unit[0])}",
                    total / queries * pq_unit[2],
                    pq_unit[1],
                    "lower",
                    "per_query",
                )
                add("calls_per_query", count / queries, "", None, "calls_per_query")
            else:
                row.notes.append("per_query needs the query count")
        else:
            row.notes.append(f"unknown stat {stat!r}")
    if count == 0:
        row.notes.append("no observations")
    return out


def _series_values(
    spec: Spec,
    label: str,
    series: list[SeriesDelta],
    queries: int | None,
    window: float | None,
    suffix: str,
    row: _Row,
) -> list[Value]:
    total = sum(s.delta for s in series)
    seconds = _is_seconds(spec.name)
    out: list[Value] = []
    if any(s.reset for s in series):
        row.notes.append("reset")

    def add(stat: str, value: float, disp: str, better: str | None, col: str) -> None:
        _add(out, row, f"{label}.{stat}{suffix}", value, disp, better, col)

    if spec.kind == "gauge":
        add("value", sum(s.after or 0.0 for s in series), "", None, "value")
        add("delta", total, "", None, "delta")
        return out
    stats = set(spec.stats) | ({"per_query"} if spec.per_query else set())
    better = "lower" if seconds else None
    add("delta", total, "s" if seconds else "", better, "delta")  # always: the counter's own stat
    if window and ("rate" in stats or not stats & {"per_query"}):
        add("rate", total / window, "s/s" if seconds else "/s", better, "rate")
    if "per_query" in stats:
        if queries:
            if seconds:
                add("per_query_us", total / queries * 1e6, "µs", "lower", "per_query")
            else:
                add("per_query", total / queries, "", None, "per_query")
        else:
            row.notes.append("per_query needs the query count")
    return out


def _add(
    out: list[Value], row: _Row, name: str, value: float, unit: str, better: str | None, col: str
) -> None:
    """Record one statistic as a Value and as a table cell (NaN: no value, the cell says n/a)."""
    if math.isnan(value):
        row.cells.setdefault(col, "n/a")
        return
    out.append(Value(name, value, unit, better, ()))  # type: ignore[arg-type]
    row.cells[col] = _fmt(value) + (
        "" if not unit else unit if unit.startswith("/") else " " + unit
    )


def _fmt(v: float) -> str:
    """Table number: integers with thousands separators, else about four significant digits."""
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}" if a >= 100 else f"{v:.3g}"


def _sfx(unit_suffix: str) -> str:
    return "_" + unit_suffix if unit_suffix else ""


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def _absent(spec: Spec, delta: Delta) -> str:
    where = ""
    if spec.labels:
        where = " matching " + ",".join(f"{k}={v}" for k, v in spec.labels.items())
    if spec.name in delta.families:
        return f"{spec.name}: no series{where} in the scrapes (nothing observed yet?)"
    return f"{spec.name}: not exposed by the target (not in this build, or a typo?)"
