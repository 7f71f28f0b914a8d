"""``sessionctl metrics ...`` in-process, against a real prometheus_client exporter and files."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, start_http_server
from typer.testing import CliRunner

from sessionctl.cli import app
from sessionctl.metrics import histogram_quantile

DATA = Path(__file__).parent / "data" / "metrics"
BUCKETS = (0.000128, 0.000256, 0.000512, 0.001)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def served() -> Iterator[tuple[str, Histogram]]:
    reg = CollectorRegistry()
    hist = Histogram(
        "mz_frontend_peek_seconds", "Peek time.", ["method"], buckets=BUCKETS, registry=reg
    )
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=reg)
    yield f"http://127.0.0.1:{server.server_port}/metrics", hist
    threading.Thread(target=server.shutdown, daemon=True).start()
    server.server_close()


def test_snapshot_then_diff_then_quantile(
    runner: CliRunner, served: tuple[str, Histogram], tmp_path: Path
) -> None:
    url, hist = served
    hist.labels("try_frontend_peek_cached").observe(0.0002)
    r = runner.invoke(
        app, ["metrics", "snapshot", url, "--out", str(tmp_path / "before.prom"), "--json"]
    )
    assert r.exit_code == 0, r.output
    snap = json.loads(r.stdout)
    assert snap["out"].endswith("before.prom") and snap["samples"] > 0
    assert any(
        f["name"] == "mz_frontend_peek_seconds" and f["type"] == "histogram"
        for f in snap["families"]
    )
    assert (
        (tmp_path / "before.prom")
        .read_text()
        .startswith(f"# sessionctl-snapshot source={url} taken_at=")
    )

    observed = [0.0001, 0.0002, 0.0003, 0.0004, 0.0009, 0.002]
    for v in observed:
        hist.labels("try_frontend_peek_cached").observe(v)
    hist.labels("other").observe(0.0005)
    r = runner.invoke(app, ["metrics", "snapshot", url, "-o", str(tmp_path / "after.prom")])
    assert r.exit_code == 0 and "saved to" in r.stdout

    before, after = str(tmp_path / "before.prom"), str(tmp_path / "after.prom")
    r = runner.invoke(
        app,
        [
            "metrics",
            "diff",
            before,
            after,
            "--metric",
            "mz_frontend_peek_seconds",
            "--label",
            "method=try_frontend_peek_cached",
            "--queries",
            "3",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    (group,) = out["groups"]
    assert [c for _le, c in group["buckets"]] == [1, 2, 4, 5, 6]
    assert group["count"] == 6 and group["sum"] == pytest.approx(sum(observed))
    values = {v["name"]: v["value"] for v in out["values"]}
    base = "mz_frontend_peek_seconds{method=try_frontend_peek_cached}"
    assert values[f"{base}.count"] == 6
    assert values[f"{base}.mean_us"] == pytest.approx(sum(observed) / 6 * 1e6)
    assert values[f"{base}.per_query_us"] == pytest.approx(sum(observed) / 3 * 1e6)
    assert all(dict(s["labels"]).get("method") == "try_frontend_peek_cached" for s in out["series"])

    r = runner.invoke(
        app,
        [
            "metrics",
            "quantile",
            "0.9",
            after,
            "-m",
            "mz_frontend_peek_seconds",
            "--since",
            before,
            "-l",
            "method=try_frontend_peek_cached",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)["results"]
    expected = histogram_quantile(
        0.9, [(0.000128, 1), (0.000256, 2), (0.000512, 4), (0.001, 5), (float("inf"), 6)]
    )
    assert res["value"] == pytest.approx(expected) and res["count"] == 6

    r = runner.invoke(
        app, ["metrics", "diff", before, after, "-m", "mz_frontend_peek_seconds", "--by", "method"]
    )
    assert r.exit_code == 0, r.output
    # A rich table per family (titled with it), not the markdown of the log entry.
    assert "| metric |" not in r.stdout and "┃ series" in r.stdout
    assert "mz_frontend_peek_seconds\n" in r.stdout and "┃ method" in r.stdout
    assert "│ other" in r.stdout
    assert "new" in r.stdout


def test_quantile_over_absolute_counts_and_sum(runner: CliRunner) -> None:
    r = runner.invoke(
        app,
        [
            "metrics",
            "quantile",
            "0.5",
            str(DATA / "mz_after.prom"),
            "-m",
            "mz_frontend_peek_seconds",
            "--sum",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)["results"]
    assert res["count"] == 35 + 760 + 4 and res["labels"] == {}


def test_show_filters_by_label(runner: CliRunner) -> None:
    r = runner.invoke(
        app,
        [
            "metrics",
            "show",
            str(DATA / "mz_after.prom"),
            "-m",
            "mz_ts_oracle_seconds",
            "-l",
            "op=read_ts",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    (fam,) = json.loads(r.stdout)["families"]
    assert fam["samples"] == [
        {
            "name": "mz_ts_oracle_seconds",
            "labels": {"op": "read_ts"},
            "value": 2.0,
            "timestamp_ms": None,
        }
    ]


def test_dead_url_is_one_clear_line(runner: CliRunner) -> None:
    r = runner.invoke(app, ["metrics", "snapshot", "http://127.0.0.1:1/metrics"])
    assert r.exit_code == 1
    assert (
        r.stderr.strip()
        == "error: http://127.0.0.1:1/metrics: connection refused; is the server running?"
    )


def test_garbage_file_names_the_line(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.prom"
    bad.write_text('# TYPE x counter\nx 1\nx{a="1" 2 3\n')
    r = runner.invoke(app, ["metrics", "diff", str(bad), str(DATA / "mz_after.prom")])
    assert r.exit_code == 1
    assert r.stderr.startswith(f"error: {bad}:3: ") and r.stderr.count("\n") == 1


def test_missing_file_and_unknown_metric_and_bad_label(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(app, ["metrics", "snapshot", str(tmp_path / "nope.prom")])
    assert r.exit_code == 1 and "no such file; pass a metrics URL" in r.stderr
    r = runner.invoke(
        app,
        [
            "metrics",
            "quantile",
            "0.5",
            str(DATA / "mz_after.prom"),
            "-m",
            "mz_frontend_peek_second",
        ],
    )
    assert r.exit_code == 2 and "did you mean mz_frontend_peek_seconds" in r.stderr
    r = runner.invoke(
        app,
        [
            "metrics",
            "diff",
            str(DATA / "mz_before.prom"),
            str(DATA / "mz_after.prom"),
            "-l",
            "method",
        ],
    )
    assert r.exit_code == 2 and "expected NAME=VALUE" in r.stderr


def test_every_metrics_command_and_option_has_help(runner: CliRunner) -> None:
    import click
    import typer.main

    group = typer.main.get_command(app)
    metrics = group.commands["metrics"]  # type: ignore[attr-defined]
    assert metrics.help
    for name, cmd in metrics.commands.items():
        assert cmd.help, name
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.name}"
            else:
                assert getattr(param, "help", None), f"{name} {param.name}"
        assert "--json" in [o for p in cmd.params for o in getattr(p, "opts", [])], name
