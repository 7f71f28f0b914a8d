"""Start-up time of the CLI against a bare `import typer, rich.console`, measured in one run.

Targets (issue 2): `sessionctl --help` <= 1.3x the reference, `sessionctl status` <= 2x, where
`status` runs in a real git workspace (a copy of the example campaign, committed) with a session
open, a baseline measurement and a finding recorded and one edited source file, so it does the
whole of its work: recovery check, campaign load, session entries and the close-plan preview.

Method: every command runs once to warm the page cache and the byte-code cache (kept in a
temporary PYTHONPYCACHEPREFIX, so the checkout stays clean), then all of them run in N rounds,
each round in a new shuffled order (so machine noise hits them alike); the verdict uses the
median wall time of each command divided by the reference's median. Each row also shows the
median CPU time (user + sys of the child and its own children, e.g. git) and its ratio, which a
busy machine disturbs much less than wall time: when the two ratios disagree, trust the CPU one
and rerun on a quiet machine. Every command runs with the interpreter running this script (the
console script installed next to it), so a pyenv/venv shim in front of one does not skew it.

    python benchmarks/startup.py [-n 21] [--gate wall|cpu]

Exits 1 when a target is missed (by the ``--gate`` measure, wall time unless told otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CAMPAIGN = "pgwire-throughput"
REFERENCE = "reference: python -c 'import typer, rich.console'"
TARGETS = {"sessionctl --help": 1.3, "sessionctl status": 2.0}


def cli() -> list[str]:
    """The console script of this interpreter, or the module when it is not installed."""
    script = Path(sysconfig.get_path("scripts")) / "sessionctl"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "sessionctl"]


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + sys, children included) for one run; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise SystemExit(f"{' '.join(argv)}: exited with {done.returncode}: {' '.join(tail)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def git(root: Path, *args: str) -> None:
    """Run git in ``root`` quietly (setup only)."""
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def workspace(root: Path, env: dict[str, str]) -> None:
    """A committed git workspace holding the example campaign, with session N+1 open and used."""
    (root / "prompts").mkdir()
    (root / "logs").mkdir()
    text = (REPO / "prompts" / f"{CAMPAIGN}.yaml").read_text(encoding="utf-8")
    # The example campaign is versioned with jj; this workspace is a plain git repository.
    text = re.sub(r"(?m)^vcs: .*$", "vcs: git", text)
    (root / "prompts" / f"{CAMPAIGN}.yaml").write_text(text, encoding="utf-8")
    (root / "src").mkdir()
    (root / "src" / "server.py").write_text("def handle(query):\n    return query\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    for args in (
        ["start", CAMPAIGN],
        [
            "record",
            CAMPAIGN,
            "--phase",
            "baseline",
            "--metric",
            "qps=1000",
            "--metric",
            "p99=3.2ms",
        ],
        ["record", CAMPAIGN, "--phase", "profile", "--finding", "decode dominates"],
    ):
        subprocess.run([*cli(), *args], cwd=root, env=env, check=True, capture_output=True)
    (root / "src" / "server.py").write_text("def handle(query):\n    return query.strip()\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=21, help="repetitions per command (default 21)")
    parser.add_argument(
        "--gate", choices=("wall", "cpu"), default="wall", help="measure the targets apply to"
    )
    args = parser.parse_args()
    if args.n < 15:
        parser.error("-n: use at least 15 repetitions (medians of fewer runs are too noisy)")

    with tempfile.TemporaryDirectory(prefix="sessionctl-startup-") as tmp:
        root = Path(tmp) / "ws"
        root.mkdir()
        env = {
            **os.environ,
            "HOME": tmp,
            "SESSIONCTL_ROOT": str(root),
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.invalid",
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        env.pop("SESSIONCTL_CAMPAIGN", None)
        # Byte-code as an installed package has it, for every module on both sides alike: with
        # PYTHONDONTWRITEBYTECODE (set on some dev machines) sessionctl would be compiled from
        # source on every run while typer and rich load their installed .pyc files.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        workspace(root, env)
        shown = subprocess.run(
            [*cli(), "status", "--json"], cwd=root, env=env, capture_output=True, check=True
        )
        if not json.loads(shown.stdout).get("close_plan"):
            raise SystemExit("setup: `sessionctl status` shows no open session with a close plan")
        commands = {
            REFERENCE: [sys.executable, "-c", "import typer, rich.console"],
            "sessionctl --help": [*cli(), "--help"],
            "sessionctl status": [*cli(), "status"],
            "sessionctl status --json": [*cli(), "status", "--json"],
            "sessionctl next list": [*cli(), "next", "list"],
        }
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():
            timed(argv, env, root)  # warm the page cache and .pyc files
        order = list(commands)
        shuffle = random.Random(0).shuffle
        for _ in range(args.n):
            shuffle(order)  # a fresh order each round: no command always follows the same one
            for name in order:
                w, c = timed(commands[name], env, root)
                wall[name].append(w)
                cpu[name].append(c)

    ref_wall = statistics.median(wall[REFERENCE])
    ref_cpu = statistics.median(cpu[REFERENCE])
    missed = []
    print(f"{'command':<52} {'wall':>8} {'ratio':>6} {'cpu':>8} {'ratio':>6}  target")
    for name in commands:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        ratios = {"wall": w / ref_wall, "cpu": c / ref_cpu}
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            ok = ratios[args.gate] <= target
            verdict = f"<= {target}x {args.gate}  {'ok' if ok else 'MISSED'}"
            if not ok:
                missed.append(name)
        print(
            f"{name:<52} {w * 1000:>6.1f}ms {ratios['wall']:>5.2f}x "
            f"{c * 1000:>6.1f}ms {ratios['cpu']:>5.2f}x  {verdict}"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"(medians of {args.n} shuffled rounds; {os.cpu_count()} CPUs, load {load}; "
        "rerun on a quiet machine before drawing conclusions)"
    )
    if missed:
        print(f"MISSED: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
