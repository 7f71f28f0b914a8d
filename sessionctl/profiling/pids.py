"""Which processes a profiler attaches to: the target's own tree, re-read right before attaching.

The rule (in order; ``target.processes`` is a regex searched in each process's name and command
line, and only narrows, never widens):

1. **sessionctl started the target** (``target.start``): the processes of the session it was
   started in, limited to those matching ``target.processes`` when that is set. When none of
   them is left (a launcher such as ``pg_ctl start`` detached the server into its own session),
   the next rule that applies is used.
2. **``target.pid``**: that process and its descendants (limited to the matching ones when
   ``target.processes`` is set; the pid itself is always kept).
3. **``target.processes`` alone**: the matching processes are grouped into trees (a match
   belongs to the tree of its nearest matching ancestor), and ONE tree is the target: the one
   holding the socket listening on the port of ``target.sql_url`` when ``/proc`` shows it, else
   the tree whose root started first (for PostgreSQL: the postmaster, whose backends come and
   go). Other servers on the machine that happen to match the regex are left alone.

Every list is read when asked for, with processes that have exited (or are zombies) left out:
PostgreSQL backends of an earlier run exit a moment after their client disconnects, and perf
refuses a whole pid list when one of its pids is gone (``No such process``).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sessionctl.errors import ConfigError

if TYPE_CHECKING:
    from sessionctl.target.server import TargetHandle

PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    """One line of the process table: what ``/proc/PID/stat`` says about a process."""

    pid: int
    ppid: int
    session: int
    start: int  # clock ticks after boot: orders processes by age
    comm: str


def _stat(pid: int) -> Proc | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the LAST ')'.
    close = text.rfind(")")
    fields = text[close + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # zombies and the dead cannot be sampled
        return None
    try:
        return Proc(
            pid, int(fields[1]), int(fields[3]), int(fields[19]), text[text.find("(") + 1 : close]
        )
    except ValueError:
        return None


def process_table() -> dict[int, Proc]:
    """Every live process on the machine, by pid."""
    table: dict[int, Proc] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (p := _stat(int(entry.name))) is not None:
            table[p.pid] = p
    return table


def alive(pids: Iterable[int]) -> list[int]:
    """``pids`` without the processes that have exited or are zombies (order kept)."""
    return [p for p in dict.fromkeys(pids) if _stat(p) is not None]


def cmdline(pid: int) -> str:
    """A process's command line, arguments joined by spaces ("" when it is gone)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def matches(proc: Proc, pattern: re.Pattern[str]) -> bool:
    """Whether ``pattern`` is found in the process's name or its command line."""
    return bool(pattern.search(proc.comm) or pattern.search(cmdline(proc.pid)))


def descendants(table: dict[int, Proc], root: int) -> set[int]:
    """Every process below ``root`` in the parent tree."""
    children: dict[int, list[int]] = {}
    for p in table.values():
        children.setdefault(p.ppid, []).append(p.pid)
    out: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def matching_trees(table: dict[int, Proc], pids: Iterable[int]) -> dict[int, list[int]]:
    """Group ``pids`` by their topmost ancestor within ``pids``: ``{root: [root, ...members]}``."""
    wanted = set(pids)
    trees: dict[int, list[int]] = {}
    for pid in sorted(wanted):
        root, cur, seen = pid, pid, {pid}
        while (p := table.get(cur)) is not None and p.ppid not in seen and p.ppid > 0:
            cur = p.ppid
            seen.add(cur)
            if cur in wanted:
                root = cur
        trees.setdefault(root, []).append(pid)
    return trees


def listening_inodes(port: int) -> set[int]:
    """Socket inodes listening on TCP ``port`` (IPv4 and IPv6), from ``/proc/net``."""
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                f = line.split()
                # f[1] is local "ADDR:PORT" in hex, f[3] the state (0A = LISTEN), f[9] the inode.
                if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(int(f[9]))
    return inodes


def holds_socket(pids: Iterable[int], inodes: set[int]) -> bool:
    """Whether any of ``pids`` has one of the socket ``inodes`` open."""
    wanted = {f"socket:[{i}]" for i in inodes}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in (PROC / str(pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return True
    return False


def select_pids(
    *,
    session: int | None = None,
    pid: int | None = None,
    pattern: str | None = None,
    port: int | None = None,
    where: str = "target.processes",
) -> list[int]:
    """Apply the module's rule to the live process table; return the target's pids, sorted."""
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise ConfigError(f"{where}: {pattern!r} is not a valid regex ({exc}); fix it") from None
    table = process_table()
    me = os.getpid()

    def keep(pids: Iterable[int]) -> list[int]:
        return sorted(p for p in pids if p in table and (regex is None or matches(table[p], regex)))

    if session is not None:
        found = keep(p.pid for p in table.values() if p.session == session)
        if found or regex is None:
            return found
    if pid is not None:
        if pid not in table:
            return []
        return sorted({pid, *keep(descendants(table, pid))})
    if regex is None:
        return []
    matched = [p for p in keep(table) if p != me]
    trees = matching_trees(table, matched)
    if len(trees) > 1 and port:
        inodes = listening_inodes(port)
        owners = [r for r, members in trees.items() if inodes and holds_socket(members, inodes)]
        if len(owners) == 1:
            return sorted(trees[owners[0]])
    if not trees:
        return []
    oldest = min(trees, key=lambda r: (table[r].start, r))
    return sorted(trees[oldest])


def url_port(url: str | None) -> int | None:
    """The TCP port a libpq URL or keyword DSN connects to (libpq's defaults when unset)."""
    if not url:
        return None
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:  # a DSN libpq cannot parse only means "port unknown" here
        return None
    text = str(params.get("port") or os.environ.get("PGPORT") or "5432").split(",")[0]
    return int(text) if text.isdigit() else None


def target_pids(target: TargetHandle) -> list[int]:
    """The processes of a campaign's target, by the module's rule (read now, live ones only)."""
    spec = target.spec
    session = target.leader_pid  # spawn() starts a session (a long-lived one: an earlier spawn)
    return select_pids(
        session=session,
        pid=spec.pid,
        pattern=spec.processes,
        port=url_port(spec.sql_url and target.sql_url),
        where=f"prompts/{target.campaign.name}.yaml: target.processes",
    )


def describe(pids: Sequence[int], limit: int = 8) -> str:
    """``123 (postgres), 456 (postgres), …`` for messages."""
    table = {p: _stat(p) for p in pids[:limit]}
    parts = [f"{p} ({s.comm})" if s else str(p) for p, s in table.items()]
    return ", ".join(parts) + (f", … ({len(pids)} in all)" if len(pids) > limit else "")
