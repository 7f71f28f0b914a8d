"""dbbench driver: the stderr parser on every shipped sample (verbatim runs), broken variants, the
ini it renders and the command line it would run (dbbench itself is not installable here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sessionctl.bench.dbbench import (
    build_argv,
    config_jobs,
    find_dbbench,
    format_go_duration,
    go_duration,
    histogram_percentile,
    override_config,
    parse_output,
    redact_argv,
    render_ini,
    to_result,
)
from sessionctl.errors import MeasurementError, ToolNotFound

DATA = Path(__file__).parent / "data" / "dbbench"


def sample(name: str) -> tuple[str, int]:
    """The verbatim stderr block of a sample file and its exit status."""
    text = (DATA / name).read_text()
    status = int(re.search(r"^## exit status: (\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    block = re.split(r"^## stderr(?: \(verbatim\))?\n```\n", text, maxsplit=1, flags=re.M)[1]
    return block.rsplit("\n```", 1)[0] + "\n", status


def failure_sections() -> list[tuple[str, str, int]]:
    """(title, stderr, exit status) for every command shown in sample 12."""
    text = (DATA / "12-startup-and-config-errors.txt").read_text()
    out = []
    for section in text.split("\n## ")[1:]:
        title = section.splitlines()[0]
        m = re.search(r"```\n\$ dbbench[^\n]*\n(.*?)\[exit status (\d+)\]\n```", section, re.S)
        assert m, title
        out.append((title, m.group(1), int(m.group(2))))
    return out


def test_go_durations() -> None:
    assert go_duration("0s") == 0
    assert go_duration("850ns") == pytest.approx(850e-9)
    assert go_duration("47.628µs") == pytest.approx(47.628e-6)
    assert go_duration("998.635µs") == pytest.approx(998.635e-6)
    assert go_duration("2.054498ms") == pytest.approx(2.054498e-3)
    assert go_duration("1.5s") == 1.5
    assert go_duration("1m2.5s") == 62.5
    assert go_duration("1h0m0s") == 3600
    with pytest.raises(ValueError):
        go_duration("5")
    assert [format_go_duration(x) for x in (20, 1.5, 0.5, 90)] == ["20s", "1.5s", "500ms", "90s"]


def test_sample_01_c8_default_flags() -> None:
    stderr, status = sample("01-example-c8-default.txt")
    out = parse_output(stderr, returncode=status)
    assert list(out.jobs) == ["64 connections"]
    assert out.dsn == "postgres://postgres:XXX@127.0.0.1:49645/postgres?sslmode=disable"
    job = out.jobs["64 connections"]
    f = job.final
    assert (f.transactions, f.tps, f.rows, f.rps, f.queries, f.qps) == (
        36170,
        7229.915,
        180850,
        36149.576,
        36170,
        7229.915,
    )
    assert f.latency == pytest.approx(998.635e-6) and f.latency_ci == pytest.approx(47.628e-6)
    assert (f.aborts, f.abort_percent, f.abort_latency, f.abort_latency_ci) == (0, 0.0, 0.0, 0.0)
    assert len(job.histogram) == 13
    assert job.histogram[0] == pytest.approx((32.768e-6, 65.536e-6, 226))
    assert job.histogram[3][2] == 7586
    assert job.histogram[-1] == pytest.approx((0.134217728, 0.268435456, 5))
    assert sum(c for _, _, c in job.histogram) == 36170
    assert job.abort_histogram == ()
    assert [s.tps for s in job.intermediate] == [3366.668, 8575.742, 10711.320, 5561.628, 7849.792]
    assert job.intermediate[0].latency == pytest.approx(2.054498e-3)


def test_sample_04_c64() -> None:
    stderr, status = sample("04-example-c64.txt")
    job = parse_output(stderr, returncode=status).jobs["64 connections"]
    f = job.final
    assert (f.transactions, f.tps, f.rows, f.rps, f.queries, f.qps, f.aborts) == (
        25802,
        5158.508,
        129010,
        25792.539,
        25802,
        5158.508,
        0,
    )
    assert f.latency == pytest.approx(5.713064e-3) and f.latency_ci == pytest.approx(227.333e-6)
    assert len(job.histogram) == 14 and job.histogram[-1][2] == 26
    assert job.histogram[7] == pytest.approx((4.194304e-3, 8.388608e-3, 7600))
    assert len(job.intermediate) == 5 and job.intermediate[-1].qps == 5057.261


def test_sample_05_multi_job_setup_teardown() -> None:
    stderr, status = sample("05-multi-job-setup-teardown.txt")
    out = parse_output(stderr, returncode=status)
    assert sorted(out.jobs) == ["limited", "reader: count", "writer"]
    assert out.setup and out.teardown
    assert out.started == ("writer", "limited", "reader: count")
    limited = out.jobs["limited"]
    assert (limited.final.transactions, limited.final.rows, limited.final.tps) == (10, 30, 246.031)
    assert limited.final.latency == pytest.approx(4.010861e-3) and limited.final.latency_ci == 0
    assert [c for _, _, c in limited.histogram] == [1, 3, 3, 1, 0, 1, 1]
    assert len(limited.intermediate) == 1
    reader = out.jobs["reader: count"]
    assert (reader.final.transactions, reader.final.qps, reader.final.rows) == (
        10549,
        3516.484,
        10549,
    )
    assert reader.final.latency == pytest.approx(539.907e-6)
    assert len(reader.histogram) == 10 and len(reader.intermediate) == 3
    writer = out.jobs["writer"]
    assert (writer.final.transactions, writer.final.rows, writer.final.rps) == (298, 1, 0.338)
    assert writer.final.latency_ci == pytest.approx(297.927e-6)
    assert [c for _, _, c in writer.histogram] == [56, 58, 77, 80, 21, 3, 1, 2]
    res = to_result(out, concurrency=3, duration=3, window=(0.0, 3.0), raw_dir=Path("/x"))
    assert res.qps == pytest.approx(246.031 + 3516.484 + 100.669)
    assert res.tps == pytest.approx(246.031 + 3516.484 + 100.669)
    assert res.queries == 10 + 10549 + 298 and res.errors == 0
    mean = (4.010861e-3 * 10 + 539.907e-6 * 10549 + 1.131503e-3 * 298) / (10 + 10549 + 298)
    assert res.latency_ms["mean"] == pytest.approx(mean * 1000)
    assert set(res.details["jobs"]) == {"limited", "reader: count", "writer"}


def test_sample_06_unexpected_error_is_a_failed_measurement() -> None:
    stderr, status = sample("06-unexpected-error.txt")
    assert status == 1
    with pytest.raises(MeasurementError) as info:
        parse_output(stderr, returncode=status)
    msg = str(info.value)
    assert "Unexpected errors while running bad query" in msg
    assert 'relation "no_such_table" does not exist' in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("title", "stderr", "status"), failure_sections(), ids=lambda x: str(x)[:30]
)
def test_sample_12_every_failure_is_refused(title: str, stderr: str, status: int) -> None:
    with pytest.raises(MeasurementError) as info:
        parse_output(stderr, returncode=status)
    msg = str(info.value)
    assert msg.startswith("dbbench")
    if status == 0:  # the missing config file: exit 0, connected, no job
        assert "without a final summary" in msg
    else:
        last = [ln for ln in stderr.splitlines() if re.match(r"\d{4}/", ln)][-1]
        assert last.split(" ", 2)[2] in msg


def test_sample_12_has_all_twelve_cases() -> None:
    titles = [t for t, _, _ in failure_sections()]
    assert len(titles) == 12 and titles[0] == "Server not reachable"


def test_truncated_histogram_is_refused() -> None:
    stderr, _ = sample("01-example-c8-default.txt")
    lines = stderr.splitlines()
    with pytest.raises(MeasurementError, match="truncated"):
        parse_output("\n".join(lines[:-3]) + "\n", returncode=0)
    # cut in the middle of a histogram row
    cut = "\n".join(lines[:-1]) + "\n" + lines[-1][:20]
    with pytest.raises(MeasurementError, match="truncated"):
        parse_output(cut, returncode=0)


def test_truncated_before_transactions_line_is_refused() -> None:
    stderr, _ = sample("01-example-c8-default.txt")
    lines = stderr.splitlines()
    idx = lines.index("Transactions:")
    with pytest.raises(MeasurementError, match="no final summary for job '64 connections'"):
        parse_output("\n".join(lines[:idx]) + "\n", returncode=0)


def test_killed_run_is_refused_even_with_output() -> None:
    stderr, _ = sample("01-example-c8-default.txt")
    with pytest.raises(MeasurementError, match="killed by signal 9"):
        parse_output(stderr, returncode=-9)


def test_error_line_after_summary_is_refused() -> None:
    stderr, _ = sample("05-multi-job-setup-teardown.txt")
    bad = stderr + '2026/11/22 02:13:57 error in teardown query "drop table t2": pq: boom\n'
    with pytest.raises(MeasurementError, match="error in teardown query"):
        parse_output(bad, returncode=1)


def test_nonzero_exit_without_error_line_is_refused() -> None:
    stderr, _ = sample("01-example-c8-default.txt")
    with pytest.raises(MeasurementError, match="exited with 2"):
        parse_output(stderr, returncode=2)


def test_connected_but_nothing_else_is_refused() -> None:
    text = (
        "2026/11/22 02:14:11 Connecting to postgres://p:XXX@h:1/db?sslmode=disable\n"
        "2026/11/22 02:14:11 Connected\n"
    )
    with pytest.raises(MeasurementError, match="without a final summary"):
        parse_output(text, returncode=0)


def test_histogram_percentile_interpolates_in_power_of_two_buckets() -> None:
    rows = [(1e-3, 2e-3, 50), (2e-3, 4e-3, 50)]
    assert histogram_percentile(rows, 0.5) == pytest.approx(2e-3)
    assert histogram_percentile(rows, 0.75) == pytest.approx(3e-3)
    assert histogram_percentile(rows, 0.25) == pytest.approx(1.5e-3)


def test_render_ini_one_job_per_level(tmp_path: Path) -> None:
    q = tmp_path / "query.sql"
    ini = render_ini(duration=20, concurrency=64, query_files=[q])
    assert ini == f"duration=20s\n\n[c64]\nquery-file={q}\nconcurrency=64\n"


SEED = "duration=20s\n\n[64 connections]\nquery=select * from t\nconcurrency=64\n"


def test_user_config_kept_verbatim_with_duration_overridden() -> None:
    out = override_config(SEED, duration=5, concurrency=64)
    assert out == "duration=5s\n\n[64 connections]\nquery=select * from t\nconcurrency=64\n"
    swept = override_config(SEED, duration=5, concurrency=16)
    assert swept == "duration=5s\n\n[16 connections]\nquery=select * from t\nconcurrency=16\n"
    multi = (
        "; a comment\n[setup]\nquery=create table x(a int)\n"
        "[a]\nquery=select 1\nconcurrency=2\n[b]\nquery=select 2\nrate=5\n"
    )
    # its own level (the 2 connections of its closed-loop job): run as written
    kept = override_config(multi, duration=3, concurrency=2)
    assert kept == "duration=3s\n" + multi
    assert config_jobs(multi) == {"a": 2, "b": None}


def _job_keys(ini: str) -> dict[str, list[str]]:
    """Section -> its keys, in order (the parts of dbbench's ini rules these tests check)."""
    out: dict[str, list[str]] = {"": []}
    section = ""
    for line in ini.splitlines():
        if line.startswith("["):
            section = line[1 : line.index("]")]
            out[section] = []
        elif "=" in line and line[:1] not in (";", "#"):
            out[section].append(line.partition("=")[0].strip())
    return out


def test_open_loop_ini_has_a_rate_instead_of_a_concurrency() -> None:
    q = Path("/w/query.sql")
    ini = render_ini(duration=2, concurrency=4, query_files=[q], rate=1234.5)
    assert ini == "duration=2s\n\n[c4]\nquery-file=/w/query.sql\nrate=1234.5\n"
    config = (
        "[setup]\nquery=create table x(a int)\n"
        "[64 connections]\nquery=select * from t\nconcurrency=64\n"
        "[teardown]\nquery=drop table x\n"
    )
    opened = override_config(config, duration=5, concurrency=64, rate=300)
    keys = _job_keys(opened)
    # dbbench allows one of rate / queue-depth (concurrency); setup and teardown take only queries
    assert keys == {
        "": ["duration"],
        "setup": ["query"],
        "64 connections": ["rate", "query"],
        "teardown": ["query"],
    }
    assert "rate=300\n" in opened and "concurrency" not in opened
    two_jobs = config + "[other]\nquery=select 2\nconcurrency=2\n"
    with pytest.raises(MeasurementError, match="needs a config with one job, this one has 2"):
        override_config(two_jobs, duration=5, rate=300)


def test_command_line_flags_before_the_ini_and_password_redacted(tmp_path: Path) -> None:
    ini = tmp_path / "run.ini"
    argv = build_argv(
        "/opt/dbbench",
        url="postgresql://materialize:pa55@localhost:6875/materialize",
        ini=ini,
        extra=["--intermediate-stats-interval=2s"],
    )
    assert argv == [
        "/opt/dbbench",
        "--driver=postgres",
        "--host=localhost",
        "--port=6875",
        "--username=materialize",
        "--database=materialize",
        "--password=pa55",
        "--intermediate-stats-interval=2s",
        str(ini),
    ]
    shown = redact_argv(argv)
    assert "--password=***" in shown and not any("pa55" in a for a in shown)
    with_params = build_argv("dbbench", url="postgresql://u@h:1/d?application_name=x", ini=ini)
    assert "--params=application_name=x&sslmode=disable" in with_params


def test_missing_binary_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolNotFound, match="memsql/dbbench"):
        find_dbbench(None)
    with pytest.raises(ToolNotFound, match="not executable"):
        find_dbbench("~/dbbench/dbbench")


# --- the driver's process handling, with a stand-in binary --------------------------------------
# dbbench cannot be installed here; this stand-in replays a verbatim sample's stderr and exit
# status, and records the argv it was given, so what is tested is our side: the ini we write,
# the command line, reading stderr, and turning the outcome into a result or an error.

REPLAY = """#!{python}
import json, sys
from pathlib import Path
Path({argv_file!r}).write_text(json.dumps(sys.argv[1:]))
sys.stderr.write(Path({stderr_file!r}).read_text())
sys.exit({status})
"""


def stand_in(tmp_path: Path, sample_name: str) -> tuple[Path, Path]:
    stderr, status = sample(sample_name)
    return replay(tmp_path, stderr, status)


def replay(tmp_path: Path, stderr: str, status: int = 0) -> tuple[Path, Path]:
    """A stand-in dbbench replaying ``stderr`` and ``status``; returns it and its argv file."""
    import sys

    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "replay.stderr").write_text(stderr)
    binary = tmp_path / "dbbench"
    argv_file = tmp_path / "argv.json"
    binary.write_text(
        REPLAY.format(
            python=sys.executable,
            argv_file=str(argv_file),
            stderr_file=str(tmp_path / "replay.stderr"),
            status=status,
        )
    )
    binary.chmod(0o755)
    return binary, argv_file


def test_run_dbbench_writes_ini_runs_and_parses(tmp_path: Path) -> None:
    import json

    from sessionctl.bench.dbbench import run_dbbench

    binary, argv_file = stand_in(tmp_path, "04-example-c64.txt")
    raw = tmp_path / "run"
    seen: list[float] = []
    res = run_dbbench(
        url="postgresql://materialize:hush@localhost:6875/materialize",
        concurrency=64,
        duration=5,
        raw_dir=raw,
        config=SEED,
        binary=str(binary),
        progress=lambda elapsed, qps, done: seen.append(qps),
    )
    assert res.qps == 5158.508 and res.tps == 5158.508 and res.queries == 25802 and res.errors == 0
    assert res.latency_ms["mean"] == pytest.approx(5.713064)
    # rank 12901 of 25802 lies 5057/5688 into the 2.097152ms-4.194304ms bucket
    assert res.latency_ms["p50"] == pytest.approx(2.097152 + 2.097152 * (12901 - 7844) / 5688)
    assert (raw / "run.ini").read_text() == SEED.replace("duration=20s", "duration=5s")
    argv = json.loads(argv_file.read_text())
    assert argv[0] == "--driver=postgres" and argv[-1] == str(raw / "run.ini")
    assert "--password=hush" in argv  # dbbench needs it; it is masked wherever we store it
    stored = (raw / "command.txt").read_text()
    assert "--password=***" in stored and "hush" not in stored
    assert "hush" not in (raw / "result.json").read_text()
    assert seen == [4223.044, 4728.326, 5062.807, 6615.492, 5057.261, 5158.508]  # live QPS lines


def test_run_dbbench_refuses_a_failed_run(tmp_path: Path) -> None:
    from sessionctl.bench.dbbench import run_dbbench

    binary, _ = stand_in(tmp_path, "06-unexpected-error.txt")
    with pytest.raises(MeasurementError, match="no_such_table"):
        run_dbbench(
            url="postgresql://u@h:1/d",
            concurrency=2,
            duration=3,
            raw_dir=tmp_path / "run",
            query="select * from no_such_table",
            binary=str(binary),
        )
    assert "Unexpected errors" in (tmp_path / "run" / "dbbench.stderr").read_text()
