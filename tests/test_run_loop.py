"""`sessionctl run` end to end: scripted agents (real executables) in a real git repository.

The scripted agent imports only the standard library, so it is started with ``python -S``
(no site-packages scan); its own ``sessionctl`` calls are ordinary ``python -m sessionctl``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
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
    argv = [sys.executable, "-S", str(AGENT), *(["--plan", plan] if plan else []), mode]
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
    from sessionctl.campaign.store import write_prompt

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


def log_entries(ws: Workspace) -> dict[int, str]:
    """The perf log's entries by session number."""
    text = ws.log_path(CAMPAIGN).read_text()
    parts = text.split("\n## Session ")[1:]
    return {int(p.split(":", 1)[0].split(" ", 1)[0]): p for p in parts}


def transcript(ws: Workspace, n: int) -> str:
    return (ws.scratch / "transcripts" / CAMPAIGN / f"{n}.jsonl").read_text()


def assert_clean(ws: Workspace) -> None:
    """Nothing left open, nothing left in the working tree, no run state pending."""
    assert record.current(ws, CAMPAIGN) is None
    assert git(ws.root, "status", "--porcelain") == ""
    state = json.loads((ws.scratch / "run" / f"{CAMPAIGN}.json").read_text())
    assert state["current"] is None


def watch_progress(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Collect what the CLI's live view would show (the view itself needs a terminal)."""
    seen: list[Any] = []

    @contextlib.contextmanager
    def live(*, enabled: bool) -> Iterator[Any]:
        yield seen.append

    monkeypatch.setattr("sessionctl.cli.run._live_view", live)
    return seen


def test_three_sessions_closed_on_request_by_default_and_failed(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_campaign(ws, plan="1=close:step-1,2=record,3=nolog")
    seen = watch_progress(monkeypatch)
    # No tick ever fires while an agent runs (each is done long before an hour): the live view
    # must still see every tool call, so what it shows never depends on the agent's speed.
    from sessionctl.agent import launch as launch_mod

    real_launch = launch_mod.launch
    monkeypatch.setattr(
        launch_mod, "launch", lambda *a, **kw: real_launch(*a, **{**kw, "tick": 3600.0})
    )
    code, data, output = run_cli("--sessions", "3")
    assert code == 0, output
    assert outcomes(data) == [(1, "closed"), (2, "closed"), (3, "failed")]
    assert [s["requested"] for s in data["sessions"]] == ["close", None, None]
    assert data["stop_reason"] == "3 session(s) run"
    assert data["total_cost_usd"] == pytest.approx(0.15)
    third = data["sessions"][2]
    assert "no baseline measurement recorded before the change" in third["problems"]
    assert "no re-measure recorded after the change" in third["problems"]

    # Session 1's own `sessionctl close` only asked; the loop closed it after the agent exited,
    # with the agent's arguments, so its entry shows the agent's run and the audit.
    assert (
        "close requested: sessionctl run closes session 1 after the agent exits and the audit "
        "passes" in transcript(ws, 1)
    )
    kinds = [e["type"] for e in record.entries(ws, CAMPAIGN, 1)]
    assert kinds.count("close_request") == 1 and kinds.index("close_request") < kinds.index("agent")
    entries = log_entries(ws)
    assert sorted(entries) == [1, 2, 3]
    one, two, three = entries[1], entries[2], entries[3]
    assert one.startswith("1: Step 1 of the lookup work")
    assert "- command (scripted-agent): 5 turns, $0.05, " in one and "; exited with code 0" in one
    assert "- Transcript: `.sessionctl/transcripts/shop/1.jsonl`" in one
    assert "- Audit: passed" in one
    assert "### Conclusion\n\nsession 1: indexed lookup" in one  # the requested --summary
    assert "- Resolved `step-1`." in one  # the requested --resolve
    # Session 2 made no request: the loop closed it with the agent's final message.
    assert two.startswith("2: Step 2 of the lookup work")
    assert "- command (scripted-agent): 4 turns, $0.05, " in two and "- Audit: passed" in two
    assert "### Conclusion\n\ndone" in two
    # Session 3 failed: the audit's problems are in its entry and in the prompt's status.
    assert three.startswith("3 (aborted): Step 2") and "audit failed: no baseline" in three
    assert (
        "- Audit: failed\n  - no baseline measurement recorded before the change\n"
        "  - no re-measure recorded after the change" in three
    )
    yaml_text = ws.campaign_path(CAMPAIGN).read_text()
    assert "last_session: 3" in yaml_text and "id: step-1" in yaml_text.split("completed:")[1]
    assert "Session 3 was marked failed by the audit: no baseline" in yaml_text
    assert "Session 3 was marked failed by the audit: no baseline" in (
        ws.rendered_path(CAMPAIGN).read_text()
    )
    subjects = git(ws.root, "log", "--format=%s").splitlines()
    assert subjects[:6] == [
        "prompt(shop): after session 3 (aborted): update status",
        "perf(shop): session 3 aborted: Step 2 of the lookup work",
        "prompt(shop): after session 2: record the session",
        "perf(shop): session 2: Step 2 of the lookup work",
        "prompt(shop): after session 1: resolve step-1",
        "perf(shop): session 1: Step 1 of the lookup work",
    ]
    # Session 3's edit of app/query.py was discarded; sessions 1 and 2 committed theirs.
    assert "LOOKUP_3" not in (ws.root / "app" / "query.py").read_text()
    assert "LOOKUP_2" in git(ws.root, "show", "HEAD~2:app/query.py")
    # Transcripts: one per session, in scratch, never tracked.
    for n in (1, 2, 3):
        agent = [e for e in record.entries(ws, CAMPAIGN, n) if e.get("type") == "agent"]
        assert len(agent) == 1 and agent[0]["turns"] >= 1 and agent[0]["cost_usd"] == 0.05
        assert agent[0]["transcript"] == f".sessionctl/transcripts/{CAMPAIGN}/{n}.jsonl"
        assert agent[0]["audit"]["passed"] is (n != 3)
    assert not [p for p in git(ws.root, "ls-files").splitlines() if "transcript" in p]
    # The live view saw every phase, the agent's tool calls and the cost.
    phases = [p.phase for p in seen]
    assert phases[0] == "starting" and phases[-1] == "done" and phases.count("done") == 3
    assert {"agent", "auditing", "closing", "failing"} <= set(phases)
    acts = {p.activity for p in seen if p.phase == "agent" and p.activity}
    assert any(a.startswith("Bash: sessionctl record --phase") for a in acts)
    assert seen[-1].outcome is not None and seen[-1].run_cost_usd == pytest.approx(0.15)
    assert_clean(ws)


class ClockThatJumpsOnce:
    """``time`` for the launcher, whose clock jumps two hours ahead once ``marker`` exists.

    The hanging agent writes its child's pid before it hangs: with a 1 h timeout and this clock,
    the timeout fires right after that, however slowly a loaded machine starts the agent.
    """

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def monotonic(self) -> float:
        return time.monotonic() + (7200.0 if self.marker.exists() else 0.0)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_misbehaving_agents_are_bounded_and_failed(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Measurements are not the point here: the audit must fail each for its misbehaviour alone.
    make_campaign(
        ws, plan="1=hang,2=budget,3=nolog+two+forbidden", extra="  require_measurements: false\n"
    )
    with monkeypatch.context() as m:
        clock = ClockThatJumpsOnce(ws.scratch / "test-agent" / "1.child")
        m.setattr("sessionctl.agent.launch.time", clock)
        code, first, output = run_cli("--sessions", "1", "--timeout", "1h")
    assert code == 0, output
    code, data, output = run_cli("--sessions", "2", "--budget", "0.25")
    assert code == 0, output
    assert outcomes(first) + outcomes(data) == [(1, "failed"), (2, "failed"), (3, "failed")]
    (hang,) = first["sessions"]
    budget, two = data["sessions"]
    assert hang["exit_reason"] == "timeout"
    assert hang["problems"] == ["the agent was stopped: timeout after 1h"]
    child = int((ws.scratch / "test-agent" / "1.child").read_text())
    assert (
        not Path(f"/proc/{child}").exists()
        or Path(f"/proc/{child}/stat").read_text().split(") ")[1][0] == "Z"
    )
    assert budget["exit_reason"] == "budget" and budget["cost_usd"] > 0.25
    (over,) = budget["problems"]
    assert (
        over.startswith("the agent was stopped: cost $") and "over the session budget $0.25" in over
    )
    assert two["problems"] == [
        "looks like more than one change: edits in unrelated areas app/, lib/",
        "app/query.py:3: caches query results instead of making the query cheaper "
        "(matches `_result_cache|lru_cache`)",
    ]
    assert two["moved"] == ["lib/cache.py"]
    assert (ws.scratch / "failed" / "3" / "lib" / "cache.py").exists()
    entries = log_entries(ws)
    assert all(entries[n].startswith(f"{n} (aborted)") for n in (1, 2, 3))
    assert "- Audit: failed\n  - the agent was stopped: timeout after 1h\n" in entries[1]
    assert "- command (scripted-agent): 1 turn, cost n/a, " in entries[1]
    assert "; stopped: timeout after 1h" in entries[1]
    assert "  - looks like more than one change: edits in unrelated areas" in entries[3]
    assert "  - app/query.py:3: caches query results" in entries[3]
    # The log says where the new file went and where the discarded edit is kept.
    assert "### Left in the working copy" not in entries[3]
    assert "### Set aside\n\nNew files, moved to `.sessionctl/failed/3/`" in entries[3]
    assert "- `lib/cache.py`" in entries[3]
    assert "saved first as `.sessionctl/sessions/shop/3/discarded.patch`" in entries[3]
    assert "+" in (ws.root / ".sessionctl/sessions/shop/3/discarded.patch").read_text()
    status = "Session 3 was marked failed by the audit: looks like more than one change"
    assert status in ws.campaign_path(CAMPAIGN).read_text()
    assert status in ws.rendered_path(CAMPAIGN).read_text()
    assert_clean(ws)


def test_hand_edits_of_the_prompt_and_the_log_fail_the_session(ws: Workspace) -> None:
    make_campaign(ws, mode="nolog+edit-md+edit-log", extra="  require_measurements: false\n")
    code, data, output = run_cli("--sessions", "1")
    assert code == 0, output
    assert outcomes(data) == [(1, "failed")]
    assert data["sessions"][0]["problems"] == [
        "the perf log was edited by hand; only `sessionctl close` writes it",
        "prompts/shop.md was edited by hand; change prompts/shop.yaml "
        "(or use `sessionctl next`) instead",
    ]
    from sessionctl.campaign.store import check_prompt

    assert check_prompt(ws, CAMPAIGN) is None  # re-rendered from the YAML
    log = ws.log_path(CAMPAIGN).read_text()
    assert "written by hand" not in log  # the hand edit was set aside, not committed
    assert "  - prompts/shop.md was edited by hand" in log
    assert "written by hand" in (ws.scratch / "backups" / "shop-perf-log.session1.md").read_text()
    assert "skip the baseline" in (ws.scratch / "backups" / "shop.md.session1").read_text()
    assert_clean(ws)


def test_an_abort_request_is_carried_out_after_the_audit(ws: Workspace) -> None:
    make_campaign(ws, mode="abort")
    code, data, output = run_cli("--sessions", "3", "--total-budget", "0.05")
    assert code == 0, output
    assert outcomes(data) == [(1, "aborted")]
    (one,) = data["sessions"]
    assert one["requested"] == "abort" and one["problems"] == []
    assert data["stop_reason"].startswith("total budget spent ($0.05 of $0.05)")
    assert "abort requested: sessionctl run aborts session 1 after the agent exits" in (
        transcript(ws, 1)
    )
    entry = log_entries(ws)[1]
    assert entry.startswith("1 (aborted): Step 1")
    assert "**Aborted:** the index already exists upstream" in entry
    assert "### Discarded\n\n- `app/query.py`" in entry and "- Audit: passed" in entry
    assert "LOOKUP_1" not in (ws.root / "app" / "query.py").read_text()
    yaml_text = ws.campaign_path(CAMPAIGN).read_text()
    assert "last_session: 1" in yaml_text and "completed:" not in yaml_text  # step-1 stays
    assert_clean(ws)


def test_stop_rules(ws: Workspace) -> None:
    from sessionctl.agent.loop import Loop, RunOptions
    from sessionctl.agent.settle import SessionOutcome
    from sessionctl.reporting import NULL

    make_campaign(ws, max_without_improvement="2")
    loop = Loop(ws, CAMPAIGN, RunOptions(), NULL, None)
    camp = loop.campaign_now()

    def ran(verdict: str | None) -> SessionOutcome:
        return SessionOutcome(
            session=len(loop.outcomes) + 1, step=None, outcome="x", verdict=verdict
        )

    # K sessions in a row without an improved verdict; an improved one resets the count.
    for verdict, stop in [
        ("improved", None),
        (None, None),
        ("unchanged", "2 sessions in a row without an improved verdict"),
        ("improved", None),
    ]:
        loop.outcomes.append(ran(verdict))
        assert loop.stop_reason(camp) == stop
    # The total budget: spent stops the loop; what is left caps the next session's budget.
    spent = Loop(ws, CAMPAIGN, RunOptions(total_budget_usd=0.05, budget_usd=1.0), NULL, None)
    spent.total_cost = 0.02
    assert spent.stop_reason(camp) is None and spent.session_budget(camp) == pytest.approx(0.03)
    spent.total_cost = 0.05
    assert spent.stop_reason(camp) == "total budget spent ($0.05 of $0.05)"
    # The stop file the user touches, end to end.
    ws.ensure_scratch()
    (ws.scratch / "STOP").write_text("")
    code, data, _ = run_cli("--sessions", "3")
    assert code == 0 and data["sessions"] == []
    assert data["stop_reason"].startswith("stop file .sessionctl/STOP exists")
    assert record.current(ws, CAMPAIGN) is None


def test_infrastructure_failures_blame_no_step_and_stop_the_run(ws: Workspace) -> None:
    make_campaign(ws, plan="1=api401,2=api401,3=api401", max_without_improvement="1")
    code, data, output = run_cli("--sessions", "3")
    assert code == 1, output  # a wrapper script looping over `sessionctl run` stops
    assert data["infrastructure_failure"] is True
    # Not stopped by `max_without_improvement: 1`: no step was tried, so none failed to improve.
    assert outcomes(data) == [(1, "infrastructure"), (2, "infrastructure")]
    assert data["stop_reason"] == (
        "2 sessions in a row whose agent never reached a working model "
        "(run.max_infra_failures is 2); last: Invalid API key · Fix external API key (HTTP 401) "
        "(after 2 retries)"
    )
    s = data["sessions"][0]
    assert s["ending"] == {
        "kind": "api_error",
        "message": "Invalid API key · Fix external API key (HTTP 401) (after 2 retries)",
        "infrastructure": True,
        "refused": [],
    }
    assert s["problems"] == [
        "infrastructure failure, not the step's fault: "
        "API error: Invalid API key · Fix external API key (HTTP 401) (after 2 retries)"
    ]
    entry = log_entries(ws)[1]
    assert entry.startswith("1 (aborted)") and "Invalid API key" in entry
    assert "Audit: failed" not in entry and "no baseline" not in entry
    text = ws.campaign_path(CAMPAIGN).read_text()
    assert "Avoid this" not in text and "marked failed" not in text
    assert text.index("id: step-1") < text.index("id: step-2")  # the step stays first
    assert_clean(ws)
    # Configurable: one is enough to stop.
    text = text.replace("run:\n", "run:\n  max_infra_failures: 1\n")
    ws.campaign_path(CAMPAIGN).write_text(text)
    git(ws.root, "commit", "-qam", "max_infra_failures: 1")
    code, data, output = run_cli("--sessions", "3")
    assert code == 1 and outcomes(data) == [(3, "infrastructure")]
    assert data["stop_reason"].startswith("1 session in a row whose agent never reached")


def test_an_infrastructure_failure_keeps_the_earlier_sessions_advice(ws: Workspace) -> None:
    # Session 1 fails its audit; session 2's agent never reaches its model. The advice written
    # for "the next session" must survive until a session that can read it.
    make_campaign(ws, plan="1=nolog+two,2=api401", extra="  require_measurements: false\n")
    code, data, output = run_cli("--sessions", "2")
    assert code == 1, output  # it ended on the infrastructure failure
    assert outcomes(data) == [(1, "failed"), (2, "infrastructure")], output
    advice = "Session 1 was marked failed by the audit: looks like more than one change"
    assert advice in ws.campaign_path(CAMPAIGN).read_text()
    assert advice in ws.rendered_path(CAMPAIGN).read_text()
    assert_clean(ws)


def test_run_exits_1_when_it_ends_on_an_infrastructure_failure(ws: Workspace) -> None:
    make_campaign(ws, plan="1=api401,2=record,3=api401")
    # The session count ends the run right after one: still exit 1, and the reason says why.
    code, data, output = run_cli("--sessions", "1")
    assert code == 1, output
    assert outcomes(data) == [(1, "infrastructure")] and data["infrastructure_failure"] is True
    assert data["stop_reason"] == (
        "1 session(s) run; the last session's agent never reached a working model: "
        "Invalid API key · Fix external API key (HTTP 401) (after 2 retries)"
    )
    # A working session after it: the run did not end on trouble, exit 0.
    code, data, output = run_cli("--sessions", "1")
    assert code == 0, output
    assert outcomes(data) == [(2, "closed")] and data["infrastructure_failure"] is False
    assert data["stop_reason"] == "1 session(s) run"
    # The human output exits 1 too, after its table and stop line.
    result = CliRunner().invoke(app, ["run", CAMPAIGN, "--sessions", "1"])
    assert result.exit_code == 1, result.output
    assert "stopped: 1 session(s) run; the last session's agent never reached" in result.output


def test_no_next_steps_left_stops_the_loop(ws: Workspace) -> None:
    make_campaign(ws, steps=0)
    code, data, _ = run_cli("--sessions", "2")
    assert code == 0 and data["sessions"] == [] and data["stop_reason"] == "no next steps left"


def test_dry_run_shows_the_command_and_touches_nothing(ws: Workspace) -> None:
    make_campaign(ws)
    code, data, output = run_cli("--dry-run", "--timeout", "90s", "--budget", "1.5")
    assert code == 0, output
    plan = data["plan"]
    assert plan["agent"]["argv"] == [sys.executable, "-S", str(AGENT), "record"]
    assert plan["next_session"] == 1 and plan["next_step"] == "step-1"
    assert plan["timeout_s"] == 90 and plan["session_budget_usd"] == 1.5
    assert {"SESSIONCTL_SESSION", "SESSIONCTL_RUN"} <= set(plan["env"])
    assert plan["would_stop"] is None
    assert record.current(ws, CAMPAIGN) is None and not (ws.scratch / "run").exists()
    code, data, _ = run_cli("--dry-run", "--agent", "claude", "--max-turns", "40")
    argv = data["plan"]["agent"]["argv"]
    assert argv[:2] == ["claude", "-p"] and argv[argv.index("--max-turns") + 1] == "40"
    # The prompt is rendered as `start` would render it: its real size, not a placeholder's.
    size = len(ws.rendered_path(CAMPAIGN).read_text())
    assert size > 100 and argv[2] == f"<prompt: {size} chars>"
    assert data["plan"]["prompt"] == {"path": "prompts/shop.md", "chars": size}
    # The effective argv: Claude may edit files and run sessionctl without a human approving.
    allowed = argv[argv.index("--allowedTools") + 1]
    assert allowed == "Edit,Write,Bash(sessionctl:*)"
    res = CliRunner().invoke(app, ["run", CAMPAIGN, "--dry-run", "--agent", "claude"])
    assert res.exit_code == 0 and f"prompts/shop.md as `start` renders it ({size:,} chars)" in (
        " ".join(res.stdout.split())
    )
    assert record.current(ws, CAMPAIGN) is None


def test_dry_run_allows_claude_the_campaigns_benchmark_binaries(ws: Workspace) -> None:
    bench = (
        "benchmarks:\n  - name: tpcb\n    driver: pgbench\n    query: select 1\n"
        "    binary: /opt/pg/bin/pgbench\n"
    )
    make_campaign(ws, extra=bench)
    code, data, output = run_cli("--dry-run", "--agent", "claude")
    assert code == 0, output
    argv = data["plan"]["agent"]["argv"]
    assert argv[argv.index("--allowedTools") + 1] == (
        "Edit,Write,Bash(sessionctl:*),Bash(/opt/pg/bin/pgbench:*)"
    )
    assert data["plan"]["max_infra_failures"] == 2


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
        "--allowedTools",
        "Edit,Write,Bash(sessionctl:*)",
    ]
    s = data["sessions"][0]
    # The replay recorded nothing into the session, so the audit fails it; the numbers still count.
    assert s["outcome"] == "failed" and s["turns"] == 11 and s["cost_usd"] == pytest.approx(0.4231)
    entry = log_entries(ws)[1]  # the entry shows the run as Claude reported it
    assert "- claude (claude-sonnet-4-5-20250929): 11 turns, $0.42, " in entry
    assert "- Tokens: 34 in, 63,220 cached, 446 out" in entry
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


def test_a_close_made_outside_the_loop_is_audited_and_accepted(ws: Workspace) -> None:
    """Someone ran `sessionctl close` without SESSIONCTL_RUN: the loop audits what close did.

    (That a log close wrote passes the audit is checked in test_agent_audit.)
    """
    make_campaign(ws, mode="nolog+close+bypass+scribble", extra="  require_measurements: false\n")
    code, data, output = run_cli("--sessions", "1")
    assert code == 0, output
    assert outcomes(data) == [(1, "closed by agent")]
    (one,) = data["sessions"]
    assert one["requested"] is None and one["problems"] == [
        "the perf log was edited by hand; only `sessionctl close` writes it "
        "(changed after close wrote it)"
    ]
    # The hand edit after the close is set aside; the log is the one close committed.
    log = ws.log_path(CAMPAIGN).read_text()
    assert "written by hand" not in log
    assert log == git(ws.root, "show", f"HEAD~1:logs/{CAMPAIGN}-perf-log.md")
    assert "written by hand" in (ws.scratch / "backups" / "shop-perf-log.session1.md").read_text()
    # That close ran before the agent exited: its run is archived with the session instead.
    assert "### Agent" not in log_entries(ws)[1]
    (agent,) = [e for e in record.entries(ws, CAMPAIGN, 1) if e.get("type") == "agent"]
    assert agent["audit"]["passed"] is False and agent["turns"] == 4
    subjects = git(ws.root, "log", "--format=%s").splitlines()
    assert subjects[:3] == [
        "prompt(shop): after session 1: record the session",
        "perf(shop): session 1: Step 1 of the lookup work",
        "campaign",
    ]
    assert_clean(ws)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root loses its privileges in the sandbox")
def test_codex_as_root_is_warned_that_its_sandbox_cannot_start_the_embedded_server(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = [sys.executable, "-m", "sessionctl.target.embedded_postgres", "serve"]
    target = f"target:\n  start: {json.dumps([*start, '--datadir', 'd', '--port', '9'])}\n"
    make_campaign(ws, extra=target)
    monkeypatch.setenv("PATH", "/nonexistent")  # no codex: the run stops before any session
    warning = "as root, Codex's workspace-write sandbox drops root's privileges"
    result = CliRunner().invoke(app, ["run", CAMPAIGN, "--agent", "codex"])
    assert result.exit_code == 1 and warning in result.stderr
    assert "install Codex" in result.stderr and record.current(ws, CAMPAIGN) is None
    # Claude has no such sandbox; a campaign that chose Codex's sandbox itself is not warned.
    result = CliRunner().invoke(app, ["run", CAMPAIGN, "--agent", "claude"])
    assert result.exit_code == 1 and warning not in result.stderr
    text = ws.campaign_path(CAMPAIGN).read_text()
    own = "  codex_args: [-s, danger-full-access]\n"
    text = text.replace("  grace: 0.5s\n", "  grace: 0.5s\n" + own)
    ws.campaign_path(CAMPAIGN).write_text(text)
    result = CliRunner().invoke(app, ["run", CAMPAIGN, "--agent", "codex", "--allow-dirty"])
    assert result.exit_code == 1 and warning not in result.stderr
    assert "install Codex" in result.stderr
