"""``profile run`` for ``driver: ddl``: sample the target while probe statements run, one
profile per probe kind, so samples and CPU divide per statement.

Each probe kind gets one :func:`sessionctl.profiling.profile_run` around a block of that kind's
probes at the object count that exists now (:func:`sessionctl.bench.ddl_block.run_block`; no
growth). The profiler keeps only samples inside the timed probes' window (warm-up, metric scrapes
and the probe drops fall outside), and "queries" are the timed statements, so the report's
samples/query is samples per statement. An unprofiled block first gives the profiler's cost (in
statements per second). Values are named ``<value>.<kind>@n3.0k`` (the measured count).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionctl.measurement import Value
from sessionctl.reporting import Reporter

if TYPE_CHECKING:
    from sessionctl.bench import BenchContext
    from sessionctl.campaign.model import ProfileSpec
    from sessionctl.profiling import ProfileRun


def profile_kinds(
    ctx: BenchContext,
    *,
    pids: Any,
    spec: ProfileSpec,
    overhead: bool,
    call_graph: str | None,
    top: int,
    meta: dict[str, Any],
    reporter: Reporter,
) -> list[ProfileRun]:
    """One profile per probe kind of the ddl benchmark, at the current object count."""
    from sessionctl.bench.ddl_block import run_block
    from sessionctl.bench.ddl_population import plan
    from sessionctl.bench.ddl_report import count_label
    from sessionctl.errors import ConfigError
    from sessionctl.profiling import profile_run

    if ctx.bench.ddl is None:
        raise ConfigError(f"benchmarks.{ctx.bench.name}: driver ddl needs a `ddl:` mapping")
    out: list[ProfileRun] = []
    for kind in plan(ctx.bench.ddl).probes:
        name = kind.kind
        folder = ctx.run_dir / f"profile-{name}"

        def block(k: str = name, where: str = "profiled", at: Path = folder) -> Any:
            raw = at / "blocks" / where
            raw.mkdir(parents=True, exist_ok=True)
            return run_block(ctx, kinds=(k,), raw=raw)

        run = profile_run(
            pids=pids,
            run=block,
            unprofiled=partial(block, name, "unprofiled") if overhead else None,
            out_dir=folder,
            spec=spec,
            concurrency=None,
            label=f"{ctx.bench.name}-{name}-{ctx.phase or 'profile'}",
            call_graph=call_graph,
            top=top,
            meta={**meta, "statement": name},
            reporter=reporter,
        )
        res = run.result
        objects = int(getattr(res, "objects", 0))
        run = replace(run, details={**run.details, "statement": name, "objects": objects})
        out.append(run)
        reporter.info(
            f"{name} at {objects:,} objects ({count_label(objects)}): {run.profile.samples:,} "
            f"samples over {run.profile.queries:,} statements, "
            f"{run.report.samples_per_query or 0:.4g} samples/statement"
        )
    return out


def values(run: ProfileRun) -> tuple[Value, ...]:
    """The profile's values keyed by statement kind and measured count (``.table@n3.0k``)."""
    from sessionctl.bench.ddl_report import count_label

    kind, objects = run.details["statement"], int(run.details["objects"])
    suffix = f".{kind}@{count_label(objects)}"
    return tuple(replace(v, objects=objects) for v in run.values(suffix))
