"""perf against a real PostgreSQL under pgbench: the seam driven directly, and `sessionctl profile`.

Skipped, with the reason, where `perf record -e cpu-clock` cannot run (no perf, or a container
without perf_event access); the collapse/report/diff tests on captured data always run.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionctl.campaign.model import ProfileSpec
from sessionctl.cli import app
from sessionctl.profiling import profile_run
from sessionctl.profiling.perf import inspect_binary, unusable_reason
from sessionctl.session.record import OpenSession, measurements, write_current
from sessionctl.target.embedded_postgres import EmbeddedPostgres
from sessionctl.workspace import Workspace

REASON = unusable_reason("cpu-clock")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(REASON is not None, reason=f"perf is not usable here: {REASON}"),
]
QUERY = "SELECT relname, relkind FROM pg_class WHERE oid = 1259"


def postmaster(pg: EmbeddedPostgres) -> int:
    return int((pg.datadir / "postmaster.pid").read_text().split()[0])


def tree(pg: EmbeddedPostgres) -> list[int]:
    pm = postmaster(pg)
    kids = subprocess.run(["pgrep", "-P", str(pm)], capture_output=True, text=True).stdout.split()
    return [pm, *map(int, kids)]


@dataclass(frozen=True)
class Pgbench:
    queries: int
    qps: float
    window: tuple[float, float]


def pgbench(pg: EmbeddedPostgres, script: Path, *, clients: int, seconds: int) -> Pgbench:
    tool = pg.tool("pgbench")
    argv = [
        str(tool) if tool.exists() else "pgbench",
        "-n",
        "-f",
        str(script),
        "-c",
        str(clients),
        "-j",
        str(clients),
        "-T",
        str(seconds),
        pg.url,
    ]
    start = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    end = time.monotonic()
    queries = int(re.search(r"actually processed: (\d+)", out).group(1))  # type: ignore[union-attr]
    return Pgbench(queries, queries / seconds, (start, end))


def test_inspect_binary_reads_the_server_executable(postgres: EmbeddedPostgres) -> None:
    info = inspect_binary(postgres.bindir / "postgres")
    assert info is not None and info.functions > 1000
    assert info.fp_ratio is None or 0.0 <= info.fp_ratio <= 1.0


def test_profile_run_with_pgbench_driven_directly(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    script = tmp_path / "q.sql"
    script.write_text(QUERY + ";\n")
    res = profile_run(
        pids=lambda: tree(postgres),
        run=lambda: pgbench(postgres, script, clients=2, seconds=1),
        out_dir=tmp_path / "prof",
        spec=ProfileSpec(focus=("PostgresMain",), groups={"network": "send|recv"}),
        concurrency=2,
        keep_script=True,
    )
    p = res.profile
    assert p.samples > 50 and p.queries and p.queries > 100
    assert res.report.samples_per_query == pytest.approx(p.samples / p.queries)
    assert (
        res.overhead is None and res.qps_profiled
    )  # no unprofiled run asked for (the CLI test has one)
    assert res.details["call_graph"] in ("fp", "dwarf,8192")
    incl = {r.name for r in res.report.top_incl}
    assert "PostgresMain" in incl  # exported even from a stripped binary: the backends were sampled
    focus = res.report.focus[0]
    assert focus.name == "PostgresMain" and focus.incl_share > 0.5
    assert Path(res.files["perf_data"]).stat().st_size > 0
    ET.parse(res.files["flamegraph"])
    doc = json.loads(Path(res.files["speedscope"]).read_text())
    assert doc["profiles"][0]["type"] == "sampled"
    # Backends forked after perf attached (pgbench's connections) are in the profile.
    assert _sample_pids(Path(res.files["perf_script"])) - set(p.meta["pids"])


def _sample_pids(path: Path) -> set[int]:
    import gzip

    pids: set[int] = set()
    with gzip.open(path, "rt") as fh:
        for line in fh:
            m = re.match(r"^\S.*?\s+(\d+)/\d+\s+\d+\.\d+:\s+\d+\s+cpu-clock", line)
            if m:
                pids.add(int(m.group(1)))
    return pids


CAMPAIGN = """\
schema: 1
revision: 1
title: PostgreSQL profile check
target:
  sql_url: {url}
  pid: {pid}
benchmarks:
  - name: lookup
    driver: pgbench
    query: {query}
    concurrency: [2]
    duration: 1s
profile:
  focus: [PostgresMain]
  groups:
    network: "send|recv"
"""


def test_cli_profile_records_into_the_session_and_diffs_against_baseline(
    ws: Workspace, postgres: EmbeddedPostgres
) -> None:
    ws.campaign_path("pg").write_text(
        CAMPAIGN.format(url=postgres.url, pid=postmaster(postgres), query=QUERY)
    )
    write_current(
        ws, OpenSession(campaign="pg", number=1, step_id=None, diagnostic=False, started_at="t")
    )
    runner = CliRunner()
    base = runner.invoke(app, ["profile", "--phase", "baseline", "--no-overhead", "--json"])
    assert base.exit_code == 0, base.output
    first = json.loads(base.stdout)
    assert first["session"] == 1 and first["profiles"][0]["report"]["samples"] > 0
    again = runner.invoke(
        app,
        [
            "profile",
            "lookup",
            "-c",
            "2",
            "-d",
            "1s",
            "--phase",
            "remeasure",
            "--against",
            "baseline",
            "--json",
        ],
    )
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert second["profiles"][0]["overhead"] is not None  # the unprofiled run happened
    assert "2" in second["diffs"] and second["diffs"]["2"]["unit"] == "query"

    ms = measurements(ws, "pg", 1)
    assert [m.phase for m in ms] == ["baseline", "remeasure"] and {m.source for m in ms} == {
        "profile"
    }
    values = {v.name for v in ms[1].values}
    for name in (
        "samples_per_query@c2",
        "PostgresMain.incl_per_query@c2",
        "network.per_query@c2",
        "qps_profiled@c2",
    ):
        assert name in values
    assert (
        "Top functions by self samples" in ms[1].summary_md and "Profile diff" in ms[1].summary_md
    )
    folder = Path(ms[1].details["profiles"]["2"])
    assert (folder / "flamegraph.svg").is_file() and (folder / "speedscope.json").is_file()
    assert ms[1].raw_dir is not None and not Path(ms[1].raw_dir).is_absolute()

    rep = runner.invoke(app, ["profile", "report", str(folder), "--json"])
    assert rep.exit_code == 0 and json.loads(rep.stdout)["focus"][0]["name"] == "PostgresMain"
    d = runner.invoke(app, ["profile", "diff", ms[0].details["profiles"]["2"], str(folder)])
    assert d.exit_code == 0 and "Largest changes" in d.output
