"""Start-up time of the CLI against a bare `import typer, rich.console`, measured in one run.

Targets (issue 2): `sessionctl --help` <= 1.3x the reference, `sessionctl status` <= 2x.
The three commands are run round-robin (so machine noise hits them alike) after one warm-up
each; medians are reported. `status` runs in a temporary workspace holding a copy of the
example campaign; `next list` is measured too (the lightest command that loads a campaign).

    python benchmarks/startup.py [-n 20]

The numbers are only meaningful on a quiet machine: rerun it there before drawing conclusions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"sessionctl --help": 1.3, "sessionctl status": 2.0}


def cli() -> list[str]:
    """The installed console script, or the module when it is not on PATH."""
    script = shutil.which("sessionctl")
    return [script] if script else [sys.executable, "-m", "sessionctl"]


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Wall-clock seconds for one run (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise SystemExit(f"{' '.join(argv)}: exited with {done.returncode}: {' '.join(tail)}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=15, help="repetitions per command (default 15)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sessionctl-startup-") as tmp:
        root = Path(tmp)
        (root / "prompts").mkdir()
        shutil.copy(REPO / "prompts" / "pgwire-throughput.yaml", root / "prompts")
        env = {**os.environ, "SESSIONCTL_ROOT": str(root), "HOME": str(root)}
        commands = {
            "reference: python -c 'import typer, rich.console'": [
                sys.executable,
                "-c",
                "import typer, rich.console",
            ],
            "sessionctl --help": [*cli(), "--help"],
            "sessionctl status": [*cli(), "status"],
            "sessionctl next list": [*cli(), "next", "list"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():
            timed(argv, env)  # warm the page cache and .pyc files
        for _ in range(args.n):
            for name, argv in commands.items():
                times[name].append(timed(argv, env))

    reference = statistics.median(next(iter(times.values())))
    print(f"{'command':<52} {'median':>9} {'ratio':>7}  target")
    for name, samples in times.items():
        med = statistics.median(samples)
        ratio = med / reference
        target = TARGETS.get(name)
        verdict = "" if target is None else f"<= {target}x  {'ok' if ratio <= target else 'MISSED'}"
        print(f"{name:<52} {med * 1000:>7.1f}ms {ratio:>6.2f}x  {verdict}")
    print(f"({args.n} runs each, round-robin; {os.cpu_count()} CPUs; noisy if the machine is busy)")


if __name__ == "__main__":
    main()
