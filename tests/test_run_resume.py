"""Kill `sessionctl run` with SIGKILL mid-session, start it again: a consistent final state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from test_run_loop import CAMPAIGN, assert_clean, git, make_campaign, outcomes, run_cli

from sessionctl.session import record
from sessionctl.workspace import Workspace


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start_and_kill_mid_session(ws: Workspace, tmp_path: Path) -> int:
    """Run `sessionctl run` as a real process, SIGKILL it once the agent has a baseline."""
    out = open(tmp_path / "run.out", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "sessionctl", "run", CAMPAIGN, "--sessions", "1"],
        cwd=ws.root,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SESSIONCTL_ROOT": str(ws.root)},
    )
    state_file = ws.scratch / "run" / f"{CAMPAIGN}.json"

    def agent_pid() -> int | None:
        try:
            cur = json.loads(state_file.read_text()).get("current") or {}
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        phases = {e.get("phase") for e in record.entries(ws, CAMPAIGN, 1)}
        return (
            cur.get("agent_pid") if cur.get("phase") == "agent" and "baseline" in phases else None
        )

    pid = int(wait_for("the agent's baseline", agent_pid))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    out.close()
    assert proc.returncode == -signal.SIGKILL
    assert record.current(ws, CAMPAIGN) is not None  # the session was left open
    return pid


def test_resume_stops_a_still_running_agent_and_fails_its_session(
    ws: Workspace, tmp_path: Path
) -> None:
    make_campaign(ws, plan="1=slow,2=record")
    agent = start_and_kill_mid_session(ws, tmp_path)
    assert alive(agent)  # orphaned, still sleeping in its own session

    code, data, output = run_cli("--sessions", "1")
    assert code == 0, output
    assert not alive(agent)
    assert outcomes(data) == [(1, "failed"), (2, "closed")]
    first = data["sessions"][0]
    assert first["recovered"] and first["exit_reason"] == "lost"
    assert any("sessionctl run died; its agent" in p for p in first["problems"])
    assert "no re-measure recorded after the change" in first["problems"]
    log = ws.log_path(CAMPAIGN).read_text()
    assert log.count("## Session 1") == 1 and "## Session 1 (aborted)" in log
    assert log.count("## Session 2") == 1
    agent_entries = [e for e in record.entries(ws, CAMPAIGN, 1) if e.get("type") == "agent"]
    assert len(agent_entries) == 1 and agent_entries[0]["exit_reason"] == "lost"
    assert agent_entries[0]["turns"] >= 1  # parsed back from the transcript
    assert_clean(ws)


def test_resume_closes_a_session_whose_agent_finished_meanwhile(
    ws: Workspace, tmp_path: Path
) -> None:
    make_campaign(ws, plan="1=wait,2=record")
    agent = start_and_kill_mid_session(ws, tmp_path)
    (ws.scratch / "test-agent" / "release").write_text("")
    wait_for("the agent to finish", lambda: not alive(agent))

    code, data, output = run_cli("--sessions", "1")
    assert code == 0, output
    assert outcomes(data) == [(1, "closed"), (2, "closed")]
    assert data["sessions"][0]["recovered"] and data["sessions"][0]["exit_reason"] == "exited"
    subjects = git(ws.root, "log", "--format=%s").splitlines()
    assert sum(s.startswith("perf(shop): session 1:") for s in subjects) == 1
    assert sum(s.startswith("perf(shop): session 2:") for s in subjects) == 1
    assert ws.log_path(CAMPAIGN).read_text().count("## Session 1:") == 1
    assert_clean(ws)


def test_a_second_run_is_refused_while_one_is_running(ws: Workspace, tmp_path: Path) -> None:
    make_campaign(ws, plan="1=wait")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sessionctl", "run", CAMPAIGN],
        cwd=ws.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for("the first run's agent", lambda: (ws.scratch / "test-agent" / "1.pid").exists())
        code, _, output = run_cli()
        assert code == 1 and "another `sessionctl run` is running" in output
    finally:
        (ws.scratch / "test-agent" / "release").write_text("")
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert_clean(ws)


def test_resume_after_dying_between_start_and_launch(ws: Workspace) -> None:
    """The session was opened but no agent ran: it is failed, not launched late."""
    from sessionctl.session import engine

    make_campaign(ws, mode="nolog")
    engine.start(ws, CAMPAIGN)
    state = ws.scratch / "run" / f"{CAMPAIGN}.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"version": 1, "current": {"session": 1, "phase": "starting"}}))
    code, data, output = run_cli("--sessions", "1")
    assert code == 0, output
    assert outcomes(data) == [(1, "failed"), (2, "failed")]
    first = data["sessions"][0]
    assert first["recovered"] and any(
        "died during starting before the agent ran" in p for p in first["problems"]
    )
    assert not (ws.scratch / "test-agent" / "1.pid").exists()  # no agent was ever launched for it
    assert_clean(ws)


def test_sigterm_stops_the_agent_and_settles_the_session(ws: Workspace, tmp_path: Path) -> None:
    make_campaign(ws, plan="1=slow")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sessionctl", "run", CAMPAIGN, "--grace", "0.5s"],
        cwd=ws.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_for(
        "the agent's baseline",
        lambda: "baseline" in {e.get("phase") for e in record.entries(ws, CAMPAIGN, 1)},
    )
    agent = int((ws.scratch / "test-agent" / "1.pid").read_text())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted during session 1" in err
    assert not alive(agent)
    assert "## Session 1 (aborted)" in ws.log_path(CAMPAIGN).read_text()
    assert_clean(ws)
