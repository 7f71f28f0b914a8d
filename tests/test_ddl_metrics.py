"""The per-statement metric breakdown, against a real prometheus_client exporter, and recording.

The test's exporter plays the server's /metrics: a psycopg cursor class observes fixed amounts
into its histogram and counter whenever a probe statement runs (and a huge amount on DROP, which
must stay outside every window), so the expected per-statement numbers are known exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from sessionctl.bench.ddl import run_ddl_core
from sessionctl.bench.ddl_report import to_measurement
from sessionctl.campaign.model import DdlSpec, MetricSpec
from sessionctl.session import record
from sessionctl.target.embedded_postgres import EmbeddedPostgres
from sessionctl.workspace import Workspace

pytestmark = pytest.mark.postgres

COUNT = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
MZ_BUCKETS = (
    0.001,
    0.002,
    0.004,
    0.008,
    0.016,
    0.032,
    0.064,
    0.128,
    0.256,
    0.512,
    1,
    2,
    4,
    8,
    16,
    32,
)


@pytest.fixture
def db(postgres: EmbeddedPostgres) -> Iterator[str]:
    name = f"ddlm_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"DROP DATABASE {name} WITH (FORCE)")


class Exporter:
    """A live /metrics endpoint with a step histogram and a seconds counter."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.step = Histogram(
            "ddl_step_seconds",
            "Per-step DDL time.",
            ["step"],
            registry=self.registry,
            buckets=MZ_BUCKETS,
        )
        self.commit = Counter("ddl_commit_seconds", "Total commit seconds.", registry=self.registry)
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"

    def observe(self, sql: str) -> None:
        if sql.startswith("CREATE TABLE probe_"):
            self.step.labels(step="catalog").observe(0.004)
            self.step.labels(step="storage").observe(0.002)
        elif sql.startswith("CREATE VIEW probe_v_"):
            self.step.labels(step="catalog").observe(0.003)
        elif sql.startswith("DROP"):
            self.step.labels(step="catalog").observe(1.0)
        elif sql == "COMMIT":
            self.commit.inc(0.010)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    e = Exporter()
    yield e
    e.close()


def observing_connect(url: str, exporter: Exporter) -> Any:
    class ObservingCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
            out = super().execute(query, params, **kw)
            exporter.observe(str(query))
            return out

    return lambda: psycopg.connect(url, autocommit=True, cursor_factory=ObservingCursor)


SPECS = (
    MetricSpec(name="ddl_step_seconds", kind="histogram", by=("step",)),
    MetricSpec(name="ddl_commit_seconds", kind="counter"),
    MetricSpec(name="not_in_this_build_seconds", kind="histogram"),
)


def spec(**kw: Any) -> DdlSpec:
    base: dict[str, Any] = {
        "count_sql": COUNT,
        "filler": "CREATE TABLE filler_{n} (a int)",
        "levels": (0, 120),
        "probes": {
            "table": "CREATE TABLE probe_{n} (a int)",
            "view": "CREATE VIEW probe_v_{n} AS SELECT 1 AS a",
        },
        "probes_per_level": 3,
        "batch_size": 40,
        "txn_batches": (1, 4),
    }
    base.update(kw)
    return DdlSpec(**base)


def rows_by_series(rows: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {r["series"]: r for r in rows}


def test_metric_deltas_are_divided_per_statement(
    db: str, exporter: Exporter, tmp_path: Any
) -> None:
    r = run_ddl_core(
        spec=spec(), metrics_url=exporter.url, metric_specs=SPECS,
        connect=observing_connect(db, exporter), run_dir=tmp_path,
    )  # fmt: skip
    assert len(r.probes) == 4
    for run in r.probes:
        rows = rows_by_series(run.metrics)
        if run.kind == "table":
            # Warm-up probe and drops observed too, but outside the window: exactly 4 ms and 2 ms.
            assert set(rows) == {"ddl_step_seconds{step=catalog}", "ddl_step_seconds{step=storage}"}
            assert rows["ddl_step_seconds{step=catalog}"]["ms_per_stmt"] == pytest.approx(4.0)
            assert rows["ddl_step_seconds{step=catalog}"]["obs_per_stmt"] == pytest.approx(1.0)
            assert rows["ddl_step_seconds{step=storage}"]["mean_ms"] == pytest.approx(2.0)
            # Every observation is 4 ms, in the (0.002, 0.004] bucket: PromQL interpolates in it.
            assert rows["ddl_step_seconds{step=catalog}"]["p50_ms"] == pytest.approx(3.0)
        else:
            assert set(rows) == {"ddl_step_seconds{step=catalog}"}  # storage did not move: no row
            assert rows["ddl_step_seconds{step=catalog}"]["ms_per_stmt"] == pytest.approx(3.0)
    txn = {t.size: rows_by_series(t.metrics) for t in r.txns}
    # One COMMIT of 10 ms spread over the transaction's statements.
    assert txn[1]["ddl_commit_seconds"]["ms_per_stmt"] == pytest.approx(10.0)
    assert txn[4]["ddl_commit_seconds"]["ms_per_stmt"] == pytest.approx(2.5)
    assert txn[4]["ddl_step_seconds{step=catalog}"]["ms_per_stmt"] == pytest.approx(4.0)
    assert (tmp_path / "metrics-table-n120.json").is_file()
    assert (tmp_path / "metrics-table-txn4.json").is_file()

    m = to_measurement(r, name="ddl", phase="baseline")
    v = {x.name: x.value for x in m.values}
    assert v["ddl_step_seconds{step=catalog}.ms_per_table@n120"] == pytest.approx(4.0)
    assert v["ddl_step_seconds{step=storage}.ms_per_table@n0"] == pytest.approx(2.0)
    assert v["ddl_step_seconds{step=catalog}.ms_per_view@n120"] == pytest.approx(3.0)
    assert v["ddl_commit_seconds.ms_per_table@b4"] == pytest.approx(2.5)
    assert "Per-statement wall-clock breakdown" in m.summary_md
    assert (
        "| 120 | table | `ddl_step_seconds{step=catalog}` | 4.000 | 1.00 | 4.000 |" in m.summary_md
    )
    assert "| txn B=4 | table | `ddl_commit_seconds` | 2.500 | n/a | n/a |" in m.summary_md


def test_dead_metrics_endpoint_keeps_the_latencies(db: str, exporter: Exporter) -> None:
    url = exporter.url
    exporter.close()
    r = run_ddl_core(
        url=db, spec=spec(levels=(0,), txn_batches=()), metrics_url=url, metric_specs=SPECS
    )
    assert all(len(x.ms) == 3 and x.metrics == () for x in r.probes)
    assert r.metrics_note is not None and "metrics scrape failed" in r.metrics_note
    assert "wall-clock times only" in to_measurement(r, name="ddl", phase=None).summary_md


def test_measurement_is_recorded_into_the_open_session(
    db: str, ws: Workspace, frozen_now: str
) -> None:
    session = record.OpenSession(
        campaign="ddl-demo", number=3, step_id=None, diagnostic=True, started_at=frozen_now
    )
    record.write_current(ws, session)
    r = run_ddl_core(url=db, spec=spec(levels=(0, 50), txn_batches=()))
    n = record.record_measurement(ws, "ddl-demo", to_measurement(r, name="ddl", phase="baseline"))
    assert n == 3
    [m] = record.measurements(ws, "ddl-demo", 3)
    assert m.source == "ddl" and m.phase == "baseline" and m.at == frozen_now
    assert m.value("table.median_ms@n50") is not None
    assert m.details["final_count"] == 50
