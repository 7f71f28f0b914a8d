"""pgbench driver: the report parser (current and older formats), the transaction log, the command
line (no password on it), a real failing pgbench run and a real open-loop (-R) run. pgbench comes
from the machine or the pgserver wheel the test extra installs, so these never skip."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from sessionctl.bench.pgbench import (
    build_argv,
    commands_per_transaction,
    conninfo_without_password,
    parse_logs,
    parse_summary,
    run_pgbench,
    script_text,
)
from sessionctl.errors import MeasurementError
from sessionctl.target.embedded_postgres import EmbeddedPostgres

PG15 = """\
pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: s.sql
scaling factor: 1
query mode: prepared
number of clients: 2
number of threads: 2
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 61172
number of failed transactions: 3 (0.005%)
latency average = 0.036 ms
latency stddev = 0.195 ms
initial connection time = 4.570 ms
tps = 30605.082269 (without initial connection time)
"""

PG12 = """\
transaction type: s.sql
scaling factor: 1
query mode: simple
number of clients: 4
number of threads: 2
duration: 5 s
number of transactions actually processed: 50000
latency average = 0.400 ms
tps = 9990.100000 (including connections establishing)
tps = 10001.500000 (excluding connections establishing)
"""


def test_parse_current_report() -> None:
    s = parse_summary(PG15)
    assert (s.tps, s.transactions, s.failed) == (30605.082269, 61172, 3)
    assert (s.latency_avg_ms, s.latency_stddev_ms, s.connection_ms) == (0.036, 0.195, 4.570)


def test_parse_older_report_takes_tps_excluding_connections() -> None:
    s = parse_summary(PG12)
    assert s.tps == 10001.5 and s.transactions == 50000 and s.failed == 0
    assert s.latency_stddev_ms is None


def test_report_without_tps_is_a_failed_measurement() -> None:
    with pytest.raises(MeasurementError, match="no `tps = …` summary"):
        parse_summary("pgbench (15)\ntransaction type: s.sql\n")


def test_transaction_log_to_percentiles(tmp_path: Path) -> None:
    (tmp_path / "log.1").write_text(
        "0 1 657 0 1795317059 246684\n0 2 63 0 1795317059 246760\n0 3 failed 0 1 2\n"
    )
    with gzip.open(tmp_path / "log.2.gz", "wt") as fh:
        fh.write("1 1 100 0 1795317059 246725\n1 2 skipped 0 1 2\n")
    hist, failed = parse_logs([tmp_path / "log.1", tmp_path / "log.2.gz"])
    assert hist.count == 3 and failed == 2
    assert hist.min_ns == 63_000 and hist.max_ns == 657_000
    assert hist.percentile_ns(50) == pytest.approx(100_000, rel=0.004)


def test_script_and_command_counts() -> None:
    assert script_text(None, "select * from t") == "select * from t;\n"
    assert script_text("\\set id random(1, 5)\nselect * from t where id = :id;\n", None).startswith(
        "\\set"
    )
    assert (
        commands_per_transaction("\\set a 1\nbegin;\nselect 1;\nupdate t\n set v = 1;\nend;\n") == 4
    )
    assert commands_per_transaction("select 1") == 1


def test_command_line_has_no_password(tmp_path: Path) -> None:
    conninfo, password = conninfo_without_password(
        "postgresql://app:s3cr%40t@db.local:6875/shop?sslmode=disable"
    )
    assert password == "s3cr@t" and "s3cr" not in conninfo
    assert "host=db.local" in conninfo and "port=6875" in conninfo and "dbname=shop" in conninfo
    argv = build_argv(
        "/usr/bin/pgbench",
        script_path=tmp_path / "script.sql",
        concurrency=64,
        duration=20,
        conninfo=conninfo,
        log_prefix=tmp_path / "pgbench_log",
        log_sampling=0.1,
        extra=["-M", "prepared"],
        cores=2,
    )
    assert argv[:10] == [
        "/usr/bin/pgbench",
        "-n",
        "-f",
        str(tmp_path / "script.sql"),
        "-c",
        "64",
        "-j",
        "2",
        "-T",
        "20",
    ]
    assert argv[10:] == [
        "-P",
        "1",
        "--log",
        f"--log-prefix={tmp_path / 'pgbench_log'}",
        "--sampling-rate=0.1",
        "-M",
        "prepared",
        conninfo,
    ]


def test_failing_pgbench_run_reports_its_stderr(tmp_path: Path, postgres: EmbeddedPostgres) -> None:
    with pytest.raises(MeasurementError) as info:
        run_pgbench(
            url=postgres.url,
            script="select * from no_such_relation;\n",
            concurrency=1,
            duration=1,
            raw_dir=tmp_path,
        )
    msg = str(info.value)
    assert (
        msg.startswith("pgbench exited with 2:")
        and 'relation "no_such_relation" does not exist' in msg
    )
    assert "\n" not in msg
    assert (tmp_path / "pgbench.stderr").is_file()


def test_open_loop_counts_latency_from_the_scheduled_start(
    tmp_path: Path, postgres: EmbeddedPostgres
) -> None:
    # One client, 10 ms per query: it can serve 100/s. Offered 150/s (-R), it falls behind, and
    # the schedule lag grows through the run; the closed loop never sees that queueing.
    sleepy = "SELECT pg_sleep(0.01);\n"
    common = {"url": postgres.url, "script": sleepy, "concurrency": 1, "duration": 2,
              "log_sampling": 1.0}  # fmt: skip
    closed = run_pgbench(raw_dir=tmp_path / "closed", **common)  # type: ignore[arg-type]
    opened = run_pgbench(raw_dir=tmp_path / "open", rate=150.0, **common)  # type: ignore[arg-type]
    assert closed.details["mode"] == "closed" and opened.details["mode"] == "open"
    assert "-R 150" in opened.details["command"] and "-R" not in closed.details["command"]
    assert 9 < closed.latency_ms["p99"] < 100
    assert opened.latency_ms["p99"] > 150  # ~0.3 s of lag by the end of the run
    assert opened.latency_ms["p50"] > 5 * closed.latency_ms["p50"]
