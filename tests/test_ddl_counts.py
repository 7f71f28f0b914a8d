"""DDL values are keyed by the object count measured, never the level asked for; a session that
measured before and after at different counts closes with "not comparable", not a verdict."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from conftest import git

from sessionctl.bench.ddl import ProbeRun
from sessionctl.bench.ddl_population import Growth
from sessionctl.bench.ddl_report import DdlResult, count_key, count_label, to_measurement
from sessionctl.session import engine, record
from sessionctl.session.close import close
from sessionctl.target.embedded_postgres import EmbeddedPostgres
from sessionctl.verdict.session import summarize_session
from sessionctl.workspace import Workspace

COUNT = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"


def test_count_labels_round_to_two_significant_figures() -> None:
    cases = {0: "n0", 57: "n57", 257: "n260", 999: "n1.0k", 1000: "n1.0k", 3049: "n3.0k",
             3050: "n3.1k", 12_345: "n12k", 100_000: "n100k", 1_500_000: "n1.5M"}  # fmt: skip
    assert {n: count_label(n) for n in cases} == cases
    assert count_key("table.median_ms@n3.0k") == ("table.median_ms", "n3.0k")
    assert count_key("x{step=a}.ms_per_table@n12k") == ("x{step=a}.ms_per_table", "n12k")
    assert count_key("table.txn_ms_per_stmt@b5") is None


@pytest.fixture
def db(postgres: EmbeddedPostgres) -> Iterator[str]:
    name = f"ddlk_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.postgres
def test_bench_at_3000_objects_with_level_1000_is_keyed_n3_0k(ws: Workspace, db: str) -> None:
    from sessionctl.bench.runner import run_bench

    with psycopg.connect(db, autocommit=True) as c:
        c.execute("DO $$ BEGIN FOR i IN 1..3000 LOOP "
                  "EXECUTE format('CREATE TABLE pre_%s (a int)', i); END LOOP; END $$")  # fmt: skip
    ws.campaign_path("k").write_text(f"""schema: 1
revision: 1
title: keys
target:
  sql_url: "{db}"
benchmarks:
  - name: ddl
    driver: ddl
    ddl:
      count_sql: {COUNT}
      filler: CREATE TABLE filler_{{n}} (a int)
      levels: [1000]
      probes:
        table: CREATE TABLE probe_{{n}} (a int)
      probes_per_level: 3
""")
    m = run_bench(ws, "k", bench="ddl", record=False).measurement
    v = {x.name: x for x in m.values}
    assert "table.median_ms@n1k" not in v and "table.median_ms@n1.0k" not in v
    assert v["table.median_ms@n3.0k"].objects == 3000
    assert v["table.p90_ms@n3.0k"].objects == 3000
    assert v["objects@n3.0k"].value == 3000
    # The exact count survives the session record's round trip.
    again = type(v["table.median_ms@n3.0k"]).from_dict(v["table.median_ms@n3.0k"].to_dict())
    assert again.objects == 3000


def ddl_measurement(phase: str, count: int, ms: tuple[float, ...]) -> object:
    r = DdlResult(
        dialect="postgres", count_sql=COUNT, initial_count=count, final_count=count,
        levels=(1000,), growths=(Growth(1000, count, count, 0, 0.0, 1, 0),),
        probes=(ProbeRun(1000, count, "table", ms, 1.0),), txns=(),
    )  # fmt: skip
    return to_measurement(r, name="ddl", phase=phase)


def test_baseline_and_remeasure_at_different_counts_are_not_comparable() -> None:
    from sessionctl.campaign.model import CompareSpec

    ms = [ddl_measurement("baseline", 1000, (1.0, 1.1, 1.2)),
          ddl_measurement("remeasure", 3000, (3.0, 3.2, 3.4))]  # fmt: skip
    js = {j.metric: j for j in summarize_session(ms, compare=CompareSpec())}  # type: ignore[arg-type]
    j = js["table.median_ms@n1.0k≠n3.0k"]
    assert j.verdict == "not comparable" and j.ratio is None
    assert (j.a, j.b) == (1.1, 3.2)
    assert "baseline measured at 1,000 objects, re-measure at 3,000" in j.warnings[0]
    assert not any(x.verdict in ("improved", "regressed") for x in js.values())
    # The count itself is what makes them incomparable, not a metric with a row of its own.
    assert not [m for m in js if m.startswith("objects@")], sorted(js)
    # At the same count, the same values are judged.
    same = [ddl_measurement("baseline", 3000, (3.0, 3.1, 3.2)),
            ddl_measurement("remeasure", 3010, (1.0, 1.1, 1.2))]  # fmt: skip
    judged = {j.metric: j for j in summarize_session(same, compare=CompareSpec())}  # type: ignore[arg-type]
    # Comparable, but one block per side: probes are not independent runs, so no verdict
    # (judging 3 probes against 3 probes said "regressed"/"improved" on no-ops before).
    j = judged["table.median_ms@n3.0k"]
    assert j.verdict == "inconclusive" and j.n == 1
    assert "objects@n3.0k" not in judged, sorted(judged)
    assert "`sessionctl compare` judges paired blocks" in j.warnings[0]


CAMPAIGN = """\
schema: 1
revision: 1
title: DDL latency
next_steps:
  - id: faster-catalog
    title: Faster catalog writes
"""


def test_close_across_mismatched_counts_says_not_comparable(ws: Workspace, frozen_now: str) -> None:
    (ws.root / "prompts" / "ddl.yaml").write_text(CAMPAIGN)
    (ws.root / "app.py").write_text("x = 1\n")
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    engine.start(ws, "ddl")
    record.record_measurement(ws, "ddl", ddl_measurement("baseline", 1000, (1.0, 1.1, 1.2)))  # type: ignore[arg-type]
    (ws.root / "app.py").write_text("x = 2\n")
    engine.record(ws, "ddl", phase="change", findings=["cached the catalog lookup"])
    record.record_measurement(ws, "ddl", ddl_measurement("remeasure", 3000, (3.0, 3.2, 3.4)))  # type: ignore[arg-type]
    result = close(ws, "ddl", resolve="faster-catalog", status_text="s", summary="cache")
    log = (ws.root / "logs" / "ddl-perf-log.md").read_text()
    row = next(ln for ln in log.splitlines() if "table.median_ms@n1.0k≠n3.0k" in ln)
    assert "not comparable" in row and "+190" not in row
    assert "regressed" not in log
    assert {j["verdict"] for j in result.judgements if "median" in j["metric"]} == {
        "not comparable"
    }
    msg = git(ws.root, "log", "-1", "--format=%B", "HEAD~1")
    assert "not comparable" in msg
