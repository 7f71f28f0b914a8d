"""Collapse ``perf script`` text into folded stacks (``root;child;leaf count``), our own way.

The semantics follow Brendan Gregg's ``stackcollapse-perf.pl`` where it matters for reading a
profile: perf prints each sample as a header line (``comm pid/tid [cpu] time: period event:``)
followed by one frame per line, leaf first (``addr sym+off (dso)``), ended by a blank line; we
reverse the frames to root-first, drop ``+0x..`` offsets, name unresolved frames after their
module (``[unknown]`` in ``/usr/lib/.../postgres`` becomes ``[postgres]``, so a stripped binary
still shows *where*), replace ``;`` inside names (it is the separator), and count samples.

On top of that, what a per-query profile needs:

- a **pid filter that follows forks**: PostgreSQL forks one backend per connection, so the
  target is "the postmaster and everything it forks"; ``PERF_RECORD_FORK`` lines (from
  ``perf script --show-task-events``) extend the pid set as children appear;
- a **time window** (sample timestamps are CLOCK_MONOTONIC when perf records with
  ``--clockid mono``, the same clock as Python's ``time.monotonic()``), so only samples taken
  while the benchmark's measured window was open are counted;
- **demangling** of names perf left mangled (``_Z``/``_R``) through ``rustfilt`` or ``c++filt``
  when on PATH, then stripping Rust's legacy ``::h<16 hex>`` hash suffix, ``.llvm.NNN`` clones,
  and C++ argument lists, so the same function always folds to the same frame.
"""

from __future__ import annotations

import gzip
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sessionctl import process
from sessionctl.errors import ParseError

Stack = tuple[str, ...]

_HEADER = re.compile(
    r"^(?P<comm>\S.*?)\s+(?P<pid>-?\d+)(?:/(?P<tid>-?\d+))?\s+"
    r"(?:\[(?P<cpu>\d+)\]\s+)?"
    r"(?:(?P<time>\d+\.\d+):\s+)?"
    r"(?:(?P<period>\d+)\s+)?"
    r"(?P<event>\S+?):(?:\s+(?P<rest>.*))?$"
)
_FORK = re.compile(
    r"PERF_RECORD_FORK\((?P<child>\d+):(?P<ctid>\d+)\):\((?P<parent>\d+):(?P<ptid>\d+)\)"
)
_FRAME_START = re.compile(r"^\s*(?P<addr>[0-9a-fA-F]+)\s+(?P<rest>.+)$")
_OFFSET = re.compile(r"\+0x[0-9a-fA-F]+$")
_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
_LLVM_CLONE = re.compile(r"\.llvm\.\d+$")
_SYMVER = re.compile(r"@@?[A-Za-z_][A-Za-z0-9_.]*$")  # llseek@GLIBC_2.2.5
_MANGLED = re.compile(r"^_{1,2}(?:Z|R)[A-Za-z0-9_$.]+$")
_CACHE_MAX = 1_000_000  # distinct frame lines remembered before starting over
_KERNEL_DSO = ("[kernel.kallsyms]", "[kernel]", "[vdso]")


@dataclass(frozen=True)
class Collapsed:
    """Folded stacks and what the collapse saw (samples kept/dropped, time span, periods)."""

    stacks: dict[Stack, int]
    samples: int
    period_total: int = 0  # sum of sample periods (ns of CPU for cpu-clock/task-clock)
    event: str | None = None
    first_time: float | None = None
    last_time: float | None = None
    pids: tuple[int, ...] = ()
    dropped: int = 0  # samples outside the pid/comm/time/event filters
    root_is_comm: bool = False
    warnings: tuple[str, ...] = field(default=())

    @property
    def mean_period(self) -> float | None:
        """Average period per kept sample (ns for clock events), or None when perf gave none."""
        return self.period_total / self.samples if self.samples and self.period_total else None


def _split_frame(line: str) -> tuple[str, str, str] | None:
    """Split ``  addr sym+off (dso)`` into (addr, sym, dso); dso = the last balanced ``(...)``."""
    m = _FRAME_START.match(line)
    if m is None:
        return None
    rest = m.group("rest").rstrip()
    if not rest.endswith(")"):
        return m.group("addr"), rest, ""
    depth = 0
    for i in range(len(rest) - 1, -1, -1):
        ch = rest[i]
        if ch == ")":
            depth += 1
        elif ch == "(":
            depth -= 1
            if depth == 0:
                return m.group("addr"), rest[:i].rstrip(), rest[i + 1 : -1]
    return m.group("addr"), rest, ""


def _frame_name(line: str, annotate_kernel: bool) -> str:
    """The folded name of one frame line ("" when the line is not a frame)."""
    parts = _split_frame(line)
    if parts is None:
        return ""
    return tidy_name(parts[1], parts[2], annotate_kernel=annotate_kernel)


def tidy_name(sym: str, dso: str, *, annotate_kernel: bool = False) -> str:
    """Turn one perf frame's symbol and module into a folded-stack frame name."""
    name = _OFFSET.sub("", sym.strip())
    if not name or name == "[unknown]":
        if dso and dso not in ("[unknown]", "unknown"):
            base = dso.rsplit("/", 1)[-1]
            return base if base.startswith("[") else f"[{base}]"
        return "[unknown]"
    name = _tidy_symbol(name)
    if annotate_kernel and dso in _KERNEL_DSO:
        name += "_[k]"
    return name


def _tidy_symbol(name: str) -> str:
    name = _SYMVER.sub("", name)
    name = _LLVM_CLONE.sub("", name)
    name = _RUST_HASH.sub("", name)
    name = _strip_cxx_args(name)
    return name.replace(";", ":")


def _strip_cxx_args(name: str) -> str:
    """Drop a demangled C++ argument list (``ns::f(int, char const*) const`` -> ``ns::f``)."""
    if "(" not in name or (name.startswith("(") and not name.startswith("(anonymous namespace)")):
        return name
    depth = 0
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "(" and depth == 0:
            # Keep parentheses that are part of the name itself, not an argument list.
            if name.startswith("(anonymous namespace)", i):
                i += len("(anonymous namespace)")
                continue
            if name.endswith("operator", 0, i):
                i += 2 if name.startswith("()", i) else 1
                continue
            return name[:i] if i > 0 else name
        i += 1
    return name


def _open_text(path: Path) -> Iterator[str]:
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"  # by content: a saved .txt may well be gzip
    if gzipped:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            yield from fh
    else:
        with path.open(encoding="utf-8", errors="replace") as fh:
            yield from fh


_FOLDED_LINE = re.compile(r"^\S.*\s\d+(?:\.\d+)?$")


def sniff(path: Path) -> str:
    """What a saved profile file holds, judged by its first line that is not blank or a ``#``
    comment: ``folded``, ``perf-script``, ``perf-data`` (perf's binary file), ``json``,
    ``empty`` or ``unknown``."""
    with Path(path).open("rb") as fh:
        magic = fh.read(8)
    if magic.startswith((b"PERFILE2", b"PERFFILE")):
        return "perf-data"
    for line in _open_text(Path(path)):
        text = line.rstrip("\n")
        if not text.strip() or text.startswith("#"):  # perf script --header writes "# ..." lines
            continue
        if "PERF_RECORD_" in text or (text[:1] in ("\t", " ") and _FRAME_START.match(text)):
            return "perf-script"  # a task event, or a call-chain frame line
        if text.lstrip()[:1] in ("{", "["):
            return "json"
        if _HEADER.match(text) and not _FOLDED_LINE.match(text):
            return "perf-script"  # a sample header: "comm pid/tid time: period event:"
        return "folded" if _FOLDED_LINE.match(text) else "unknown"
    return "empty"


def collapse_file(path: Path, **kwargs: object) -> Collapsed:
    """Collapse a saved ``perf script`` text file (``.gz`` is read transparently)."""
    return collapse_perf_script(_open_text(Path(path)), **kwargs)  # type: ignore[arg-type]


def collapse_perf_script(
    lines: Iterable[str],
    *,
    pids: Iterable[int] | None = None,
    follow_forks: bool = True,
    comm: str | None = None,
    window: tuple[float, float] | None = None,
    event: str | None = None,
    include_comm: bool = False,
    annotate_kernel: bool = False,
    demangle: bool = True,
) -> Collapsed:
    """Fold ``perf script`` output into stacks, keeping only samples that pass the filters.

    ``pids``: keep samples of these processes (and, with ``follow_forks``, of processes they
    fork, seen through ``PERF_RECORD_FORK`` lines). ``comm``: a regex the process name must
    match. ``window``: (start, end) on the sample clock. ``event``: keep only this event (by
    default the first one seen, as stackcollapse-perf.pl does). ``include_comm`` puts the
    process name as the root frame.
    """
    keep_pids: set[int] | None = set(pids) if pids is not None else None
    comm_re = re.compile(comm) if comm else None
    raw: Counter[Stack] = Counter()
    samples = dropped = period_total = 0
    first_time: float | None = None
    last_time: float | None = None
    seen_pids: set[int] = set()
    chosen_event = event
    frames: list[str] = []
    header: re.Match[str] | None = None
    keep = False
    cache: dict[str, str] = {}

    def finish() -> None:
        nonlocal samples, period_total, first_time, last_time
        if header is None:
            return
        if keep:
            stack = list(reversed(frames))
            if include_comm:
                stack.insert(0, header.group("comm").replace(";", ":"))
            if stack:
                raw[tuple(stack)] += 1
                samples += 1
                period_total += int(header.group("period") or 0)
                seen_pids.add(int(header.group("pid")))
                t = header.group("time")
                if t is not None:
                    tf = float(t)
                    first_time = tf if first_time is None else min(first_time, tf)
                    last_time = tf if last_time is None else max(last_time, tf)

    for line in lines:
        first = line[:1]
        if first == "\t" or first == " ":
            # A frame line. Callers' return addresses repeat from sample to sample, so the
            # whole line is a good cache key (the hot path of a multi-million-line profile).
            if keep:
                name = cache.get(line)
                if name is None:
                    if len(cache) > _CACHE_MAX:
                        cache.clear()
                    name = cache[line] = _frame_name(line, annotate_kernel)
                if name:
                    frames.append(name)
            continue
        if first == "\n" or first == "" or not line.strip():
            finish()
            header, frames, keep = None, [], False
            continue
        line = line.rstrip("\n")
        fork = _FORK.search(line) if "PERF_RECORD_FORK" in line else None
        if fork is not None:
            if follow_forks and keep_pids is not None and int(fork.group("parent")) in keep_pids:
                keep_pids.add(int(fork.group("child")))
            continue
        if "PERF_RECORD_" in line:
            continue
        finish()
        frames = []
        header = _HEADER.match(line)
        if header is None:
            keep = False
            continue
        ev = header.group("event")
        if chosen_event is None:
            chosen_event = ev
        keep = ev == chosen_event
        if keep and keep_pids is not None:
            keep = int(header.group("pid")) in keep_pids
        if keep and comm_re is not None:
            keep = comm_re.search(header.group("comm")) is not None
        if keep and window is not None:
            t = header.group("time")
            keep = t is None or window[0] <= float(t) <= window[1]
        if not keep:
            dropped += 1
            continue
        # A sample without -g prints its single frame on the header line itself.
        rest = (header.group("rest") or "").strip()
        if rest:
            parts = _split_frame("  " + rest)
            if parts is not None:
                frames.append(tidy_name(parts[1], parts[2], annotate_kernel=annotate_kernel))
    finish()

    stacks: dict[Stack, int] = dict(raw)
    warnings: list[str] = []
    if demangle:
        stacks, note = demangle_stacks(stacks)
        if note:
            warnings.append(note)
    return Collapsed(
        stacks=stacks,
        samples=samples,
        period_total=period_total,
        event=chosen_event,
        first_time=first_time,
        last_time=last_time,
        pids=tuple(sorted(seen_pids)),
        dropped=dropped,
        root_is_comm=include_comm,
        warnings=tuple(warnings),
    )


# --- demangling ---------------------------------------------------------------------------


def demangler() -> list[str] | None:
    """The demangler argv to pipe names through: ``rustfilt`` if present, else ``c++filt``."""
    for tool in ("rustfilt", "c++filt"):
        path = shutil.which(tool)
        if path:
            return [path]
    return None


def demangle_names(names: Iterable[str]) -> tuple[dict[str, str], str | None]:
    """Map mangled names to demangled ones (one demangler call for all); note when none exists."""
    todo = sorted({n for n in names if _MANGLED.match(n)})
    if not todo:
        return {}, None
    out: dict[str, str] = {}
    tools = [t for t in (shutil.which("rustfilt"), shutil.which("c++filt")) if t]
    if not tools:
        return {}, f"{len(todo)} mangled names left as is: install c++filt (binutils) or rustfilt"
    pending = todo
    for tool in tools:
        if not pending:
            break
        # One name per line in, one per line out: both tools are line filters.
        proc = process.run([tool], input="\n".join(pending) + "\n", check=False, timeout=60)
        lines = proc.stdout.splitlines()
        if proc.returncode != 0 or len(lines) != len(pending):
            continue
        still: list[str] = []
        for before, after in zip(pending, lines, strict=True):
            if after != before:
                out[before] = _tidy_symbol(after)
            else:
                still.append(before)
        pending = still
    return out, None


def demangle_stacks(stacks: dict[Stack, int]) -> tuple[dict[Stack, int], str | None]:
    """Demangle every mangled frame in ``stacks`` (merging stacks that become equal)."""
    names = {f for stack in stacks for f in stack}
    mapping, note = demangle_names(names)
    if not mapping:
        return stacks, note
    merged: Counter[Stack] = Counter()
    for stack, n in stacks.items():
        merged[tuple(mapping.get(f, f) for f in stack)] += n
    return dict(merged), note


# --- folded text files ----------------------------------------------------------------------


def format_folded(stacks: dict[Stack, int]) -> str:
    """Render stacks as folded text, one ``a;b;c count`` line each, heaviest first."""
    rows = sorted(stacks.items(), key=lambda kv: (-kv[1], kv[0]))
    return "".join(f"{';'.join(stack)} {n}\n" for stack, n in rows)


def parse_folded(text: str | Iterable[str], *, source: str = "<folded>") -> dict[Stack, int]:
    """Parse folded stacks (flamegraph.pl input; also py-spy's ``--format raw``)."""
    lines = text.splitlines() if isinstance(text, str) else text
    out: Counter[Stack] = Counter()
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stack_text, sep, count = line.rpartition(" ")
        if not sep or not stack_text:
            raise ParseError(
                f"{source}:{lineno}: expected 'frame;frame;... COUNT', got {line[:80]!r}"
            )
        try:
            n = int(float(count))
        except ValueError:
            raise ParseError(f"{source}:{lineno}: sample count {count!r} is not a number") from None
        out[tuple(stack_text.split(";"))] += n
    return dict(out)


def read_folded(path: Path) -> dict[Stack, int]:
    """Read a folded-stacks file."""
    return parse_folded(_open_text(Path(path)), source=str(path))
