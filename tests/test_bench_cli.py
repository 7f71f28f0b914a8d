"""``sessionctl bench`` through the real CLI app (in-process): JSON output, one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sessionctl.cli import app
from sessionctl.cli.bench import resolve
from sessionctl.errors import CampaignNotFound
from sessionctl.session.record import OpenSession, measurements, write_current
from sessionctl.target.embedded_postgres import free_port
from sessionctl.workspace import Workspace

runner = CliRunner()


def campaign_yaml(sql_url: str, *, bench_name: str = "lookup", extra_bench: str = "") -> str:
    return f"""\
schema: 1
revision: 1
title: CLI bench
target:
  sql_url: {sql_url}
benchmarks:
  - name: {bench_name}
    driver: builtin
    query: select 1
    concurrency: [1]
    duration: 1s
{extra_bench}
"""


def test_bench_json_records_into_the_session(ws: Workspace, pg_url: str) -> None:
    (ws.prompts_dir / "cli.yaml").write_text(campaign_yaml(pg_url))
    write_current(ws, OpenSession("cli", 12, None, False, "2026-11-22T10:00:00Z"))
    result = runner.invoke(
        app,
        [
            "bench",
            "lookup",
            "--concurrency",
            "1,2",
            "--duration",
            "300ms",
            "--phase",
            "baseline",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["session"] == 12
    assert [row["concurrency"] for row in data["table"]] == [1, 2]
    assert {v["name"] for v in data["measurement"]["values"]} >= {"qps@c1", "qps@c2", "p99_ms@c2"}
    [m] = measurements(ws, "cli", 12)
    assert m.phase == "baseline"


def test_bench_human_output_shows_the_table(ws: Workspace, pg_url: str) -> None:
    (ws.prompts_dir / "cli.yaml").write_text(campaign_yaml(pg_url))
    result = runner.invoke(app, ["bench", "--duration", "0.3s", "--no-record"])
    assert result.exit_code == 0, result.output
    assert "QPS" in result.stdout and "p99 ms" in result.stdout
    assert "raw data:" in result.stdout and "recorded" not in result.stdout


def test_dead_server_is_one_line_with_redacted_url(ws: Workspace) -> None:
    url = f"postgresql://app:verysecret@127.0.0.1:{free_port()}/app"
    text = campaign_yaml(url).replace("target:\n", "target:\n  ready: {timeout: 0.5s}\n")
    (ws.prompts_dir / "cli.yaml").write_text(text)
    result = runner.invoke(app, ["bench", "--duration", "0.3s"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == lines[-1]  # one error line, after any progress
    assert errors[0].startswith("error: target not reachable at postgresql://app:***@127.0.0.1:")
    assert "verysecret" not in result.output
    assert "target.start" in errors[0]  # the fix


def test_missing_pgbench_binary_names_what_to_configure(ws: Workspace, pg_url: str) -> None:
    extra = """\
  - name: pg
    driver: pgbench
    binary: /nonexistent/pgbench
    query: select 1
"""
    (ws.prompts_dir / "cli.yaml").write_text(campaign_yaml(pg_url, extra_bench=extra))
    result = runner.invoke(app, ["bench", "pg"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: pgbench: configured binary '/nonexistent/pgbench' is not executable; "
        "fix the benchmark's `binary:`"
    )


def test_missing_dbbench_names_what_to_install(
    ws: Workspace, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = """\
  - name: db
    driver: dbbench
    query: select 1
"""
    (ws.prompts_dir / "cli.yaml").write_text(campaign_yaml(pg_url, extra_bench=extra))
    monkeypatch.setenv("PATH", "/nonexistent")
    result = runner.invoke(app, ["bench", "db"])
    assert result.exit_code == 1
    assert "dbbench: not found on PATH; build it from github.com/memsql/dbbench" in result.output


def test_bad_concurrency_is_a_usage_error(ws: Workspace, pg_url: str) -> None:
    (ws.prompts_dir / "cli.yaml").write_text(campaign_yaml(pg_url))
    result = runner.invoke(app, ["bench", "--concurrency", "1,x"])
    assert result.exit_code == 2 and "--concurrency '1,x'" in result.output


@pytest.mark.parametrize(
    "argv",
    [["bench", "-d", "1" + "0" * 39 + "s"], ["bench", "--duration", "169h"],
     ["compare", "--duration", "1" + "0" * 39 + "s"], ["run", "--timeout", "1" + "0" * 39]],
    ids=["bench-40-digits", "bench-169h", "compare", "run-timeout"],
)  # fmt: skip
def test_a_duration_over_a_week_is_a_usage_error(
    ws: Workspace, pg_url: str, argv: list[str]
) -> None:
    (ws.prompts_dir / "cli.yaml").write_text(campaign_yaml(pg_url))
    before = sorted(p for p in ws.root.rglob("*") if ".git" not in p.parts)
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    flag = "--duration" if argv[1] == "-d" else argv[1]
    assert line.startswith(f"error: {flag}: duration ") and "is over 7 days (168h)" in line
    assert sorted(p for p in ws.root.rglob("*") if ".git" not in p.parts) == before


def test_positional_name_resolves_benchmark_or_campaign(ws: Workspace) -> None:
    (ws.prompts_dir / "alpha.yaml").write_text(
        campaign_yaml("postgresql://h/db", bench_name="lookup")
    )
    (ws.prompts_dir / "beta.yaml").write_text(campaign_yaml("postgresql://h/db", bench_name="scan"))
    assert resolve(ws, "alpha", None) == ("alpha", None)  # several campaigns: a campaign name
    assert resolve(ws, "scan", "beta") == ("beta", "scan")
    with pytest.raises(CampaignNotFound):
        resolve(ws, "scan", None)  # a benchmark, but which campaign?
    (ws.prompts_dir / "beta.yaml").unlink()
    assert resolve(ws, "lookup", None) == ("alpha", "lookup")  # the only campaign's benchmark
    assert resolve(ws, "alpha", None) == ("alpha", None)


def test_help_mentions_every_option() -> None:
    result = runner.invoke(app, ["bench", "--help"])
    assert result.exit_code == 0
    for opt in (
        "--campaign",
        "--phase",
        "--concurrency",
        "--duration",
        "--repeat",
        "--no-record",
        "--json",
    ):
        assert opt in result.output


def test_metric_headers_are_short_and_the_legend_names_the_series() -> None:
    from sessionctl.bench.results import metric_headers, split_value_name

    names = [
        "mz_frontend_peek_seconds{method=try_frontend_peek_cached}.mean_us",
        "mz_frontend_peek_seconds{method=try_frontend_peek_cached}.p99_us",
        "mz_frontend_peek_seconds{method=other}.per_query_us",
        "app_query_seconds.calls_per_query",
        'ddl_step_seconds{le="0.5"}.count',
    ]
    headers, legend = metric_headers(names)
    assert headers[names[0]] == "mz_frontend_peek #1\nmean µs"
    assert headers[names[1]] == "mz_frontend_peek #1\np99 µs"
    assert headers[names[2]] == "mz_frontend_peek #2\nµs/query"
    assert headers[names[3]] == "app_query\ncalls/query"
    assert headers[names[4]] == "ddl_step\ncount"
    assert legend == [
        ("mz_frontend_peek #1", "mz_frontend_peek_seconds{method=try_frontend_peek_cached}"),
        ("mz_frontend_peek #2", "mz_frontend_peek_seconds{method=other}"),
        ("app_query", "app_query_seconds"),
        ("ddl_step", 'ddl_step_seconds{le="0.5"}'),
    ]
    assert split_value_name('x{le="0.5"}') == ('x{le="0.5"}', "")
    assert all(len(line) <= 22 for h in headers.values() for line in h.splitlines())
    long = "a_very_long_metric_family_name_for_a_subsystem_seconds.mean_ms"
    assert metric_headers([long])[0][long] == "a_very_lon…a_subsystem\nmean ms"


def test_bench_table_shows_short_metric_headers_and_a_legend(ws: Workspace, pg_url: str) -> None:
    from prometheus_client import CollectorRegistry, Histogram, start_http_server

    registry = CollectorRegistry()
    hist = Histogram(
        "app_frontend_query_seconds", "latency", ["method"], registry=registry, buckets=(0.001, 1)
    )
    hist.labels(method="try_frontend_peek_cached").observe(0.0005)
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    metrics = """\
metrics:
  - name: app_frontend_query_seconds
    kind: histogram
    labels:
      method: try_frontend_peek_cached
    stats: [count, mean]
"""
    text = campaign_yaml(pg_url).replace(
        "target:\n", f"target:\n  metrics_url: http://127.0.0.1:{port}/metrics\n"
    )
    (ws.prompts_dir / "cli.yaml").write_text(text + metrics)
    try:
        human = runner.invoke(app, ["bench", "--duration", "0.3s", "--no-record"])
        data = runner.invoke(app, ["bench", "--duration", "0.3s", "--no-record", "--json"])
    finally:
        server.shutdown()
    assert human.exit_code == 0, human.output
    full = "app_frontend_query_seconds{method=try_frontend_peek_cached}"
    assert f"  app_frontend_query = {full}" in human.stdout  # the legend
    header = [ln for ln in human.stdout.splitlines() if "count" in ln]
    assert header and "┃ count" in header[0]  # the statistic under its short family
    assert f"{full}.count" not in human.stdout  # no full value names as column headers
    row = json.loads(data.stdout)["table"][0]
    assert f"{full}.count" in row  # --json keeps the full names


def test_short_flags_mean_the_same_everywhere() -> None:
    """-c is --concurrency and -C is --campaign in every command of these areas."""
    import click
    import typer.main

    root = typer.main.get_command(app)
    assert isinstance(root, click.Group)
    checked = 0
    for area in ("bench", "profile", "next", "prompt", "template", "metrics"):
        cmd = root.commands[area]
        subs = list(cmd.commands.values()) if isinstance(cmd, click.Group) else [cmd]
        for sub in subs:
            for p in sub.params:
                opts = set(getattr(p, "opts", ())) | set(getattr(p, "secondary_opts", ()))
                if "--campaign" in opts:
                    assert "-C" in opts and "-c" not in opts, f"{area} {sub.name}: {opts}"
                    checked += 1
                if "-c" in opts:
                    assert "--concurrency" in opts, f"{area} {sub.name}: -c is {opts}"
    assert checked >= 8
