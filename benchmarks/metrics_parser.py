"""Benchmark: sessionctl's exposition parser and `metrics diff` against prometheus_client.

The exposition is generated (seed 42): 2,000 histogram families with HELP lines that use escapes,
two label sets of seven labels each (one value contains ``{id}``), twelve buckets plus
``_sum``/``_count`` per series: 10.46 MB, the same text as the baseline in
``shared/reference/prometheus.md`` section 5, shaped like Materialize's ``/metrics``. The "after"
scrape adds a few observations to three families in four (so about 41k of 56k series change).

1. In process, on the same string: a full parse >= 5x prometheus_client's throughput, a parse
   filtered to 3 families >= 20x (issue 4).
2. End to end, each command a new process (issue 21), in shuffled interleaved rounds, medians:
   the reference is a Python process parsing both files with prometheus_client;
   ``sessionctl metrics diff BEFORE AFTER`` must be >= 5x faster, the same with ``--metric`` one
   family >= 20x, and the full diff of twice the families at most 2.2x the time of the full
   diff (the growth check: linear, not quadratic).

Exits 1 when a target is missed (end-to-end targets by ``--gate``: wall time unless told).
Run: ``python benchmarks/metrics_parser.py [--families N] [--rounds N] [--gate wall|cpu]``.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
TARGET_FULL = 5.0
TARGET_FILTERED = 20.0
TARGET_DIFF_FULL = 5.0
TARGET_DIFF_ONE = 20.0
TARGET_GROWTH = 2.2
REFERENCE = "reference: prometheus_client parses both"
REF_SCRIPT = (
    "import sys\n"
    "from prometheus_client.parser import text_string_to_metric_families\n"
    "for p in sys.argv[1:]:\n"
    "    with open(p, encoding='utf-8') as f:\n"
    "        fams = list(text_string_to_metric_families(f.read()))\n"
)
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


def generate_pair(n_families: int = 2000, seed: int = 42) -> tuple[str, str]:
    """A before/after pair: ``generate()``'s text, then the same with observations added to
    three families in four (consistent buckets, ``_sum`` and ``_count``)."""
    before = generate(n_families, seed=seed)
    rnd = random.Random(seed + 1)
    out: list[str] = []
    family = added = 0
    for line in before.splitlines(keepends=True):
        if line.startswith("# TYPE "):
            family = int(line.split("_", 3)[2])
            added = 0
        elif not line.startswith("#") and family % 4:
            head, _, value = line.rstrip("\n").rpartition(" ")
            if "_bucket{" in head:
                added += rnd.randint(0, 3)
                line = f"{head} {int(value) + added}\n"
            elif "_sum{" in head:
                line = f"{head} {float(value) + added * 0.01!r}\n"
            elif "_count{" in head:
                line = f"{head} {int(value) + added}\n"
                added = 0
        out.append(line)
    return before, "".join(out)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + sys of the child) for one run; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise SystemExit(f"{' '.join(argv)}: exited with {done.returncode}: {' '.join(tail)}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def end_to_end(n_families: int, rounds: int, gate: str) -> bool:
    """Time the diff commands and the reference in new processes; print ratios; True if met."""
    with tempfile.TemporaryDirectory(prefix="sessionctl-metrics-") as tmp:
        paths: dict[int, tuple[str, str]] = {}
        for n in (n_families, 2 * n_families):
            b_text, a_text = generate_pair(n)
            b, a = Path(tmp, f"before-{n}.prom"), Path(tmp, f"after-{n}.prom")
            b.write_text(b_text, encoding="utf-8")
            a.write_text(a_text, encoding="utf-8")
            paths[n] = (str(b), str(a))
        mb = sum(Path(p).stat().st_size for p in paths[n_families]) / 1e6
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": f"{tmp}/pycache"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # byte-code as an installed package has it
        sessionctl = [sys.executable, "-m", "sessionctl", "metrics", "diff"]
        one = f"app_subsystem_{n_families // 2}_request_duration_seconds"
        commands = {
            REFERENCE: [sys.executable, "-c", REF_SCRIPT, *paths[n_families]],
            "sessionctl metrics diff B A": [*sessionctl, *paths[n_families]],
            "sessionctl metrics diff B A --metric ONE": [
                *sessionctl,
                *paths[n_families],
                "-m",
                one,
            ],
            "sessionctl metrics diff B A (2x families)": [*sessionctl, *paths[2 * n_families]],
        }
        for argv in commands.values():
            timed(argv, env)  # warm the page cache and the byte-code
        wall: dict[str, list[float]] = {k: [] for k in commands}
        cpu: dict[str, list[float]] = {k: [] for k in commands}
        order = list(commands)
        for _ in range(rounds):
            random.shuffle(order)
            for name in order:
                w, c = timed(commands[name], env)
                wall[name].append(w)
                cpu[name].append(c)
    med = {
        m: {k: statistics.median(v) for k, v in d.items()}
        for m, d in (("wall", wall), ("cpu", cpu))
    }
    full, one_name, big = list(commands)[1:]
    checks = [
        (
            one_name,
            "faster than the reference",
            lambda m: med[m][REFERENCE] / med[m][one_name],
            ">=",
            TARGET_DIFF_ONE,
        ),
        (
            full,
            "faster than the reference",
            lambda m: med[m][REFERENCE] / med[m][full],
            ">=",
            TARGET_DIFF_FULL,
        ),
        (
            big,
            "the time of the full diff",
            lambda m: med[m][big] / med[m][full],
            "<=",
            TARGET_GROWTH,
        ),
    ]
    print(f"\nend to end, {mb:.1f} MB (two files), medians of {rounds} shuffled rounds:")
    for name in commands:
        print(f"  {name:<44} wall {med['wall'][name]:7.3f} s   cpu {med['cpu'][name]:7.3f} s")
    ok = True
    for name, what, ratio, op, target in checks:
        r_wall, r_cpu = ratio("wall"), ratio("cpu")
        r = r_wall if gate == "wall" else r_cpu
        met = r >= target if op == ">=" else r <= target
        ok &= met
        print(
            f"  {name:<44} {r_wall:6.2f}x wall {r_cpu:6.2f}x cpu {what} "
            f"(target {op} {target:g}x {gate}: {'ok' if met else 'MISSED'})"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  ({os.cpu_count()} CPUs, load {load}; rerun on a quiet machine before concluding)")
    return ok


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
    ap.add_argument("--rounds", type=int, default=5, help="end-to-end rounds (medians kept)")
    ap.add_argument(
        "--gate", choices=("wall", "cpu"), default="wall", help="measure end-to-end targets use"
    )
    ap.add_argument("--no-e2e", action="store_true", help="only the in-process parser figures")
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
    if not args.no_e2e:
        ok = end_to_end(args.families, args.rounds, args.gate) and ok
    print("PASS" if ok else "FAIL: a target was missed")
    return 0 if ok else 1


def _version() -> str:
    from importlib.metadata import version

    return version("prometheus_client")


if __name__ == "__main__":
    sys.exit(main())
