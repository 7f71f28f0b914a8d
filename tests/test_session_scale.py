"""A long session stays readable and quick: ``status`` shows summaries and the last entries,
``close`` caps long path lists, lists the working copy once and parses the campaign once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import git
from test_cli_startup import probe, top_level
from typer.testing import CliRunner

from sessionctl import console
from sessionctl.cli import app
from sessionctl.session import digest
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
PHASES = ("baseline", "profile", "change", "remeasure")


def invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def demo(ws: Workspace) -> Workspace:
    (ws.root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    (ws.root / "app.py").write_text("x = 1\n")
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    assert invoke("start")[0] == 0
    return ws


def add_entries(ws: Workspace, n: int) -> None:
    """Append ``n`` entries the way ``record`` writes them: two in three are measurements."""
    path = ws.root / ".sessionctl" / "sessions" / "demo" / "1" / "entries.jsonl"
    lines = []
    for i in range(n):
        phase = PHASES[i * len(PHASES) // n]
        if i % 3 == 0:
            entry = {"type": "finding", "phase": phase, "text": f"finding {i}", "by": "agent"}
        else:
            values = [
                {"name": "qps", "value": 1000.0 + i, "unit": "", "better": "higher"},
                {"name": "p99", "value": 3.25, "unit": "ms", "better": "lower"},
            ]
            entry = {
                "type": "measurement",
                "phase": phase,
                "measurement": {"source": "manual", "name": f"run{i}", "values": values},
            }
        lines.append(json.dumps({"at": "2026-01-01T00:00:00Z", **entry}) + "\n")
    with path.open("a", encoding="utf-8") as f:
        f.writelines(lines)


def test_status_shows_phase_summaries_and_only_the_last_entries(demo: Workspace) -> None:
    add_entries(demo, 300)
    code, out, err = invoke("status")
    assert code == 0, err
    assert "Measurements (the last 10 of 200)" in out and "Findings (the last 10 of 100)\n" in out
    shown = out.split("Measurements")[1].split("Findings")[0]
    assert "run299" in shown and "run286" in shown and "run284" not in shown
    assert "  - finding 297 (remeasure)" in out and "finding 267 " not in out
    # per-phase summaries: 75 entries each, 50 measurements with 100 numbers, 25 findings
    baseline = next(line for line in out.splitlines() if line.startswith("│ baseline "))
    assert [c.strip() for c in baseline.split("│")[1:-1]] == [
        "baseline",
        "yes",
        "75",
        "50",
        "100",
        "25",
    ]
    assert "status --all" in out

    code, out, _ = invoke("status", "--all")
    assert code == 0 and "Measurements\n" in out and out.count("│ p99 = 3.25 ms ") == 200
    assert out.count("  - finding ") == 100 and "status --all" not in out
    code, out, _ = invoke("status", "--last", "3")
    assert "Measurements (the last 3 of 200)" in out and out.count("  - finding ") == 3

    st = json.loads(invoke("status", "--json")[1])  # --json keeps everything
    assert len(st["measurements"]) == 200 and len(st["findings"]) == 100


def test_a_ddl_measurement_lists_its_values_grouped_by_level(
    demo: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recorded level by level within each kind; shown level by level, in first-seen order.
    metrics = [
        f"{kind}.{stat}@{level}={v}ms"
        for kind, stat, v in (("create_table", "median_ms", 4.5), ("create_index", "p90_ms", 7.25))
        for level in ("1k", "10k")
    ]
    args = [a for m in metrics for a in ("--metric", m)]
    args += ["--metric", "growth.s_per_1k=0.61s"]
    assert invoke("record", "--phase", "baseline", *args)[0] == 0
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setattr(console, "_consoles", {})  # a console sized for 100 columns
    code, out, err = invoke("status")
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= 100
    rows = [
        [c.strip() for c in line.split("│")[1:-1]]
        for line in out.split("Measurements")[1].splitlines()
        if line.startswith("│")
    ]
    assert rows == [
        ["baseline", "record", "create_table.median_ms@1k = 4.5 ms"],
        ["", "", "create_index.p90_ms@1k = 7.25 ms"],
        ["", "", "create_table.median_ms@10k = 4.5 ms"],
        ["", "", "create_index.p90_ms@10k = 7.25 ms"],
        ["", "", "growth.s_per_1k = 0.61 s"],
    ]


def test_digest_groups_values_by_level_in_first_seen_order() -> None:
    values = [{"name": n, "value": 1.0} for n in ("x@2", "y", "x@1", "y@2", "z@1")]
    assert [v["name"] for v in digest.by_level(values)] == ["x@2", "y@2", "y", "x@1", "z@1"]
    assert digest.split_level("qps") == ("qps", "") and digest.split_level("@x") == ("@x", "")
    assert digest.last([1, 2, 3], 2) == ([2, 3], 1) and digest.last([1], None) == ([1], 0)
    assert digest.capped(["a", "b", "c"], 2) == (["a", "b"], 1)


def untracked(ws: Workspace, n: int) -> None:
    build = ws.root / "target" / "debug"
    build.mkdir(parents=True)
    for i in range(n):
        (build / f"obj{i:03}.o").write_text("x")


def test_close_dry_run_caps_untracked_files_and_lists_the_working_copy_once(
    demo: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    untracked(demo, 60)
    (demo.root / "app.py").write_text("x = 2\n")
    trace = tmp_path / "git-trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    code, out, err = invoke("close", "--dry-run", "--force", "testing")
    assert code == 0, err
    statuses = [line for line in trace.read_text().splitlines() if "built-in: git status" in line]
    assert len(statuses) == 1, statuses
    assert "Left out (60 untracked; add with --include PATH):" in out
    assert "target/debug/obj009.o" in out and "target/debug/obj010.o" not in out
    assert "… and 50 more (--json lists them all)" in out
    code, out, _ = invoke("close", "--dry-run", "--force", "testing", "--json")
    assert len(json.loads(out)["plan"]["left_out"]) == 60

    code, out, _ = invoke("status")
    assert "  left out (60 untracked; add with close --include PATH):\n" in out
    assert "  - target/debug/obj000.o, target/debug/obj001.o," in out
    assert "… and 55 more (--all or --json lists them)" in out.replace("\n    ", " ")
    assert "obj059" in invoke("status", "--all")[1]


def test_close_parses_the_campaign_once(demo: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionctl.campaign import store

    parsed: list[str] = []
    real = store.parse

    def counting(text: str, *, source: str):  # type: ignore[no-untyped-def]
        parsed.append(source)
        return real(text, source=source)

    monkeypatch.setattr(store, "parse", counting)
    code, _, err = invoke("close", "--dry-run", "--force", "testing")
    assert code == 0, err
    # Once to read it, once to validate the text close would write.
    assert parsed == ["prompts/demo.yaml", "prompts/demo.yaml (as it would be written)"]


def test_prompt_render_does_not_load_the_http_client(demo: Workspace) -> None:
    code, _out, modules = probe("prompt", "render", "demo", cwd=demo.root)
    assert code == 0
    assert "urllib.request" not in modules and "ssl" not in top_level(modules)
    assert os.path.exists(demo.root / "prompts" / "demo.md")


def test_entries_are_read_in_one_go_and_a_torn_line_is_skipped(demo: Workspace) -> None:
    from sessionctl.session import record

    add_entries(demo, 30)
    assert len(record.entries(demo, "demo", 1)) == 30
    path = demo.root / ".sessionctl" / "sessions" / "demo" / "1" / "entries.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    assert json.loads(lines[9])["text"] == "finding 9"
    lines[9] = lines[9][:25] + "\n"  # a write torn by a crash, then more entries after it
    path.write_text("".join(lines))
    got = record.entries(demo, "demo", 1)
    assert len(got) == 29
    assert [e.get("text") for e in got if e.get("type") == "finding"][:4] == [
        "finding 0",
        "finding 3",
        "finding 6",
        "finding 12",
    ]
