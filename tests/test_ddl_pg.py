"""The ddl driver against a real PostgreSQL: growth, resume after SIGKILL, probes, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sessionctl.bench.ddl import run_ddl_core
from sessionctl.bench.ddl_population import connector, grow, numbers_in_use, plan
from sessionctl.bench.ddl_report import to_measurement
from sessionctl.campaign.model import DdlSpec
from sessionctl.errors import Interrupted, MeasurementError, TargetError
from sessionctl.reporting import NULL
from sessionctl.target.embedded_postgres import EmbeddedPostgres

pytestmark = pytest.mark.postgres

COUNT = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"


@pytest.fixture
def db(postgres: EmbeddedPostgres) -> Iterator[str]:
    """A fresh database of its own, so tests never see each other's objects."""
    name = f"ddl_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    url = postgres.url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"DROP DATABASE {name} WITH (FORCE)")


def spec(**kw: Any) -> DdlSpec:
    base: dict[str, Any] = {
        "count_sql": COUNT,
        "filler": "CREATE TABLE filler_{n} (a int)",
        "levels": (0, 200, 500),
        "probes": {
            "table": "CREATE TABLE probe_{n} (a int)",
            "view": "CREATE VIEW probe_v_{n} AS SELECT 1 AS a",
        },
        "probes_per_level": 3,
        "batch_size": 50,
    }
    base.update(kw)
    return DdlSpec(**base)


def q(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as c:
        cur = c.execute(sql)
        return cur.fetchall() if cur.description else []


def names(url: str, like: str) -> list[str]:
    return [
        r[0]
        for r in q(
            url, f"SELECT relname FROM pg_class WHERE relname LIKE '{like}' ORDER BY relname"
        )
    ]


def fillers(url: str) -> list[int]:
    rows = q(url, "SELECT substr(relname, 8)::int FROM pg_class WHERE relname ~ '^filler_[0-9]+$'")
    return sorted(r[0] for r in rows)


def count(url: str) -> int:
    return int(q(url, COUNT)[0][0])


class Recorder:
    """A Reporter that keeps what it was told (progress updates included)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.updates: list[dict[str, Any]] = []

    def phase(self, title: str) -> None:
        self.lines.append(f"# {title}")

    def info(self, message: str) -> None:
        self.lines.append(message)

    def warn(self, message: str) -> None:
        self.lines.append(f"warning: {message}")

    def task(self, description: str, *, total: float | None = None) -> Any:
        import contextlib

        rec = self

        class T:
            def advance(self, amount: float = 1.0) -> None:
                pass

            def update(
                self, *, completed: float | None = None, total: float | None = None, **f: Any
            ) -> None:
                rec.updates.append({"completed": completed, **f})

        return contextlib.nullcontext(T())


def test_grow_reaches_level_exactly_and_is_idempotent(db: str) -> None:
    p = plan(spec(batch_size=64))
    rep = Recorder()
    g = grow(connect=connector(db), plan=p, level=300, reporter=rep)
    assert (g.start_count, g.end_count, g.created, g.first_n) == (0, 300, 300, 1)
    assert g.batches == 5  # 64 * 4 + 44
    assert count(db) == 300
    assert rep.updates[-1]["objects"] == 300 and rep.updates[-1]["rate"] > 0
    again = grow(connect=connector(db), plan=p, level=300)
    assert again.created == 0 and count(db) == 300
    # Continues from the highest existing number, not from 1.
    more = grow(connect=connector(db), plan=p, level=310)
    assert more.first_n == 301 and count(db) == 310
    assert numbers_in_use(psycopg.connect(db, autocommit=True), p, "filler_") == list(range(1, 311))


def test_growth_counts_objects_not_statements(db: str) -> None:
    # A primary key brings an index: 2 objects per filler, learned from the first batch.
    p = plan(spec(filler="CREATE TABLE filler_{n} (a int PRIMARY KEY)", batch_size=30))
    g = grow(connect=connector(db), plan=p, level=101)
    assert count(db) == g.end_count == 102  # one filler past the level, never a whole batch
    assert fillers(db) == list(range(1, 52)) and g.created == 51


GROW_SCRIPT = textwrap.dedent(
    """
    import sys
    from sessionctl.bench.ddl_population import connector, grow, plan
    from sessionctl.campaign.model import DdlSpec

    spec = DdlSpec(count_sql=sys.argv[2], filler="CREATE TABLE filler_{n} (a int)", batch_size=40,
                   probes={"t": "CREATE TABLE probe_{n} (a int)"})
    g = grow(connect=connector(sys.argv[1]), plan=plan(spec), level=int(sys.argv[3]))
    print(g.created, g.end_count)
    """
)


def _in_open_batch(admin: psycopg.Connection[Any], app: str) -> bool:
    row = admin.execute(
        "SELECT state, backend_xid IS NOT NULL FROM pg_stat_activity WHERE application_name = %s",
        (app,),
    ).fetchone()
    return row is not None and row[0] == "idle in transaction" and bool(row[1])


def test_growth_killed_mid_batch_resumes_without_duplicates(db: str, tmp_path: Path) -> None:
    script = tmp_path / "grow.py"
    script.write_text(GROW_SCRIPT)
    app = f"ddlkill{uuid.uuid4().hex[:6]}"
    url = f"{db}?application_name={app}"
    proc = subprocess.Popen(
        [sys.executable, str(script), url, COUNT, "1000"], stdout=subprocess.PIPE
    )
    killed_in_batch = False
    try:
        with psycopg.connect(db, autocommit=True) as admin:
            deadline = time.monotonic() + 60
            while count(db) < 80 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            # Freeze the client, and kill it only while its batch transaction is open with writes:
            # that is the case where a naive resume would hit "relation already exists".
            while proc.poll() is None and time.monotonic() < deadline:
                os.kill(proc.pid, signal.SIGSTOP)
                for _ in range(20):
                    if _in_open_batch(admin, app):
                        break
                    time.sleep(0.005)
                if _in_open_batch(admin, app):
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_in_batch = True
                    break
                os.kill(proc.pid, signal.SIGCONT)
                time.sleep(0.003)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert killed_in_batch, "growth finished before it could be killed; raise the level"
    after_kill = count(db)
    assert (
        80 <= after_kill < 1000 and after_kill % 40 == 0
    )  # whole batches only: the open one rolled back
    out = subprocess.run(
        [sys.executable, str(script), db, COUNT, "1000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(1000 - after_kill), "1000"]
    assert count(db) == 1000
    assert fillers(db) == list(range(1, 1001))


def test_full_run_measures_levels_and_leaves_no_probes(db: str, tmp_path: Path) -> None:
    q(db, "CREATE TABLE keep_me (a int)")
    q(db, "CREATE TABLE probe_7 (a int)")  # a stale probe from some earlier run: not ours to drop
    rep = Recorder()
    r = run_ddl_core(url=db, spec=spec(txn_batches=(1, 4)), reporter=rep, run_dir=tmp_path / "run")
    assert r.initial_count == 2
    assert "object count now: 2 (" in rep.lines[0]
    assert any(
        "1 probe object(s) from an earlier run exist (e.g. probe_7)" in ln for ln in rep.lines
    )
    assert [(x.level, x.count, x.kind) for x in r.probes] == [
        (0, 2, "table"), (0, 2, "view"),
        (200, 200, "table"), (200, 200, "view"),
        (500, 500, "table"), (500, 500, "view"),
    ]  # fmt: skip
    assert all(len(x.ms) == 3 and all(t > 0 for t in x.ms) and x.warmup_ms > 0 for x in r.probes)
    assert all(len(x.drop_ms) == 4 for x in r.probes)  # 3 timed + the warm-up, all dropped
    assert [(t.size, len(t.stmt_ms)) for t in r.txns] == [(1, 1), (4, 4)]
    assert r.final_count == 500 and count(db) == 500
    assert names(db, "probe%") == ["probe_7"]
    assert q(db, "SELECT count(*) FROM pg_class WHERE relname = 'keep_me'") == [(1,)]
    assert (tmp_path / "run" / "ddl.json").is_file()
    m = to_measurement(r, name="ddl", phase="baseline")
    names_ = {v.name for v in m.values}
    assert {
        "table.median_ms@n200",
        "view.p90_ms@n500",
        "table.txn_ms_per_stmt@b4",
        "table.slope_ms_per_1k",
    } <= names_
    assert "| 500 | view |" in m.summary_md


def test_rerun_reuses_state(db: str) -> None:
    first = run_ddl_core(url=db, spec=spec(levels=(0, 150)))
    second = run_ddl_core(url=db, spec=spec(levels=(0, 150)))
    assert sum(g.created for g in first.growths) == 150
    assert sum(g.created for g in second.growths) == 0
    assert [x.count for x in second.probes] == [150, 150, 150, 150]  # level 0 is "what exists now"


def test_keep_probes_keeps_exactly_the_probes(db: str) -> None:
    run_ddl_core(
        url=db, spec=spec(levels=(0,), probes_per_level=2, txn_batches=(2,)), keep_probes=True
    )
    assert len(names(db, "probe\\_v\\_%")) == 3
    assert len([n for n in names(db, "probe\\_%") if not n.startswith("probe_v_")]) == 3 + 2
    # The next run numbers its probes after the kept ones instead of colliding with them.
    r = run_ddl_core(url=db, spec=spec(levels=(0,), probes_per_level=2))
    assert len(r.probes) == 2 and len(names(db, "probe%")) == 8


def test_failing_probe_is_cleaned_up_and_reported(db: str) -> None:
    bad = spec(
        levels=(0,),
        probes={
            "table": "CREATE TABLE probe_{n} (a int)",
            "view": "CREATE VIEW probe_v_{n} AS SELECT nope",
        },
    )
    with pytest.raises(TargetError, match=r"ddl probe failed: .*nope"):
        run_ddl_core(url=db, spec=bad, reporter=NULL)
    assert names(db, "probe%") == []


def test_unreachable_server_is_one_line_without_password() -> None:
    with pytest.raises(TargetError, match=r"cannot connect to the target") as exc:
        run_ddl_core(url="postgresql://u:s3cret@127.0.0.1:1/x", spec=spec())
    assert "s3cret" not in str(exc.value) and "\n" not in str(exc.value)


def interrupting_connect(url: str, *, when: str, after: bool) -> Any:
    """Connections whose cursor raises KeyboardInterrupt (Ctrl-C) at one statement."""

    class Cursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
            if not after and str(query).startswith(when):
                raise KeyboardInterrupt
            out = super().execute(query, params, **kw)
            if after and str(query).startswith(when):
                raise KeyboardInterrupt  # the server did it; our bookkeeping never hears of it
            return out

    return lambda: psycopg.connect(url, autocommit=True, cursor_factory=Cursor)


def test_ctrl_c_while_probing_drops_this_runs_probes_only(db: str) -> None:
    q(db, "CREATE TABLE probe_3 (a int)")  # stale, not ours
    connect = interrupting_connect(db, when="CREATE TABLE probe_13 ", after=True)
    with pytest.raises(Interrupted, match="probe objects were dropped, fillers kept"):
        run_ddl_core(spec=spec(levels=(0, 120)), connect=connect)
    assert names(db, "probe%") == ["probe_3"]
    assert fillers(db) == list(range(1, 120))  # 119 fillers + probe_3 = the 120 objects asked for


def test_ctrl_c_while_growing_keeps_committed_batches(db: str) -> None:
    connect = interrupting_connect(db, when="CREATE TABLE filler_70 ", after=False)
    with pytest.raises(Interrupted, match=r"growth interrupted at 50 objects .* rerun to continue"):
        run_ddl_core(spec=spec(levels=(0, 120)), connect=connect)
    assert fillers(db) == list(range(1, 51))  # the batch 51..100 rolled back
    assert names(db, "probe%") == []
    run_ddl_core(url=db, spec=spec(levels=(120,)))
    assert fillers(db) == list(range(1, 121))


def test_cleanup_that_drops_nothing_is_reported(db: str) -> None:
    rep = Recorder()
    s = spec(levels=(0,), probes={"table": "CREATE TABLE probe_{n} (a int)"},
             cleanup={"table": "DROP TABLE IF EXISTS nothing_{n}"})  # fmt: skip
    r = run_ddl_core(url=db, spec=s, reporter=rep)
    assert len(r.leftovers) == 4 and r.leftovers[0] == "DROP TABLE IF EXISTS nothing_1"
    assert any("4 probe object(s) of this run are still there" in ln for ln in rep.lines)
    assert "drop these by hand" in to_measurement(r, name="ddl", phase=None).summary_md


def test_count_query_that_ignores_fillers_stops_growth(db: str) -> None:
    other = "SELECT count(*) FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace"
    base = int(q(db, other)[0][0])
    p = plan(spec(count_sql=other, batch_size=10))
    with pytest.raises(
        MeasurementError, match=r"count_sql stayed at .* after 5 more fillers \(filler_5 exists\)"
    ):
        grow(connect=connector(db), plan=p, level=base + 5)
    assert fillers(db) == list(range(1, 6))  # kept: fillers are never dropped


def test_autocommit_growth_and_custom_names_query(db: str) -> None:
    s = spec(batch_txn=False, batch_size=25, names_sql="SELECT tablename FROM pg_tables")
    p = plan(s)
    assert grow(connect=connector(db), plan=p, level=60).created == 60
    assert grow(connect=connector(db), plan=p, level=70).first_n == 61
    assert fillers(db) == list(range(1, 71))
