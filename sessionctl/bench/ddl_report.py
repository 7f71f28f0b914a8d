"""Turn a DDL run into numbers and tables: per-level statistics, growth fit, metric breakdown.

Value names (what a baseline and a re-measure compare):

* ``<kind>.median_ms@n3.0k``, ``.p90_ms@``, ``.max_ms@`` — probe latency at the object count
  actually measured, rounded to 2 significant figures (:func:`count_label`: ``n0``, ``n57``,
  ``n250``, ``n3.0k``, ``n12k``, ``n100k``, ``n1.5M``), never the requested level: with 3,000
  objects present, level 1,000 measures at ``@n3.0k``. Each value carries the exact count
  (``Value.objects``), and ``objects@n3.0k`` records it too. Two levels that measure at one
  count pool their probes into one value. Judging values of different counts is refused (they
  have different names; see :func:`sessionctl.verdict.session.summarize_session`).
* ``<kind>.slope_ms_per_1k`` and ``<kind>.growth_exponent`` — the growth fit over all levels.
* ``<kind>.txn_ms_per_stmt@b50`` — per-statement cost inside one transaction of 50 statements.
* ``<series>.ms_per_<kind>@n10k`` (and ``@b50``) — histogram ``Δsum / statements``: how many
  milliseconds of each statement went into that metric's labelled step.

Growth rule: a least-squares line of median latency against object count gives the slope (ms per
1k objects). The exponent ``k`` is the least-squares slope of ``ln(y - y0)`` against
``ln(x - x0)``, where ``(x0, y0)`` is the lowest level: how the latency *added* above the first
level grows with the objects *added*. Linear growth gives 1 whatever the fixed per-statement cost,
O(n^2) behaviour gives about 2. Verdicts: ``flat`` when the fitted line rises less than 10 % of
``y0`` over the measured span; otherwise, with at least two increments above the first level that
span at least 4x (e.g. levels 1k/10k/50k/100k), ``super-linear`` when ``k > 1.2``, ``linear`` for
0.8-1.2, ``sub-linear`` below; with fewer levels, ``too few levels`` (the slope is still given).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from sessionctl.measurement import Measurement, Value

if TYPE_CHECKING:
    from sessionctl.bench.ddl_population import Growth
    from sessionctl.campaign.model import MetricSpec

SUPERLINEAR = 1.2
LINEAR = 0.8
FLAT = 0.10
MIN_STEPS = 2
MIN_SPAN = 4.0


@dataclass(frozen=True)
class Stats:
    """Latency statistics of one group of probes, in milliseconds."""

    n: int
    median: float
    p90: float
    max: float
    mean: float


@dataclass(frozen=True)
class ProbeRun:
    """Timed probes of one kind at one level (what the driver in :mod:`.ddl` measured)."""

    level: int
    count: int  # object count right before the probes
    kind: str
    ms: tuple[float, ...]
    warmup_ms: float
    drop_ms: tuple[float, ...] = ()
    metrics: tuple[dict[str, Any], ...] = ()
    window: tuple[float, float] | None = None  # time.monotonic() around the timed probes


@dataclass(frozen=True)
class TxnRun:
    """One transaction of ``size`` probe statements."""

    level: int
    count: int
    kind: str
    size: int
    total_ms: float
    stmt_ms: tuple[float, ...]
    commit_ms: float
    metrics: tuple[dict[str, Any], ...] = ()

    @property
    def per_stmt_ms(self) -> float:
        return self.total_ms / self.size


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of already sorted values."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def stats(values: Sequence[float]) -> Stats:
    """Median, p90, max and mean of a sample."""
    s = sorted(values)
    if not s:
        return Stats(0, math.nan, math.nan, math.nan, math.nan)
    return Stats(len(s), quantile(s, 0.5), quantile(s, 0.9), s[-1], statistics.fmean(s))


@dataclass(frozen=True)
class Fit:
    """Latency growth against object count."""

    points: int
    slope_ms_per_1k: float
    intercept_ms: float
    exponent: float | None
    verdict: str


def fit_growth(points: Sequence[tuple[float, float]]) -> Fit:
    """Fit ``(object_count, latency_ms)`` points; see the module docstring for the rule."""
    pts = sorted((float(x), float(y)) for x, y in points if math.isfinite(y))
    if len(pts) < 2 or len({x for x, _ in pts}) < 2:
        return Fit(len(pts), math.nan, math.nan, None, "too few levels")
    slope, intercept = _least_squares(pts)
    x0, y0 = pts[0]
    steps = [(math.log(x - x0), math.log(y - y0)) for x, y in pts[1:] if x > x0 and y > y0]
    exponent = _least_squares(steps)[0] if len({x for x, _ in steps}) >= 2 else None
    rise = slope * (pts[-1][0] - x0)
    span = math.exp(max(x for x, _ in steps) - min(x for x, _ in steps)) if steps else 0.0
    if y0 > 0 and rise < FLAT * y0:
        verdict = "flat"
    elif exponent is None or len(steps) < MIN_STEPS or span < MIN_SPAN:
        verdict = "too few levels"
    elif exponent > SUPERLINEAR:
        verdict = "super-linear"
    elif exponent >= LINEAR:
        verdict = "linear"
    else:
        verdict = "sub-linear"
    return Fit(len(pts), slope * 1000.0, intercept, exponent, verdict)


def _least_squares(pts: Sequence[tuple[float, float]]) -> tuple[float, float]:
    mx = statistics.fmean(x for x, _ in pts)
    my = statistics.fmean(y for _, y in pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    slope = sxy / sxx
    return slope, my - slope * mx


def level_label(level: int) -> str:
    """``n0``, ``n500``, ``n2k``, ``n100k``: a requested level, for file names and messages."""
    if level >= 1000 and level % 1000 == 0:
        return f"n{level // 1000}k"
    return f"n{level}"


def count_label(count: int) -> str:
    """The measured object count rounded (half up) to 2 significant figures, as a key suffix.

    ``0 -> n0``, ``57 -> n57``, ``257 -> n260``, ``1000 -> n1.0k``, ``3049 -> n3.0k``,
    ``3050 -> n3.1k``, ``12_345 -> n12k``, ``100_000 -> n100k``, ``1_500_000 -> n1.5M``.
    """
    if count < 100:
        return f"n{max(0, int(count))}"
    step = 10 ** (len(str(int(count))) - 2)
    r = (int(count) + step // 2) // step * step
    for unit, size in (("M", 1_000_000), ("k", 1000)):
        if r >= size:
            return f"n{r / size:.1f}{unit}" if r < 10 * size else f"n{r // size}{unit}"
    return f"n{r}"


_AT = re.compile(r"^(?P<stem>.+)@(?P<at>n[0-9.]+[kM]?)$")


def count_key(name: str) -> tuple[str, str] | None:
    """``("table.median_ms", "n3.0k")`` for ``table.median_ms@n3.0k``; None for other names."""
    m = _AT.match(name)
    return (m["stem"], m["at"]) if m else None


# --- metric deltas per statement ------------------------------------------------------------


def per_statement(delta: Any, specs: Sequence[MetricSpec], statements: int) -> list[dict[str, Any]]:
    """One row per watched series (split by ``spec.by``): its delta divided by ``statements``.

    Histograms give ``ms_per_stmt`` (Δsum / statements: the wall-clock milliseconds of each
    statement spent in that step), ``obs_per_stmt`` (Δcount / statements), ``mean_ms``
    (Δsum / Δcount) and ``p50_ms``/``p99_ms`` per observation (PromQL quantiles). Counters of
    seconds give ``ms_per_stmt`` from their delta, other counters a count per statement.
    Series that did not move are left out: a step a statement never reaches is not part of
    its profile.
    """
    rows: list[dict[str, Any]] = []
    for spec in specs:
        if spec.kind == "histogram":
            groups: dict[str, list[Any]] = {}
            for g in delta.select(spec.name, spec.labels):
                groups.setdefault(_series_label(spec, dict(g.labels)), []).append(g)
            for label, members in sorted(groups.items()):
                d_sum = sum(g.sum for g in members)
                d_count = sum(g.count for g in members)
                if d_count <= 0:
                    continue
                rows.append(
                    {
                        "series": label,
                        "kind": "histogram",
                        "ms_per_stmt": d_sum / statements * 1000.0,
                        "obs_per_stmt": d_count / statements,
                        "mean_ms": d_sum / d_count * 1000.0,
                        "p50_ms": _quantile_ms(0.5, members),
                        "p99_ms": _quantile_ms(0.99, members),
                        "reset": any(g.reset for g in members),
                    }
                )
        elif spec.kind == "counter":
            series = delta.select_series(spec.name, spec.labels) or delta.select_series(
                f"{spec.name}_total", spec.labels
            )
            sums: dict[str, float] = {}
            resets: dict[str, bool] = {}
            for s in series:
                label = _series_label(spec, dict(s.labels))
                sums[label] = sums.get(label, 0.0) + s.delta
                resets[label] = resets.get(label, False) or s.reset
            for label, d in sorted(sums.items()):
                if d <= 0:
                    continue
                seconds = spec.name.endswith(("_seconds", "_seconds_total"))
                rows.append(
                    {
                        "series": label,
                        "kind": "counter",
                        # A counter of seconds divides into time per statement; others into counts.
                        "ms_per_stmt": d / statements * (1000.0 if seconds else 1.0),
                        "obs_per_stmt": None,
                        "mean_ms": None,
                        "unit": "ms" if seconds else "",
                        "reset": resets[label],
                    }
                )
    return rows


def _quantile_ms(q: float, groups: Sequence[Any]) -> float | None:
    """PromQL ``histogram_quantile`` over the summed bucket deltas, in ms (None when NaN)."""
    from sessionctl.metrics import histogram_quantile

    merged: dict[float, float] = {}
    for g in groups:
        for ub, c in g.bounds():
            merged[ub] = merged.get(ub, 0.0) + c
    v = histogram_quantile(q, sorted(merged.items()))
    return v * 1000.0 if math.isfinite(v) else None


def _series_label(spec: MetricSpec, labels: dict[str, str]) -> str:
    """``name{filter labels,by labels}``, named as :func:`sessionctl.metrics.summarize` does."""
    parts = [f"{k}={v}" for k, v in spec.labels.items()]
    parts += [f"{k}={labels.get(k, '')}" for k in spec.by]
    return spec.name + ("{" + ",".join(parts) + "}" if parts else "")


# --- the result -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DdlResult:
    """Everything one DDL run measured."""

    dialect: str
    count_sql: str
    initial_count: int
    final_count: int
    levels: tuple[int, ...]
    growths: tuple[Growth, ...]
    probes: tuple[ProbeRun, ...]
    txns: tuple[TxnRun, ...]
    kept_probes: bool = False
    leftovers: tuple[str, ...] = ()
    metrics_note: str | None = None

    def kinds(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.probes:
            seen.setdefault(r.kind, None)
        return list(seen)

    def fits(self) -> dict[str, Fit]:
        return {
            k: fit_growth([(r.count, stats(r.ms).median) for r in self.probes if r.kind == k])
            for k in self.kinds()
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fits"] = {k: asdict(f) for k, f in self.fits().items()}
        for g, gd in zip(self.growths, d["growths"], strict=True):
            gd["seconds_per_1k"] = g.seconds_per_1k
        return d


def values(r: DdlResult) -> tuple[Value, ...]:
    """The flat values a session compares between baseline and re-measure (keyed by the count
    measured; levels that measured at one count pool their probes)."""
    out: list[Value] = []
    groups: dict[tuple[str, str], list[ProbeRun]] = {}
    for run in r.probes:
        groups.setdefault((run.kind, count_label(run.count)), []).append(run)
    for (kind, at), runs in groups.items():
        ms = tuple(x for run in runs for x in run.ms)
        s = stats(ms)
        n = runs[0].count
        out += [
            # No samples: back-to-back probes are one block, not independent runs (judging them
            # as runs gave false verdicts); `compare` pairs blocks. The probes are in ddl.json.
            Value(f"{kind}.median_ms@{at}", s.median, "ms", "lower", (), n),
            Value(f"{kind}.p90_ms@{at}", s.p90, "ms", "lower", (), n),
            Value(f"{kind}.max_ms@{at}", s.max, "ms", "lower", (), n),
        ]
        out += _metric_values([m for run in runs for m in run.metrics], kind, at, n)
    seen: set[str] = set()
    for run in r.probes:
        at = count_label(run.count)
        if at not in seen:
            seen.add(at)
            out.append(Value(f"objects@{at}", float(run.count), "objects", None, (), run.count))
    for kind, f in r.fits().items():
        if math.isfinite(f.slope_ms_per_1k):
            out.append(
                Value(f"{kind}.slope_ms_per_1k", f.slope_ms_per_1k, "ms/1k objects", "lower")
            )
        if f.exponent is not None:
            out.append(Value(f"{kind}.growth_exponent", f.exponent, "", "lower"))
    for t in r.txns:
        out.append(
            Value(
                f"{t.kind}.txn_ms_per_stmt@b{t.size}",
                t.per_stmt_ms,
                "ms",
                "lower",
                (),  # statements of one transaction are not independent runs either
                t.count,
            )
        )
        out += _metric_values(list(t.metrics), t.kind, f"b{t.size}", t.count)
    created = sum(g.created for g in r.growths)
    if created:
        secs = sum(g.seconds for g in r.growths)
        out.append(Value("growth.s_per_1k", secs / created * 1000.0, "s/1k objects", "lower"))
    return tuple(out)


def _metric_values(rows: Sequence[dict[str, Any]], kind: str, at: str, n: int) -> list[Value]:
    """One value per metric series (the mean over pooled levels when a series appears twice)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for m in rows:
        by.setdefault(m["series"], []).append(m)
    out = []
    for ms in by.values():
        mean = statistics.fmean(m["ms_per_stmt"] for m in ms)
        v = _metric_value({**ms[0], "ms_per_stmt": mean}, kind, at)
        out.append(replace(v, objects=n))
    return out


def metric_stem(m: dict[str, Any], kind: str) -> str:
    """A per-statement metric row's value name before ``@``: ``<series>.ms_per_<kind>`` for a
    histogram in ms, ``<series>.per_<kind>`` otherwise."""
    return f"{m['series']}.{'ms_per' if m.get('unit', 'ms') == 'ms' else 'per'}_{kind}"


def _metric_value(m: dict[str, Any], kind: str, at: str) -> Value:
    name = f"{metric_stem(m, kind)}@{at}"
    if m.get("unit", "ms") == "ms":
        return Value(name, m["ms_per_stmt"], "ms", "lower")
    return Value(name, m["ms_per_stmt"], "", None)


def _ms(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


Block = dict[str, Any]  # {"text": ...} or {"title", "columns", "align", "rows"} (cells are text)


def _table(title: str, columns: Sequence[str], align: str, rows: list[list[str]]) -> Block:
    return {"title": title, "columns": list(columns), "align": align.split(), "rows": rows}


def blocks(r: DdlResult, *, md: bool = False) -> list[Block]:
    """The report as ordered text and table blocks: ``summary_md`` renders them as markdown for
    the log, the CLI as terminal tables (``md`` adds the markdown emphasis and code spans)."""

    def code(text: str) -> str:
        return f"`{text}`" if md else text

    out: list[Block] = [
        {
            "text": f"DDL latency ({r.dialect}; count {code(r.count_sql)}): "
            f"{r.initial_count:,} objects at start, {r.final_count:,} at the end."
        }
    ]
    rows = []
    for run in r.probes:
        s = stats(run.ms)
        drop = stats(run.drop_ms).median if run.drop_ms else None
        rows.append(
            [f"{run.count:,}", run.kind, _ms(s.median), _ms(s.p90), _ms(s.max), str(s.n), _ms(drop)]
        )
    out.append(
        _table(
            "Probe latency per level",
            ["objects", "statement", "median ms", "p90 ms", "max ms", "probes", "drop median ms"],
            "r l r r r r r",
            rows,
        )
    )
    fits = r.fits()
    if fits:
        rows = []
        for kind, f in fits.items():
            exp = "n/a" if f.exponent is None else f"{f.exponent:.2f}"
            verdict = f"**{f.verdict}**" if md and f.verdict == "super-linear" else f.verdict
            rows.append([kind, _ms(f.slope_ms_per_1k), exp, verdict])
        out.append(
            _table(
                "Growth with the object count",
                ["statement", "ms per 1k objects", "log-log exponent", "growth"],
                "l r r l",
                rows,
            )
        )
    if r.txns:
        rows = [
            [
                t.kind,
                str(t.size),
                _ms(t.per_stmt_ms),
                _ms(t.stmt_ms[0]),
                _ms(t.stmt_ms[-1]),
                _ms(t.commit_ms),
            ]
            for t in r.txns
        ]
        out.append(
            _table(
                f"Transaction batches at {r.txns[0].count:,} objects (BEGIN; B statements; COMMIT)",
                ["statement", "B", "ms/statement", "first ms", "last ms", "commit ms"],
                "l r r r r r",
                rows,
            )
        )
    breakdown = _breakdown_rows(r, code)
    if breakdown:
        out.append(
            _table(
                "Per-statement wall-clock breakdown "
                "(metric Δsum / statements; share of the mean latency)",
                [
                    "objects",
                    "statement",
                    "metric",
                    "ms/statement",
                    "obs/statement",
                    "ms/obs",
                    "share",
                ],
                "r l l r r r r",
                breakdown,
            )
        )
    growth = [g for g in r.growths if g.created]
    if growth:
        created = sum(g.created for g in growth)
        secs = sum(g.seconds for g in growth)
        out.append(
            {
                "text": f"Growth: created {created:,} fillers in {secs:.1f} s "
                f"({secs / created * 1000:.2f} s per 1k)."
            }
        )
    if r.metrics_note:
        out.append({"text": f"Note: {r.metrics_note}"})
    if r.kept_probes:
        out.append({"text": "Probe objects were kept (--keep-probes)."})
    if r.leftovers:
        out.append(
            {
                "text": "Probe cleanup failed; drop these by hand: "
                + "; ".join(code(s) for s in r.leftovers)
            }
        )
    return out


def blocks_markdown(items: Sequence[Block]) -> str:
    """Render :func:`blocks` as markdown: paragraphs, and titled tables."""
    lines: list[str] = []
    for b in items:
        if lines:
            lines.append("")
        if "text" in b:
            lines.append(b["text"])
            continue
        lines += [f"{b['title']}:", "", _row(b["columns"])]
        lines.append(_row(["---:" if a == "r" else "---" for a in b["align"]]))
        lines += [_row(row) for row in b["rows"]]
    return "\n".join(lines) + "\n"


def summary_md(r: DdlResult) -> str:
    """The markdown block for the log entry: latency per level, growth, txn batches, breakdown."""
    return blocks_markdown(blocks(r, md=True))


def _breakdown_rows(r: DdlResult, code: Any) -> list[list[str]]:
    """The per-statement wall-clock breakdown: where each statement's time goes, by metric step."""
    rows: list[list[str]] = []
    for run in r.probes:
        mean = stats(run.ms).mean
        for m in run.metrics:
            rows.append(_breakdown_row(f"{run.count:,}", run.kind, m, mean, code))
    for t in r.txns:
        for m in t.metrics:
            rows.append(_breakdown_row(f"txn B={t.size}", t.kind, m, t.per_stmt_ms, code))
    return rows


def _breakdown_row(
    where: str, kind: str, m: dict[str, Any], wall_ms: float, code: Any
) -> list[str]:
    timed = m.get("unit", "ms") == "ms"
    share = m["ms_per_stmt"] / wall_ms if wall_ms and timed else math.nan
    obs = m["obs_per_stmt"]
    return [
        where,
        kind,
        code(m["series"]),
        _ms(m["ms_per_stmt"]) if timed else "n/a",
        f"{obs:.2f}" if obs is not None else (f"{m['ms_per_stmt']:.2f}" if not timed else "n/a"),
        _ms(m.get("mean_ms")),
        f"{share:.0%}" if math.isfinite(share) else "n/a",
    ]


def table_rows(r: DdlResult) -> list[dict[str, Any]]:
    """Per level and statement kind: the numbers a terminal table shows."""
    rows: list[dict[str, Any]] = []
    for run in r.probes:
        s = stats(run.ms)
        rows.append(
            {
                "level": run.level,
                "objects": run.count,
                "statement": run.kind,
                "median_ms": s.median,
                "p90_ms": s.p90,
                "max_ms": s.max,
                "probes": s.n,
            }
        )
    return rows


def to_measurement(
    r: DdlResult, *, name: str, phase: str | None, raw_dir: str | None = None
) -> Measurement:
    """The record handed to the session (``details["per_level"]``: one row per level and kind)."""
    details = r.to_dict()
    details["per_level"] = table_rows(r)
    details["blocks"] = blocks(r)  # what a terminal shows (the same report as summary_md)
    return Measurement(
        source="ddl",
        name=name,
        phase=phase,
        values=values(r),
        summary_md=summary_md(r),
        raw_dir=raw_dir,
        details=details,
    )
