"""Benchmark: how fast the benchmark drivers themselves are, against the same local PostgreSQL.

Starts a throwaway PostgreSQL (``EmbeddedPostgres``: fsync off, loopback), or uses ``--url``, with
the seed prompt's table (``t``, 5 rows; ``select * from t``), and at each concurrency level runs,
interleaved in rotating order (ABC, BCA, CAB...) so drift hits every contender alike:

* ``pgbench``      — reference: ``pgbench -n -M prepared -f q.sql -c C -j min(C,cores) -T D``, run
  directly, its own ``tps (without initial connection time)``;
* ``builtin``      — :func:`sessionctl.bench.builtin.run_builtin` (prepared, binary results);
* ``via-sessionctl`` — the same pgbench through :func:`sessionctl.bench.runner.run_bench`
  (script file, ``-P 1`` progress polled by the parent, ``--log`` per-transaction log parsed
  afterwards, setup SQL and the run folder), its recorded ``qps@cN``.

Prints per level the median QPS of each and two ratios, each the median over rounds of the
per-round ratio: builtin / pgbench (target >= 0.70) and via-sessionctl / pgbench (target >= 0.98,
i.e. <= 2 % overhead). Run:
``python benchmarks/drivers.py [--duration 5] [--concurrency 1,16,64] [--rounds 3] [--url URL]``.
On a shared 2-core machine the figures are noisy; use more rounds (and a quiet machine).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUERY = "select * from t"


def prepare(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        c.execute("create table if not exists t (id int primary key, v text)")
        c.execute(
            "insert into t select g, 'v' || g from generate_series(1, 5) g on conflict do nothing"
        )


def pgbench_direct(pgbench: str, url: str, conc: int, seconds: int, workdir: Path) -> float:
    script = workdir / "q.sql"
    script.write_text(QUERY + ";\n")
    threads = min(conc, os.cpu_count() or 1)
    argv = [pgbench, "-n", "-M", "prepared", "-f", str(script), "-c", str(conc), "-j", str(threads)]
    out = subprocess.run(
        [*argv, "-T", str(seconds), url], capture_output=True, text=True, check=True
    )
    m = re.search(r"^tps = ([0-9.]+) \(without initial connection time\)", out.stdout, re.M)
    if m is None:
        m = re.search(r"^tps = ([0-9.]+)", out.stdout, re.M)
    assert m is not None, out.stdout
    return float(m.group(1))


def builtin(url: str, conc: int, seconds: int) -> float:
    from sessionctl.bench.builtin import BuiltinSpec, run_builtin

    return run_builtin(
        BuiltinSpec(url=url, queries=((QUERY, 1.0),), concurrency=conc, duration=seconds)
    ).qps


def via_sessionctl(root: Path, conc: int, seconds: int) -> float:
    from sessionctl.bench.runner import run_bench
    from sessionctl.workspace import Workspace

    out = run_bench(
        Workspace(root),
        "drivers",
        bench="pgbench",
        concurrency=[conc],
        duration=seconds,
        record=False,
    )
    value = out.measurement.value(f"qps@c{conc}")
    assert value is not None
    return value.value


def workspace(root: Path, url: str, pgbench: str) -> None:
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "prompts" / "drivers.yaml").write_text(
        f"""schema: 1
revision: 1
title: driver speed
target:
  sql_url: {url}
benchmarks:
  - name: pgbench
    driver: pgbench
    binary: {pgbench}
    args: [-M, prepared]
    query: {QUERY}
"""
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds per run")
    ap.add_argument("--concurrency", default="1,16,64", help="levels, comma-separated")
    ap.add_argument("--rounds", type=int, default=3, help="runs per contender and level")
    ap.add_argument("--url", help="use this server instead of a throwaway one")
    args = ap.parse_args()
    from sessionctl.bench.pgbench import find_pgbench
    from sessionctl.target.embedded_postgres import EmbeddedPostgres

    pgbench = find_pgbench(None)
    levels = [int(x) for x in args.concurrency.split(",")]
    server = None
    url = args.url
    if url is None:
        server = EmbeddedPostgres()
        server.start()
        server.wait_ready()
        url = server.url
    tmp = Path(tempfile.mkdtemp(prefix="sessionctl-drivers-"))
    try:
        prepare(url)
        workspace(tmp / "ws", url, pgbench)
        contenders = {
            "pgbench": lambda c: pgbench_direct(pgbench, url, c, args.duration, tmp),
            "builtin": lambda c: builtin(url, c, args.duration),
            "via-sessionctl": lambda c: via_sessionctl(tmp / "ws", c, args.duration),
        }
        names = list(contenders)
        print(
            f"cores={os.cpu_count()} duration={args.duration}s rounds={args.rounds} query={QUERY!r}"
        )
        heads = ("conc", "pgbench", "builtin", "via-sctl", "builtin/pgbench", "via/pgbench")
        widths = (5, 10, 10, 10, 16, 12)
        print(" ".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True)))
        for conc in levels:
            got: dict[str, list[float]] = {n: [] for n in names}
            for r in range(args.rounds):
                order = names[r % 3 :] + names[: r % 3]
                for name in order:
                    got[name].append(contenders[name](conc))
            med = {n: statistics.median(v) for n, v in got.items()}
            # Ratios are taken per round (the three ran back to back), then the median of those:
            # pairing cancels most of the drift on a shared machine.
            own = statistics.median(
                b / a for a, b in zip(got["pgbench"], got["builtin"], strict=True)
            )
            via = statistics.median(
                b / a for a, b in zip(got["pgbench"], got["via-sessionctl"], strict=True)
            )
            print(
                f"{conc:>5} {med['pgbench']:>10,.0f} {med['builtin']:>10,.0f}"
                f" {med['via-sessionctl']:>10,.0f} {own:>16.3f} {via:>12.3f}"
            )
            print(
                "      samples: "
                + "; ".join(f"{n}={[round(x) for x in v]}" for n, v in got.items()),
                flush=True,
            )
        print("targets: builtin/pgbench >= 0.70; via/pgbench >= 0.98 (<= 2% overhead)")
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
