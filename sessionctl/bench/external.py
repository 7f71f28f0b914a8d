"""Run an external benchmark tool (pgbench, dbbench) and read its output while it runs.

Both tools print progress lines on stderr as they go (pgbench's ``-P 1``, dbbench's
intermediate reports); this process only polls every 0.1 s, hands each complete stderr line to
a callback (the live QPS of the progress bar) and otherwise stays off the tool's hot path. A tool
still running past its time limit is stopped (SIGINT to its whole session, then harder) and the
run reported as killed, never as a short measurement.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sessionctl.errors import ToolNotFound
from sessionctl.process import spawn, stop_tree


@dataclass(frozen=True)
class Finished:
    """What the tool left: its output (raw bytes), exit code, and whether we had to stop it."""

    stdout: bytes
    stderr: bytes
    returncode: int
    killed: bool


def configured_binary(binary: str, *, tool: str, fix: str) -> str:
    """The executable a benchmark's ``binary:`` names (a name on PATH, or a path; ``~`` works)."""
    path = os.path.expanduser(binary)
    executable = os.access(path, os.X_OK)
    found = shutil.which(path) if os.sep not in path else (path if executable else None)
    if found is None:
        raise ToolNotFound(f"{tool}: configured binary {binary!r} is not executable; {fix}")
    return found


def _drain(stream: IO[bytes] | None) -> bytes:
    """Everything readable now from a non-blocking pipe (b"" at EOF or when nothing is there)."""
    if stream is None:
        return b""
    chunks = b""
    while True:
        try:
            chunk = os.read(stream.fileno(), 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks += chunk
    return chunks


def run_watched(
    argv: list[str],
    *,
    cwd: Path,
    timeout: float,
    grace: float,
    env: dict[str, str] | None = None,
    stdout: bool = True,
    on_line: Callable[[str], None] | None = None,
) -> Finished:
    """Run ``argv`` until it exits (or ``timeout`` seconds pass), passing each complete stderr
    line to ``on_line`` as it arrives; ``stdout=False`` discards the tool's stdout."""
    proc = spawn(
        argv,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    streams = [s for s in (proc.stdout, proc.stderr) if s is not None]
    for stream in streams:
        os.set_blocking(stream.fileno(), False)
    out, err = bytearray(), bytearray()
    seen = 0  # stderr bytes already handed to on_line
    deadline = time.monotonic() + timeout
    killed = False
    try:
        while True:
            finished = proc.poll() is not None
            out += _drain(proc.stdout)
            err += _drain(proc.stderr)
            if on_line is not None:
                last_nl = err.rfind(b"\n")
                if last_nl >= seen:
                    for line in err[seen : last_nl + 1].decode("utf-8", "replace").splitlines():
                        on_line(line)
                    seen = last_nl + 1
            if finished:
                break
            if time.monotonic() > deadline:
                killed = True
                stop_tree(proc, first_signal=signal.SIGINT, grace=grace)
                break
            time.sleep(0.1)
    except BaseException:
        with contextlib.suppress(Exception):
            stop_tree(proc, first_signal=signal.SIGINT, grace=grace)
        raise
    finally:
        with contextlib.suppress(Exception):
            out += _drain(proc.stdout)
            err += _drain(proc.stderr)
        for stream in streams:
            stream.close()
    return Finished(bytes(out), bytes(err), proc.wait(), killed)
