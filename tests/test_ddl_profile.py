"""``profile run`` on a ddl benchmark: real perf on the real PostgreSQL fixture, one profile per
probe kind, samples divided per timed statement, values keyed by the measured count."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner

from sessionctl.cli import app
from sessionctl.profiling import perf
from sessionctl.target.embedded_postgres import EmbeddedPostgres
from sessionctl.workspace import Workspace

REASON = perf.unusable_reason("cpu-clock")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(REASON is not None, reason=f"perf is not usable here: {REASON}"),
]
COUNT = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"


@pytest.fixture
def db(postgres: EmbeddedPostgres) -> Iterator[str]:
    name = f"ddlp_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    url = postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as c:
        for i in range(1, 41):
            c.execute(f"CREATE TABLE filler_{i} (a int)")
    yield url
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_profile_run_gives_samples_per_statement_per_kind(ws: Workspace, db: str) -> None:
    ws.campaign_path("p").write_text(f"""schema: 1
revision: 1
title: ddl profile
target:
  sql_url: "{db}"
  processes: ^postgres$
benchmarks:
  - name: ddl-now
    driver: ddl
    ddl:
      count_sql: {COUNT}
      filler: CREATE TABLE filler_{{n}} (a int)
      levels: [1000]
      probes:
        table: CREATE TABLE probe_{{n}} (a int, b text, c jsonb)
        view: CREATE VIEW probe_v_{{n}} AS SELECT * FROM pg_class
      probes_per_level: 60
profile:
  frequency: 4999
""")
    res = CliRunner().invoke(app, ["profile", "run", "ddl-now", "--campaign", "p", "--json",
                                   "--no-record", "--no-overhead"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    # One profile per probe kind, at the 40 objects that exist (level 1000 is not grown to).
    profiles = doc["profiles"]
    assert [p["details"]["statement"] for p in profiles] == ["table", "view"]
    assert {p["details"]["objects"] for p in profiles} == {40}
    for p in profiles:
        assert p["details"]["queries"] == 60  # the timed statements, warm-up and drops excluded
    values = {v["name"]: v for v in doc["measurement"]["values"]}
    spq = values["samples_per_query.table@n40"]
    samples = values["profile_samples.table@n40"]["value"]
    assert samples > 0 and spq["value"] == pytest.approx(samples / 60)
    assert spq["objects"] == 40 and "samples_per_query.view@n40" in values
    with psycopg.connect(db, autocommit=True) as c:
        left = c.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'probe%'").fetchone()
        assert left == (0,)
        assert c.execute(COUNT).fetchone() == (40,)
