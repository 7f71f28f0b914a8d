"""Atomic file writes and the per-campaign lock.

Every state file sessionctl writes goes through :func:`atomic_write`: a temp file in the same
folder, fsync, then ``os.replace``, so a crash leaves either the old or the new file, never half.
Read-modify-write sequences hold :func:`locked` (an ``flock`` on a lock file) for their duration.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from sessionctl.errors import SessionctlError

TEMP_SUFFIX = ".sessionctl-tmp"
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[^.]+" + re.escape(TEMP_SUFFIX) + "$")


def stale_temp_file(path: Path) -> bool:
    """Whether ``path`` is an :func:`atomic_write` temp file left by a process that has died."""
    m = _TEMP_NAME.match(Path(path).name)
    if m is None:
        return False
    pid = int(m["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, owned by someone else
    return False


def atomic_write(path: Path, data: str | bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically (same-folder temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644

    def fill(fh: BinaryIO) -> int:
        fh.write(raw)
        return mode

    try:
        _replace(path, fill)
    except OSError as exc:
        if exc.filename is None:  # a failed write names no file: name the one we were writing
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise


def atomic_copy(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` atomically, streamed (any size) and with ``src``'s permissions."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)

    def fill(fout: BinaryIO) -> int:
        with open(src, "rb") as fin:
            shutil.copyfileobj(fin, fout, 1024 * 1024)
            return os.fstat(fin.fileno()).st_mode & 0o7777

    _replace(dest, fill)


def _replace(path: Path, fill: Callable[[BinaryIO], int]) -> None:
    """Replace ``path`` with what ``fill`` writes (it returns the file's mode): a temp file in
    the same folder, fsync, chmod, rename; the temp file is removed on any failure."""
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            mode = fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def read_exact(path: Path) -> str | None:
    """A text file's content with its line endings as they are (CRLF kept), or None if absent."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as pretty JSON atomically."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def append_line(path: Path, line: str) -> None:
    """Append one line (a JSONL record) with O_APPEND and fsync; safe for concurrent writers.

    A short write is continued until the whole line is on disk. If the disk refuses (ENOSPC,
    EIO...), whatever part of the line reached the file is cut off again and the OSError is
    raised, so the file stays readable and nothing already recorded is lost. A line torn by an
    earlier crash is closed with a newline first, so the new record is never glued onto it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        written = [0]
        try:
            _write_all(fd, data, written)
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                # Only our own bytes are cut: another writer's line appended meanwhile stays.
                if os.fstat(fd).st_size == size + written[0]:
                    os.ftruncate(fd, size)
                    os.fsync(fd)
            raise OSError(
                exc.errno, f"{exc.strerror or exc}; nothing was appended", str(path)
            ) from None
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, written: list[int]) -> None:
    """``os.write`` until every byte is written, counting them in ``written[0]``."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "write made no progress")
        written[0] += n
        view = view[n:]


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class LockTimeout(SessionctlError):
    """Another sessionctl holds the lock for too long."""


_held: dict[str, int] = {}
_held_guard = threading.Lock()


@contextlib.contextmanager
def locked(lock_path: Path, *, timeout: float = 60.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if needed) for the block.

    Re-entrant within a thread: a nested ``locked`` on the same path (close calling record,
    say) does not deadlock on its own flock.
    """
    lock_path = Path(lock_path)
    key = f"{threading.get_ident()}:{lock_path.resolve()}"
    with _held_guard:
        depth = _held.get(key, 0)
        if depth:
            _held[key] = depth + 1
    if depth:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"{lock_path}: another sessionctl has held this lock for {timeout:.0f}s; "
                        "wait for it to finish or stop it"
                    ) from None
                time.sleep(0.05)
        with _held_guard:
            _held[key] = 1
        yield
    finally:
        with _held_guard:
            _held.pop(key, None)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
