"""Run results and how a sweep of them becomes one Measurement and one markdown table.

A :class:`RunResult` is one measured run at one concurrency level (whatever the driver). A sweep
is every level × every repeat; :func:`build_measurement` turns it into the flat values a session
records (``qps@c64``, ``p50_ms@c64``, ``p99_ms@c64``, ``errors@c64`` and every metric statistic
with the same ``@c64`` suffix). A value is the median of its repeats; ``samples`` keeps each one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sessionctl.measurement import Measurement, Value
from sessionctl.units import format_number


@dataclass(frozen=True)
class RunResult:
    """One measured run of one benchmark at one concurrency level."""

    driver: str
    concurrency: int
    duration: float  # seconds the rates are computed over
    qps: float
    tps: float
    queries: int
    errors: int
    latency_ms: dict[str, float] = field(default_factory=dict)  # mean, p50, p90, p99, max...
    window: tuple[float, float] = (0.0, 0.0)  # time.monotonic() start and end of the measured run
    raw_path: str | None = None  # folder with this run's raw output
    metrics: tuple[Value, ...] = ()  # metric statistics for this run (names without @cN)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def p50_ms(self) -> float:
        return self.latency_ms.get("p50", math.nan)

    @property
    def p99_ms(self) -> float:
        return self.latency_ms.get("p99", math.nan)

    def to_dict(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "concurrency": self.concurrency,
            "duration": self.duration,
            "qps": self.qps,
            "tps": self.tps,
            "queries": self.queries,
            "errors": self.errors,
            "latency_ms": dict(self.latency_ms),
            "window": list(self.window),
            "raw_path": self.raw_path,
            "metrics": [v.to_dict() for v in self.metrics],
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        return cls(
            driver=d["driver"],
            concurrency=int(d["concurrency"]),
            duration=float(d["duration"]),
            qps=float(d["qps"]),
            tps=float(d["tps"]),
            queries=int(d["queries"]),
            errors=int(d["errors"]),
            latency_ms={k: float(v) for k, v in (d.get("latency_ms") or {}).items()},
            window=(float(d["window"][0]), float(d["window"][1]))
            if d.get("window")
            else (0.0, 0.0),
            raw_path=d.get("raw_path"),
            metrics=tuple(Value.from_dict(v) for v in d.get("metrics", ())),
            details=dict(d.get("details") or {}),
        )


def _median(xs: Sequence[float]) -> float:
    clean = [x for x in xs if not math.isnan(x)]
    return statistics.median(clean) if clean else math.nan


def _value(name: str, samples: Sequence[float], unit: str, better: str | None) -> Value:
    return Value(
        name=name,
        value=_median(samples),
        unit=unit,
        better=better,  # type: ignore[arg-type]
        samples=tuple(float(s) for s in samples),
    )


def levels_of(runs: Sequence[RunResult]) -> list[int]:
    """The concurrency levels of a sweep, in the order they were first run."""
    seen: list[int] = []
    for r in runs:
        if r.concurrency not in seen:
            seen.append(r.concurrency)
    return seen


def sweep_values(runs: Sequence[RunResult]) -> tuple[Value, ...]:
    """Flatten a sweep into suffixed values, one per statistic and level (median of repeats)."""
    out: list[Value] = []
    for level in levels_of(runs):
        at = [r for r in runs if r.concurrency == level]
        sfx = f"@c{level}"
        out.append(_value(f"qps{sfx}", [r.qps for r in at], "queries/s", "higher"))
        if any(abs(r.tps - r.qps) > 1e-9 for r in at):
            out.append(_value(f"tps{sfx}", [r.tps for r in at], "transactions/s", "higher"))
        out.append(_value(f"p50_ms{sfx}", [r.p50_ms for r in at], "ms", "lower"))
        out.append(_value(f"p99_ms{sfx}", [r.p99_ms for r in at], "ms", "lower"))
        out.append(_value(f"errors{sfx}", [float(r.errors) for r in at], "", "lower"))
        metric_names: list[str] = []
        for r in at:
            for v in r.metrics:
                if v.name not in metric_names:
                    metric_names.append(v.name)
        for name in metric_names:
            picked = [next((v for v in r.metrics if v.name == name), None) for r in at]
            first = next(v for v in picked if v is not None)
            samples = [v.value if v is not None else math.nan for v in picked]
            out.append(_value(f"{name}{sfx}", samples, first.unit, first.better))
    return tuple(out)


def sweep_table(runs: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One row per concurrency level: QPS, p50, p99, errors and each metric (medians)."""
    rows: list[dict[str, Any]] = []
    for level in levels_of(runs):
        at = [r for r in runs if r.concurrency == level]
        row: dict[str, Any] = {
            "concurrency": level,
            "qps": _median([r.qps for r in at]),
            "p50_ms": _median([r.p50_ms for r in at]),
            "p99_ms": _median([r.p99_ms for r in at]),
            "errors": int(sum(r.errors for r in at)),
            "runs": len(at),
        }
        for r in at:
            for v in r.metrics:
                row.setdefault(v.name, [])
                row[v.name].append(v.value)
        for key, val in list(row.items()):
            if isinstance(val, list):
                row[key] = _median(val)
        rows.append(row)
    return rows


SWEEP_TITLES = {"concurrency": "conc", "qps": "QPS", "p50_ms": "p50 ms", "p99_ms": "p99 ms"}
_UNIT_WORDS = (("_us", " µs"), ("_ms", " ms"), ("_s", " s"))
_FAMILY_SUFFIXES = ("_seconds_total", "_seconds", "_total")
_FAMILY_WIDTH = 22


def split_value_name(name: str) -> tuple[str, str]:
    """``family{labels}.stat`` → (``family{labels}``, ``stat``); label values may hold dots."""
    brace = name.rfind("}")
    dot = name.rfind(".")
    if dot <= brace:
        return name, ""
    return name[:dot], name[dot + 1 :]


def short_stat(stat: str) -> str:
    """``mean_us`` → ``mean µs``, ``per_query_us`` → ``µs/query``, ``calls_per_query`` → ..."""
    if stat == "calls_per_query":
        return "calls/query"
    unit = ""
    for suffix, word in _UNIT_WORDS:
        if stat.endswith(suffix):
            stat, unit = stat.removesuffix(suffix), word.strip()
            break
    if stat == "per_query":
        return f"{unit or 'n'}/query"
    return f"{stat.replace('_', ' ')} {unit}".strip()


def metric_headers(names: Sequence[str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Short two-line headers (``family`` over ``stat``) for metric value names, and the legend
    (short family → full series) that names what each short family stands for."""
    series: dict[str, None] = {}
    for name in names:
        series.setdefault(split_value_name(name)[0], None)
    by_family: dict[str, list[str]] = {}
    for full in series:
        by_family.setdefault(full.split("{", 1)[0], []).append(full)
    short: dict[str, str] = {}
    for family, members in by_family.items():
        base = family
        for suffix in _FAMILY_SUFFIXES:
            if base.endswith(suffix) and len(base) > len(suffix):
                base = base.removesuffix(suffix)
                break
        if len(base) > _FAMILY_WIDTH:
            half = (_FAMILY_WIDTH - 1) // 2
            base = base[:half] + "…" + base[-(_FAMILY_WIDTH - 1 - half) :]
        for k, full in enumerate(members, 1):
            short[full] = base if len(members) == 1 else f"{base} #{k}"
    headers = {}
    for name in names:
        full, stat = split_value_name(name)
        headers[name] = f"{short[full]}\n{short_stat(stat)}" if stat else short[full]
    return headers, [(short[full], full) for full in series]


def table_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Render :func:`sweep_table` rows as a markdown table."""
    if not rows:
        return ""
    keys: list[str] = []
    for row in rows:
        for k in row:
            if k not in keys and k != "runs":
                keys.append(k)
    head = {**SWEEP_TITLES, "concurrency": "concurrency"}
    lines = [
        "| " + " | ".join(head.get(k, k) for k in keys) + " |",
        "|" + "|".join("---:" for _ in keys) + "|",
    ]
    for row in rows:
        cells = []
        for k in keys:
            v = row.get(k)
            if v is None:
                cells.append("")
            elif isinstance(v, float):
                cells.append(format_number(v))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build_measurement(
    *,
    source: str,
    name: str,
    phase: str | None,
    runs: Sequence[RunResult],
    raw_dir: str | None,
    details: dict[str, Any] | None = None,
) -> Measurement:
    """Build THE record of a sweep: suffixed values with per-repeat samples and the table."""
    rows = sweep_table(runs)
    reps = max((r["runs"] for r in rows), default=1)
    duration = _median([r.duration for r in runs]) if runs else 0.0
    head = f"`{name}` ({source}, {format_number(duration)} s per run"
    head += f", median of {reps} runs)" if reps > 1 else ")"
    return Measurement(
        source=source,
        name=name,
        phase=phase,
        values=sweep_values(runs),
        summary_md=f"{head}\n\n{table_markdown(rows)}",
        raw_dir=raw_dir,
        details={**(details or {}), "table": rows},
    )
