"""The shared foundation: atomic writes, locks, the subprocess runner, embedded PostgreSQL."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psycopg
import pytest

from sessionctl.errors import CommandError, ToolNotFound
from sessionctl.files import append_line, atomic_write, locked
from sessionctl.process import run
from sessionctl.units import MAX_DURATION, format_duration, parse_duration


def test_atomic_write_replaces_and_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    os.chmod(target, 0o600)
    atomic_write(target, "new")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_append_line_from_threads_keeps_every_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"

    def writer(k: int) -> None:
        for i in range(50):
            append_line(path, f"{k}-{i}")

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_text().splitlines()
    assert sorted(lines) == sorted(f"{k}-{i}" for k in range(4) for i in range(50))


def test_lock_times_out_with_clear_message(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with locked(lock):
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    try:
        with pytest.raises(Exception, match="held this lock"), locked(lock, timeout=0.2):
            pass
    finally:
        release.set()
        t.join()


def test_run_reports_argv_code_and_stderr() -> None:
    with pytest.raises(CommandError) as info:
        run(["sh", "-c", "echo boom >&2; exit 3"])
    assert info.value.returncode == 3
    assert "boom" in str(info.value) and "exited with 3" in str(info.value)


def test_run_missing_tool_is_tool_not_found() -> None:
    with pytest.raises(ToolNotFound, match="no-such-tool-xyz: not found"):
        run(["no-such-tool-xyz"])


@pytest.mark.parametrize(
    ("text", "seconds"), [("20s", 20), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), (3, 3)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration("20 parsecs")


@pytest.mark.parametrize(
    ("value", "shown"),
    [("1" + "0" * 39 + "s", "1e+39s"), ("1" + "0" * 39, "1e+39s"), (10**39, "1e+39s"),
     (1e39, "1e+39s"), ("169h", "169h"), ("604801", "604801s"), ("10081m", "10081m")],
)  # fmt: skip
def test_parse_duration_refuses_more_than_a_week(value: str | float, shown: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_duration(value)
    assert str(err.value) == (
        f"duration {shown} is over 7 days (168h), the longest a run, wait or timeout may be; "
        "use e.g. 20s, 5m, 2h"
    )


def test_parse_duration_takes_a_week_exactly() -> None:
    assert parse_duration("168h") == parse_duration(604800) == MAX_DURATION == 7 * 86400


def test_format_duration_round_trips() -> None:
    for s in (0.25, 20, 90, 3600, 3725):
        assert parse_duration(format_duration(s)) == s


def test_embedded_postgres_answers_sql(postgres) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(postgres.url) as conn:
        (one,) = conn.execute("select 1").fetchone()  # type: ignore[misc]
    assert one == 1
    assert postgres.url.startswith("postgresql://") and "127.0.0.1" in postgres.url


def test_lock_is_reentrant_in_one_thread(tmp_path: Path) -> None:
    lock = tmp_path / "r.lock"
    with locked(lock, timeout=0.5), locked(lock, timeout=0.5):
        entered = True
    assert entered
    # and released afterwards: another thread can take it
    got = []
    t = threading.Thread(target=lambda: got.append(locked(lock, timeout=0.5).__enter__()))
    t.start()
    t.join()
    assert got == [None]


def test_embedded_postgres_from_the_pgserver_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback for machines without server binaries: the pgserver wheel's own tree."""
    pgserver = pytest.importorskip("pgserver", reason="the pgserver wheel is not installed")
    from sessionctl.target.embedded_postgres import EmbeddedPostgres

    bindir = Path(pgserver.__file__).parent / "pginstall" / "bin"
    monkeypatch.setenv("SESSIONCTL_PG_BINDIR", str(bindir))
    with EmbeddedPostgres() as pg:
        pg.wait_ready()
        with psycopg.connect(pg.url) as conn:
            row = conn.execute("select current_setting('server_version_num')::int").fetchone()
    assert row is not None and row[0] >= 100000


def test_find_bindir_names_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sessionctl.target import embedded_postgres

    monkeypatch.setattr(embedded_postgres, "candidate_bindirs", lambda: iter([tmp_path]))
    with pytest.raises(ToolNotFound, match="apt-get install postgresql"):
        embedded_postgres.find_bindir()


def test_rendered_text_masks_url_and_keyword_passwords() -> None:
    from sessionctl.render import redact

    text = (
        "sql_url: postgres://app:s3cret@db/x\nsystem: host=db user=mz password=hunter2 port=6877\n"
    )
    masked = redact(text)
    assert "s3cret" not in masked and "hunter2" not in masked
    assert "postgres://app:***@db/x" in masked and "password=***" in masked
