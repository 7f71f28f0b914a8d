"""Benchmark: sessionctl's exposition parser against prometheus_client's, on ~10 MB of histograms.

The exposition is generated in memory (seed 42): 2,000 histogram families with HELP lines that
use escapes, two label sets of seven labels each (one value contains ``{id}``), twelve buckets plus
``_sum``/``_count`` per series: 10.46 MB, the same text as the baseline in
``shared/reference/prometheus.md`` section 5, shaped like Materialize's ``/metrics``.

Both parsers run in the same process on the same string. Targets (issue 4): a full parse at
>= 5x prometheus_client's throughput, a parse filtered to 3 families at >= 20x. Exits 1 when a
target is missed. Run: ``python benchmarks/metrics_parser.py [--families N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_FULL = 5.0
TARGET_FILTERED = 20.0
BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
METHODS = ["GET", "POST", "PUT", "DELETE"]


def generate(n_families: int = 2000, series_per_family: int = 2, seed: int = 42) -> str:
    """Build the exposition text (identical to the reference generator for the defaults)."""
    rnd = random.Random(seed)
    out: list[str] = []
    for f in range(n_families):
        name = f"app_subsystem_{f}_request_duration_seconds"
        out.append(f"# HELP {name} Request latency for subsystem {f}, with \\\\ and \\n escapes.\n")
        out.append(f"# TYPE {name} histogram\n")
        for s in range(series_per_family):
            labels = (
                f'instance="10.0.{f % 256}.{s}:9090",job="bench",namespace="production",'
                f'method="{METHODS[s % 4]}",route="/api/v1/items/{{id}}",'
                f'status="{200 + (s % 3) * 100}"'
            )
            c = 0
            for b in BOUNDS:
                c += rnd.randint(0, 5000)
                out.append(f'{name}_bucket{{{labels},le="{b}"}} {c}\n')
            out.append(f"{name}_sum{{{labels}}} {rnd.random() * c!r}\n")
            out.append(f"{name}_count{{{labels}}} {c}\n")
    return "".join(out)


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--families", type=int, default=2000, help="histogram families (2000 = 10.46 MB)"
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs of our parser (best is kept)")
    ap.add_argument(
        "--ref-repeat", type=int, default=1, help="runs of prometheus_client (best kept)"
    )
    args = ap.parse_args()

    from prometheus_client.parser import text_string_to_metric_families

    from sessionctl.metrics.exposition import parse

    text = generate(args.families)
    mb = len(text.encode()) / 1e6
    wanted = [
        f"app_subsystem_{i}_request_duration_seconds"
        for i in (7, args.families // 2, args.families - 1)
    ]
    print(
        f"exposition: {mb:.2f} MB, {text.count(chr(10)):,} lines, "
        f"{args.families:,} histogram families"
    )

    ref_families: list[Any] = []

    def run_ref() -> None:
        ref_families[:] = list(text_string_to_metric_families(text))

    t_ref = _best(run_ref, args.ref_repeat)
    ref_samples = sum(len(f.samples) for f in ref_families)

    full = parse(text)
    ours_samples = full.sample_count()
    if ours_samples != ref_samples:
        print(f"MISMATCH: prometheus_client saw {ref_samples} samples, we saw {ours_samples}")
        return 1
    filtered = parse(text, families=wanted)
    got = sorted(n for n in filtered.families if n in wanted)
    if got != sorted(wanted) or any(len(filtered.families[w].samples) != 28 for w in wanted):
        print(f"MISMATCH: filtered parse returned {sorted(filtered.families)}")
        return 1

    t_full = _best(lambda: parse(text), args.repeat)
    t_filt = _best(lambda: parse(text, families=wanted), args.repeat)
    r_full, r_filt = t_ref / t_full, t_ref / t_filt
    print(
        f"prometheus_client {_version()} text_string_to_metric_families: "
        f"{t_ref:7.3f} s  {mb / t_ref:8.2f} MB/s  (reference)"
    )
    print(
        f"sessionctl parse, full:                 {t_full:7.3f} s  {mb / t_full:8.2f} MB/s  "
        f"{r_full:6.1f}x  (target >= {TARGET_FULL:g}x)"
    )
    print(
        f"sessionctl parse, 3 families:           {t_filt:7.3f} s  {mb / t_filt:8.2f} MB/s  "
        f"{r_filt:6.1f}x  (target >= {TARGET_FILTERED:g}x)"
    )
    ok = r_full >= TARGET_FULL and r_filt >= TARGET_FILTERED
    print("PASS" if ok else "FAIL: a target was missed")
    return 0 if ok else 1


def _version() -> str:
    from importlib.metadata import version

    return version("prometheus_client")


if __name__ == "__main__":
    sys.exit(main())
