"""The one subprocess runner, and process-group lifecycle helpers.

Rules: argv lists only (never ``shell=True``), success is judged by the return code only, and a
failure raises :class:`CommandError` showing argv, return code and the tails of stdout/stderr.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sessionctl.errors import CommandError, ToolNotFound

_TAIL = 2000


@dataclass(frozen=True)
class Result:
    """What a finished command left behind."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _TAIL else "…" + text[-_TAIL:]


def describe_argv(argv: Sequence[str]) -> str:
    """Render argv for humans (quoted the way a shell would need it)."""
    return shlex.join([str(a) for a in argv])


def which(tool: str, *, hint: str | None = None) -> str:
    """Return the path of ``tool`` or raise ToolNotFound naming what to install."""
    found = (
        shutil.which(tool) if os.sep not in tool else (tool if os.access(tool, os.X_OK) else None)
    )
    if found is None:
        fix = hint or f"install {tool!r} or put it on PATH"
        raise ToolNotFound(f"{tool}: not found; {fix}")
    return found


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float | None = None,
    check: bool = True,
    user: str | None = None,
) -> Result:
    """Run ``argv`` to completion and capture its output as text (as ``user`` if given)."""
    args = tuple(str(a) for a in argv)
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=user,
            group=_primary_group(user) if user else None,
            extra_groups=[] if user else None,
        )
    except FileNotFoundError as exc:
        raise ToolNotFound(f"{args[0]}: not found; install it or put it on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise CommandError(
            f"`{describe_argv(args)}` timed out after {timeout}s",
            argv=args,
            stdout=out,
            stderr=err,
        ) from exc
    result = Result(args, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise command_failed(result)
    return result


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def command_failed(result: Result, *, what: str | None = None) -> CommandError:
    """Build the CommandError for a failed ``result`` (argv, code, output tails)."""
    detail = _tail(result.stderr) or _tail(result.stdout) or "(no output)"
    detail = " | ".join(line for line in detail.splitlines() if line.strip())
    head = what or f"`{describe_argv(result.argv)}`"
    return CommandError(
        f"{head} exited with {result.returncode}: {detail}",
        argv=result.argv,
        returncode=result.returncode,
        stdout=result.stdout,
        stderr=result.stderr,
    )


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
    stdin: IO[bytes] | int | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (so the whole tree can be signalled later)."""
    args = [str(a) for a in argv]
    try:
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=stdout,
            stderr=stderr,
            stdin=stdin,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise ToolNotFound(f"{args[0]}: not found; install it or put it on PATH") from exc


def session_pids(sid: int) -> list[int]:
    """Return the pids whose session id is ``sid`` (``/proc/*/stat`` field 6)."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        # Zombies are already dead; where PID 1 does not reap orphans they would linger forever.
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def signal_session(sid: int, sig: int) -> None:
    """Send ``sig`` to every process in session ``sid`` (and child groups with their own pgid)."""
    for pid in session_pids(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_tree(
    proc: subprocess.Popen[bytes],
    *,
    first_signal: int = signal.SIGINT,
    grace: float = 30.0,
    term_grace: float = 5.0,
) -> int:
    """Stop a process started by :func:`spawn` and everything in its session.

    ``first_signal`` goes to the leader only (Materialize's launcher cleans up its children on
    SIGINT but orphans them on SIGTERM); after ``grace`` seconds SIGTERM, then SIGKILL, go to
    every process in the session. Returns the leader's exit code.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(first_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    end_session(proc.pid, exited=lambda: proc.poll() is not None, term_grace=term_grace)
    return proc.wait()


def end_session(sid: int, *, exited: Callable[[], bool], term_grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, to every process in session ``sid`` still running (``term_grace``
    seconds each), until its leader has ``exited`` and the session is empty."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        members = [p for p in session_pids(sid) if p != sid or not exited()]
        if not members and exited():
            break
        signal_session(sid, sig)
        deadline = time.monotonic() + term_grace
        while time.monotonic() < deadline:
            if exited() and not session_pids(sid):
                break
            time.sleep(0.05)
