"""``compare`` for ``driver: ddl`` against the real PostgreSQL fixture: paired probe blocks at the
current object count, keyed by it, an event-trigger A/B judged improved, mismatched counts refused,
and per-statement metric deltas from a real prometheus_client exporter judged too."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry, Histogram, start_http_server

from sessionctl.session.record import OpenSession, write_current
from sessionctl.target.embedded_postgres import EmbeddedPostgres
from sessionctl.target.server import TargetHandle
from sessionctl.verdict.protocol import SqlSides, run_compare, to_measurement
from sessionctl.workspace import Workspace

pytestmark = pytest.mark.postgres

COUNT = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
SLOW_FN = (
    "CREATE OR REPLACE FUNCTION slow_ddl() RETURNS event_trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_sleep(0.02); END $$"
)
# The A/B sleeps 4 ms (judged improved on a 3,000-object server by hand, see
# docs/ddl-campaigns.md); the test sleeps 20 ms so a machine loaded by other jobs cannot slow
# side B's statements enough to blur a real difference.
SLOW_ON = [
    SLOW_FN,
    "DROP EVENT TRIGGER IF EXISTS slow_ddl",
    "CREATE EVENT TRIGGER slow_ddl ON ddl_command_end WHEN TAG IN ('CREATE TABLE') "
    "EXECUTE FUNCTION slow_ddl()",
]
SLOW_OFF = ["DROP EVENT TRIGGER IF EXISTS slow_ddl"]


def campaign_yaml(url: str, *, probes: int = 6, extra: str = "") -> str:
    return f"""schema: 1
revision: 1
title: ddl compare
target:
  sql_url: "{url}"
{extra}benchmarks:
  - name: ddl-now
    driver: ddl
    ddl:
      count_sql: {COUNT}
      filler: CREATE TABLE filler_{{n}} (a int)
      probes:
        table: CREATE TABLE probe_{{n}} (a int)
        view: CREATE VIEW probe_v_{{n}} AS SELECT 1 AS a
      probes_per_level: {probes}
compare:
  pairs: 4
  warmup_runs: 1
"""


@pytest.fixture
def db(postgres: EmbeddedPostgres) -> Iterator[str]:
    name = f"ddlab_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    url = postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as c:
        for i in range(1, 31):
            c.execute(f"CREATE TABLE filler_{i} (a int)")
    yield url
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def session(ws: Workspace) -> Workspace:
    write_current(ws, OpenSession("ddlc", 1, None, False, "now"))
    return ws


def test_event_trigger_ab_is_judged_improved_at_the_measured_count(
    session: Workspace, db: str
) -> None:
    ws = session
    ws.campaign_path("ddlc").write_text(campaign_yaml(db))
    sides = SqlSides(a_sql=SLOW_ON, b_sql=SLOW_OFF)
    res = run_compare(ws, "ddlc", sides=sides, pairs=6)
    # Both sides probed at the 30 fillers (no growth, probes dropped): keys say so.
    assert res.extra["objects"] == [30]
    assert all(r["objects"] == 30 == r["objects_after"] for r in res.runs)
    by = {j.metric: j for j in res.judgements}
    assert set(by) == {
        "table.median_ms@n30", "table.p90_ms@n30", "view.median_ms@n30", "view.p90_ms@n30",
    }  # fmt: skip
    j = by["table.median_ms@n30"]
    # Side A sleeps 20 ms in every CREATE; B does not: B/A is far below 1 and judged so.
    assert j.verdict == "improved", j.describe()
    assert j.a is not None and j.b is not None and j.a - j.b > 15.0
    assert j.family == 4 and j.n == 6
    assert res.session == 1 and "probe blocks at the current object count" in res.summary_md
    # Per-run values carry the same keys: per-pair ratios and the noise floor are computed.
    ratio = to_measurement(res).value("table.median_ms@n30:ratio")
    assert ratio is not None and len(ratio.samples) == 6
    floor = {f["metric"]: f for f in res.noise_floor()}
    assert floor["table.median_ms@n30"]["cv_a"] is not None
    # The session's verdict is the paired one, under the same key.
    from sessionctl.campaign.model import CompareSpec
    from sessionctl.session.record import measurements
    from sessionctl.verdict.session import summarize_session

    verdicts = {j.metric: j.verdict for j in summarize_session(
        measurements(ws, "ddlc", 1), compare=CompareSpec())}  # fmt: skip
    assert verdicts["table.median_ms@n30"] == "improved"
    with psycopg.connect(db, autocommit=True) as c:
        left = c.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'probe%'").fetchone()
    assert left == (0,)


def test_sides_at_different_counts_are_not_comparable(session: Workspace, db: str) -> None:
    ws = session
    ws.campaign_path("ddlc").write_text(campaign_yaml(db, probes=2))
    # B's setup SQL adds 40 tables: A probes at 30 objects, B at 70.
    grow = "DO $$ BEGIN FOR i IN 31..70 LOOP EXECUTE format('CREATE TABLE IF NOT EXISTS " \
        "filler_%s (a int)', i); END LOOP; END $$"  # fmt: skip
    shrink = "DO $$ BEGIN FOR i IN 31..70 LOOP EXECUTE format('DROP TABLE IF EXISTS " \
        "filler_%s', i); END LOOP; END $$"  # fmt: skip
    res = run_compare(ws, "ddlc", sides=SqlSides(a_sql=[shrink], b_sql=[grow]), pairs=2,
                      record=False)  # fmt: skip
    assert {j.verdict for j in res.judgements} == {"not comparable"}
    assert "table.median_ms@n30≠n70" in {j.metric for j in res.judgements}
    assert any("A measured at 30 objects, B at 70" in w for w in res.warnings)
    assert res.false_verdicts == 0


def test_per_statement_metric_deltas_are_judged_metrics(
    session: Workspace, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real prometheus_client exporter plays the server's wall-clock step histogram: every
    probe CREATE observes its own duration, as Materialize's catalog histograms do."""
    registry = CollectorRegistry()
    buckets = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 1.0)
    step = Histogram("ddl_step_seconds", "step time", ["step"], registry=registry, buckets=buckets)
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)

    class TimedCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
            t0 = time.perf_counter()
            out = super().execute(query, params, **kw)
            if str(query).startswith(("CREATE TABLE probe_", "CREATE VIEW probe_v_")):
                step.labels(step="catalog").observe(time.perf_counter() - t0)
            return out

    real_connect = TargetHandle.connect

    def connect(self: TargetHandle, system: bool = False, **kw: Any) -> Any:
        conn = real_connect(self, system, **kw)
        conn.cursor_factory = TimedCursor
        return conn

    monkeypatch.setattr(TargetHandle, "connect", connect)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    metrics = f"  metrics_url: {url}\n"
    yaml = campaign_yaml(db, extra=metrics) + (
        "metrics:\n  - name: ddl_step_seconds\n    kind: histogram\n    by: [step]\n"
    )
    session.campaign_path("ddlc").write_text(yaml)
    try:
        res = run_compare(session, "ddlc", sides=SqlSides(a_sql=SLOW_ON, b_sql=SLOW_OFF),
                          pairs=6, record=False)  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    by = {j.metric: j for j in res.judgements}
    j = by["ddl_step_seconds{step=catalog}.ms_per_table@n30"]
    # The per-statement delta (Δsum / statements) carries A's 20 ms sleep: judged like latency.
    assert j.verdict == "improved", j.describe()
    assert j.a is not None and j.b is not None and j.a > 20.0 and j.a - j.b > 15.0
    assert "ddl_step_seconds{step=catalog}.ms_per_view@n30" in by
    assert j.family == len(res.judgements) == 6
    block = next(r for r in res.runs if not r["warmup"])
    assert (session.root / block["raw_path"] / "metrics-table.json").is_file()


def test_throughput_options_are_refused_before_anything_runs(session: Workspace, db: str) -> None:
    from sessionctl.errors import UsageError

    session.campaign_path("ddlc").write_text(campaign_yaml(db))
    with pytest.raises(UsageError) as info:
        run_compare(session, "ddlc", sides=SqlSides(), duration=5.0, record=False)
    assert str(info.value) == (
        "--duration: a ddl benchmark times blocks of single statements "
        "(ddl.probes_per_level each); it takes no --duration"
    )
    assert not list(session.runs_dir("ddlc").glob("*-compare"))
