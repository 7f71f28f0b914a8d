"""One ``sessionctl bench`` invocation: target up, preflight, a sweep of measured runs, one record.

For each concurrency level, ``repeat`` times: setup SQL (system user, then the benchmark's), a
metrics scrape, the driver's run, another scrape; raw data of every run goes under
``<runs dir>/<timestamp>-<bench>/c<N>-r<k>/``. The sweep becomes ONE Measurement (values like
``qps@c64``, ``p99_ms@c64`` and metric statistics with the same suffix; per-repeat samples) and
a markdown table, recorded into the open session. Drivers run in their own processes; this
process only polls them for the progress bar, so scrapes and display stay off the hot path.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessionctl.bench import BenchContext
from sessionctl.bench.results import RunResult, build_measurement, sweep_table
from sessionctl.campaign.model import Benchmark, Campaign
from sessionctl.errors import MeasurementError, SessionctlError, UsageError
from sessionctl.files import atomic_write, atomic_write_json
from sessionctl.measurement import PHASES, Measurement, Value, now_iso
from sessionctl.reporting import NULL, Reporter
from sessionctl.target.server import TargetHandle
from sessionctl.units import format_duration
from sessionctl.workspace import Workspace

ProgressFn = Callable[[float, float, int], None]
RunDriver = Callable[[BenchContext, int, float, Path, ProgressFn | None], RunResult]


# --- the drivers ------------------------------------------------------------------------------


def _builtin(
    ctx: BenchContext, concurrency: int, duration: float, raw: Path, progress: ProgressFn | None
) -> RunResult:
    from sessionctl.bench.builtin import BuiltinSpec, run_builtin

    b = ctx.bench
    queries = tuple((q.sql, q.weight) for q in b.queries) or ((b.query or "", 1.0),)
    spec = BuiltinSpec(
        url=ctx.target.sql_url,
        queries=queries,
        concurrency=concurrency,
        duration=duration,
        warmup=ctx.warmup,
        rate=b.rate,
        workers=ctx.options.get("workers"),
    )
    return run_builtin(spec, progress=progress, raw_dir=raw)


def _pgbench(
    ctx: BenchContext, concurrency: int, duration: float, raw: Path, progress: ProgressFn | None
) -> RunResult:
    from sessionctl.bench.pgbench import run_pgbench, script_text

    b = ctx.bench
    return run_pgbench(
        url=ctx.target.sql_url,
        script=script_text(b.script, b.query),
        concurrency=concurrency,
        duration=duration,
        raw_dir=raw,
        binary=b.binary,
        extra_args=b.args,
        warmup=ctx.warmup,
        progress=progress,
        rate=b.rate,
    )


def _dbbench(
    ctx: BenchContext, concurrency: int, duration: float, raw: Path, progress: ProgressFn | None
) -> RunResult:
    from sessionctl.bench.dbbench import run_dbbench

    b = ctx.bench
    return run_dbbench(
        url=ctx.target.sql_url,
        concurrency=concurrency,
        duration=duration,
        raw_dir=raw,
        query=b.query,
        config=b.config,
        binary=b.binary,
        extra_args=b.args,
        progress=progress,
        rate=b.rate,
        warmup=ctx.warmup,
        base_dir=ctx.ws.root,  # the config's relative paths point into the workspace
    )


@dataclass(frozen=True)
class SweepDriver:
    """A driver that runs a whole invocation itself and builds its own Measurement."""

    run: Callable[[BenchContext], Measurement]
    scope: Callable[[Benchmark, dict[str, Any]], str]  # what it measures, for the progress line


def _ddl(ctx: BenchContext) -> Measurement:
    from sessionctl.bench.ddl import run_ddl

    return run_ddl(ctx)


def _ddl_scope(bench: Benchmark, options: dict[str, Any]) -> str:
    from sessionctl.bench.ddl import scope

    return scope(bench, options)


# driver name → one measured run at one level (the runner sweeps and repeats them)
RUN_DRIVERS: dict[str, RunDriver] = {"builtin": _builtin, "pgbench": _pgbench, "dbbench": _dbbench}
# driver name → a whole invocation that builds its own Measurement (e.g. ddl's growth levels)
SWEEP_DRIVERS: dict[str, SweepDriver] = {"ddl": SweepDriver(_ddl, _ddl_scope)}


def check_driver(bench: Benchmark) -> None:
    """Fail early (before the target starts) when the driver's tool is missing."""
    if bench.driver == "pgbench":
        from sessionctl.bench.pgbench import find_pgbench

        find_pgbench(bench.binary)
    elif bench.driver == "dbbench":
        from sessionctl.bench.dbbench import find_dbbench

        find_dbbench(bench.binary)
    elif bench.driver not in RUN_DRIVERS and bench.driver not in SWEEP_DRIVERS:
        raise UsageError(f"benchmark {bench.name!r}: unknown driver {bench.driver!r}")


# --- outcome ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchOutcome:
    """What one ``bench`` invocation produced."""

    measurement: Measurement
    runs: tuple[RunResult, ...]
    table: list[dict[str, Any]]
    session: int | None  # the session it was recorded into (None: none open, or --no-record)
    run_dir: Path
    not_recorded: str | None = None  # why not, when recording was asked for and did not happen

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "run_dir": str(self.run_dir),
            "measurement": self.measurement.to_dict(),
            "runs": [r.to_dict() for r in self.runs],
            "table": self.table,
        }


# --- one run --------------------------------------------------------------------------------


def _next_dir(parent: Path, stem: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        cand = parent / f"{stem}{k}"
        try:
            cand.mkdir()
            return cand
        except FileExistsError:
            k += 1


def new_run_dir(ws: Workspace, campaign: str, bench: str) -> Path:
    """A fresh ``<runs dir>/<timestamp>-<bench>/`` folder for one invocation's raw data."""
    ws.ensure_scratch()
    stamp = now_iso().replace("-", "").replace(":", "")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in bench)
    base = ws.runs_dir(campaign)
    base.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        cand = base / (f"{stamp}-{safe}" if k == 1 else f"{stamp}-{safe}-{k}")
        try:
            cand.mkdir()
            return cand
        except FileExistsError:
            k += 1


def _scrape(ctx: BenchContext, raw: Path, which: str) -> Any:
    from sessionctl.metrics import save, scrape

    url = ctx.target.metrics_url
    if not url or not ctx.campaign.metrics:
        return None
    snap = scrape(url, families=[m.name for m in ctx.campaign.metrics])
    save(raw / f"metrics-{which}.prom", snap)
    return snap


def _check_families(ctx: BenchContext, snap: Any) -> None:
    """Say which configured families the endpoint lacks; refuse one that has none of them."""
    names = [m.name for m in ctx.campaign.metrics]
    missing = [n for n in names if n not in snap.families]
    where = f"prompts/{ctx.campaign.name}.yaml"
    if missing and len(missing) == len(names):
        raise MeasurementError(
            f"{snap.source}: none of the metric families in {where} metrics: "
            f"({', '.join(names)}) is exposed there; check target.metrics_url and the names"
        )
    for n in missing:
        ctx.reporter.warn(
            f"{snap.source}: no metric family {n!r} after the run: its columns are left out; "
            f"fix the name in {where} metrics: if it is wrong"
        )


def run_once(
    ctx: BenchContext,
    *,
    concurrency: int,
    duration: float,
    setup: bool = True,
    metrics: bool = True,
    label: str | None = None,
) -> RunResult:
    """ONE measured run at one level: setup SQL, scrape, drive, scrape; raw data in a folder."""
    driver = RUN_DRIVERS.get(ctx.bench.driver)
    if driver is None:
        raise UsageError(
            f"benchmark {ctx.bench.name!r}: driver {ctx.bench.driver!r} has no single-run mode "
            f"(use one of {', '.join(RUN_DRIVERS)})"
        )
    raw = _next_dir(ctx.run_dir, f"c{concurrency}-r")
    if setup:
        ctx.target.run_setup(ctx.bench.setup_sql)
    before = _scrape(ctx, raw, "before") if metrics else None
    desc = label or f"{ctx.bench.name} c{concurrency}"
    total = ctx.warmup + duration
    with ctx.reporter.task(desc, total=total) as task:

        def progress(elapsed: float, qps: float, done: int) -> None:
            task.update(completed=min(total, max(0.0, elapsed + ctx.warmup)), qps=qps)

        result = driver(ctx, concurrency, duration, raw, progress)
        task.update(completed=total, qps=result.qps)
    ctx.target.check_alive(desc)  # a server that died mid-run: another may have answered
    _require_numbers(result, desc, raw)
    values: tuple[Value, ...] = ()
    if before is not None:
        from sessionctl.metrics import diff, summarize

        after = _scrape(ctx, raw, "after")
        _check_families(ctx, after)
        delta = diff(before, after)
        # Per-query statistics divide by every query the scrapes bracketed (warm-up included).
        executed = int(result.details.get("executed") or result.queries)
        vals, table_md = summarize(delta, ctx.campaign.metrics, queries=executed)
        values = tuple(vals)
        atomic_write(raw / "metrics.md", table_md)
    result = dataclasses.replace(result, metrics=values, raw_path=_rel(ctx.ws, raw))
    atomic_write_json(raw / "result.json", result.to_dict())
    return result


def _require_numbers(result: RunResult, label: str, raw: Path) -> None:
    """Refuse a run too short to measure: no queries, a non-finite rate or percentile."""
    bad = [
        f"{name} {value!r}"
        for name, value in (
            ("qps", result.qps),
            ("p50_ms", result.p50_ms),
            ("p99_ms", result.p99_ms),
            *((f"{k}_ms", v) for k, v in result.latency_ms.items() if k not in ("p50", "p99")),
        )
        if not isinstance(value, (int, float)) or not math.isfinite(value)
    ]
    if result.queries <= 0 or result.qps <= 0 or bad:
        what = ", ".join(bad) or f"{result.queries} queries, qps {result.qps:g}"
        raise MeasurementError(
            f"{label}: the run produced no usable numbers ({what}); it completed too few "
            f"queries: raise --duration, check the driver output in {raw}"
        )


def _rel(ws: Workspace, path: Path) -> str:
    try:
        return str(path.relative_to(ws.root))
    except ValueError:
        return str(path)


# --- the invocation -------------------------------------------------------------------------


def bench_levels(bench: Benchmark, given: Sequence[int] | None = None) -> tuple[int, ...]:
    """The concurrency levels to run: ``given`` (``-c``), else the benchmark's ``concurrency``;
    a dbbench config without either runs at its own level (as written)."""
    if given:
        levels = tuple(int(c) for c in given)
    elif bench.driver == "dbbench" and bench.config and bench.concurrency == (1,):
        from sessionctl.bench.dbbench_config import config_level

        levels = (config_level(bench.config),)
    else:
        levels = bench.concurrency
    if any(c < 1 for c in levels):
        raise UsageError(f"--concurrency: levels must be >= 1, got {','.join(map(str, levels))}")
    return levels


def check_levels(bench: Benchmark, levels: Sequence[int], duration: float) -> None:
    """Refuse, before the target starts, a level the driver cannot apply (naming the job)."""
    if bench.driver == "dbbench" and bench.config:
        from sessionctl.bench.dbbench_config import override_config

        for level in levels:
            try:
                override_config(bench.config, duration=duration, concurrency=level, rate=bench.rate)
            except SessionctlError as exc:
                raise type(exc)(f"benchmark {bench.name!r}: {exc}") from None


# An open-loop run that reached less than this share below its rate did not run at that rate.
RATE_TOLERANCE = 0.05


def open_loop_shortfall(result: RunResult) -> str | None:
    """Say so when an open-loop run reached its requested rate short by more than the
    tolerance (drivers that report ``achieved_rate`` in their details: dbbench); else None."""
    rate, achieved = result.details.get("rate"), result.details.get("achieved_rate")
    if not rate or achieved is None or achieved >= rate * (1 - RATE_TOLERANCE):
        return None
    return (
        f"open loop reached {achieved:,.0f} of the requested {rate:,.0f} queries/s "
        f"({achieved / rate:.0%}); its latency is not at the requested load"
    )


def load_campaign(ws: Workspace, name: str) -> Campaign:
    """The validated campaign (through the campaign store)."""
    from sessionctl.campaign.store import load

    return load(ws, name).campaign


def run_bench(
    ws: Workspace,
    campaign: str,
    *,
    bench: str | None = None,
    phase: str | None = None,
    concurrency: Sequence[int] | None = None,
    duration: float | None = None,
    repeat: int | None = None,
    record: bool = True,
    reporter: Reporter = NULL,
    start: bool = True,
    options: dict[str, Any] | None = None,
) -> BenchOutcome:
    """Run a benchmark's sweep against the campaign's target and record it into the open session."""
    if phase is not None and phase not in PHASES:
        raise UsageError(f"--phase {phase}: unknown; use one of {', '.join(PHASES)}")
    camp = load_campaign(ws, campaign)
    b = camp.benchmark(bench)
    check_driver(b)
    levels = bench_levels(b, concurrency)
    secs = b.duration if duration is None else float(duration)
    reps = b.repeat if repeat is None else int(repeat)
    if secs <= 0 or reps < 1:
        raise UsageError("--duration must be > 0 and --repeat >= 1")
    check_levels(b, levels, secs)
    run_dir = new_run_dir(ws, campaign, b.name)
    from sessionctl.session.record import open_number

    started_in = open_number(ws, campaign)  # the measurement belongs to this session only
    sweep_driver = SWEEP_DRIVERS.get(b.driver)
    if sweep_driver is not None:  # its own levels (e.g. object counts): concurrency means nothing
        reporter.phase(f"bench {b.name} ({b.driver}): {sweep_driver.scope(b, options or {})}")
    else:
        reporter.phase(f"bench {b.name} ({b.driver}) at concurrency {','.join(map(str, levels))}")
    runs: list[RunResult] = []
    with TargetHandle(ws, camp, start=start, reporter=reporter) as target:
        checks = target.preflight()
        for c in checks:
            reporter.info(f"preflight {c.name}: {c.value!r} ({c.expect}) ok")
        ctx = bench_context(
            ws,
            camp,
            target,
            bench=b.name,
            phase=phase,
            concurrency=levels,
            duration=secs,
            repeat=reps,
            reporter=reporter,
            run_dir=run_dir,
            options=options,
        )
        details: dict[str, Any] = {
            "driver": b.driver,
            "concurrency": list(levels),
            "duration": secs,
            "repeat": reps,
            "warmup": b.warmup,
            "target": target.describe(),
            "preflight": [{"name": c.name, "expect": c.expect, "value": c.value} for c in checks],
        }
        if sweep_driver is not None:
            target.run_setup(b.setup_sql)
            m = sweep_driver.run(ctx)
            m = dataclasses.replace(m, phase=phase, raw_dir=m.raw_dir or ctx.raw_dir)
        else:
            for level in levels:
                for r in range(reps):
                    if r or level != levels[0]:
                        _maybe_restart(target, camp)
                    label = f"{b.name} c{level}" + (f" run {r + 1}/{reps}" if reps > 1 else "")
                    res = run_once(ctx, concurrency=level, duration=secs, label=label)
                    runs.append(res)
                    reporter.info(
                        f"{label}: {res.qps:,.0f} QPS, p50 {res.p50_ms:.3f} ms, "
                        f"p99 {res.p99_ms:.3f} ms"
                        + (f", {res.errors} errors" if res.errors else "")
                    )
                    short = open_loop_shortfall(res)
                    if short is not None:
                        reporter.warn(f"{label}: {short}")
                        details.setdefault("warnings", []).append(f"{label}: {short}")
            m = build_measurement(
                source=b.driver,
                name=b.name,
                phase=phase,
                runs=runs,
                raw_dir=ctx.raw_dir,
                details=details,
            )
            if details.get("warnings"):  # beside the numbers they qualify, in the session log
                notes = "\n".join(f"- {w}" for w in details["warnings"])
                m = dataclasses.replace(m, summary_md=f"{m.summary_md.rstrip()}\n\n{notes}\n")
    table = list(m.details.get("table") or sweep_table(runs))
    # The raw record is written before recording, so a refused record loses nothing.
    atomic_write(run_dir / "summary.md", m.summary_md)
    outcome = BenchOutcome(
        measurement=m, runs=tuple(runs), table=table, session=None, run_dir=run_dir
    )
    atomic_write_json(run_dir / "outcome.json", outcome.to_dict())
    if record:
        from sessionctl.session.record import record_measurement, unrecorded_reason

        session = record_measurement(ws, campaign, m, phase=phase, started_in=started_in)
        if session is None and started_in is not None:
            reporter.warn(
                f"session {started_in} ended while the benchmark ran: not recorded (the "
                f"measurement is kept in {_rel(ws, run_dir)}); rerun it in the open session"
            )
        if session is not None:
            outcome = dataclasses.replace(outcome, session=session)
            atomic_write_json(run_dir / "outcome.json", outcome.to_dict())
        else:
            why = unrecorded_reason(started_in, "the benchmark ran")
            outcome = dataclasses.replace(outcome, not_recorded=why)
    per_run = f" ({format_duration(secs)} per run)" if sweep_driver is None else ""
    reporter.info(f"raw data: {_rel(ws, run_dir)}{per_run}")
    return outcome


def _maybe_restart(target: TargetHandle, campaign: Campaign) -> None:
    """Restart a server we started before each run when the campaign asks for it."""
    if campaign.target.restart == "per_run" and target.should_start:
        target.stop()
        target.start()
        target.wait_ready()
        # Give a freshly started server a moment of quiet before it is measured.
        time.sleep(0.2)


def bench_context(
    ws: Workspace,
    campaign: Campaign,
    target: TargetHandle,
    *,
    bench: str | None = None,
    phase: str | None = None,
    concurrency: Sequence[int] | None = None,
    duration: float | None = None,
    repeat: int | None = None,
    reporter: Reporter = NULL,
    run_dir: Path | None = None,
    options: dict[str, Any] | None = None,
) -> BenchContext:
    """Build a BenchContext (``run_bench``'s, and for callers that drive runs themselves:
    compare, profile)."""
    b = campaign.benchmark(bench)
    return BenchContext(
        ws=ws,
        campaign=campaign,
        bench=b,
        target=target,
        phase=phase,
        reporter=reporter,
        run_dir=run_dir or new_run_dir(ws, campaign.name, b.name),
        concurrency=bench_levels(b, concurrency),
        duration=b.duration if duration is None else float(duration),
        repeat=b.repeat if repeat is None else int(repeat),
        warmup=b.warmup,
        options=dict(options or {}),  # driver extras, e.g. ddl's levels / keep_probes
    )
