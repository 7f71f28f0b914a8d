"""``sessionctl bench`` end to end against the real PostgreSQL fixture: sweeps with the built-in
driver and real pgbench, recording into an open session, metric scrapes of a real exporter,
preflight before anything runs, and no password anywhere in what is stored."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionctl.bench.runner import run_bench
from sessionctl.errors import TargetError
from sessionctl.session.record import OpenSession, measurements, write_current
from sessionctl.target.embedded_postgres import EmbeddedPostgres, free_port
from sessionctl.workspace import Workspace

PASSWORD = "Pa55w0rdNeverShown"


def write_campaign(
    ws: Workspace, pg_url: str, *, extra_target: str = "", metrics: str = "", name: str = "bench"
) -> None:
    url = pg_url.replace("@", f":{PASSWORD}@", 1)
    text = f"""\
schema: 1
revision: 1
title: Bench test
target:
  sql_url: {url}
  system_sql_url: {url}
  setup_sql:
    - create table if not exists runner_t (id int primary key, v text)
  preflight:
    - name: catalog
      sql: select count(*) from pg_class
      expect: ">= 10"
{extra_target}
benchmarks:
  - name: lookup
    driver: builtin
    query: select * from runner_t where id = 1
    concurrency: [1, 4]
    duration: 1s
    setup_sql:
      - insert into runner_t select g, 'v' || g from generate_series(1, 5) g on conflict do nothing
  - name: pg
    driver: pgbench
    query: select * from runner_t where id = 2
    concurrency: [1, 2]
    duration: 1s
{metrics}
"""
    (ws.prompts_dir / f"{name}.yaml").write_text(text)


def open_session(ws: Workspace, number: int = 7, campaign: str = "bench") -> None:
    write_current(
        ws,
        OpenSession(
            campaign=campaign,
            number=number,
            step_id=None,
            diagnostic=False,
            started_at="2026-11-22T10:00:00Z",
        ),
    )


def assert_no_password(*folders: Path) -> None:
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                if path.suffix == ".gz":
                    import gzip

                    data = gzip.decompress(data)
                assert PASSWORD.encode() not in data, path


def test_builtin_sweep_is_recorded_into_the_open_session(ws: Workspace, pg_url: str) -> None:
    write_campaign(ws, pg_url)
    open_session(ws)
    out = run_bench(ws, "bench", bench="lookup", phase="baseline")
    assert out.session == 7
    [m] = measurements(ws, "bench", 7)
    assert m.source == "builtin" and m.name == "lookup" and m.phase == "baseline"
    names = [v.name for v in m.values]
    for level in (1, 4):
        for stat in ("qps", "p50_ms", "p99_ms", "errors"):
            assert f"{stat}@c{level}" in names
    qps = m.value("qps@c4")
    assert qps is not None and qps.value > 0 and qps.better == "higher" and len(qps.samples) == 1
    assert m.value("errors@c1").value == 0  # type: ignore[union-attr]
    assert [r["concurrency"] for r in out.table] == [1, 4]
    assert "| concurrency | QPS | p50 ms | p99 ms |" in m.summary_md
    assert m.raw_dir is not None and (ws.root / m.raw_dir / "c4-r1" / "builtin.json").is_file()
    assert [r.concurrency for r in out.runs] == [1, 4]
    outcome = json.loads((out.run_dir / "outcome.json").read_text())
    assert (
        outcome["session"] == 7
        and outcome["measurement"]["details"]["preflight"][0]["name"] == "catalog"
    )
    assert_no_password(ws.scratch)
    assert PASSWORD not in json.dumps(out.to_dict())


def test_repeats_give_samples_and_overrides_apply(ws: Workspace, pg_url: str) -> None:
    write_campaign(ws, pg_url)
    out = run_bench(ws, "bench", bench="lookup", concurrency=[1], duration=0.3, repeat=2)
    assert out.session is None  # no session open: nothing recorded
    qps = out.measurement.value("qps@c1")
    assert qps is not None and len(qps.samples) == 2
    assert qps.value == pytest.approx(sum(qps.samples) / 2)  # median of two
    assert sorted(p.name for p in out.run_dir.iterdir() if p.is_dir()) == ["c1-r1", "c1-r2"]
    assert "median of 2 runs" in out.measurement.summary_md


def test_pgbench_sweep(ws: Workspace, pg_url: str) -> None:
    write_campaign(ws, pg_url)
    open_session(ws, 3)
    out = run_bench(ws, "bench", bench="pg", phase="remeasure")
    assert out.session == 3
    m = out.measurement
    assert m.source == "pgbench"
    for level in (1, 2):
        run = next(r for r in out.runs if r.concurrency == level)
        assert run.qps > 0 and run.errors == 0
        assert run.details["logged_transactions"] > 0
        assert 0 < run.latency_ms["p50"] <= run.latency_ms["p99"]
        assert m.value(f"p99_ms@c{level}") is not None
        raw = ws.root / run.raw_path  # type: ignore[operator]
        assert (raw / "script.sql").read_text() == "select * from runner_t where id = 2;\n"
        assert "-c " + str(level) in (raw / "command.txt").read_text()
        assert list(raw.glob("pgbench_log.*.gz"))
    assert_no_password(ws.scratch)


def test_preflight_fails_before_any_benchmark_runs(ws: Workspace, pg_url: str) -> None:
    extra = """\
    - name: objects
      sql: select 12
      expect: ">= 100000"
      fix: create the objects first"""
    write_campaign(ws, pg_url, extra_target=extra)
    with pytest.raises(
        TargetError,
        match="preflight 'objects' failed: expected >= 100000, got 12; create the objects first",
    ):
        run_bench(ws, "bench", bench="lookup")
    runs = ws.runs_dir("bench")
    assert not list(runs.rglob("c1-r1"))


@pytest.fixture
def exporter() -> Iterator[tuple[str, threading.Event]]:
    """A real prometheus_client exporter whose histogram a thread keeps observing."""
    from prometheus_client import CollectorRegistry, Histogram, start_http_server

    registry = CollectorRegistry()
    hist = Histogram(
        "bench_probe_seconds",
        "probe latency",
        ["method"],
        registry=registry,
        buckets=(0.001, 0.01, 0.1, 1),
    )
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()

    def observe() -> None:
        while not stop.is_set():
            hist.labels(method="cached").observe(0.005)
            time.sleep(0.002)

    worker = threading.Thread(target=observe, daemon=True)
    worker.start()
    try:
        yield f"http://127.0.0.1:{port}/metrics", stop
    finally:
        stop.set()
        worker.join()
        server.shutdown()


def test_metrics_are_scraped_around_each_run(
    ws: Workspace, pg_url: str, exporter: tuple[str, threading.Event]
) -> None:
    url, _ = exporter
    metrics = """\
metrics:
  - name: bench_probe_seconds
    kind: histogram
    labels:
      method: cached
    stats: [mean, p50]"""
    write_campaign(ws, pg_url, extra_target=f"  metrics_url: {url}", metrics=metrics)
    out = run_bench(ws, "bench", bench="lookup", concurrency=[1], duration=0.3)
    metric_values = [v for v in out.measurement.values if v.name.startswith("bench_probe_seconds")]
    assert metric_values and all(v.name.endswith("@c1") for v in metric_values)
    mean = next(v for v in metric_values if ".mean" in v.name)
    assert mean.value == pytest.approx(5.0, rel=1e-6) if mean.unit in ("ms",) else mean.value > 0
    raw = out.run_dir / "c1-r1"
    assert (raw / "metrics-before.prom").is_file() and (raw / "metrics-after.prom").is_file()
    row = out.table[0]
    assert any(k.startswith("bench_probe_seconds") for k in row)


def test_unknown_phase_and_benchmark_are_usage_errors(ws: Workspace, pg_url: str) -> None:
    from sessionctl.errors import UsageError

    write_campaign(ws, pg_url)
    with pytest.raises(UsageError, match="--phase nope"):
        run_bench(ws, "bench", phase="nope")
    with pytest.raises(UsageError, match="no benchmark 'nope'"):
        run_bench(ws, "bench", bench="nope")


def test_postgres_fixture_is_shared(postgres: EmbeddedPostgres) -> None:
    assert postgres.running


HTTP_SERVER = r"""
import http.server, signal, sys
port = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ready")
    def log_message(self, *a):
        pass
def bye(*_):
    print("stopping on SIGINT", flush=True); sys.exit(0)
signal.signal(signal.SIGINT, bye)
print("serving readiness on", port, flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def test_started_target_is_probed_used_and_stopped(ws: Workspace, pg_url: str) -> None:
    import sys

    script = ws.root / "fake_target.py"
    script.write_text(HTTP_SERVER)
    port = free_port()
    extra = f"""\
  start: [{sys.executable}, fake_target.py, "{port}"]
  ready:
    url: http://127.0.0.1:{port}/ready
    timeout: 30s"""
    write_campaign(ws, pg_url, extra_target=extra)
    out = run_bench(ws, "bench", bench="lookup", concurrency=[1], duration=0.3, record=False)
    assert out.measurement.value("qps@c1").value > 0  # type: ignore[union-attr]
    logs = list(ws.runs_dir("bench").glob("target-*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert f"serving readiness on {port}" in text and "stopping on SIGINT" in text
    started = out.measurement.details["target"]
    assert started["started"] is True and "fake_target.py" in started["start"]
