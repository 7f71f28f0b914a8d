"""``python -m sessionctl.target.embedded_postgres init`` then ``serve``: a throwaway server a
campaign's ``target.start`` can run, made from the command line alone (real PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionctl.target.embedded_postgres import free_port, unprivileged_user

MODULE = [sys.executable, "-m", "sessionctl.target.embedded_postgres"]


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A temp folder the unprivileged server user can enter (pytest's own is 0700 as root)."""
    folder = Path(tempfile.mkdtemp(prefix="sessionctl-test-serve-"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _connects(url: str, deadline_s: float) -> bool:
    import psycopg

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.OperationalError:
            time.sleep(0.2)
    return False


def test_init_then_serve_runs_a_server(reachable_tmp: Path) -> None:
    datadir = reachable_tmp / "pgdata"
    init = subprocess.run(
        [*MODULE, "init", "--datadir", str(datadir)], capture_output=True, text=True
    )
    assert init.returncode == 0, init.stdout + init.stderr
    assert (datadir / "PG_VERSION").is_file()
    port = free_port()
    proc = subprocess.Popen(
        [*MODULE, "serve", "--datadir", str(datadir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        role = unprivileged_user() or os.environ.get("USER", "postgres")
        url = f"postgresql://{role}@127.0.0.1:{port}/postgres"
        up = _connects(url, 60)
        assert proc.poll() is None and up, proc.stdout.read() if proc.poll() is not None else url  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def test_serve_without_init_names_the_init_command(reachable_tmp: Path) -> None:
    res = subprocess.run(
        [*MODULE, "serve", "--datadir", str(reachable_tmp / "none"), "--port", "1"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert "embedded_postgres init --datadir" in res.stdout and res.stdout.count("\n") == 1
