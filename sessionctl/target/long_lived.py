"""A long-lived target (``target.restart: never``): started once, reused by every command, never
stopped unless asked (``sessionctl target stop`` / ``restart``).

Some servers take minutes to boot and carry state that must never be reset (Materialize's
``environmentd`` with 100k objects), so per-command start/stop is unusable. With
``restart: never`` and a ``start`` command, :class:`~sessionctl.target.server.TargetHandle`:

1. uses the running server when the readiness probe passes (whoever started it);
2. otherwise, when the server it started earlier is still alive (the pid in the state file),
   waits for that one to become ready instead of starting a second one;
3. otherwise starts it detached (its own session, output to its log) and writes the state file
   ``<scratch>/runs/<campaign>/target.json`` (pid, command, log, start time);
4. never stops it at the end of a command.

The default (``restart: per_command``) keeps today's behaviour: start and stop with every command.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sessionctl.workspace import Workspace


@dataclass(frozen=True)
class State:
    """What the state file remembers about the server sessionctl started."""

    pid: int
    argv: list[str]
    log: str | None
    started_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def state_path(ws: Workspace, campaign: str) -> Path:
    return ws.runs_dir(campaign) / "target.json"


def read_state(ws: Workspace, campaign: str) -> State | None:
    """The recorded server, if the file exists and is readable (None otherwise)."""
    try:
        d = json.loads(state_path(ws, campaign).read_text())
        return State(int(d["pid"]), list(d.get("argv") or []), d.get("log"), str(d["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_state(ws: Workspace, campaign: str, state: State) -> None:
    from sessionctl.files import atomic_write_json

    ws.ensure_scratch()
    atomic_write_json(state_path(ws, campaign), state.to_dict())


def clear_state(ws: Workspace, campaign: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(ws, campaign).unlink()


def alive(pid: int | None) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: kill(0) said it exists
    return stat.rsplit(") ", 1)[-1][:1] != "Z"


def live_state(ws: Workspace, campaign: str) -> State | None:
    """The recorded server when its process is still alive (a stale file is removed)."""
    st = read_state(ws, campaign)
    if st is None:
        return None
    if not alive(st.pid):
        clear_state(ws, campaign)
        return None
    return st


def stop(ws: Workspace, campaign: str, *, first_signal: int, grace: float) -> State | None:
    """Stop the recorded server and its session (first signal to the leader, then SIGTERM and
    SIGKILL to the session); remove the state file. Returns what was stopped (None: nothing)."""
    from sessionctl.process import end_session

    st = live_state(ws, campaign)
    if st is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(st.pid, first_signal)
    _wait(lambda: not alive(st.pid), grace)
    end_session(st.pid, exited=lambda: not alive(st.pid))
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(st.pid, os.WNOHANG)  # reap it when this process started it
    clear_state(ws, campaign)
    return st


def _wait(done: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done():
        time.sleep(0.05)
