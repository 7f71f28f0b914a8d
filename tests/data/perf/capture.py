"""Regenerate the captured ``perf script`` files in this folder (needs root-ish perf access).

    python tests/data/perf/capture.py OUT_NAME --bindir /usr/lib/postgresql/15/bin \
        --mode simple --clients 4 --duration 2

Starts an EmbeddedPostgres from ``--bindir``, loads pgbench scale 1, runs ``pgbench -S`` under
``sessionctl.profiling.profile_run`` (perf attached to the postmaster tree, call graph chosen by
``auto``), and writes ``OUT_NAME.perf.txt.gz`` (the real ``perf script`` text) and
``OUT_NAME.json`` (queries, measured window, concurrency, how it was taken).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from sessionctl.campaign.model import ProfileSpec  # noqa: E402
from sessionctl.profiling import profile_run  # noqa: E402
from sessionctl.target.embedded_postgres import EmbeddedPostgres  # noqa: E402


@dataclass(frozen=True)
class PgbenchRun:
    queries: int
    qps: float
    window: tuple[float, float]


def pgbench(url: str, *, mode: str, clients: int, duration: float) -> PgbenchRun:
    argv = ["pgbench", "-n", "-S", "-M", mode, "-c", str(clients), "-j", str(min(clients, 2))]
    argv += ["-T", str(int(duration)), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    end = time.monotonic()
    queries = int(re.search(r"actually processed: (\d+)", out).group(1))  # type: ignore[union-attr]
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # pgbench's -T clock starts once every client is connected and stops before disconnecting.
    return PgbenchRun(queries, tps, (end - duration, end))


def postmaster_tree(datadir: Path) -> list[int]:
    pm = int((datadir / "postmaster.pid").read_text().split()[0])
    kids = subprocess.run(["pgrep", "-P", str(pm)], capture_output=True, text=True).stdout.split()
    return [pm, *(int(k) for k in kids)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--bindir", required=True)
    ap.add_argument("--mode", default="simple")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--call-graph", default="auto")
    args = ap.parse_args()
    os.environ["SESSIONCTL_PG_BINDIR"] = args.bindir
    with EmbeddedPostgres() as pg:
        pg.wait_ready()
        subprocess.run(["pgbench", "-i", "-q", "-s", "1", pg.url], check=True, capture_output=True)
        with tempfile.TemporaryDirectory() as tmp:
            res = profile_run(
                pids=lambda: postmaster_tree(pg.datadir),
                run=lambda: pgbench(
                    pg.url, mode=args.mode, clients=args.clients, duration=args.duration
                ),
                out_dir=Path(tmp),
                spec=ProfileSpec(),
                concurrency=args.clients,
                call_graph=args.call_graph,
                keep_script=True,
            )
            (HERE / f"{args.name}.perf.txt.gz").write_bytes(
                Path(res.files["perf_script"]).read_bytes()
            )
    meta = {
        "queries": res.profile.queries,
        "qps": res.qps_profiled,
        "window": res.details["window"],
        "concurrency": args.clients,
        "call_graph": res.details["call_graph"],
        "event": res.details["event"],
        "frequency": 999,
        "postgres": str(Path(args.bindir) / "postgres"),
        "command": f"pgbench -n -S -M {args.mode} -c {args.clients} -T {args.duration:g}",
        "samples_in_window": res.profile.samples,
    }
    (HERE / f"{args.name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(res.report.to_markdown(top=12))


if __name__ == "__main__":
    main()
