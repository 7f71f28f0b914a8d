"""Drive ``perf record`` / ``perf script`` around a benchmark's measured window.

How we attach (and why): ``perf record -p PID,...`` with perf's default inheritance follows
every process and thread the listed ones fork *after* the attach (verified here with perf 6.1:
backends PostgreSQL forked for connections opened after ``-p <postmaster>`` were sampled). So
we attach to the target's whole process tree as it is when profiling starts (for PostgreSQL:
the postmaster and its current children); connections the benchmark opens later are covered by
inheritance, and ones it opened earlier are in the pid list. We do not use ``-a`` (system-wide):
it would also sample the benchmark client and every other tenant of the machine.

perf starts *disabled* (``--delay=-1``) with a control FIFO (``--control fifo:ctl,ack``): the
slow part (opening an event per thread) happens before the run, and ``enable`` is acknowledged
by perf before the benchmark starts, so no sample of the window is lost to attach latency.
Timestamps are CLOCK_MONOTONIC (``--clockid mono``), the clock of ``time.monotonic()``, so the
collapse can keep only samples inside the driver's measured window (warm-up and connection
set-up fall outside it). perf is stopped with SIGINT, which makes it flush and close the file.

Call graphs: frame pointers (``fp``) are cheap and exact when the binary keeps them (Debian
builds PostgreSQL with ``-fno-omit-frame-pointer``; Materialize forces frame pointers); without
them fp stacks stop after one or two frames, so ``auto`` looks at the target's executable and
picks ``dwarf`` (user stack copies, ~100x larger files; capped by ``--max-size``) only when most
functions lack the ``push %rbp; mov %rsp,%rbp`` prologue.
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import os
import select
import signal
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sessionctl import process
from sessionctl.errors import CommandError, MeasurementError, SessionctlError, ToolNotFound
from sessionctl.process import describe_argv, spawn, stop_tree, which
from sessionctl.profiling.pids import alive

PERF_HINT = "install linux-perf (Debian: `apt-get install linux-perf`) or set profile.tool"
SCRIPT_FIELDS = "comm,pid,tid,time,period,event,ip,sym,dso"
_VANISHED = "No such process"  # perf's strerror(ESRCH) when a listed pid or thread is gone


@dataclass(frozen=True)
class PerfOptions:
    """What to record: event, frequency, call-graph mode and a size cap."""

    event: str = "cpu-clock"
    frequency: int = 999
    call_graph: str = "auto"  # auto | fp | dwarf | dwarf,<stack bytes> | lbr | none
    dwarf_stack: int = 8192
    max_size: str = "1G"
    inline: bool = False  # perf script --inline: exact but ~10x slower symbolization


@functools.lru_cache(maxsize=8)
def unusable_reason(event: str = "cpu-clock") -> str | None:
    """Say why ``perf record -e EVENT`` cannot work here, or None when it can."""
    try:
        perf = which("perf", hint=PERF_HINT)
    except ToolNotFound as exc:
        return str(exc)
    with tempfile.TemporaryDirectory(prefix="sessionctl-perf-probe-") as tmp:
        argv = [
            perf,
            "record",
            "-q",
            "-e",
            event,
            "-o",
            str(Path(tmp) / "probe.data"),
            "--",
            "true",
        ]
        try:
            proc = process.run(argv, timeout=30, check=False)
        except (OSError, SessionctlError) as exc:
            return f"`{describe_argv(argv)}` failed: {exc}"
    if proc.returncode != 0:
        first = next((ln.strip() for ln in proc.stderr.splitlines() if ln.strip()), "no output")
        return (
            f"`perf record -e {event}` is not usable here ({first}); check "
            "/proc/sys/kernel/perf_event_paranoid or run with CAP_PERFMON"
        )
    return None


# --- looking at the target's executables ---------------------------------------------------


@dataclass(frozen=True)
class BinaryInfo:
    """What matters about an executable for profiling it."""

    path: str
    has_symtab: bool  # full symbols (static functions resolve); else only .dynsym
    functions: int
    fp_ratio: float | None  # share of sampled functions with a frame-pointer prologue


_ENDBR64 = b"\xf3\x0f\x1e\xfa"
_X86_MOV_RBP = b"\x48\x89\xe5"  # mov %rsp,%rbp (after push %rbp)
_ARM64_FP = b"\xfd\x03\x00\x91"  # mov x29, sp


def inspect_binary(path: str | Path, *, sample: int = 400) -> BinaryInfo | None:
    """Read an ELF64 file's symbol table and estimate whether it keeps frame pointers."""
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return _inspect(m, str(path), sample)
    except (OSError, ValueError, struct.error):
        return None


def _inspect(m: mmap.mmap, path: str, sample: int) -> BinaryInfo | None:
    if m[:4] != b"\x7fELF" or m[4] != 2 or m[5] != 1:
        return None  # only 64-bit little-endian (x86-64, aarch64)
    machine = struct.unpack_from("<H", m, 0x12)[0]
    shoff = struct.unpack_from("<Q", m, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", m, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", m, shoff + i * shentsize) for i in range(shnum)]
    symtab = next((s for s in sections if s[1] == 2), None)  # SHT_SYMTAB
    table = symtab or next((s for s in sections if s[1] == 11), None)  # SHT_DYNSYM
    if table is None:
        return BinaryInfo(path, False, 0, None)
    count = table[5] // 24
    funcs: list[tuple[int, int]] = []  # (file offset, size)
    for i in range(count):
        _name, info, _other, shndx, value, size = struct.unpack_from(
            "<IBBHQQ", m, table[4] + i * 24
        )
        if info & 0xF != 2 or size < 16 or not 0 < shndx < len(sections):
            continue
        sec = sections[shndx]
        if not sec[2] & 0x4 or sec[1] == 8:  # not SHF_EXECINSTR, or SHT_NOBITS
            continue
        funcs.append((value - sec[3] + sec[4], size))
    if not funcs:
        return BinaryInfo(path, symtab is not None, 0, None)
    step = max(1, len(funcs) // sample)
    picked = funcs[::step]
    hits = 0
    for off, _size in picked:
        head = m[off : off + 24]
        if head.startswith(_ENDBR64):
            head = head[4:]
        # The mov may be interleaved with argument moves after the push: look a bit further.
        x86 = machine == 62 and head[:1] == b"\x55" and _X86_MOV_RBP in head[:24]
        arm = machine == 183 and _ARM64_FP in head[:16]
        hits += x86 or arm
    ratio = hits / len(picked) if machine in (62, 183) else None
    return BinaryInfo(path, symtab is not None, len(funcs), ratio)


def executables(pids: Sequence[int]) -> list[str]:
    """The distinct executables behind ``pids`` (``/proc/PID/exe``)."""
    seen: dict[str, None] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            seen[os.readlink(f"/proc/{pid}/exe")] = None
    return list(seen)


def choose_call_graph(options: PerfOptions, pids: Sequence[int]) -> tuple[str, list[str]]:
    """Resolve ``auto`` to fp or dwarf for these processes; return (mode, notes for the user)."""
    notes: list[str] = []
    infos = [i for i in (inspect_binary(p) for p in executables(pids)) if i is not None]
    for info in infos:
        if not info.has_symtab:
            name = Path(info.path).name
            notes.append(
                f"{info.path}: stripped (dynamic symbols only); its static functions show as "
                f"[{name}]: install its debug symbols or profile an unstripped build for names"
            )
    mode = options.call_graph
    if mode != "auto":
        return _call_graph_arg(mode, options.dwarf_stack), notes
    ratios = [i.fp_ratio for i in infos if i.fp_ratio is not None]
    if ratios and min(ratios) < 0.5:
        worst = min((i for i in infos if i.fp_ratio is not None), key=lambda i: i.fp_ratio or 0.0)
        notes.append(
            f"{worst.path}: only {worst.fp_ratio:.0%} of functions keep frame pointers; "
            f"using DWARF call graphs (larger perf.data, capped at {options.max_size})"
        )
        return _call_graph_arg("dwarf", options.dwarf_stack), notes
    return "fp", notes


def _call_graph_arg(mode: str, dwarf_stack: int) -> str:
    if mode == "dwarf":
        return f"dwarf,{dwarf_stack}"
    return mode


# --- recording --------------------------------------------------------------------------------


@dataclass
class PerfRecording:
    """One ``perf record`` attached to ``pids``; ``start()``, run the benchmark, ``stop()``.

    ``refresh`` (when given) is called right before attaching, so the list is as fresh as it can
    be; exited processes are dropped either way (see :mod:`sessionctl.profiling.pids`).
    """

    pids: Sequence[int]
    data_path: Path
    options: PerfOptions = field(default_factory=PerfOptions)
    call_graph: str = "fp"
    refresh: Callable[[], Sequence[int]] | None = None  # re-reads the target's pids
    retried: bool = False  # a pid vanished while perf attached; a fresh list was used
    argv: list[str] = field(default_factory=list)
    enabled_at: float | None = None
    disabled_at: float | None = None
    _proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None
    _ctl: int | None = None
    _ack: int | None = None
    _fifo_dir: Path | None = None

    @property
    def log_path(self) -> Path:
        return self.data_path.with_suffix(".record.log")

    def start(self, *, timeout: float = 60.0) -> None:
        """Attach perf (disabled) to the live target pids, then enable sampling once perf
        confirms it is attached; retry once with a fresh pid list when a pid vanished."""
        for attempt in (1, 2):
            self.pids = alive(self.refresh() if self.refresh is not None else self.pids)
            if not self.pids:
                raise MeasurementError(
                    "profile: no live target processes to attach perf to; is the target "
                    "running? (check target.pid/processes)"
                )
            try:
                self._attach(timeout=timeout)
                return
            except CommandError as exc:
                # A pid (or one of its threads) exited between our look at /proc and perf's:
                # perf then refuses the whole list with ESRCH.
                if attempt == 2 or _VANISHED not in str(exc):
                    raise
                self.retried = True

    def _attach(self, *, timeout: float) -> None:
        perf = which("perf", hint=PERF_HINT)
        self.data_path.parent.mkdir(parents=True, exist_ok=True)
        self._fifo_dir = Path(tempfile.mkdtemp(prefix="sessionctl-perf-"))
        ctl, ack = self._fifo_dir / "ctl", self._fifo_dir / "ack"
        os.mkfifo(ctl)
        os.mkfifo(ack)
        # O_RDWR never blocks on a FIFO, whether or not perf has opened its end yet.
        self._ctl = os.open(ctl, os.O_RDWR)
        self._ack = os.open(ack, os.O_RDWR | os.O_NONBLOCK)
        o = self.options
        self.argv = [perf, "record", "-e", o.event, "-F", str(o.frequency)]
        if self.call_graph != "none":
            self.argv += ["--call-graph", self.call_graph]
        self.argv += [
            "--clockid", "mono",
            "--delay=-1",
            "--control", f"fifo:{ctl},{ack}",
            "--max-size", o.max_size,
            "-p", ",".join(str(p) for p in self.pids),
            "-o", str(self.data_path),
        ]  # fmt: skip
        self._log = self.log_path.open("wb")
        self._proc = spawn(self.argv, stdout=self._log, stderr=self._log)
        self._command("enable", timeout=timeout)
        self.enabled_at = time.monotonic()

    def _command(self, word: str, *, timeout: float) -> None:
        assert self._ctl is not None and self._ack is not None and self._proc is not None
        os.write(self._ctl, f"{word}\n".encode())
        deadline = time.monotonic() + timeout
        buf = b""
        while b"ack" not in buf:
            if self._proc.poll() is not None:
                raise self._failure(f"perf record exited ({self._proc.returncode}) before '{word}'")
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._failure(f"perf record did not acknowledge '{word}' within {timeout:g}s")
            ready, _, _ = select.select([self._ack], [], [], min(left, 0.2))
            if ready:
                with contextlib.suppress(BlockingIOError):
                    buf += os.read(self._ack, 64)

    def stop(self, *, grace: float = 120.0) -> None:
        """Disable sampling, SIGINT perf so it writes its file, and check it succeeded."""
        if self._proc is None:
            return
        try:
            if self._proc.poll() is None:
                with contextlib.suppress(MeasurementError):
                    self._command("disable", timeout=10.0)
                self.disabled_at = time.monotonic()
            code = stop_tree(self._proc, first_signal=signal.SIGINT, grace=grace)
        finally:
            self._close()
        # perf exits 0 after SIGINT when it wrote the file; -SIGINT when the signal killed it early.
        if code not in (0, -signal.SIGINT, 128 + signal.SIGINT) or not self.data_path.exists():
            raise self._failure(f"perf record exited with {code}")

    def _close(self) -> None:
        for fd in (self._ctl, self._ack):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._ctl = self._ack = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._fifo_dir is not None:
            for name in ("ctl", "ack"):
                with contextlib.suppress(OSError):
                    (self._fifo_dir / name).unlink()
            with contextlib.suppress(OSError):
                self._fifo_dir.rmdir()
            self._fifo_dir = None

    def abort(self) -> None:
        """Stop perf without checking its result (used when the benchmark itself failed)."""
        if self._proc is not None and self._proc.poll() is None:
            stop_tree(self._proc, first_signal=signal.SIGINT, grace=10.0)
        self._close()

    def _failure(self, head: str) -> CommandError:
        if self._proc is not None and self._proc.poll() is None:
            stop_tree(self._proc, first_signal=signal.SIGINT, grace=5.0)
        self._close()
        tail = ""
        with contextlib.suppress(OSError):
            lines = [
                ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()
            ]
            tail = " | ".join(lines[-4:])
        return CommandError(
            f"{head}: `{describe_argv(self.argv)}`: {tail or '(no output)'}",
            argv=self.argv,
            stderr=tail,
        )

    def check_log(self) -> list[str]:
        """perf's lost-sample warnings; raise when it stopped early at ``--max-size``."""
        text = self.record_log()
        if "size limit reached" in text:
            raise MeasurementError(
                f"perf stopped at --max-size {self.options.max_size} before the measured window "
                "ended, so samples per query would be too low; shorten --duration, lower "
                "--frequency or use --call-graph fp"
            )
        return [ln.strip() for ln in text.splitlines() if "lost" in ln.lower()]

    def record_log(self) -> str:
        """What perf record printed (lost-sample warnings, the 'Captured and wrote' line)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def script_warnings(data_path: Path) -> list[str]:
    """Lost-event warnings ``perf script`` printed while reading ``data_path``."""
    try:
        text = data_path.with_suffix(".script.log").read_text(errors="replace")
    except OSError:
        return []
    return [ln.strip() for ln in text.splitlines() if "lost" in ln.lower()]


def script_argv(data_path: Path, *, inline: bool = False) -> list[str]:
    """The ``perf script`` command line whose output :mod:`.folded` collapses."""
    argv = [which("perf", hint=PERF_HINT), "script", "-i", str(data_path), "-F", SCRIPT_FIELDS]
    argv += ["--show-task-events", "--inline" if inline else "--no-inline"]
    return argv


@contextlib.contextmanager
def script_lines(
    data_path: Path, *, inline: bool = False, copy_to: Path | None = None
) -> Iterator[Iterator[str]]:
    """Stream ``perf script`` text line by line (optionally teeing it, gzipped, to ``copy_to``)."""
    import gzip

    argv = script_argv(data_path, inline=inline)
    err_path = data_path.with_suffix(".script.log")
    with contextlib.ExitStack() as stack:
        err = stack.enter_context(err_path.open("wb"))
        sink = stack.enter_context(gzip.open(copy_to, "wt", encoding="utf-8")) if copy_to else None
        proc = spawn(argv, stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout
        assert out is not None
        stack.callback(out.close)

        def lines() -> Iterator[str]:
            for raw in out:
                line = raw.decode("utf-8", errors="replace")
                if sink is not None:
                    sink.write(line)
                yield line

        try:
            yield lines()
            out.read()  # drain, so perf never blocks on a full pipe
        except BaseException:
            proc.kill()
            raise
        finally:
            code = proc.wait()
    if code != 0:
        tail = " | ".join(err_path.read_text(errors="replace").strip().splitlines()[-3:])
        raise CommandError(
            f"`{describe_argv(argv)}` exited with {code}: {tail or '(no output)'}",
            argv=argv,
            returncode=code,
        )
