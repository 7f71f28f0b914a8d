"""`sessionctl run` end to end: scripted agents (real executables) in a real git repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sessionctl.cli import app
from sessionctl.session import record
from sessionctl.workspace import Workspace

AGENT = Path(__file__).parent / "agents" / "scripted_agent.py"
CAMPAIGN = "shop"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def make_campaign(
    ws: Workspace,
    *,
    plan: str = "",
    mode: str = "record",
    timeout: str = "20s",
    extra: str = "",
    steps: int = 3,
    max_without_improvement: str = "null",
) -> None:
    """A small campaign whose agent is the scripted agent, rendered and committed."""
    argv = [sys.executable, str(AGENT), *(["--plan", plan] if plan else []), mode]
    step_yaml = "".join(
        f"  - id: step-{i}\n    title: Step {i} of the lookup work\n    paths: [app/]\n"
        for i in range(1, steps + 1)
    )
    (ws.root / "app").mkdir(exist_ok=True)
    (ws.root / "app" / "query.py").write_text(
        "SQL = 'SELECT * FROM orders WHERE customer_id = %s'\n"
    )
    ws.campaign_path(CAMPAIGN).write_text(
        "schema: 1\nrevision: 1\ntitle: Shop lookup\nlast_session: 0\n"
        "status: |\n  Nothing tried yet.\n"
        + (f"next_steps:\n{step_yaml}" if steps else "next_steps: []\n")
        + f"agent:\n  preset: command\n  argv: {json.dumps(argv)}\n  timeout: {timeout}\n"
        "  grace: 0.5s\n"
        f"run:\n  max_without_improvement: {max_without_improvement}\n"
        "audit:\n  forbidden:\n"
        "    - pattern: '_result_cache|lru_cache'\n"
        "      message: caches query results instead of making the query cheaper\n" + extra
    )
    from sessionctl.render import write_prompt

    write_prompt(ws, CAMPAIGN)
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-q", "-m", "campaign")


def run_cli(*args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(app, ["run", CAMPAIGN, "--json", *args])
    out = result.stdout
    data = json.loads(out) if out.strip().startswith("{") else {}
    return result.exit_code, data, result.output


def outcomes(data: dict[str, Any]) -> list[tuple[int, str]]:
    return [(s["session"], s["outcome"]) for s in data["sessions"]]


def assert_clean(ws: Workspace) -> None:
    """Nothing left open, nothing left in the working tree, no run state pending."""
    assert record.current(ws, CAMPAIGN) is None
    assert git(ws.root, "status", "--porcelain") == ""
    state = json.loads((ws.scratch / "run" / f"{CAMPAIGN}.json").read_text())
    assert state["current"] is None


def test_three_sessions_closed_by_agent_by_the_loop_and_failed(ws: Workspace) -> None:
    make_campaign(ws, plan="1=close,2=record,3=nolog")
    code, data, output = run_cli("--sessions", "3")
    assert code == 0, output
    assert outcomes(data) == [(1, "closed by agent"), (2, "closed"), (3, "failed")]
    assert data["stop_reason"] == "3 session(s) run"
    assert data["total_cost_usd"] == pytest.approx(0.15)
    third = data["sessions"][2]
    assert "no baseline measurement recorded before the change" in third["problems"]
    assert "no re-measure recorded after the change" in third["problems"]

    log = ws.log_path(CAMPAIGN).read_text()
    assert "## Session 1: Step 1" in log and "## Session 2: Step 1" in log
    assert "## Session 3 (aborted)" in log and "audit failed: no baseline" in log
    assert "Agent (command): 4 turns, $0.05" in log  # the loop's note on session 2
    yaml_text = ws.campaign_path(CAMPAIGN).read_text()
    assert "last_session: 3" in yaml_text
    assert "Session 3 was marked failed by the audit: no baseline" in yaml_text
    assert "Session 3 was marked failed" in ws.rendered_path(CAMPAIGN).read_text()
    subjects = git(ws.root, "log", "--format=%s").splitlines()
    assert subjects[:6] == [
        "prompt(shop): after session 3 (aborted): update status",
        "perf(shop): session 3 aborted: Step 1 of the lookup work",
        "prompt(shop): after session 2: record the session",
        "perf(shop): session 2: Step 1 of the lookup work",
        "prompt(shop): after session 1: record the session",
        "perf(shop): session 1: Step 1 of the lookup work",
    ]
    # Session 3's edit of app/query.py was discarded; sessions 1 and 2 committed theirs.
    assert "LOOKUP_3" not in (ws.root / "app" / "query.py").read_text()
    assert "LOOKUP_2" in git(ws.root, "show", "HEAD~2:app/query.py")
    # Transcripts: one per session, in scratch, never tracked.
    for n in (1, 2, 3):
        transcript = ws.scratch / "transcripts" / CAMPAIGN / f"{n}.jsonl"
        assert transcript.exists()
        agent = [e for e in record.entries(ws, CAMPAIGN, n) if e.get("type") == "agent"]
        assert len(agent) == 1 and agent[0]["turns"] >= 1 and agent[0]["cost_usd"] == 0.05
        assert agent[0]["transcript"] == f".sessionctl/transcripts/{CAMPAIGN}/{n}.jsonl"
    assert not [p for p in git(ws.root, "ls-files").splitlines() if "transcript" in p]
    assert_clean(ws)


def test_misbehaving_agents_are_bounded_and_failed(ws: Workspace) -> None:
    make_campaign(ws, plan="1=hang,2=budget,3=two,4=forbidden", steps=5)
    code, first, output = run_cli("--sessions", "1", "--timeout", "1s")
    assert code == 0, output
    code, data, output = run_cli("--sessions", "3", "--budget", "0.25")
    assert code == 0, output
    assert outcomes(first) + outcomes(data) == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
        (4, "failed"),
    ]
    (hang,) = first["sessions"]
    budget, two, forbidden = data["sessions"]
    assert hang["exit_reason"] == "timeout"
    assert "the agent was stopped: timeout after 1s" in hang["problems"]
    child = int((ws.scratch / "test-agent" / "1.child").read_text())
    assert (
        not Path(f"/proc/{child}").exists()
        or Path(f"/proc/{child}/stat").read_text().split(") ")[1][0] == "Z"
    )
    assert budget["exit_reason"] == "budget" and budget["cost_usd"] > 0.25
    assert any("over the session budget $0.25" in p for p in budget["problems"])
    assert any(
        p.startswith("looks like more than one change: edits in unrelated areas app/, lib/")
        for p in two["problems"]
    )
    assert two["moved"] == ["lib/cache.py"]
    assert (ws.scratch / "failed" / "3" / "lib" / "cache.py").exists()
    assert any(
        p.startswith("app/query.py:3: caches query results instead of making the query cheaper")
        for p in forbidden["problems"]
    )
    log = ws.log_path(CAMPAIGN).read_text()
    assert log.count("(aborted)") == 4 and "looks like more than one change" in log
    assert_clean(ws)


def test_hand_edits_of_the_prompt_and_the_log_fail_the_session(ws: Workspace) -> None:
    make_campaign(ws, plan="1=edit-md,2=edit-log")
    code, data, output = run_cli("--sessions", "2")
    assert code == 0, output
    assert outcomes(data) == [(1, "failed"), (2, "failed")]
    assert any("prompts/shop.md was edited by hand" in p for p in data["sessions"][0]["problems"])
    assert any("perf log was edited by hand" in p for p in data["sessions"][1]["problems"])
    from sessionctl.render import check_prompt

    assert check_prompt(ws, CAMPAIGN) is None  # re-rendered from the YAML
    log = ws.log_path(CAMPAIGN).read_text()
    assert "written by hand" not in log  # the hand edit was set aside, not committed
    assert "written by hand" in (ws.scratch / "backups" / "shop-perf-log.session2.md").read_text()
    assert_clean(ws)


def test_stop_rules(ws: Workspace) -> None:
    make_campaign(ws, mode="nolog", max_without_improvement="2")
    # K sessions in a row without an improved verdict (here: failed ones).
    code, data, _ = run_cli("--sessions", "3")
    assert code == 0 and outcomes(data) == [(1, "failed"), (2, "failed")]
    assert data["stop_reason"] == "2 sessions in a row without an improved verdict"
    # The total budget: $0.05 per session, $0.05 allowed.
    code, data, _ = run_cli("--sessions", "3", "--total-budget", "0.05")
    assert [s["session"] for s in data["sessions"]] == [3]
    assert data["stop_reason"].startswith("total budget spent ($0.05 of $0.05)")
    # The stop file the user touches.
    (ws.scratch / "STOP").write_text("")
    code, data, _ = run_cli("--sessions", "3")
    assert data["sessions"] == [] and data["stop_reason"].startswith(
        "stop file .sessionctl/STOP exists"
    )
    (ws.scratch / "STOP").unlink()


def test_no_next_steps_left_stops_the_loop(ws: Workspace) -> None:
    make_campaign(ws, steps=0)
    code, data, _ = run_cli("--sessions", "2")
    assert code == 0 and data["sessions"] == [] and data["stop_reason"] == "no next steps left"


def test_dry_run_shows_the_command_and_touches_nothing(ws: Workspace) -> None:
    make_campaign(ws)
    code, data, output = run_cli("--dry-run", "--timeout", "90s", "--budget", "1.5")
    assert code == 0, output
    plan = data["plan"]
    assert plan["agent"]["argv"] == [sys.executable, str(AGENT), "record"]
    assert plan["next_session"] == 1 and plan["next_step"] == "step-1"
    assert plan["timeout_s"] == 90 and plan["session_budget_usd"] == 1.5
    assert "SESSIONCTL_SESSION" in plan["env"] and plan["would_stop"] is None
    assert record.current(ws, CAMPAIGN) is None and not (ws.scratch / "run").exists()
    code, data, _ = run_cli("--dry-run", "--agent", "claude", "--max-turns", "40")
    argv = data["plan"]["agent"]["argv"]
    assert argv[:2] == ["claude", "-p"] and argv[argv.index("--max-turns") + 1] == "40"


def test_live_progress_reports_the_agent(ws: Workspace) -> None:
    from sessionctl.agent import loop

    make_campaign(ws, mode="close")
    seen: list[loop.Progress] = []
    result = loop.run(ws, CAMPAIGN, options=loop.RunOptions(sessions=1), on_progress=seen.append)
    assert [o.outcome for o in result.sessions] == ["closed by agent"]
    phases = [p.phase for p in seen]
    assert phases[0] == "starting" and phases[-1] == "done" and "auditing" in phases
    acts = {p.activity for p in seen if p.phase == "agent" and p.activity}
    assert any(a.startswith("Bash: sessionctl record --phase") for a in acts)
    assert seen[-1].outcome is not None and seen[-1].run_cost_usd == pytest.approx(0.05)


def test_claude_preset_launches_claude_with_the_prompt(ws: Workspace, tmp_path: Path) -> None:
    """A stand-in `claude` on PATH replays a recorded stream-json transcript."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fixture = Path(__file__).parent / "data" / "transcripts" / "claude-success.jsonl"
    argv_file = tmp_path / "argv.json"
    fake = bindir / "claude"
    fake.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"json.dump(sys.argv[1:], open({str(argv_file)!r}, 'w'))\n"
        f"sys.stdout.write(open({str(fixture)!r}).read())\n"
    )
    fake.chmod(0o755)
    make_campaign(ws)
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ['PATH']}"
    try:
        code, data, output = run_cli("--agent", "claude", "--budget", "2", "--max-turns", "25")
    finally:
        os.environ["PATH"] = os.environ["PATH"].split(os.pathsep, 1)[1]
    assert code == 0, output
    argv = json.loads(argv_file.read_text())
    prompt = (ws.scratch / "transcripts" / CAMPAIGN / "1.prompt.md").read_text()
    assert argv[0] == "-p" and argv[1] == prompt and prompt.startswith("# Shop lookup")
    assert argv[2:] == [
        "--output-format",
        "stream-json",
        "--verbose",
        "--max-turns",
        "25",
        "--max-budget-usd",
        "2",
    ]
    s = data["sessions"][0]
    # The replay recorded nothing into the session, so the audit fails it; the numbers still count.
    assert s["outcome"] == "failed" and s["turns"] == 11 and s["cost_usd"] == pytest.approx(0.4231)
    assert_clean(ws)


def test_human_output_with_the_live_view(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    make_campaign(ws, mode="nolog")
    monkeypatch.setenv("SESSIONCTL_PROGRESS", "1")  # the live view even without a terminal
    result = CliRunner().invoke(app, ["run", CAMPAIGN, "--timeout", "10s"])
    assert result.exit_code == 0, result.output
    assert "sessionctl run: shop" in result.output and "failed" in result.output
    assert "stopped: 1 session(s) run; spent $0.05" in result.output
    assert_clean(ws)


def test_a_missing_agent_is_reported_before_any_session_opens(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_campaign(ws)
    monkeypatch.setenv("PATH", "/nonexistent")
    code, _, output = run_cli("--agent", "codex")
    assert code == 1 and "codex: not found; install Codex" in output
    assert record.current(ws, CAMPAIGN) is None
    from sessionctl.agent.loop import pending

    assert pending(ws, CAMPAIGN) is None
