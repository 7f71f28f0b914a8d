"""The paired A/B protocol: interleaved, counterbalanced runs of a baseline (A) and a candidate (B).

The sides (what A and B run, where the baseline comes from) are in ``sessionctl.verdict.sides``. The
protocol: one uncounted warm-up run per side, then ``pairs`` pairs in counterbalanced order
(``abba``: AB BA BA AB …, which cancels linear and quadratic drift over every four pairs, or
``random``: a balanced shuffle from a printed seed). The target restarts before every run when
``target.restart == 'per_run'`` and whenever the two sides need different server processes. Each
counted slot is a closed-loop (saturating) run for throughput and a fixed-rate open-loop run
for latency: at the benchmark's ``rate`` (or ``--rate``) when it has one, else at
``compare.open_loop_load`` (default 50 %) of the slower side's warm-up throughput, the same rate
for both sides (builtin, pgbench and dbbench all have an open-loop mode). Latency is read off
the saturated run only when there is no warm-up to set the rate from or ``open_loop_load`` is
0; every latency judgement says which run it came from. When a counted open-loop run fell short
of its rate (a driver reporting what it reached: dbbench tops out near 1,000 starts a second per
job), latency is not judged at all: each side ran at a load of its own; the warning names what
both sides reached, the ``--rate`` to rerun with.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sessionctl.campaign.model import Benchmark, Campaign
from sessionctl.errors import TargetError, UsageError
from sessionctl.files import atomic_write_json
from sessionctl.measurement import Measurement, Value
from sessionctl.reporting import NULL, Reporter
from sessionctl.verdict import ddl_pairs
from sessionctl.verdict.judgement import (
    DIRECTIONAL,
    Judgement,
    judge_family,
    judge_paired,
    markdown_table,
    threshold_for,
)
from sessionctl.verdict.sides import (
    AaSides,
    ArtifactSides,
    ComparisonSides,
    Side,
    SqlSides,
    WorktreeSides,
    baseline_worktree,
    default_sides,
    long_lived_refusal,
    preserve_artifacts,
    remove_baseline_worktree,
)
from sessionctl.workspace import Workspace

# The sides live in ab_sides; callers (the demo, the session engine) import them from here too.
__all__ = [
    "AaSides",
    "ArtifactSides",
    "CompareResult",
    "ComparisonSides",
    "Side",
    "SqlSides",
    "WorktreeSides",
    "baseline_worktree",
    "default_sides",
    "preserve_artifacts",
    "remove_baseline_worktree",
    "run_compare",
    "schedule",
    "side_values",
    "summary_markdown",
    "to_measurement",
]

TAIL_SATURATED = (
    "latency read off the saturated closed-loop run (its tail is mostly queueing), not a "
    "fixed-rate open-loop run"
)


# --- the protocol ---------------------------------------------------------------------------


def schedule(pairs: int, order: str, seed: int) -> list[str]:
    """Per pair, which side runs first: 'AB' or 'BA' (abba: AB BA BA AB …; random: shuffled)."""
    if pairs < 1:
        raise UsageError(f"--pairs must be at least 1, got {pairs}")
    if order == "abba":
        return [("AB", "BA", "BA", "AB")[i % 4] for i in range(pairs)]
    if order == "random":
        plan = ["AB", "BA"] * (pairs // 2) + (["AB"] if pairs % 2 else [])
        random.Random(seed).shuffle(plan)
        return plan
    raise UsageError(f"--order {order!r}: use abba or random")


@dataclass(frozen=True)
class RunSpec:
    """One run the protocol asks the driver for."""

    concurrency: int
    duration: float
    rate: float | None = None  # None: closed loop (saturating)
    label: str = ""


@dataclass(frozen=True)
class CompareResult:
    """A finished comparison: per-run data, judgements and where it was recorded."""

    benchmark: str
    sides: ComparisonSides
    order: str
    seed: int
    plan: tuple[str, ...]
    runs: tuple[dict[str, Any], ...]
    judgements: tuple[Judgement, ...]
    tail: str
    aa: bool
    summary_md: str
    raw_dir: str | None
    session: int | None = None
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    not_recorded: str | None = None  # why not, when recording was asked for and did not happen

    @property
    def false_verdicts(self) -> int:
        """Judgements claiming improved/regressed (in an A/A calibration, every one is false)."""
        return sum(1 for j in self.judgements if j.verdict in ("improved", "regressed"))

    @property
    def directional_verdicts(self) -> int:
        """Judgements claiming any direction, "probably …" included (all false in an A/A)."""
        return sum(1 for j in self.judgements if j.verdict in DIRECTIONAL)

    def false_verdict_text(self) -> str:
        """``false verdicts on identical sides: 0 improved/regressed, 1 with any direction ...``."""
        n = len(self.judgements)
        return (
            f"false verdicts on identical sides: {self.false_verdicts} improved/regressed, "
            f"{self.directional_verdicts} with any direction (probably … included), of {n} "
            f"metric{'' if n == 1 else 's'}"
        )

    def noise_floor(self) -> list[dict[str, Any]]:
        """Per metric: run-to-run CV of each side, MDE and pairs needed (what this machine sees)."""
        from sessionctl.verdict import stats

        out = []
        for j in self.judgements:
            a, b = side_values(self.runs, j.metric, "A"), side_values(self.runs, j.metric, "B")
            floor = {"metric": j.metric, "cv_a": stats.cv(a), "cv_b": stats.cv(b), "mde": j.mde}
            out.append(floor | {"pairs_needed": j.pairs_needed, "threshold": j.threshold})
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("benchmark", "order", "seed", "tail", "aa", "raw_dir")}
        d |= {"session": self.session, "sides": self.sides.to_dict(), "plan": list(self.plan)}
        d |= {"judgements": [j.to_dict() for j in self.judgements], "runs": list(self.runs)}
        d |= {"warnings": list(self.warnings), **self.extra}
        if self.aa:
            floor = {"false_verdicts": self.false_verdicts, "metrics": len(self.judgements),
                     "directional_verdicts": self.directional_verdicts}  # fmt: skip
            d["calibration"] = floor | {"noise_floor": self.noise_floor()}
        return d


class _Sides:
    """Put the target in the state of the side about to run (restart, setup SQL), then measure."""

    def __init__(
        self,
        ws: Workspace,
        camp: Campaign,
        bench: Benchmark,
        sides: ComparisonSides,
        run_dir: Path,
        reporter: Reporter,
        restart_target: bool = False,
    ) -> None:
        self.ws, self.camp, self.bench, self.sides = ws, camp, bench, sides
        self.run_dir, self.reporter = run_dir, reporter
        self.restart_each = camp.target.restart == "per_run"
        self.current: str | None = None
        self.handle: Any = None
        need = "target.restart is per_run" if self.restart_each else f"{sides.kind} sides need it"
        if (self.restart_each or not sides.same_server) and not camp.target.start:
            raise UsageError(f"prompts/{camp.name}.yaml: target.start: not set, but {need}; add it")
        self.revive: Campaign | None = None  # a long-lived target to bring back at the end
        if camp.target.restart == "never" and camp.target.start and not sides.same_server:
            if not restart_target:
                raise UsageError(long_lived_refusal(camp.name, sides.a.description))
            self._stop_long_lived()

    def _stop_long_lived(self) -> None:
        """``--restart-target``: the long-lived server makes way for per-side servers; the
        current build's comes back, long-lived, when the comparison ends."""
        from sessionctl.target import control

        gone = control.stop_server(self.ws, self.camp)
        was = f" (pid {gone.pid})" if gone else ""
        self.reporter.warn(
            f"--restart-target: stopped the long-lived target{was}; each side runs on a server "
            "of its own, and the current build comes back up, long-lived, at the end"
        )
        self.revive = self.camp
        self.camp = replace(self.camp, target=replace(self.camp.target, restart="per_command"))

    def run(self, label: str, spec: RunSpec) -> Any:
        side, switch = self.sides.side(label), label != self.current
        fresh = self.handle is None or self.restart_each or (switch and not self.sides.same_server)
        if fresh:
            self._open(side)
        self.handle.run_setup(self.bench.setup_sql)
        if (fresh or switch) and side.setup_sql:
            self._apply(side)
        self.current = label
        return self._measure(spec)

    def _measure(self, spec: RunSpec) -> Any:
        """One run through the drivers' ``run_once`` (open loop when ``spec.rate`` is set), or
        one block of probes at the current object count for ``driver: ddl``."""
        from sessionctl.bench.runner import _next_dir, bench_context, run_once

        ctx = bench_context(self.ws, self.camp, self.handle, bench=self.bench.name,
                            reporter=self.reporter, run_dir=self.run_dir)  # fmt: skip
        if self.bench.driver == "ddl":
            from sessionctl.bench.ddl_block import run_block

            raw = _next_dir(self.run_dir, "ddl-block")
            block = run_block(ctx, raw=raw)
            block = replace(block, raw_path=os.path.relpath(raw, self.ws.root))
            atomic_write_json(raw / "block.json", block.to_dict())
            return block
        ctx = replace(ctx, bench=replace(self.bench, rate=spec.rate))
        return run_once(ctx, concurrency=spec.concurrency, duration=spec.duration, setup=False,
                        label=spec.label or None)  # fmt: skip

    @property
    def server(self) -> str | None:
        """The start command of the server we run (None when the user runs it)."""
        return self.handle.describe().get("start") if self.handle and self.handle.proc else None

    def _open(self, side: Side) -> None:
        from sessionctl.target.server import TargetHandle

        self.close()
        side_ws = Workspace(side.root) if side.root else self.ws
        self.handle = TargetHandle(
            side_ws, self.camp, reporter=self.reporter, artifacts_dir=side.artifacts_dir
        ).__enter__()
        self.handle.preflight()

    def _apply(self, side: Side) -> None:
        import psycopg

        with self.handle.connect() as conn:
            for i, sql in enumerate(side.setup_sql):
                try:
                    conn.execute(sql)
                except psycopg.Error as exc:
                    from sessionctl.target.server import scrub

                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    msg = scrub(first, self.handle.secrets)
                    raise TargetError(
                        f"side {side.label} setup SQL [{i}] `{sql}` failed: {msg}"
                    ) from None

    def end_on_candidate(self, *, strict: bool) -> None:
        """Leave a shared server in side B's state: the session goes on with the candidate.

        ``strict`` False (the comparison already failed): a failure here is only reported.
        """
        b = self.sides.side("B")
        if self.handle is None or self.current in (None, "B") or not b.setup_sql:
            return
        if not self.sides.same_server:
            return  # each side ran its own build: no shared state to leave behind
        self.reporter.info("putting the server back in side B's state (the candidate)")
        try:
            self._apply(b)
        except TargetError as exc:
            if strict:
                raise TargetError(f"{exc}; the server is left in side A's state") from None
            self.reporter.warn(f"{exc}; the server is left in side A's state")
            return
        self.current = "B"

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            handle.stop()

    def finish(self) -> None:
        """Stop this comparison's server; bring a long-lived target back up (current build)."""
        self.close()
        if self.revive is not None:
            from sessionctl.target import control

            camp, self.revive = self.revive, None
            state = control.bring_up(self.ws, camp, reporter=self.reporter)
            self.reporter.info(f"long-lived target is back (pid {state['pid']}, current build)")


def side_values(runs: Sequence[dict[str, Any]], metric: str, side: str) -> list[float]:
    """One side's counted per-run values of a metric, in run order."""
    return [
        r["values"][metric]
        for r in runs
        if r["side"] == side and not r["warmup"] and metric in r["values"]
    ]


def _values(r: Any, spec: RunSpec, open_loop: bool) -> dict[str, tuple[float, str | None, str]]:
    """The judged numbers of one run: name -> (value, better, unit)."""
    if hasattr(r, "judged"):  # a ddl probe block: keyed by object count when judged
        return dict(r.judged())
    out: dict[str, tuple[float, str | None, str]] = {}
    sfx = f"@c{spec.concurrency}"
    lat = dict(r.latency_ms or {})
    if spec.rate is None:
        out[f"qps{sfx}"] = (float(r.qps), "higher", "queries/s")
        for v in r.metrics or ():
            out[f"{v.name}{sfx}"] = (float(v.value), v.better, v.unit)
    if spec.rate is not None or not open_loop:  # latency from the open-loop run when there is one
        for q in ("p50", "p99"):
            if q in lat:
                out[f"{q}_ms{sfx}"] = (float(lat[q]), "lower", "ms")
    return out


def _record(
    pos: int, pair: int, side: str, rs: RunSpec, r: Any, server: str | None, open_loop: bool
) -> dict[str, Any]:
    """One run's row of the per-run data (pair 0 is a warm-up)."""
    vals = _values(r, rs, open_loop)
    rec = {"slot": pos, "pair": pair, "side": side, "warmup": pair == 0, "server": server}
    rec |= {"mode": "open" if rs.rate else "closed", "concurrency": rs.concurrency, "rate": rs.rate}
    rec |= {k: getattr(r, k) for k in ("qps", "latency_ms", "errors", "duration", "raw_path")}
    if rs.rate is not None:
        from sessionctl.bench.runner import open_loop_shortfall

        # Only a driver run has a rate (a ddl block never does), so it has details.
        rec["achieved_rate"] = r.details.get("achieved_rate")
        rec["rate_short"] = open_loop_shortfall(r)
    if hasattr(r, "objects"):
        rec |= {"objects": r.objects, "objects_after": r.objects_after}
    return rec | {
        "values": {k: v[0] for k, v in vals.items()},
        "better": {k: v[1] for k, v in vals.items()},
        "units": {k: v[2] for k, v in vals.items()},
    }


def run_compare(
    ws: Workspace,
    campaign: str,
    *,
    sides: ComparisonSides | None = None,
    bench: str | None = None,
    pairs: int | None = None,
    order: str | None = None,
    seed: int | None = None,
    aa: bool = False,
    concurrency: int | None = None,
    duration: float | None = None,
    rate: float | None = None,
    record: bool = True,
    reporter: Reporter = NULL,
    restart_target: bool = False,
) -> CompareResult:
    """Run the paired A/B protocol for one benchmark, judge every metric, record the result."""
    from sessionctl.bench.runner import (
        bench_levels,
        check_driver,
        check_levels,
        load_campaign,
        new_run_dir,
    )
    from sessionctl.session.record import open_number, record_measurement, unrecorded_reason

    started_in = open_number(ws, campaign)  # the comparison belongs to this session only
    if rate is not None and not rate > 0:
        raise UsageError(f"--rate must be > 0 queries/s, got {rate:g}")
    camp = load_campaign(ws, campaign)
    b = camp.benchmark(bench)
    check_driver(b)
    given = {"--rate": rate, "--concurrency": concurrency, "--duration": duration}
    for flag in (f for f, v in given.items() if v is not None and b.driver == "ddl"):
        raise UsageError(f"{flag}: a ddl benchmark times blocks of single statements "
                         f"(ddl.probes_per_level each); it takes no {flag}")  # fmt: skip
    spec = camp.compare
    sides = AaSides(sides) if aa and sides is not None else sides or default_sides(ws, camp, aa=aa)
    n_pairs = pairs if pairs is not None else spec.pairs
    order = order or spec.order
    if seed is None:
        seed = random.SystemRandom().randrange(2**31) if order == "random" else 0
    plan = schedule(n_pairs, order, seed)
    conc = concurrency or max(bench_levels(b))
    dur = b.duration if duration is None else duration
    check_levels(b, (conc,), dur)
    rate = rate if rate is not None else b.rate
    warnings: list[str] = []
    ddl = b.driver == "ddl"
    if ddl:
        rate = None
    auto = rate is None and spec.open_loop_load > 0 and not ddl
    if auto and spec.warmup_runs == 0:
        warnings.append(
            "no warm-up run to set the open-loop rate from: latency is from the saturated run "
            "(set compare.warmup_runs >= 1, or the benchmark's `rate`)"
        )
        auto = False
    load = spec.open_loop_load if auto else None  # the rate is set from the warm-ups
    tail = ddl_pairs.TAIL if ddl else _tail(rate, load)
    reporter.info(
        f"compare {b.name}: {n_pairs} pairs, order {order} (seed {seed}): {' '.join(plan)}; "
        f"A = {sides.a.description}; B = {sides.b.description}; latency from the {tail}"
    )
    raw = new_run_dir(ws, campaign, f"{b.name}-compare")
    runs: list[dict[str, Any]] = []
    driver = _Sides(ws, camp, b, sides, raw, reporter, restart_target)
    slots = [(lbl, 0) for lbl in plan[0]] * spec.warmup_runs
    slots += [(lbl, i + 1) for i, o in enumerate(plan) for lbl in o]
    done = False
    try:
        for pos, (label, pair) in enumerate(slots):
            if auto and pair:  # the warm-ups are over: fix the rate both sides get
                rate, auto = _auto_rate(runs, spec.open_loop_load, warnings), False
                load = load if rate else None
                tail = _tail(rate, load)
                reporter.info(f"latency from the {tail}")
            what = f"pair {pair}/{n_pairs} side {label}" if pair else f"warm-up side {label}"
            specs = [RunSpec(conc, dur, None, what)]
            specs += [RunSpec(conc, dur, rate, f"{what} (open loop)")] if rate else []
            for rs in specs:
                r = driver.run(label, rs)
                runs.append(_record(pos, pair, label, rs, r, driver.server, bool(rate)))
                if ddl:
                    reporter.info(f"{rs.label}: {r.line()}")
                    continue
                lat = r.latency_ms
                reporter.info(
                    f"{rs.label}: {r.qps:,.0f} QPS, p50 {lat.get('p50', math.nan):.3f} ms, "
                    f"p99 {lat.get('p99', math.nan):.3f} ms"
                )
                if runs[-1].get("rate_short"):
                    reporter.warn(f"{rs.label}: {runs[-1]['rate_short']}")
        done = True
    finally:
        try:
            driver.end_on_candidate(strict=done)
        finally:
            driver.finish()
        if not done:  # keep what was measured before a failure or Ctrl-C
            atomic_write_json(raw / "runs-partial.json", runs)
    extra: dict[str, Any]
    if ddl:
        judgements = ddl_pairs.judge(runs, plan, spec, seed, warnings, _judge)
        extra = {"driver": "ddl", "objects": ddl_pairs.objects(runs)}
    else:
        judgements = _judge(runs, plan, spec, seed, rate, warnings)
        extra = {"concurrency": conc, "duration": dur, "rate": rate, "open_loop_load": load}
    rel = os.path.relpath(raw, ws.root)
    result = CompareResult(b.name, sides, order, seed, tuple(plan), tuple(runs), tuple(judgements),
                           tail, aa, "", rel, None, tuple(warnings), extra)  # fmt: skip
    result = replace(result, summary_md=summary_markdown(result))
    atomic_write_json(raw / "compare.json", result.to_dict())
    if record:
        number = record_measurement(ws, campaign, to_measurement(result), started_in=started_in)
        if number is None and started_in is not None:
            reporter.warn(f"session {started_in} ended while comparing: not recorded (see {rel})")
        result = replace(result, session=number)
        if number is None:
            result = replace(result, not_recorded=unrecorded_reason(started_in, "comparing"))
    return result


def _tail(rate: float | None, load: float | None) -> str:
    """Which run latency comes from, for the report."""
    if rate:
        share = f" ({load * 100:g}% of the slower side's warm-up throughput)" if load else ""
        return f"open-loop run at {_rate(rate)} queries/s{share}"
    if load:
        return f"open-loop run at {load * 100:g}% of the slower side's warm-up throughput"
    return "saturated closed-loop run"


def _rate(rate: float) -> str:
    """``13,790`` / ``150`` / ``2.5``: a rate as people read it."""
    from sessionctl.units import format_number

    return format_number(rate).removesuffix(".0")


def _auto_rate(runs: Sequence[dict[str, Any]], load: float, warnings: list[str]) -> float | None:
    """``load`` times the slower side's warm-up QPS (None, with a warning, when it has none)."""
    warm = [float(r["qps"]) for r in runs if r["warmup"] and r["mode"] == "closed"]
    if not warm or min(warm) <= 0:
        warnings.append("the warm-up runs measured no throughput to set the open-loop rate from: "
                        "latency is from the saturated run")  # fmt: skip
        return None
    return load * min(warm)


def _judge(
    runs: Sequence[dict[str, Any]],
    plan: Sequence[str],
    spec: Any,
    seed: int,
    rate: float | None,
    warnings: list[str],
) -> list[Judgement]:
    """Judge every metric the counted runs share; latency judgements say which run gave them."""
    counted = [r for r in runs if not r["warmup"]]
    errors = sum(int(r["errors"]) for r in counted)
    if errors:
        warnings.append(f"{errors} failed queries during the counted runs (see the per-run data)")
    names: list[str] = []
    for r in counted:
        names.extend(k for k in r["values"] if k not in names)
    short = [r for r in counted if r["mode"] == "open" and r.get("rate_short")]
    if short:  # the sides' latencies were taken at loads of their own: nothing to compare
        names = [n for n in names if not n.startswith(("p50_ms@", "p99_ms@"))]
        warnings.append(_short_note(counted, rate))
    first = [o[0] for o in plan]
    sides = {name: (side_values(counted, name, "A"), side_values(counted, name, "B"))
             for name in names}  # fmt: skip
    for name, (a, b) in list(sides.items()):
        if len(a) != len(b):
            warnings.append(f"{name}: {len(a)} A runs but {len(b)} B runs; not judged")
            del sides[name]
    out = []
    for name, (a, b) in sides.items():
        better = next(r["better"][name] for r in counted if name in r["better"])
        j = judge_paired(name, a, b, better=better, threshold=threshold_for(name, spec),
                         seed=seed, first=first, family=len(sides))  # fmt: skip
        extra = list(j.warnings)
        if name.startswith(("p50_ms@", "p99_ms@")):
            opened = f"latency from a fixed-rate open-loop run at {_rate(rate)}/s" if rate else ""
            extra.append(opened or TAIL_SATURATED)
        unit = next((r["units"][name] for r in counted if name in r.get("units", {})), "")
        out.append(replace(j, warnings=tuple(extra), unit=unit))
    return judge_family(out)


def _short_note(counted: Sequence[dict[str, Any]], rate: float | None) -> str:
    """Why latency was not judged: the open-loop runs missed the rate (what each side reached)."""
    reached = {
        side: [float(r["achieved_rate"]) for r in counted
               if r["side"] == side and r["mode"] == "open" and r.get("achieved_rate") is not None]
        for side in ("A", "B")
    }  # fmt: skip
    got = "; ".join(f"{side} {_rate(min(v))}–{_rate(max(v))}/s" for side, v in reached.items() if v)
    floor = min((x for v in reached.values() for x in v), default=0.0)
    return (
        f"latency not judged: the open-loop runs fell short of {_rate(rate or 0)} queries/s "
        f"({got}), so each side was measured at a load of its own; rerun with --rate at or "
        f"below {_rate(math.floor(floor * 0.9))} (what both sides reach)"
    )


def to_measurement(result: CompareResult) -> Measurement:
    """The session record of a comparison: per-pair ratios as values, everything in details."""
    values = []
    for j in result.judgements:
        if j.ratio is not None:
            pairs = _pair_ratios(result.runs, j.metric)
            values.append(Value(f"{j.metric}:ratio", j.ratio, "B/A", j.better, tuple(pairs)))  # type: ignore[arg-type]
    details = result.to_dict()
    if result.aa:
        details.pop("judgements")  # a calibration is not the session's verdict
    return Measurement("compare", result.benchmark, None, tuple(values), result.summary_md,
                       result.raw_dir, details)  # fmt: skip


def _pair_ratios(runs: Sequence[dict[str, Any]], metric: str) -> list[float]:
    by_pair: dict[int, dict[str, float]] = {}
    for r in runs:
        if not r["warmup"] and metric in r["values"]:
            by_pair.setdefault(r["pair"], {})[r["side"]] = r["values"][metric]
    return [p["B"] / p["A"] for _, p in sorted(by_pair.items()) if p.get("A") and "B" in p]


def summary_markdown(result: CompareResult) -> str:
    """The comparison as a markdown paragraph and table (for the session log)."""
    kind = "A/A calibration" if result.aa else "paired A/B"
    lines = [
        f"`{result.benchmark}` {kind}: {len(result.plan)} pairs, order {result.order} (seed "
        f"{result.seed}: {' '.join(result.plan)}); A = {result.sides.a.description}; B = "
        f"{result.sides.b.description}; latency from the {result.tail}.",
        "",
        markdown_table(result.judgements),
    ]
    notes = [f"`{j.metric}`: {w}" for j in result.judgements for w in j.warnings] + list(
        result.warnings
    )
    if notes:
        lines += ["", *[f"- {w}" for w in notes]]
    if result.aa:
        lines += [
            "",
            f"{result.false_verdict_text()}.",
        ]
    return "\n".join(lines) + "\n"
