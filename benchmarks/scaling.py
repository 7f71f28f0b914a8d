"""Benchmark: `status` and `close --dry-run` in a big workspace against the same in a small one.

Targets (issue 21): `sessionctl status` with 10,000 recorded entries, and `sessionctl close
--dry-run` with 100,000 untracked files (a build folder missing from .gitignore), each within 2x
of the same command in the small workspace (the reference, measured in the same run). `status`
with the 100,000 untracked files is shown too.

The small workspace is the one ``startup.py`` builds: a committed git repository holding the
example campaign, a session open with a baseline measurement and a finding, one edited source
file. The big ones are copies of it: one with 10,000 entries appended to the session (two in
three measurements, the rest findings, across the four phases), one with 100,000 files under
``target/`` (100 folders of 1,000). Commands run as in ``startup.py``: warmed once, then in
shuffled rounds; medians of wall and CPU time (the child's and its children's, e.g. git).

    python benchmarks/scaling.py [-n 7] [--untracked 100000] [--entries 10000] [--gate wall|cpu]

Exits 1 when a target is missed (by ``--gate``, wall time unless told otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from startup import CAMPAIGN, cli, timed, workspace

TARGET = 2.0


def add_entries(root: Path, n: int) -> None:
    """Append ``n`` entries to the open session, in the format ``record`` writes."""
    (entries,) = (root / ".sessionctl" / "sessions" / CAMPAIGN).glob("*/entries.jsonl")
    phases = ("baseline", "profile", "change", "remeasure")
    rnd = random.Random(3)
    lines = []
    for i in range(n):
        phase = phases[i * len(phases) // n]
        at = "2026-01-01T00:00:00Z"
        if i % 3 == 0:
            entry = {"at": at, "by": "agent", "type": "finding", "phase": phase, "text": f"n{i}"}
        else:
            values = [
                {"name": "qps", "value": 1000 + rnd.random(), "unit": "", "better": "higher"},
                {"name": "p99", "value": 3.2, "unit": "ms", "better": "lower"},
            ]
            m = {"source": "manual", "name": "record", "phase": phase, "values": values}
            entry = {
                "at": at,
                "by": "agent",
                "type": "measurement",
                "phase": phase,
                "measurement": m,
            }
        lines.append(json.dumps(entry) + "\n")
    with entries.open("a", encoding="utf-8") as f:
        f.writelines(lines)


def add_untracked(root: Path, n: int) -> None:
    """``n`` untracked files under ``target/``, 1,000 to a folder."""
    for i in range(n):
        folder = root / "target" / f"d{i // 1000:03}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i % 1000:03}.o").write_bytes(b"")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=7, help="rounds (default 7; medians kept)")
    parser.add_argument("--entries", type=int, default=10_000, help="entries in the big session")
    parser.add_argument("--untracked", type=int, default=100_000, help="untracked files")
    parser.add_argument("--gate", choices=("wall", "cpu"), default="wall", help="target measure")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sessionctl-scaling-") as tmp:
        env = {
            **os.environ,
            "HOME": tmp,
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.invalid",
            "GIT_CONFIG_NOSYSTEM": "1",
            "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"),
        }
        env.pop("SESSIONCTL_CAMPAIGN", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        small = Path(tmp) / "small"
        small.mkdir()
        workspace(small, {**env, "SESSIONCTL_ROOT": str(small)})
        entries, files = Path(tmp) / "entries", Path(tmp) / "untracked"
        shutil.copytree(small, entries, symlinks=True)
        shutil.copytree(small, files, symlinks=True)
        add_entries(entries, args.entries)
        add_untracked(files, args.untracked)
        close = ["close", "--dry-run", "--force", "benchmark"]
        e, u = f"{args.entries:,} entries", f"{args.untracked:,} untracked files"
        runs = {
            "status (small workspace)": (small, ["status"]),
            f"status ({e})": (entries, ["status"]),
            f"status ({u})": (files, ["status"]),
            "close --dry-run (small workspace)": (small, close),
            f"close --dry-run ({u})": (files, close),
        }
        wall: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        for root, argv in runs.values():
            timed([*cli(), *argv], {**env, "SESSIONCTL_ROOT": str(root)}, root)  # warm up
        order = list(runs)
        for _ in range(args.n):
            random.shuffle(order)
            for name in order:
                root, argv = runs[name]
                w, c = timed([*cli(), *argv], {**env, "SESSIONCTL_ROOT": str(root)}, root)
                wall[name].append(w)
                cpu[name].append(c)

    med = {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in runs}
    refs = {"status": "status (small workspace)", "close": "close --dry-run (small workspace)"}
    targets = {f"status ({e})": TARGET, f"close --dry-run ({u})": TARGET}
    missed = []
    print(f"{'command':<44} {'wall':>9} {'ratio':>6} {'cpu':>9} {'ratio':>6}  target")
    for name in runs:
        ref = refs[name.split()[0]]
        w, c = med[name]
        rw, rc = w / med[ref][0], c / med[ref][1]
        verdict = ""
        if name in targets:
            ok = (rw if args.gate == "wall" else rc) <= targets[name]
            verdict = f"<= {targets[name]:g}x {args.gate}  {'ok' if ok else 'MISSED'}"
            if not ok:
                missed.append(name)
        elif name != ref:
            verdict = "(shown, no target)"
        print(
            f"{name:<44} {w * 1000:>7.0f}ms {rw:>5.2f}x {c * 1000:>7.0f}ms {rc:>5.2f}x  {verdict}"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"(medians of {args.n} shuffled rounds; {os.cpu_count()} CPUs, load {load})")
    if missed:
        print(f"MISSED: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
