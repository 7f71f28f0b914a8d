"""The session commands through the real typer app (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, git
from typer.testing import CliRunner

from sessionctl.cli import app
from sessionctl.workspace import Workspace

CAMPAIGN = """\
schema: 1
revision: 1
title: Demo
last_session: 0
next_steps:
  - id: first
    title: The first step
"""

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def demo(ws: Workspace) -> Workspace:
    (ws.root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    (ws.root / "app.py").write_text("x = 1\n")
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    return ws


def test_full_flow_through_the_cli(demo: Workspace, frozen_now: str, tmp_path: Path) -> None:
    code, out, err = invoke("start", "--json")
    assert code == 0, err
    started = json.loads(out)
    assert started["number"] == 1 and started["step_id"] == "first"
    assert any(c.startswith("sessionctl close demo --resolve first") for c in started["commands"])

    code, out, err = invoke("start")
    assert code == 1 and "session 1 is already open" in err and len(err.strip().splitlines()) == 1

    attachment = tmp_path / "diff.txt"
    attachment.write_text("metrics diff\n")
    assert (
        invoke("record", "--phase", "baseline", "--metric", "qps=1000", "--metric", "p99=3.2ms")[0]
        == 0
    )
    code, out, _ = invoke(
        "record",
        "--phase",
        "profile",
        "--finding",
        "a",
        "--finding",
        "b",
        "--file",
        str(attachment),
    )
    assert code == 0 and "2 finding(s), 1 file(s)" in out
    (demo.root / "app.py").write_text("x = 2\n")
    assert (
        invoke("record", "--phase", "remeasure", "--metric", "qps=1100", "--metric", "p99=3.0ms")[0]
        == 0
    )

    code, out, err = invoke("record", "--phase", "remeasure", "--metric", "qps=lots")
    assert code == 2 and "expected name=value[unit]" in err and len(err.strip().splitlines()) == 1

    code, out, _ = invoke("status", "--json")
    st = json.loads(out)
    assert (
        code == 0
        and st["can_close"]
        and [p["done"] for p in st["phases"]] == [True, True, True, True]
    )
    assert st["files"] == ["files/diff.txt"]

    code, out, _ = invoke("status")
    assert code == 0 and "session 1" in out and "close will make:" in out

    code, out, _ = invoke("close", "--resolve", "first", "--dry-run")
    assert code == 0 and "Would make these changes for session 1:" in out and "--- log entry" in out
    assert git(demo.root, "rev-list", "--count", "HEAD").strip() == "2"

    code, out, err = invoke(
        "close", "--resolve", "first", "--add-step", "second: The second step", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert len(result["commits"]) == 2 and result["plan"]["code"]["paths"] == [
        "app.py",
        "logs/demo-perf-log.md",
    ]
    assert "log_text" not in result["plan"]  # full texts only in --dry-run output
    assert git(demo.root, "rev-list", "--count", "HEAD").strip() == "4"

    code, out, _ = invoke("status", "--json")
    assert json.loads(out)["open"] is False and json.loads(out)["next_step"] == "second"


def test_abort_and_bad_add_step(demo: Workspace) -> None:
    assert invoke("start")[0] == 0
    code, _, err = invoke("close", "--add-step", "no-title-here")
    assert code == 2 and "expected 'id: title'" in err
    code, _, err = invoke("abort")
    assert code == 2 and "--reason" in err
    code, out, err = invoke("abort", "--reason", "wrong idea", "--json")
    assert code == 0, err
    assert json.loads(out)["plan"]["kind"] == "abort"
    assert "## Session 1 (aborted)" in (demo.root / "logs" / "demo-perf-log.md").read_text()


def test_every_session_command_and_option_has_help() -> None:
    import typer.main

    root = typer.main.get_command(app)
    commands = root.commands  # type: ignore[attr-defined]
    for name in ("start", "status", "record", "close", "abort"):
        sub = commands[name]
        assert sub.help, name
        options = [p for p in sub.params if p.param_type_name == "option"]
        assert options
        for p in options:
            assert p.help, f"{name} {p.opts}"


def test_close_and_abort_under_sessionctl_run_record_requests(
    demo: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SESSIONCTL_RUN set (by the loop), close/abort are checked and recorded, not done."""
    from sessionctl.session import record

    assert invoke("start")[0] == 0
    monkeypatch.setenv("SESSIONCTL_RUN", "4242")
    head = git(demo.root, "rev-parse", "HEAD")
    # Checked exactly as close checks: requirements, --force, --resolve, --add-step.
    code, _, err = invoke("close", "--summary", "x")
    assert code == 1 and "cannot close yet: it needs a baseline measurement" in err
    code, _, err = invoke("close", "--force", " ")
    assert code == 2 and "--force needs a reason" in err
    code, _, err = invoke("close", "--force", "no bench", "--resolve", "nope")
    assert code == 2 and "no step 'nope' (have: first)" in err
    code, _, err = invoke("close", "--force", "no bench", "--add-step", "first: again")
    assert code == 2 and "duplicate id 'first'" in err
    assert invoke("record", "--phase", "baseline", "--metric", "qps=100")[0] == 0
    assert invoke("record", "--phase", "remeasure", "--metric", "qps=120")[0] == 0
    (demo.root / "app.py").write_text("x = 2\n")
    # --dry-run still shows the plan and records nothing.
    code, out, _ = invoke("close", "--dry-run")
    assert code == 0 and "Would make these changes for session 1:" in out

    code, out, err = invoke("close", "--summary", "faster", "--resolve", "first")
    assert code == 0, err
    assert out.strip() == (
        "close requested: sessionctl run closes session 1 after the agent exits and the audit "
        "passes"
    )
    code, out, _ = invoke(
        "close", "--summary", "faster still", "--add-step", "second: Next one", "--json"
    )
    data = json.loads(out)
    assert code == 0 and data["deferred"] is True and data["session"] == 1
    assert data["request"]["add_steps"] == [{"id": "second", "title": "Next one"}]
    code, out, _ = invoke("abort", "--reason", "changed my mind", "--json")
    assert code == 0 and json.loads(out)["kind"] == "abort"
    # Nothing was closed: no log, no commit, the session is still open.
    assert not (demo.root / "logs" / "demo-perf-log.md").exists()
    assert git(demo.root, "rev-parse", "HEAD") == head
    requests = [e for e in record.entries(demo, "demo", 1) if e["type"].endswith("_request")]
    assert [(e["type"], e.get("summary"), e.get("reason")) for e in requests] == [
        ("close_request", "faster", None),
        ("close_request", "faster still", None),
        ("abort_request", None, "changed my mind"),
    ]
    assert requests[0]["resolve"] == "first" and requests[0]["by"] == "user"
    from sessionctl.session.request import latest

    assert latest("demo", 1, record.entries(demo, "demo", 1)).kind == "abort"  # the last wins
    code, out, _ = invoke("status")
    assert code == 0 and "abort request recorded at" in out
    code, out, _ = invoke("status", "--json")
    assert json.loads(out)["close_request"]["reason"] == "changed my mind"

    # Outside `sessionctl run` (SESSIONCTL_RUN unset) close closes, as always.
    monkeypatch.delenv("SESSIONCTL_RUN")
    code, out, err = invoke("close", "--summary", "by hand", "--json")
    assert code == 0 and len(json.loads(out)["commits"]) == 2, err


def test_commands_that_need_an_open_session_exit_2_without_one(
    demo: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    for args in (
        ("record", "--finding", "x"),
        ("close",),
        ("close", "--dry-run"),
        ("abort", "--reason", "nothing open"),
    ):
        code, _, err = invoke(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1, (args, err)
        assert "no open session; start one with `sessionctl start demo`" in err
    code, out, _ = invoke("status")
    assert code == 0 and "demo: no open session" in out
    # An agent's deferred close/abort (under `sessionctl run`) says the same.
    monkeypatch.setenv("SESSIONCTL_RUN", "1")
    assert invoke("close")[0] == 2 and invoke("abort", "--reason", "r")[0] == 2


def test_status_formats_values_with_units(demo: Workspace) -> None:
    assert invoke("start")[0] == 0
    args = ("record", "--phase", "baseline", "--metric", "qps@c4=147.23queries/s")
    assert invoke(*args, "--metric", "p50_ms@c4=26.1489ms")[0] == 0
    code, out, err = invoke("status")
    assert code == 0, err
    assert "qps@c4 = 147.2 queries/s" in out and "p50_ms@c4 = 26.1 ms" in out


def test_status_of_a_ddl_session_fits_100_columns_one_metric_per_line(demo: Workspace) -> None:
    import os
    import subprocess
    import sys

    assert invoke("start")[0] == 0
    levels = ("n1.0k", "n10k", "n100k")
    names = [
        f"{k}.{s}_ms@{n}" for n in levels for k in ("table", "view") for s in ("median", "p90")
    ]
    metrics = [a for i, name in enumerate(names) for a in ("--metric", f"{name}={i + 1.5}ms")]
    assert invoke("record", "--phase", "baseline", *metrics)[0] == 0
    finding = "catalog writes dominate the probe's time " * 6
    assert invoke("record", "--phase", "profile", "--finding", finding.strip())[0] == 0
    env = {**os.environ, "COLUMNS": "100", "TERM": "dumb", "PYTHONPATH": str(REPO)}
    res = subprocess.run(
        [sys.executable, "-m", "sessionctl", "status"],
        cwd=demo.root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100, res.stdout
    for i, name in enumerate(names):
        (line,) = [ln for ln in lines if f"{name} = " in ln]
        assert line.count(" = ") == 1 and f"{i + 1.5:g} ms" in line, line
    at = lines.index("Findings")
    assert lines[at + 1].startswith("  - catalog writes") and lines[at + 2].startswith("    ")
