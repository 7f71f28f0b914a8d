"""One block of DDL probes at the object count that exists now: the unit ``compare`` and
``profile`` measure for ``driver: ddl``.

A block never grows the population: it counts the objects, then per probe kind runs one
discarded warm-up and ``probes_per_level`` timed statements (with the campaign's metrics scraped
around them), drops its probe objects, and counts again. Its judged numbers are per kind: the
median and p90 of the block's probes, and each watched metric's delta per statement. The block,
not the probe, is the unit of analysis: probes back to back on one server share its state
(caches, autovacuum, a checkpoint), so a paired comparison judges block statistics pair by
pair, which is what keeps an A/A at the throughput drivers' false-verdict rate.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionctl.bench.ddl import MetricWindow, _Probes, probe_kind
from sessionctl.bench.ddl_population import count_objects, numbers_in_use, plan
from sessionctl.bench.ddl_report import ProbeRun
from sessionctl.errors import ConfigError

if TYPE_CHECKING:
    from sessionctl.bench import BenchContext

Judged = dict[str, tuple[float, str | None, str]]  # name -> (value, better, unit)


@dataclass(frozen=True)
class ProbeBlock:
    """One block of probes at one object count (duck-types a driver run for compare/profile)."""

    objects: int  # counted before the block
    objects_after: int
    runs: tuple[ProbeRun, ...]
    started: float  # time.monotonic() at the first timed probe
    finished: float  # at the last one's end
    raw_path: str | None = None
    errors: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def queries(self) -> int:
        """Timed probe statements (warm-ups and drops are outside the window)."""
        return sum(len(r.ms) for r in self.runs)

    @property
    def window(self) -> tuple[float, float]:
        return (self.started, self.finished)

    @property
    def duration(self) -> float:
        return sum(r.window[1] - r.window[0] for r in self.runs if r.window) or (
            self.finished - self.started
        )

    @property
    def qps(self) -> float:
        """Timed statements per second of timed probing (the profile's 'QPS')."""
        return self.queries / self.duration if self.duration > 0 else 0.0

    def judged(self) -> Judged:
        """Per kind: ``<kind>.median_ms``, ``<kind>.p90_ms`` and ``<series>.ms_per_<kind>``."""
        from sessionctl.bench.ddl_report import metric_stem, stats

        out: Judged = {}
        for r in self.runs:
            s = stats(r.ms)
            out[f"{r.kind}.median_ms"] = (s.median, "lower", "ms")
            out[f"{r.kind}.p90_ms"] = (s.p90, "lower", "ms")
            for m in r.metrics:
                unit = "ms" if m.get("unit", "ms") == "ms" else ""
                out[metric_stem(m, r.kind)] = (m["ms_per_stmt"], "lower", unit)
        return out

    def line(self) -> str:
        """``3,000 objects: table median 1.23 ms p90 1.40 ms; view ...`` for progress output."""
        from sessionctl.bench.ddl_report import stats

        parts = []
        for r in self.runs:
            s = stats(r.ms)
            parts.append(f"{r.kind} median {s.median:.3f} ms p90 {s.p90:.3f} ms")
        return f"{self.objects:,} objects: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self) | {"queries": self.queries, "judged": self.judged()}


def run_block(ctx: BenchContext, *, kinds: Sequence[str] | None = None, raw: Path) -> ProbeBlock:
    """One block at the current count: every probe kind (or only ``kinds``), probes dropped."""

    bench, target = ctx.bench, ctx.target
    where = f"prompts/{ctx.campaign.name}.yaml: benchmarks.{bench.name}.ddl"
    if bench.ddl is None:
        raise ConfigError(f"{where}: driver ddl needs a `ddl:` mapping")
    p = plan(bench.ddl, where=where)
    probes = [k for k in p.probes if kinds is None or k.kind in kinds]

    def connect() -> Any:
        return target.connect(system=False)

    window = MetricWindow(target.metrics_url, ctx.campaign.metrics, raw)
    with contextlib.closing(connect()) as conn:
        conn.autocommit = True
        count = count_objects(conn, p)
        used = [n for k in p.probes for n in numbers_in_use(conn, p, k.prefix)]
    tracker = _Probes(connect=connect, plan=p, keep=False, reporter=ctx.reporter,
                      first_n=max(used, default=0) + 1)  # fmt: skip
    runs: list[ProbeRun] = []
    interrupted = "ddl probe block interrupted; its probe objects were dropped"
    with tracker.cleanup(interrupted), contextlib.closing(connect()) as conn:
        conn.autocommit = True
        for kind in probes:
            runs.append(
                probe_kind(
                    conn,
                    kind,
                    level=count,
                    count=count,
                    probes=p.probes_per_level,
                    window=window,
                    tracker=tracker,
                    label=kind.kind,
                )
            )
        after = count_objects(conn, p)
    for note in window.messages:
        ctx.reporter.warn(note)
    spans = [r.window for r in runs if r.window]
    start = min((w[0] for w in spans), default=time.monotonic())
    end = max((w[1] for w in spans), default=start)
    return ProbeBlock(count, after, tuple(runs), start, end)
