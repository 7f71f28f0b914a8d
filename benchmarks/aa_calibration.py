"""Calibration: how often does the default compare protocol claim a difference that isn't there?

Starts a throwaway PostgreSQL (``EmbeddedPostgres``: fsync off, loopback), loads a lookup table
(``--rows`` rows, ``k`` with 1 % selectivity... see ``setup``), writes a campaign for the built-in
driver in a temporary workspace, then:

* **A/A** (``--trials`` times): ``run_compare(..., aa=True)`` — the same server state on both
  sides, ``--pairs`` interleaved ABBA pairs of ``--duration`` second runs, one warm-up per side.
  Latency comes from the protocol's open-loop runs (half the warm-up throughput), and the
  three metrics of a trial are one Holm family, as in every comparison. Every improved/regressed
  verdict is false, and so is every "probably …". Prints the per-metric and per-trial
  false-verdict rates (the target: no change or inconclusive in >= 95 % of trials), both on the
  lenient reading (no improved/regressed) and the strict one (no "probably" either), the
  verdict counts, the noise floor (median run-to-run CV, median MDE) of this machine, and how
  often the drift, order-effect and outlier warnings fired with identical sides.
* **known improvement** (unless ``--no-known``): A without / B with an index on the lookup
  column (``SqlSides``), the default protocol; then the effect measured separately by long runs
  (``--ref-runs`` per side of ``--ref-duration`` seconds, alternating), and whether the compare's
  95 % interval for QPS contains it.

The machine's load average is printed at the start and the end: other work on a 2-core machine
inflates the spread (and so the MDE) but must not inflate the false-verdict rate. Run:
``python benchmarks/aa_calibration.py [--trials 40] [--pairs 6] [--duration 1] [--concurrency 2]
[--save trials.jsonl]`` (``--save`` appends every trial's judgements, for a later look).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TABLE = "calib_orders"
QUERY = (
    f"SELECT count(*), sum(amount) FROM {TABLE} "
    "WHERE customer_id = (SELECT (random() * 20000)::int)"
)
CREATE = f"CREATE INDEX IF NOT EXISTS {TABLE}_customer ON {TABLE} (customer_id)"
DROP = f"DROP INDEX IF EXISTS {TABLE}_customer"


def setup(url: str, rows: int) -> None:
    """Create and fill the lookup table (20k customers)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"CREATE TABLE {TABLE} (id bigserial, customer_id int, amount numeric(10,2))")
        c.execute(
            f"INSERT INTO {TABLE} (customer_id, amount) SELECT (random() * 20000)::int, "
            f"round((random() * 500)::numeric, 2) FROM generate_series(1, {rows})"
        )
        c.execute(f"ANALYZE {TABLE}")


def workspace(root: Path, url: str, concurrency: int, duration: float) -> object:
    from sessionctl.workspace import Workspace

    (root / "prompts").mkdir(parents=True)
    (root / "prompts" / "calib.yaml").write_text(
        f"""schema: 1
revision: 1
title: A/A calibration
target:
  sql_url: "{url}"
benchmarks:
  - name: lookup
    driver: builtin
    query: {QUERY}
    concurrency: [{concurrency}]
    duration: {duration}
"""
    )
    return Workspace(root)


def pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def aa_trials(ws: object, args: argparse.Namespace) -> None:
    from sessionctl.verdict.protocol import SqlSides, run_compare

    verdicts: dict[str, dict[str, int]] = {}
    cvs: dict[str, list[float]] = {}
    mdes: dict[str, list[float]] = {}
    false_trials = judged = false_total = directional_trials = 0
    # How often each warning fires with identical sides (drift and an order effect are the
    # machine's, real or not; with clean data each test fires in about 5 % of metrics).
    alarms = {"drift": 0, "order effect": 0, "outlier": 0}
    started = time.monotonic()
    for trial in range(1, args.trials + 1):
        res = run_compare(
            ws,  # type: ignore[arg-type]
            "calib",
            sides=SqlSides(a_sql=(CREATE,)),
            aa=True,
            pairs=args.pairs,
            duration=args.duration,
            seed=trial,
            record=False,
        )
        bad = [j.metric for j in res.judgements if j.verdict in ("improved", "regressed")]
        false_trials += bool(bad)
        directional_trials += any(
            j.verdict not in ("no change", "inconclusive") for j in res.judgements
        )
        judged += len(res.judgements)
        for kind in alarms:
            alarms[kind] += sum(any(kind in w for w in j.warnings) for j in res.judgements)
        false_total += len(bad)
        for j in res.judgements:
            verdicts.setdefault(j.metric, {}).setdefault(j.verdict, 0)
            verdicts[j.metric][j.verdict] += 1
            if j.mde is not None:
                mdes.setdefault(j.metric, []).append(j.mde)
        for f in res.noise_floor():
            cvs.setdefault(f["metric"], []).extend(
                x for x in (f["cv_a"], f["cv_b"]) if x is not None
            )
        if args.save:
            with open(args.save, "a", encoding="utf-8") as fh:
                row = {"trial": trial, "judgements": [j.to_dict() for j in res.judgements]}
                fh.write(json.dumps(row) + "\n")
        line = ", ".join(
            f"{j.metric} {j.verdict} {(j.ratio or math.nan) - 1:+.1%}" for j in res.judgements
        )
        took, load = time.monotonic() - started, os.getloadavg()[0]
        print(f"trial {trial:3d}/{args.trials}: {line}  [{took:.0f}s, load {load:.1f}]", flush=True)
    print()
    print(f"A/A: {args.trials} trials x {args.pairs} pairs x {args.duration:g}s runs")
    print(
        "metric          verdicts                                          median CV   median MDE"
    )
    for metric, counts in verdicts.items():
        text = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        cv = pct(statistics.median(cvs.get(metric) or [math.nan]))
        mde = pct(statistics.median(mdes.get(metric) or [math.nan]))
        print(f"{metric:15s} {text:48s}  {cv:>9s}   {mde:>9s}")
    ok = args.trials - false_trials
    print(
        f"false verdicts per metric: {false_total}/{judged} = {pct(false_total / max(judged, 1))}"
    )
    status = "PASS" if ok >= 0.95 * args.trials else "FAIL"
    rate = pct(ok / args.trials)
    print(f"trials without a false verdict: {ok}/{args.trials} = {rate} (target >= 95%): {status}")
    rates = ", ".join(f"{k} {v}/{judged} = {pct(v / max(judged, 1))}" for k, v in alarms.items())
    print(f"warnings with identical sides, per metric: {rates}")
    strict = args.trials - directional_trials
    status = "PASS" if strict >= 0.95 * args.trials else "FAIL"
    print(
        f"trials with only 'no change'/'inconclusive' (no 'probably'): {strict}/{args.trials} "
        f"= {pct(strict / args.trials)} (target >= 95%): {status}"
    )


def known_improvement(ws: object, url: str, args: argparse.Namespace) -> None:
    import psycopg

    from sessionctl.bench.builtin import BuiltinSpec, run_builtin
    from sessionctl.verdict.protocol import SqlSides, run_compare
    from sessionctl.verdict.stats import geometric_mean

    sides = SqlSides(a_sql=(DROP,), b_sql=(CREATE, f"ANALYZE {TABLE}"))
    res = run_compare(
        ws,  # type: ignore[arg-type]
        "calib",
        sides=sides,
        pairs=args.pairs,
        duration=args.duration,
        record=False,
    )
    qps = next(j for j in res.judgements if j.metric.startswith("qps@"))
    print()
    print(f"known improvement (index on customer_id): {len(res.plan)} pairs x {args.duration:g}s")
    for j in res.judgements:
        print("  " + j.describe())
    ref: dict[str, list[float]] = {"A": [], "B": []}
    for i in range(2 * args.ref_runs):
        side = "AB"[i % 2]
        with psycopg.connect(url, autocommit=True) as c:
            for sql in sides.side(side).setup_sql:
                c.execute(sql)  # type: ignore[arg-type]
        spec = BuiltinSpec(
            url=url,
            queries=((QUERY, 1.0),),
            concurrency=args.concurrency,
            duration=args.ref_duration,
        )
        ref[side].append(run_builtin(spec).qps)
    ga, gb = geometric_mean(ref["A"]), geometric_mean(ref["B"])
    effect = gb / ga
    print(f"separate long runs ({args.ref_runs} per side x {args.ref_duration:g}s, alternating): ")
    print(f"  A {ga:,.0f} QPS, B {gb:,.0f} QPS, ratio {effect:.3f}")
    lo, hi = qps.ci_low or math.nan, qps.ci_high or math.nan
    inside = "YES" if lo <= effect <= hi else "NO"
    print(f"compare: {qps.verdict}, ratio {qps.ratio or math.nan:.3f}, 95% CI {lo:.3f} .. {hi:.3f}")
    print(f"the interval contains the separately measured effect: {inside}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--duration", type=float, default=1.0, help="seconds per run")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--no-known", action="store_true", help="skip the known-improvement check")
    ap.add_argument("--ref-runs", type=int, default=3)
    ap.add_argument("--ref-duration", type=float, default=5.0)
    ap.add_argument("--save", metavar="FILE", help="append each trial's judgements (JSON lines)")
    args = ap.parse_args()

    from sessionctl.target.embedded_postgres import EmbeddedPostgres

    print(f"load average at start: {os.getloadavg()}  ({os.cpu_count()} cores)")
    with EmbeddedPostgres() as pg, tempfile.TemporaryDirectory(prefix="aa-calib-") as tmp:
        pg.wait_ready()
        setup(pg.url, args.rows)
        ws = workspace(Path(tmp) / "ws", pg.url, args.concurrency, args.duration)
        if args.trials:
            aa_trials(ws, args)
        if not args.no_known:
            known_improvement(ws, pg.url, args)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
