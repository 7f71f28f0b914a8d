"""``driver: ddl`` end to end: campaign file → runner → target → ddl driver → open session."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from sessionctl.session import record
from sessionctl.target.embedded_postgres import EmbeddedPostgres
from sessionctl.workspace import Workspace

pytestmark = pytest.mark.postgres

CAMPAIGN = """\
schema: 1
revision: 1
title: DDL latency on PostgreSQL
target:
  sql_url: "{url}"
  ready:
    sql: select 1
    timeout: 10s
benchmarks:
  - name: ddl
    driver: ddl
    ddl:
      count_sql: SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace
      filler: CREATE TABLE filler_{{n}} (a int)
      levels: [0, 100, 250]
      probes:
        table: CREATE TABLE probe_{{n}} (a int)
        view: CREATE VIEW probe_v_{{n}} AS SELECT 1 AS a
      probes_per_level: 3
      batch_size: 50
      txn_batches: [1, 5]
"""


@pytest.fixture
def db(postgres: EmbeddedPostgres) -> Iterator[str]:
    name = f"ddlc_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def campaign(ws: Workspace, db: str, frozen_now: str) -> str:
    (ws.prompts_dir / "ddlpg.yaml").write_text(CAMPAIGN.format(url=db))
    record.write_current(
        ws,
        record.OpenSession(
            campaign="ddlpg", number=1, step_id=None, diagnostic=True, started_at=frozen_now
        ),
    )
    return "ddlpg"


def q(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as c:
        return c.execute(sql).fetchall()


def test_runner_runs_ddl_and_records_it(ws: Workspace, campaign: str, db: str) -> None:
    from sessionctl.bench.runner import run_bench

    out = run_bench(ws, campaign, bench="ddl", phase="baseline")
    assert out.session == 1
    m = out.measurement
    assert m.source == "ddl" and m.phase == "baseline"
    assert m.raw_dir is not None and (ws.root / m.raw_dir / "ddl.json").is_file()
    assert [(r["objects"], r["statement"]) for r in m.details["per_level"]] == [
        (0, "table"), (0, "view"), (100, "table"), (100, "view"), (250, "table"), (250, "view"),
    ]  # fmt: skip
    [recorded] = record.measurements(ws, campaign, 1)
    assert recorded.value("view.median_ms@n250") is not None
    assert recorded.value("table.txn_ms_per_stmt@b5") is not None
    assert q(db, "SELECT count(*) FROM pg_class WHERE relname LIKE 'probe%'") == [(0,)]
    details = json.loads((ws.root / m.raw_dir / "ddl.json").read_text())
    assert details["initial_count"] == 0 and details["final_count"] == 250


def test_cli_bench_ddl_with_levels_and_keep_probes(
    ws: Workspace, campaign: str, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from sessionctl import console
    from sessionctl.cli import app

    # An earlier --json command in this process left the console quiet (a process-wide flag).
    monkeypatch.setattr(console, "_quiet", False)
    runner = CliRunner()
    res = runner.invoke(app, ["bench", "ddl", "--levels", "0,60", "--phase", "baseline"])
    assert res.exit_code == 0, res.output
    # The ddl summary (not a concurrency table) is what a person sees, as terminal tables.
    assert "| 60 | view |" not in res.output and "Probe latency per level" in res.output
    assert any(ln.startswith("│ 60 ") and "│ view " in ln for ln in res.output.splitlines())
    # Its progress names the object-count levels, not a concurrency or a per-run duration.
    assert "object counts 0, 60; 3 probes per level" in res.output
    assert "at concurrency" not in res.output and "per run)" not in res.output
    assert "recorded into session 1 as baseline" in res.output
    assert q(db, "SELECT count(*) FROM pg_class WHERE relname ~ '^filler_[0-9]+$'") == [(60,)]

    res = runner.invoke(app, ["bench", "ddl", "--levels", "0", "--keep-probes", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["session"] == 1
    assert doc["measurement"]["details"]["kept_probes"] is True
    # 3 timed + 1 warm-up per kind, plus the txn batches of 1 and 5 tables.
    assert q(db, "SELECT count(*) FROM pg_class WHERE relname LIKE 'probe%'") == [(4 + 4 + 1 + 5,)]
    assert [m.phase for m in record.measurements(ws, campaign, 1)] == ["baseline", None]


def test_cli_rejects_bad_levels(ws: Workspace, campaign: str) -> None:
    from typer.testing import CliRunner

    from sessionctl.cli import app

    res = CliRunner().invoke(app, ["bench", "ddl", "--levels", "0,lots"])
    assert res.exit_code == 2
    assert "--levels '0,lots': use comma-separated object counts like 0,2000" in res.output
