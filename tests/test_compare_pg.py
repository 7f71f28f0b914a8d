"""The A/B protocol against the real PostgreSQL fixture (short runs: pairs=2, sub-second)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from sessionctl.campaign.model import CompareSpec
from sessionctl.cli import app
from sessionctl.session.record import OpenSession, measurements, write_current
from sessionctl.verdict.protocol import ArtifactSides, SqlSides, run_compare, side_values
from sessionctl.verdict.session import results_rows, summarize_session, trailers
from sessionctl.workspace import Workspace

pytestmark = pytest.mark.postgres

TABLE = "compare_lookup"
DROP = f"DROP INDEX IF EXISTS {TABLE}_k"
CREATE = f"CREATE INDEX IF NOT EXISTS {TABLE}_k ON {TABLE} (k)"


def _campaign(ws: Workspace, url: str, *, target: str = "", top: str = "") -> None:
    ws.campaign_path("t").write_text(f"""schema: 1
revision: 1
title: compare test
target:
  sql_url: "{url}"
{target}{top}benchmarks:
  - name: lookup
    driver: builtin
    query: SELECT count(*) FROM {TABLE} WHERE k = (SELECT (random() * 2000)::int)
    concurrency: [2]
    duration: 0.4s
""")


@pytest.fixture
def table(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id int, k int)")
        if conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (0,):
            conn.execute(f"INSERT INTO {TABLE} SELECT g, g % 2000 FROM generate_series(1, 40000) g")
        conn.execute(DROP)
        conn.execute(f"ANALYZE {TABLE}")
    return TABLE


def test_index_ab_is_judged_improved_and_recorded(ws: Workspace, pg_url: str, table: str) -> None:
    _campaign(ws, pg_url)
    write_current(ws, OpenSession("t", 1, None, False, "now"))
    sides = SqlSides(a_sql=(DROP,), b_sql=(CREATE, f"ANALYZE {TABLE}"))
    res = run_compare(ws, "t", sides=sides, pairs=2, duration=0.2)
    assert res.plan == ("AB", "BA") and res.session == 1
    # Warm-ups are closed loop only; each counted slot is a closed-loop run for throughput and
    # an open-loop run for latency at half the slower side's warm-up throughput.
    assert [(r["side"], r["warmup"], r["mode"]) for r in res.runs] == [
        ("A", True, "closed"), ("B", True, "closed"),
        ("A", False, "closed"), ("A", False, "open"), ("B", False, "closed"), ("B", False, "open"),
        ("B", False, "closed"), ("B", False, "open"), ("A", False, "closed"), ("A", False, "open"),
    ]  # fmt: skip
    rate = 0.5 * min(r["qps"] for r in res.runs[:2])
    assert res.extra["rate"] == pytest.approx(rate) and res.extra["open_loop_load"] == 0.5
    assert {r["rate"] for r in res.runs if r["mode"] == "open"} == {res.extra["rate"]}
    assert res.tail.startswith("open-loop run at ") and "50% of the slower side's" in res.tail
    qps = next(j for j in res.judgements if j.metric == "qps@c2")
    assert (
        qps.ratio is not None
        and qps.ratio > 2
        and qps.ci_low is not None
        and qps.ci_high is not None
    )
    # Two pairs on a loaded machine may leave the interval wide; the verdict must follow it.
    assert qps.ci_low < qps.ratio < qps.ci_high
    # Two pairs never name a direction (no bootstrap to cross-check the t interval with): when
    # the t interval alone would name one (improved or probably), the warning names --pairs.
    assert qps.p_family is not None and qps.family == 3
    assert qps.verdict == "inconclusive"
    says_more = any(w.endswith("rerun with --pairs 3 or more") for w in qps.warnings)
    assert says_more == (qps.ci_low > 1.0), qps.warnings
    assert qps.method == "paired" and qps.n == 2
    p99 = next(j for j in res.judgements if j.metric == "p99_ms@c2")
    assert any(w.startswith("latency from a fixed-rate open-loop run at") for w in p99.warnings)
    open_p99 = [r["latency_ms"]["p99"] for r in res.runs if r["mode"] == "open" and r["pair"]]
    assert sorted(
        side_values(res.runs, "p99_ms@c2", "A") + side_values(res.runs, "p99_ms@c2", "B")
    ) == sorted(open_p99)
    assert (ws.root / str(res.raw_dir) / "compare.json").is_file()
    recorded = measurements(ws, "t", 1)
    assert [m.source for m in recorded] == ["compare"]
    assert summarize_session(recorded, compare=CompareSpec()) == list(res.judgements)
    # Measured only by compare (no bench baseline/re-measure), every metric still gets its row,
    # with the paired A/B means and ratio and the unit the driver gave.
    rows = results_rows(recorded, compare=CompareSpec())
    assert [(r.metric, r.unit, r.method) for r in rows] == [
        ("qps@c2", "queries/s", "paired"), ("p50_ms@c2", "ms", "paired"),
        ("p99_ms@c2", "ms", "paired"),
    ]  # fmt: skip
    assert (rows[0].before, rows[0].after, rows[0].ratio) == (qps.a, qps.b, qps.ratio)
    assert dict(trailers(res.judgements, recorded))["Metric"] == "qps@c2"


def test_cli_aa_calibration(ws: Workspace, pg_url: str, table: str) -> None:
    _campaign(ws, pg_url, top="compare:\n  warmup_runs: 0\n")
    write_current(ws, OpenSession("t", 1, None, False, "now"))
    argv = ["--root", str(ws.root), "compare", "lookup", "-C", "t", "--aa"]
    flags = ["--pairs", "2", "--duration", "0.2s", "-c", "1", "--no-record", "--json"]
    out = CliRunner().invoke(app, [*argv, *flags])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["aa"] and data["sides"]["kind"] == "aa" and data["session"] is None
    assert measurements(ws, "t", 1) == []  # --no-record, though a session is open
    assert [(r["pair"], r["side"], r["mode"], r["concurrency"]) for r in data["runs"]] == [
        (1, "A", "closed", 1), (1, "B", "closed", 1), (2, "B", "closed", 1), (2, "A", "closed", 1),
    ]  # fmt: skip
    names = [j["metric"] for j in data["judgements"]]
    assert names == ["qps@c1", "p50_ms@c1", "p99_ms@c1"]
    cal = data["calibration"]
    assert cal["metrics"] == 3 and cal["false_verdicts"] == sum(
        j["verdict"] in ("improved", "regressed") for j in data["judgements"]
    )
    assert {f["metric"] for f in cal["noise_floor"]} == set(names)
    # the three metrics of the comparison are one Holm family
    assert all(j["family"] == 3 and j["p_family"] >= j["p_t"] for j in data["judgements"])
    assert cal["directional_verdicts"] == sum(
        j["verdict"] not in ("no change", "inconclusive") for j in data["judgements"]
    )
    assert data["runs"][0]["values"]["qps@c1"] == data["runs"][0]["qps"] > 0
    bad = CliRunner().invoke(app, [*argv, "--order", "zigzag"])
    assert bad.exit_code == 2 and "--order 'zigzag': use abba or random" in bad.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_restart_per_run_artifact_side_and_open_loop(
    ws: Workspace, pg_url: str, table: str, tmp_path: Path
) -> None:
    # The "server" we restart is a real process (a tiny HTTP server the readiness probe polls);
    # the queries still go to the PostgreSQL fixture. A's start command names the preserved build.
    port = _free_port()
    server = f'"{sys.executable}", -m, http.server, "{port}", --bind, 127.0.0.1'
    target = f"""  start: [{server}, "--directory={{art}}"]
  artifacts_param: "{{art}}"
  restart: per_run
  stop_signal: SIGTERM
  ready:
    url: http://127.0.0.1:{port}/
    interval: 0.05s
"""
    _campaign(ws, pg_url, target=target, top="compare:\n  warmup_runs: 0\n")
    arts = tmp_path / "preserved"
    arts.mkdir()
    res = run_compare(
        ws, "t", sides=ArtifactSides(arts), pairs=1, duration=0.2, rate=150, record=False
    )
    assert [(r["side"], r["mode"]) for r in res.runs] == [
        ("A", "closed"), ("A", "open"), ("B", "closed"), ("B", "open"),
    ]  # fmt: skip
    assert all(f"--directory={arts}" in str(r["server"]) for r in res.runs if r["side"] == "A")
    assert all("--directory" not in str(r["server"]) for r in res.runs if r["side"] == "B")
    assert res.tail.startswith("open-loop run at 150")
    p99 = next(j for j in res.judgements if j.metric == "p99_ms@c2")
    assert any("open-loop run at 150/s" in w for w in p99.warnings)
    assert res.judgements[0].metric == "qps@c2" and res.session is None


def test_failing_side_sql_names_the_side_and_keeps_partial_runs(
    ws: Workspace, pg_url: str, table: str
) -> None:
    from sessionctl.errors import TargetError

    _campaign(ws, pg_url, top="compare:\n  warmup_runs: 0\n")
    sides = SqlSides(a_sql=("SELECT 1",), b_sql=("SELEC broken",))
    with pytest.raises(
        TargetError, match=r"side B setup SQL \[0\] `SELEC broken` failed: syntax error"
    ):
        run_compare(ws, "t", sides=sides, pairs=1, duration=0.2, record=False)
    partial = list(ws.runs_dir("t").glob("*-lookup-compare*/runs-partial.json"))
    assert len(partial) == 1 and [r["side"] for r in json.loads(partial[0].read_text())] == ["A"]


def test_pgbench_latency_comes_from_an_open_loop_run_at_half_the_warmup_rate(
    ws: Workspace, pg_url: str, table: str
) -> None:
    ws.campaign_path("t").write_text(f"""schema: 1
revision: 1
title: compare pgbench
target:
  sql_url: "{pg_url}"
benchmarks:
  - name: lookup
    driver: pgbench
    query: SELECT count(*) FROM {TABLE} WHERE k = 7
    concurrency: [1]
    duration: 1s
""")
    res = run_compare(ws, "t", pairs=2, aa=True, record=False)
    warm = [r for r in res.runs if r["warmup"]]
    assert [r["mode"] for r in warm] == ["closed", "closed"]
    rate = res.extra["rate"]
    assert rate == pytest.approx(0.5 * min(r["qps"] for r in warm))
    opened = [r for r in res.runs if r["mode"] == "open"]
    assert len(opened) == 4 and all(r["rate"] == rate for r in opened)
    # pgbench got -R at that rate (one command per transaction) and kept to it, roughly
    commands = [
        (ws.root / r["raw_path"] / "command.txt").read_text() for r in opened if r["raw_path"]
    ]
    assert commands and all(f"-R {rate:.6g}" in c for c in commands)
    assert all(0.5 * rate < r["qps"] < 1.5 * rate for r in opened)
    p99 = next(j for j in res.judgements if j.metric == "p99_ms@c1")
    assert any(w.startswith("latency from a fixed-rate open-loop run at") for w in p99.warnings)
    assert side_values(res.runs, "p99_ms@c1", "A") == [
        r["latency_ms"]["p99"] for r in opened if r["side"] == "A"
    ]


def test_cli_repeated_aa_calibration_reports_the_rate_and_records_no_verdict(
    ws: Workspace, pg_url: str, table: str
) -> None:
    from sessionctl.verdict.session import is_calibration

    _campaign(ws, pg_url)
    write_current(ws, OpenSession("t", 1, None, False, "now"))
    argv = ["--root", str(ws.root), "compare", "lookup", "-C", "t", "--aa", "--trials", "2"]
    out = CliRunner().invoke(app, [*argv, "--pairs", "2", "--duration", "0.2s", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert len(data["trials"]) == 2 and data["session"] == 1
    directional = sum(
        any(j["verdict"] not in ("no change", "inconclusive") for j in t["judgements"])
        for t in data["trials"]
    )
    strict = next(r for r in data["readings"] if r["reading"] == "strict")
    assert strict["quiet_trials"] == 2 - directional and strict["trials"] == 2
    assert {f["metric"] for f in data["noise_floor"]} == {"qps@c2", "p50_ms@c2", "p99_ms@c2"}
    assert all(len(t["runs"]) == 2 + 2 * 2 * 2 for t in data["trials"])  # warm-ups + 2 runs/slot
    (m,) = measurements(ws, "t", 1)
    assert is_calibration(m) and summarize_session([m], compare=CompareSpec()) == []
    assert "A/A calibration: 2 trials." in m.summary_md
    bad = CliRunner().invoke(app, ["--root", str(ws.root), "compare", "-C", "t", "--trials", "3"])
    assert bad.exit_code == 2 and "--trials repeats an A/A calibration: add --aa" in bad.output
    zero = CliRunner().invoke(app, ["--root", str(ws.root), "compare", "-C", "t", "--rate", "0"])
    assert zero.exit_code == 2 and "--rate must be > 0 queries/s, got 0" in zero.output


def test_sql_compare_ends_with_the_candidates_state(ws: Workspace, pg_url: str, table: str) -> None:
    """Issue 19.6: with pairs AB BA the last run is side A's, yet the server keeps B's index."""
    _campaign(ws, pg_url)
    sides = SqlSides(a_sql=(DROP,), b_sql=(CREATE,))
    res = run_compare(ws, "t", sides=sides, pairs=2, order="abba", duration=0.1, record=False)
    assert res.plan == ("AB", "BA") and res.runs[-1]["side"] == "A"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute(f"SELECT to_regclass('{TABLE}_k') IS NOT NULL").fetchone() == (True,)
