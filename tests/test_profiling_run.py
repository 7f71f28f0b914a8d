"""The profile_run seam without perf: result shapes, a configured command profiler, py-spy."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sessionctl.campaign.model import ProfileSpec
from sessionctl.errors import MeasurementError, UsageError
from sessionctl.profiling import profile_run, run_facts
from sessionctl.profiling.pyspy import tree_roots


@dataclass(frozen=True)
class FakeRun:
    """A benchmark result shaped like sessionctl.bench.results.RunResult."""

    queries: int
    window: tuple[float, float]
    qps: float | None = None


def test_run_facts_reads_the_shapes_drivers_return() -> None:
    now = time.monotonic()
    f = run_facts(FakeRun(1000, (now - 2, now)))
    assert f.queries == 1000 and f.window == (now - 2, now)
    assert f.duration == pytest.approx(2) and f.qps == pytest.approx(500)
    assert run_facts(FakeRun(10, (0.0, 0.0), qps=7.0)).window is None  # RunResult's "unknown"

    class WallClock:
        queries = 5
        started, finished = time.time() - 1, time.time()

    w = run_facts(WallClock())
    assert (
        w.window is not None and abs(w.window[1] - time.monotonic()) < 1.0
    )  # moved onto monotonic

    with pytest.raises(MeasurementError, match="has no 'queries'"):
        run_facts(object())


# A stand-in profiler: on SIGINT it writes folded stacks to the {output} it was given.
PROFILER = """
import signal, sys, time
out, pids = sys.argv[1], sys.argv[2]
def stop(*_):
    with open(out, "w") as fh:
        fh.write(f"main;serve;parse {len(pids.split(','))}\\nmain;serve;execute 30\\nmain;io 10\\n")
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
while True:
    time.sleep(0.05)
"""


def test_command_profiler_runs_around_the_benchmark(tmp_path: Path) -> None:
    spec = ProfileSpec(
        tool="command",
        command=(sys.executable, "-c", PROFILER, "{output}", "{pids}"),
        focus=("serve",),
        groups={"exec": "^execute$"},
    )
    seen: list[str] = []

    def bench() -> FakeRun:
        seen.append("ran")
        now = time.monotonic()
        return FakeRun(queries=20, window=(now - 1, now))

    res = profile_run(
        pids=[11, 22], run=bench, unprofiled=bench, out_dir=tmp_path, spec=spec, concurrency=8
    )
    assert seen == ["ran", "ran"]
    p = res.profile
    assert p.stacks == {
        ("main", "serve", "parse"): 2,
        ("main", "serve", "execute"): 30,
        ("main", "io"): 10,
    }
    assert p.queries == 20 and p.concurrency == 8
    assert res.report.samples_per_query == pytest.approx(42 / 20)
    values = {v.name: v.value for v in res.values("@c8")}
    assert values["serve.incl_per_query@c8"] == pytest.approx(32 / 20)
    assert values["exec.per_query@c8"] == pytest.approx(30 / 20)
    assert values["profiler_overhead@c8"] == pytest.approx(0.0)
    for key in ("folded", "flamegraph", "speedscope", "profile"):
        assert Path(res.files[key]).is_file()
    m = res.measurement(name="select", phase="baseline", root=tmp_path)
    assert m.source == "profile" and m.raw_dir == "."
    assert "Top functions by self samples" in m.summary_md and "Profiler overhead" in m.summary_md
    # The compact log entry reads the top functions and the flame graph from the record.
    from sessionctl import perflog_compact

    top = perflog_compact.profile_top([m])
    assert top is not None and top["functions"][0] == {"name": "execute", "amount": "1.5/q"}
    assert top["at"] == "c8" and top["samples_per_query"] == "2.1"
    assert str(top["flamegraph"]).endswith("flamegraph.svg")


def test_command_profiler_without_output_is_an_error(tmp_path: Path) -> None:
    spec = ProfileSpec(
        tool="command", command=(sys.executable, "-c", "import time; time.sleep(30)")
    )
    with pytest.raises(Exception, match="wrote no"):
        profile_run(pids=[1], run=lambda: FakeRun(1, (0.0, 0.0)), out_dir=tmp_path, spec=spec)
    with pytest.raises(UsageError, match=r"unknown placeholder \{nope\}"):
        profile_run(
            pids=[1],
            run=lambda: FakeRun(1, (0.0, 0.0)),
            out_dir=tmp_path,
            spec=ProfileSpec(tool="command", command=("x", "{nope}")),
        )


def test_no_target_processes_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match=r"target.pid or target.processes"):
        profile_run(pids=lambda: [], run=lambda: FakeRun(1, (0.0, 0.0)), out_dir=tmp_path)


BUSY = """
def inner(n):
    s = 0
    for i in range(n):
        s += i * i
    return s
def outer():
    while True:
        inner(20000)
outer()
"""


def _pyspy_reason() -> str | None:
    if shutil.which("py-spy") is None:
        return "py-spy is not installed (pip install py-spy)"
    probe = subprocess.run(
        ["py-spy", "dump", "--pid", str(__import__("os").getpid())], capture_output=True
    )
    if probe.returncode != 0:
        return f"py-spy cannot attach here: {probe.stderr.decode(errors='replace').strip()[:120]}"
    return None


@pytest.mark.skipif(_pyspy_reason() is not None, reason=str(_pyspy_reason()))
def test_pyspy_profiles_a_python_target(tmp_path: Path) -> None:
    script = tmp_path / "busy.py"
    script.write_text(BUSY)
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        time.sleep(0.3)

        def bench() -> FakeRun:
            time.sleep(1.0)
            now = time.monotonic()
            return FakeRun(queries=100, window=(now - 1, now))

        res = profile_run(
            pids=[proc.pid],
            run=bench,
            out_dir=tmp_path / "p",
            spec=ProfileSpec(tool="py-spy", frequency=200),
        )
    finally:
        proc.kill()
        proc.wait()
    names = {f for stack in res.profile.stacks for f in stack}
    assert any(n.startswith("inner (busy.py:") for n in names)
    assert res.profile.samples > 50 and res.report.samples_per_query == pytest.approx(
        res.profile.samples / 100
    )


def test_tree_roots_skip_children_of_listed_pids() -> None:
    import os

    me = os.getpid()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert tree_roots([me, child.pid]) == [me]
    finally:
        child.kill()
        child.wait()
