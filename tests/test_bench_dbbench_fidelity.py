"""dbbench driver, faithful to the real binary (issue 18): each of the ten findings checked on the
verbatim samples (13 c64, 14 an open loop that falls short, 15 a run SIGINT-ed half way) or on
generated configs and outputs in dbbench's exact format. dbbench is not installable here: the
stand-in binary replays a sample's stderr and exit status and records the argv it was given."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from sessionctl.bench.dbbench import (
    build_argv,
    config_jobs,
    override_config,
    parse_output,
    redact_argv,
    run_dbbench,
    to_result,
)
from sessionctl.errors import MeasurementError, UsageError
from sessionctl.workspace import Workspace
from tests.test_bench_dbbench import DATA, replay, sample, stand_in


def sample_config(name: str) -> str:
    """The ``run.ini`` block of a sample file, verbatim."""
    text = (DATA / name).read_text()
    return text.split("```ini\n", 1)[1].split("```", 1)[0]


def go_dsn(argv: list[str]) -> str:
    """The DSN dbbench builds from our flags (Go: ``postgres://%s:%s@%s:%d/%s?%s``, unescaped)."""
    flags = dict(a[2:].split("=", 1) for a in argv[1:-1] if a.startswith("--"))
    return "postgres://{}:{}@{}:{}/{}?{}".format(
        flags.get("username", "root"),
        flags.get("password", ""),
        flags.get("host", "localhost"),
        flags.get("port", "5432"),
        flags.get("database", ""),
        flags.get("params", "sslmode=disable"),
    )


def stats_line(job: str, *, tx: int, queries: int, aborts: int, span: float) -> str:
    """A stats line as dbbench prints it (process.go jobStats.String), for generated outputs."""
    rate = lambda n: f"{n / span:.3f}"  # noqa: E731
    pct = f"{100 * aborts / queries:.3f}" if queries else "NaN"
    lat = "1.5ms±20µs" if tx else "0s±0s"
    alat = "900µs±10µs" if aborts else "0s±0s"
    return (
        f"2026/12/06 10:00:05 {job}: {tx} transactions ({rate(tx)} TPS), latency {lat}; "
        f"{tx} rows ({rate(tx)} RPS), {queries} queries ({rate(queries)} QPS); "
        f"{aborts} aborts ({pct}%), latency {alat}"
    )


def final_block(job: str, *, tx: int, queries: int, aborts: int, span: float) -> str:
    """A final summary: the stats line, its histogram, and the aborts histogram if any."""
    out = [stats_line(job, tx=tx, queries=queries, aborts=aborts, span=span), "Transactions:"]
    if tx:
        out.append(f"  1.048576ms -   2.097152ms [{tx:6d}]: " + "█" * 50)
    if aborts:
        out += ["Aborts:", f"   524.288µs -   1.048576ms [{aborts:6d}]: " + "█" * 50]
    return "\n".join(out)


HEAD = (
    "2026/12/06 10:00:00 Connecting to postgres://postgres:XXX@127.0.0.1:55432/postgres"
    "?sslmode=disable\n2026/12/06 10:00:00 Connected\n"
)


# --- 1. open-loop runs that fall short of their rate ----------------------------------------------


def test_1_open_loop_shortfall_is_recorded_and_named(tmp_path: Path) -> None:
    from sessionctl.bench.runner import open_loop_shortfall

    binary, _ = stand_in(tmp_path, "14-open-loop-rate2000-falls-short.txt")
    res = run_dbbench(
        url="postgresql://postgres@127.0.0.1:55432/postgres",
        concurrency=1,
        duration=5,
        raw_dir=tmp_path / "run",
        config=sample_config("14-open-loop-rate2000-falls-short.txt"),
        binary=str(binary),
        rate=2000,
    )
    assert res.details["rate"] == 2000 and res.details["achieved_rate"] == 1021.450
    note = open_loop_shortfall(res)
    assert note is not None and "1,021 of the requested 2,000 queries/s (51%)" in note
    assert "rate=2000\n" in (tmp_path / "run" / "run.ini").read_text()


def test_1_open_loop_that_reaches_its_rate_is_not_flagged() -> None:
    from sessionctl.bench.runner import open_loop_shortfall

    # sample 05's writer: rate=50 batches of 2 = 100 invocations/s; it did 100.669
    stderr, status = sample("05-multi-job-setup-teardown.txt")
    out = parse_output(stderr, returncode=status)
    only = type(out)(jobs={"writer": out.jobs["writer"]})
    res = to_result(only, concurrency=1, duration=3, window=(0, 3), raw_dir=Path("/x"), rate=100)
    assert res.details["achieved_rate"] == pytest.approx(100.669)
    assert open_loop_shortfall(res) is None


def test_1_compare_refuses_latency_from_short_open_loop_runs() -> None:
    from sessionctl.bench.results import RunResult
    from sessionctl.campaign.model import CompareSpec
    from sessionctl.verdict.protocol import RunSpec, _judge, _record

    def run(qps: float, p50: float, achieved: float | None) -> RunResult:
        details = {"rate": 2000.0, "achieved_rate": achieved} if achieved else {}
        lat = {"p50": p50, "p99": p50 * 3}
        return RunResult("dbbench", 4, 5, qps, qps, 100, 0, lat, details=details)

    def runs(achieved_a: float, achieved_b: float) -> list[dict[str, object]]:
        out = []
        for pair in range(1, 7):
            for side, achieved, p50 in (("A", achieved_a, 1.0), ("B", achieved_b, 2.0 + pair)):
                closed = RunSpec(4, 5, None, "closed")
                opened = RunSpec(4, 5, 2000.0, "open")
                out.append(_record(0, pair, side, closed, run(5000, p50, None), None, True))
                out.append(_record(0, pair, side, opened, run(2000, p50, achieved), None, True))
        return out

    plan = ["AB", "BA", "BA", "AB", "AB", "BA"]
    warnings: list[str] = []
    judged = _judge(runs(1990, 1995), plan, CompareSpec(), 0, 2000.0, warnings)
    assert {j.metric for j in judged} == {"qps@c4", "p50_ms@c4", "p99_ms@c4"}
    warnings = []
    judged = _judge(runs(1021, 1616), plan, CompareSpec(), 0, 2000.0, warnings)
    assert {j.metric for j in judged} == {"qps@c4"}
    (note,) = [w for w in warnings if w.startswith("latency not judged")]
    assert "A 1,021–1,021/s; B 1,616–1,616/s" in note and "--rate at or below 918" in note


# --- 2. -c N applied to every job, or refused naming the job --------------------------------------


def test_2_level_applies_to_a_job_without_a_concurrency_line() -> None:
    config = "duration=5s\n\n[reads]\nquery=select 1\n"
    out = override_config(config, duration=5, concurrency=16)
    assert config_jobs(out) == {"reads": 16}


def test_2_level_applies_to_every_job() -> None:
    config = "[a]\nquery=select 1\nconcurrency=4\n[b]\nquery=select 2\nqueue-depth=4\n"
    out = override_config(config, duration=5, concurrency=16)
    assert config_jobs(out) == {"a": 16, "b": 16}
    assert "queue-depth=16" in out  # the key the user wrote is kept


@pytest.mark.parametrize("load", ["rate=100", "query-log-file=q.log"])
def test_2_level_is_refused_for_a_job_that_cannot_take_one(load: str) -> None:
    config = f"[fixed]\nquery=select 1\nconcurrency=4\n[open one]\nquery=select 2\n{load}\n"
    with pytest.raises(UsageError, match=r"job \[open one\] uses `(rate|query-log-file)=`"):
        override_config(config, duration=5, concurrency=16)


def test_2_level_renames_a_job_that_states_one() -> None:
    config = sample_config("13-c64-select1.txt")
    assert "[16 connections]" in override_config(config, duration=5, concurrency=16)
    assert "[c16]" in override_config("[c64]\nquery=select 1\n", duration=5, concurrency=16)
    plain = override_config("[reads]\nquery=select 1\n", duration=5, concurrency=16)
    assert "[reads]" in plain


def test_2_default_level_is_the_configs_own() -> None:
    from sessionctl.bench.runner import bench_levels, check_levels
    from sessionctl.campaign.model import Benchmark

    own = Benchmark(name="b", driver="dbbench", config=sample_config("13-c64-select1.txt"))
    assert bench_levels(own) == (64,)
    open_loop = sample_config("14-open-loop-rate2000-falls-short.txt")
    mixed = Benchmark(
        name="m", driver="dbbench", config=open_loop + "[c]\nquery=select 2\nconcurrency=3\n"
    )
    assert bench_levels(mixed) == (3,)  # the closed-loop job's connections; rate job as written
    check_levels(mixed, (3,), 5)
    with pytest.raises(UsageError, match=r"benchmark 'm': .*job \[open\] uses `rate=`"):
        check_levels(mixed, (8,), 5)


# --- 3. a run dbbench ended early is failed -------------------------------------------------------


def test_3_run_ended_early_by_sigint_is_failed(tmp_path: Path) -> None:
    binary, _ = stand_in(tmp_path, "15-sigint-mid-run-exit0.txt")
    with pytest.raises(MeasurementError, match=r"ended early: job '64 connections' ran 2\.63s"):
        run_dbbench(
            url="postgresql://postgres@127.0.0.1:55432/postgres",
            concurrency=4,
            duration=6,
            raw_dir=tmp_path / "run",
            config=sample_config("15-sigint-mid-run-exit0.txt"),
            binary=str(binary),
        )


def test_3_output_of_jobs_the_ini_does_not_have_is_refused(tmp_path: Path) -> None:
    binary, _ = stand_in(tmp_path, "15-sigint-mid-run-exit0.txt")
    with pytest.raises(MeasurementError, match="job '64 connections' that the ini it ran does"):
        run_dbbench(  # at 16 the job is [16 connections]: this output is not from our ini
            url="postgresql://postgres@127.0.0.1:55432/postgres",
            concurrency=16,
            duration=6,
            raw_dir=tmp_path / "run",
            config=sample_config("15-sigint-mid-run-exit0.txt"),
            binary=str(binary),
        )


def test_3_full_runs_pass_including_self_limited_jobs(tmp_path: Path) -> None:
    binary, _ = stand_in(tmp_path, "13-c64-select1.txt")
    res = run_dbbench(
        url="postgresql://postgres@127.0.0.1:55432/postgres",
        concurrency=64,
        duration=5,
        raw_dir=tmp_path / "run13",
        config=sample_config("13-c64-select1.txt"),
        binary=str(binary),
    )
    assert res.queries == 118888 and res.details["span_s"] == pytest.approx(5.0, abs=0.01)
    # sample 05: `limited` (count=10) lasts 0.04 s, the others the whole 3 s
    text = (DATA / "05-multi-job-setup-teardown.txt").read_text()
    multi = text.split("```ini\n", 1)[1].split("```", 1)[0]
    binary5, _ = stand_in(tmp_path / "s5", "05-multi-job-setup-teardown.txt")
    res5 = run_dbbench(
        url="postgresql://postgres@127.0.0.1:49645/postgres",
        concurrency=3,
        duration=3,
        raw_dir=tmp_path / "run5",
        config=multi,
        binary=str(binary5),
    )
    assert set(res5.details["jobs"]) == {"limited", "reader: count", "writer"}


# --- 4. success-only QPS; a run where every query failed is failed --------------------------------


def test_4_every_query_failed_is_a_failed_run(tmp_path: Path) -> None:
    stderr = HEAD + "2026/12/06 10:00:00 starting c4\n"
    stderr += final_block("c4", tx=0, queries=94327, aborts=94327, span=3.0017)
    binary, _ = replay(tmp_path, stderr)
    with pytest.raises(MeasurementError, match=r"every query failed \(94327 of 94327"):
        run_dbbench(
            url="postgresql://postgres@127.0.0.1:55432/postgres",
            concurrency=4,
            duration=3,
            raw_dir=tmp_path / "run",
            query="select 1",
            binary=str(binary),
        )


def test_4_qps_counts_successful_queries_only(tmp_path: Path) -> None:
    stderr = HEAD + "2026/12/06 10:00:00 starting c4\n"
    stderr += final_block("c4", tx=7500, queries=10000, aborts=2500, span=5.0)
    binary, _ = replay(tmp_path, stderr)
    res = run_dbbench(
        url="postgresql://postgres@127.0.0.1:55432/postgres",
        concurrency=4,
        duration=5,
        raw_dir=tmp_path / "run",
        query="select 1",
        binary=str(binary),
    )
    # dbbench says 2000 QPS (failed queries included); 7500 succeeded in 5 s
    assert res.qps == pytest.approx(1500.0) and res.errors == 2500 and res.queries == 7500
    assert res.details["executed"] == 10000


# --- 5. warm-up honoured: an uncounted warm-up job before each measured one -----------------------


def test_5_warmup_is_an_uncounted_job_before_the_measured_one(tmp_path: Path) -> None:
    stderr = HEAD + "2026/12/06 10:00:00 starting c4 (warm-up)\n"
    stderr += final_block("c4 (warm-up)", tx=900, queries=900, aborts=0, span=2.0) + "\n"
    stderr += final_block("c4", tx=5000, queries=5000, aborts=0, span=5.0)
    binary, _ = replay(tmp_path, stderr)
    res = run_dbbench(
        url="postgresql://postgres@127.0.0.1:55432/postgres",
        concurrency=4,
        duration=5,
        raw_dir=tmp_path / "run",
        query="select 1",
        binary=str(binary),
        warmup=2,
    )
    ini = (tmp_path / "run" / "run.ini").read_text()
    q = tmp_path.resolve() / "run" / "query.sql"
    assert ini == (
        f"duration=7s\n\n[c4 (warm-up)]\nstop=2s\nquery-file={q}\nconcurrency=4\n"
        f"[c4]\nstart=2s\nquery-file={q}\nconcurrency=4\n"
    )
    assert res.qps == pytest.approx(1000.0) and res.queries == 5000
    assert list(res.details["jobs"]) == ["c4"] and res.details["warmup_jobs"] == ["c4 (warm-up)"]
    assert res.details["executed"] == 5900  # what the metric scrapes bracketed


def test_5_warmup_in_a_user_config_shifts_start_and_stop() -> None:
    config = "[setup]\nquery=create table t(a int)\n[w]\nquery=select 1\nstart=1s\nstop=4s\n"
    out = override_config(config, duration=5, warmup=2)
    assert out == (
        "duration=7s\n[setup]\nquery=create table t(a int)\n"
        "[w (warm-up)]\nstop=2s\nquery=select 1\nstart=1s\n"
        "[w]\nquery=select 1\nstart=3s\nstop=6s\n"
    )


# --- 6. masking after parsing ---------------------------------------------------------------------


def test_6_a_password_found_in_the_numbers_does_not_break_the_parse(tmp_path: Path) -> None:
    binary, _ = stand_in(tmp_path, "13-c64-select1.txt")
    res = run_dbbench(
        url="postgresql://postgres:0@127.0.0.1:55432/postgres",
        concurrency=64,
        duration=5,
        raw_dir=tmp_path / "run",
        config=sample_config("13-c64-select1.txt"),
        binary=str(binary),
    )
    assert res.queries == 118888 and res.tps == 23777.849
    saved = (tmp_path / "run" / "dbbench.stderr").read_text().splitlines()
    original = sample("13-c64-select1.txt")[0].splitlines()
    # stats lines and histogram rows are kept as printed; message lines are masked
    assert saved[3:] == original[3:] and saved[0] != original[0]


def test_6_error_messages_are_masked_after_parsing(tmp_path: Path) -> None:
    stderr = HEAD + (
        "2026/12/06 10:00:01 Error connecting to the database: pq: password s3cr3t! rejected\n"
    )
    binary, _ = replay(tmp_path, stderr, status=1)
    with pytest.raises(MeasurementError) as info:
        run_dbbench(
            url="postgresql://postgres:s3cr3t!@127.0.0.1:55432/postgres",
            concurrency=1,
            duration=1,
            raw_dir=tmp_path / "run",
            query="select 1",
            binary=str(binary),
        )
    assert "s3cr3t" not in str(info.value) and "password *** rejected" in str(info.value)
    assert "s3cr3t" not in (tmp_path / "run" / "dbbench.stderr").read_text()


# --- 7. any password (and user, database) reaches the server intact -------------------------------


@pytest.mark.parametrize("password", ["p/?#%@:x", "a b&c=d", "100%", "ü:@"])
def test_7_credentials_are_percent_encoded_for_dbbench_url(password: str, tmp_path: Path) -> None:
    from psycopg.conninfo import make_conninfo

    url = make_conninfo(
        host="db.example", port=6875, user="me@corp", dbname="my db", password=password
    )
    argv = build_argv("dbbench", url=url, ini=tmp_path / "run.ini")
    dsn = urlsplit(go_dsn(argv))
    # Go's url.Parse (lib/pq) rejects a raw space, '%' not starting an escape, '/', '?', '#'...
    assert re.fullmatch(r"(?:[A-Za-z0-9._~-]|%[0-9A-F]{2})+", dsn.password or "")
    assert unquote(dsn.password or "") == password
    assert unquote(dsn.username or "") == "me@corp"
    assert (dsn.hostname, dsn.port, unquote(dsn.path)) == ("db.example", 6875, "/my db")
    assert not any(password in a for a in redact_argv(argv))


# --- 8. unix-socket URLs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@/db?host=/tmp/pg%20sock&port=5433",
        "host=/tmp/pg\\ sock port=5433 user=u dbname=db",
    ],
)
def test_8_socket_folder_goes_through_params(url: str, tmp_path: Path) -> None:
    argv = build_argv("dbbench", url=url, ini=tmp_path / "run.ini")
    assert not any(a.startswith("--host=") for a in argv)
    assert "--params=host=/tmp/pg%20sock&sslmode=disable" in argv and "--port=5433" in argv
    # what lib/pq reads from dbbench's URL query: the folder, decoded
    query = dict(p.split("=", 1) for p in urlsplit(go_dsn(argv)).query.split("&"))
    assert unquote(query["host"]) == "/tmp/pg sock"


# --- 9. the query runs as written -----------------------------------------------------------------


def test_9_query_text_is_passed_verbatim_through_a_query_file(tmp_path: Path) -> None:
    stderr, _ = sample("13-c64-select1.txt")
    binary, _ = replay(tmp_path, stderr.replace("64 connections", "c64"))
    query = "select a,  b -- the two columns\nfrom t\nwhere s = 'two  spaces';\n"
    run_dbbench(
        url="postgresql://postgres@127.0.0.1:55432/postgres",
        concurrency=64,
        duration=5,
        raw_dir=tmp_path / "run",
        query=query,
        binary=str(binary),
    )
    ini = (tmp_path / "run" / "run.ini").read_text()
    m = re.search(r"^query-file=(.+)$", ini, re.M)
    assert m and "query=" not in ini
    assert Path(m.group(1)).is_absolute() and Path(m.group(1)).read_text() == query


def test_9_a_semicolon_inside_the_query_is_refused(tmp_path: Path) -> None:
    binary, _ = stand_in(tmp_path, "13-c64-select1.txt")
    with pytest.raises(MeasurementError, match="cannot contain ';'"):
        run_dbbench(
            url="postgresql://postgres@127.0.0.1:55432/postgres",
            concurrency=1,
            duration=5,
            raw_dir=tmp_path / "run",
            query="select ';' from t",
            binary=str(binary),
        )


# --- 10. relative paths against the workspace -----------------------------------------------------


def test_10_relative_paths_resolve_against_the_workspace(tmp_path: Path) -> None:
    binary, argv_file = stand_in(tmp_path, "13-c64-select1.txt")
    ws = tmp_path / "ws"
    ws.mkdir()
    config = "duration=5s\n\n[64 connections]\nquery-file=bench/q.sql\nconcurrency=64\n"
    run_dbbench(
        url="postgresql://postgres@127.0.0.1:55432/postgres",
        concurrency=64,
        duration=5,
        raw_dir=tmp_path / "run",
        config=config,
        binary=str(binary),
        base_dir=ws,
    )
    argv = json.loads(argv_file.read_text())
    assert argv[-2:] == [f"--base-dir={ws}", str(tmp_path.resolve() / "run" / "run.ini")]


# --- minor: raw output byte for byte --------------------------------------------------------------


def test_raw_output_is_kept_byte_for_byte(tmp_path: Path) -> None:
    binary, _ = stand_in(tmp_path, "13-c64-select1.txt")
    run_dbbench(
        url="postgresql://postgres:hush@127.0.0.1:55432/postgres",
        concurrency=64,
        duration=5,
        raw_dir=tmp_path / "run",
        config=sample_config("13-c64-select1.txt"),
        binary=str(binary),
    )
    saved = (tmp_path / "run" / "dbbench.stderr").read_bytes()
    assert saved == (tmp_path / "replay.stderr").read_bytes()
    assert b"postgres:XXX@" in saved and b"hush" not in saved


# --- through `bench`: the warning, the warm-up and the workspace as base dir ----------------------


class Recorder:
    """A reporter that keeps what it was told."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def phase(self, title: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def task(self, description: str, *, total: float | None = None):  # type: ignore[no-untyped-def]
        from sessionctl.reporting import NULL

        return NULL.task(description, total=total)


@pytest.mark.postgres
def test_bench_warns_on_a_short_open_loop_and_runs_a_warmup(
    ws: Workspace, pg_url: str, tmp_path: Path
) -> None:
    from sessionctl.bench.runner import run_bench

    binary, argv_file = stand_in(tmp_path / "bin", "14-open-loop-rate2000-falls-short.txt")
    config = sample_config("14-open-loop-rate2000-falls-short.txt")
    indented = "".join(f"      {ln}\n" for ln in config.splitlines())
    (ws.prompts_dir / "db.yaml").write_text(
        f"schema: 1\nrevision: 1\ntitle: dbbench\ntarget:\n  sql_url: {pg_url}\n"
        f"benchmarks:\n  - name: open\n    driver: dbbench\n    binary: {binary}\n"
        f"    rate: 2000\n    duration: 5s\n    warmup: 1s\n    config: |\n{indented}"
    )
    rec = Recorder()
    outcome = run_bench(ws, "db", record=False, reporter=rec)  # type: ignore[arg-type]
    (warning,) = rec.warnings
    assert warning.startswith("open c1: open loop reached 1,021 of the requested 2,000")
    assert warning in outcome.measurement.summary_md
    argv = json.loads(argv_file.read_text())
    assert f"--base-dir={ws.root}" in argv
    ini = Path(argv[-1]).read_text()
    assert "[open (warm-up)]\nstop=1s\nrate=2000\n" in ini and "[open]\nstart=1s\n" in ini
    assert ini.startswith("duration=6s\n")
    assert outcome.runs[0].qps == pytest.approx(1021.45)


def test_compare_runs_a_config_at_its_own_level_and_refuses_one_it_cannot_apply(
    ws: Workspace, tmp_path: Path
) -> None:
    from sessionctl.verdict.protocol import run_compare

    binary, _ = stand_in(tmp_path / "bin", "13-c64-select1.txt")
    config = "[fixed]\nquery=select 1\nconcurrency=4\n[writer]\nquery=select 2\nrate=100\n"
    indented = "".join(f"      {ln}\n" for ln in config.splitlines())
    (ws.prompts_dir / "db.yaml").write_text(
        "schema: 1\nrevision: 1\ntitle: dbbench\ntarget:\n  sql_url: postgresql://u@h:1/d\n"
        f"benchmarks:\n  - name: mix\n    driver: dbbench\n    binary: {binary}\n"
        f"    duration: 5s\n    config: |\n{indented}"
    )
    with pytest.raises(UsageError, match=r"benchmark 'mix': .*job \[writer\] uses `rate=`"):
        run_compare(ws, "db", concurrency=8, aa=True, record=False)
    assert not list(ws.runs_dir("db").glob("*compare*"))  # refused before any run folder


def test_continued_lines_are_kept_or_replaced_whole() -> None:
    config = "[j]\nquery=select 1 \\\n  from t\nconcurrency=\\\n4\n"
    out = override_config(config, duration=5, concurrency=16, warmup=1)
    assert out == (
        "duration=6s\n[j (warm-up)]\nstop=1s\nquery=select 1 \\\n  from t\nconcurrency=16\n"
        "[j]\nstart=1s\nquery=select 1 \\\n  from t\nconcurrency=16\n"
    )
