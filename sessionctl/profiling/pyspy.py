"""Profile a Python target with py-spy (``py-spy record --format raw``), and any folded-stack tool.

py-spy attaches to a running interpreter by pid (ptrace), samples its Python stacks and, when
stopped with SIGINT, writes them as folded stacks (``<module> (app.py:9);handler (app.py:4) 313``)
— the format :func:`sessionctl.profiling.folded.parse_folded` reads. ``--subprocesses`` follows
the children of each root we attach to, so we attach only to the roots of the target's process
tree (a pid whose parent is also a target would otherwise be sampled twice).

:class:`CommandRecording` runs a user-configured profiler (``profile.command``) the same way:
started before the window, SIGINT after it, and expected to leave folded stacks in ``{output}``.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sessionctl.errors import CommandError, UsageError
from sessionctl.process import describe_argv, spawn, stop_tree, which
from sessionctl.profiling.folded import Stack, read_folded

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
PYSPY_HINT = "install py-spy (`pip install py-spy`) or set profile.tool"


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` from ``/proc/PID/stat`` (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def tree_roots(pids: Sequence[int]) -> list[int]:
    """The pids whose parent is not itself in ``pids``."""
    wanted = set(pids)
    return [p for p in pids if parent_pid(p) not in wanted]


def _wait_for(path: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if needle in path.read_text(errors="replace"):
                return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


@dataclass
class PySpyRecording:
    """One ``py-spy record`` per root of the target tree, merged into one set of stacks."""

    pids: Sequence[int]
    out_dir: Path
    rate: int = 100
    argvs: list[list[str]] = field(default_factory=list)
    _procs: list[tuple[subprocess.Popen[bytes], Path, Path, IO[bytes]]] = field(
        default_factory=list
    )

    def start(self, *, timeout: float = 20.0) -> None:
        """Attach py-spy to every root pid and wait until each reports it is sampling."""
        if not self.pids:
            raise UsageError(
                "profile: no target processes to attach py-spy to; check target.pid/processes"
            )
        tool = which("py-spy", hint=PYSPY_HINT)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for pid in tree_roots(self.pids):
            out = self.out_dir / f"py-spy-{pid}.folded"
            log = self.out_dir / f"py-spy-{pid}.log"
            argv = [tool, "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
            argv += ["--rate", str(self.rate), "--subprocesses", "--nonblocking"]
            fh = log.open("wb")
            proc = spawn(argv, stdout=fh, stderr=fh)
            self.argvs.append(argv)
            self._procs.append((proc, out, log, fh))
            if not _wait_for(log, "Sampling process", proc, timeout):
                self.abort()
                raise _failed(argv, log, "py-spy did not start sampling")

    def stop(self) -> dict[Stack, int]:
        """SIGINT every py-spy (it then writes its file) and merge what they wrote."""
        merged: Counter[Stack] = Counter()
        failures: list[CommandError] = []
        for proc, out, log, fh in self._procs:
            code = stop_tree(proc, first_signal=signal.SIGINT, grace=30.0)
            fh.close()
            if code != 0 or not out.exists():
                failures.append(_failed(proc.args, log, f"py-spy exited with {code}"))  # type: ignore[arg-type]
                continue
            merged.update(read_folded(out))
        self._procs = []
        if failures:
            raise failures[0]
        return dict(merged)

    def abort(self) -> None:
        """Stop every py-spy without reading results."""
        for proc, _out, _log, fh in self._procs:
            stop_tree(proc, first_signal=signal.SIGINT, grace=5.0)
            fh.close()
        self._procs = []


@dataclass
class CommandRecording:
    """A configured profiler command; placeholders {pids} {pid} {output} {frequency} {duration}."""

    template: Sequence[str]
    pids: Sequence[int]
    out_dir: Path
    frequency: int = 999
    duration: float = 0.0
    argv: list[str] = field(default_factory=list)
    _proc: subprocess.Popen[bytes] | None = None
    _fh: IO[bytes] | None = None

    @property
    def output(self) -> Path:
        return self.out_dir / "command.folded"

    @property
    def log_path(self) -> Path:
        return self.out_dir / "command.log"

    def start(self, *, settle: float = 0.5) -> None:
        """Start the command, give it ``settle`` seconds to attach, and check it is still up."""
        if not self.template:
            raise UsageError(
                "profile.command: empty; set the profiler argv "
                "(it must write folded stacks to {output})"
            )
        values = {
            "pids": ",".join(str(p) for p in self.pids),
            "pid": str(self.pids[0]) if self.pids else "",
            "output": str(self.output),
            "frequency": str(self.frequency),
            "duration": f"{self.duration:g}",
        }
        # Plain replacement, not str.format: an inline script in the argv may hold other braces.
        unknown = {m for part in self.template for m in _PLACEHOLDER.findall(part)} - set(values)
        if unknown:
            raise UsageError(
                f"profile.command: unknown placeholder {{{sorted(unknown)[0]}}}; "
                "use {pids} {pid} {output} {frequency} {duration}"
            )
        self.argv = []
        for part in self.template:
            for key, value in values.items():
                part = part.replace("{" + key + "}", value)
            self.argv.append(part)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._fh = self.log_path.open("wb")
        self._proc = spawn(self.argv, stdout=self._fh, stderr=self._fh)
        time.sleep(settle)
        if self._proc.poll() not in (None, 0):
            raise _failed(self.argv, self.log_path, f"profiler exited with {self._proc.returncode}")

    def stop(self) -> dict[Stack, int]:
        """SIGINT the command and read the folded stacks it wrote."""
        assert self._proc is not None
        code = stop_tree(self._proc, first_signal=signal.SIGINT, grace=30.0)
        if self._fh is not None:
            self._fh.close()
        if not self.output.exists():
            raise _failed(
                self.argv, self.log_path, f"profiler exited with {code} and wrote no {self.output}"
            )
        return read_folded(self.output)

    def abort(self) -> None:
        if self._proc is not None:
            stop_tree(self._proc, first_signal=signal.SIGINT, grace=5.0)
        if self._fh is not None:
            self._fh.close()


def _failed(argv: Sequence[str], log: Path, head: str) -> CommandError:
    tail = ""
    with contextlib.suppress(OSError):
        tail = " | ".join(
            ln for ln in log.read_text(errors="replace").splitlines()[-3:] if ln.strip()
        )
    return CommandError(
        f"{head}: `{describe_argv(argv)}`: {tail or '(no output)'}", argv=list(argv), stderr=tail
    )
