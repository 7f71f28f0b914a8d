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

import pytest
from test_agent_launch import alive
from test_run_loop import CAMPAIGN, assert_clean, git, make_campaign, outcomes, run_cli

from sessionctl.session import record
from sessionctl.workspace import Workspace


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_process(ws: Workspace, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """`sessionctl run` as a real process (output in tmp_path/run.out)."""
    with open(tmp_path / "run.out", "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sessionctl", "run", CAMPAIGN, *args],
            cwd=ws.root,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SESSIONCTL_ROOT": str(ws.root)},
        )


def kill_run_when(ws: Workspace, tmp_path: Path, what: str, ready: Any) -> int:
    """Run `sessionctl run`, SIGKILL it once its agent runs and ``ready()``; return the agent."""
    proc = run_process(ws, tmp_path, "--sessions", "1")
    state_file = ws.scratch / "run" / f"{CAMPAIGN}.json"

    def agent_pid() -> int | None:
        try:
            cur = json.loads(state_file.read_text()).get("current") or {}
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return cur.get("agent_pid") if cur.get("phase") == "agent" and ready() else None

    pid = int(wait_for(what, agent_pid))
    # While it runs, a second `sessionctl run` is refused and changes nothing.
    before = state_file.read_text()
    code, _, output = run_cli()
    assert code == 1 and f"another `sessionctl run` is running (pid {proc.pid})" in output
    assert state_file.read_text() == before
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert record.current(ws, CAMPAIGN) is not None  # the session was left open
    return pid


def test_resume_stops_a_still_running_agent_and_fails_its_session(
    ws: Workspace, tmp_path: Path
) -> None:
    make_campaign(ws, mode="hang")
    transcript = ws.scratch / "transcripts" / CAMPAIGN / "1.jsonl"
    agent = kill_run_when(
        ws,
        tmp_path,
        "the agent's first tool call",
        lambda: transcript.exists() and "tool_use" in transcript.read_text(),
    )
    assert alive(agent)  # orphaned, still sleeping in its own session
    child_file = ws.scratch / "test-agent" / "1.child"
    child = int(wait_for("its child", lambda: child_file.exists() and child_file.read_text()))

    (ws.scratch / "STOP").write_text("")  # settle session 1, start no other (see below)
    code, data, output = run_cli("--sessions", "1")
    (ws.scratch / "STOP").unlink()
    assert code == 0, output
    assert not alive(agent) and not alive(child)
    assert outcomes(data) == [(1, "failed")]
    # (That the loop then goes on: test_resume_after_dying_between_start_and_launch.)
    assert data["stop_reason"].startswith("stop file")
    first = data["sessions"][0]
    assert first["recovered"] and first["exit_reason"] == "lost"
    assert any("sessionctl run died; its agent" in p for p in first["problems"])
    assert "no re-measure recorded after the change" in first["problems"]
    log = ws.log_path(CAMPAIGN).read_text()
    assert log.count("## Session 1") == 1 and "## Session 1 (aborted)" in log
    assert "; stopped: sessionctl run died; its agent" in log  # the entry's Agent section
    agent_entries = [e for e in record.entries(ws, CAMPAIGN, 1) if e.get("type") == "agent"]
    assert len(agent_entries) == 1 and agent_entries[0]["exit_reason"] == "lost"
    assert agent_entries[0]["turns"] >= 1  # parsed back from the transcript
    assert_clean(ws)


def test_kill_between_the_close_request_and_the_close_then_resume_closes_once(
    ws: Workspace, tmp_path: Path
) -> None:
    """The agent asked to close; `run` died before closing: the next `run` closes it, once."""
    make_campaign(ws, plan="1=nolog+wait:step-1", steps=1, extra="  require_measurements: false\n")

    def requested() -> bool:
        return any(e.get("type") == "close_request" for e in record.entries(ws, CAMPAIGN, 1))

    agent = kill_run_when(ws, tmp_path, "the agent's close request", requested)
    assert ws.log_path(CAMPAIGN).exists() is False  # nothing was closed yet
    (ws.scratch / "test-agent" / "release").write_text("")
    wait_for("the agent to finish", lambda: not alive(agent))

    code, data, output = run_cli("--sessions", "1")
    assert code == 0, output
    assert outcomes(data) == [(1, "closed")]
    (one,) = data["sessions"]
    assert one["recovered"] and one["exit_reason"] == "exited" and one["requested"] == "close"
    assert data["stop_reason"] == "no next steps left"  # the request resolved the only step
    # A further run finds nothing to settle and duplicates nothing.
    code, data, output = run_cli("--sessions", "1")
    assert code == 0 and data["sessions"] == [], output
    subjects = git(ws.root, "log", "--format=%s").splitlines()
    assert sum(s.startswith("perf(shop): session 1:") for s in subjects) == 1
    assert subjects.count("prompt(shop): after session 1: resolve step-1") == 1
    log = ws.log_path(CAMPAIGN).read_text()
    assert log.count("## Session 1:") == 1
    assert "### Conclusion\n\nsession 1: indexed lookup" in log
    assert "- command (scripted-agent): 3 turns, $0.05, " in log and "- Audit: passed" in log
    assert "**Closed with `--force`:** no benchmark covers this step" in log
    assert_clean(ws)


def test_kill_during_the_loops_own_close_then_resume_finishes_it_once(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run` dies between the code commit and its journal update: the next run finishes it."""
    from sessionctl.agent import loop
    from sessionctl.session import close as close_mod

    # A forced close (no measurements) the campaign's audit allows.
    make_campaign(ws, mode="nolog+close", extra="  require_measurements: false\n")

    class Killed(BaseException):
        """Stands in for SIGKILL: nothing below catches it, nothing is cleaned up."""

    real_crash = close_mod._crash

    def crash(point: str) -> None:
        if point == "commit_code":
            raise Killed
        real_crash(point)

    monkeypatch.setattr(close_mod, "_crash", crash)
    with pytest.raises(Killed):
        loop.run(ws, CAMPAIGN, options=loop.RunOptions(sessions=1))
    monkeypatch.setattr(close_mod, "_crash", real_crash)
    assert loop.pending(ws, CAMPAIGN)["phase"] == "closing"
    assert close_mod.pending(ws, CAMPAIGN)["remaining"][0] == "commit_code"

    (ws.scratch / "STOP").write_text("")  # settle the interrupted session, start no other
    code, data, output = run_cli("--sessions", "1")
    assert code == 0, output
    assert outcomes(data) == [(1, "closed")] and data["sessions"][0]["recovered"]
    assert data["sessions"][0]["requested"] == "close"
    subjects = git(ws.root, "log", "--format=%s").splitlines()
    assert subjects[:3] == [
        "prompt(shop): after session 1: record the session",
        "perf(shop): session 1: Step 1 of the lookup work",
        "campaign",
    ]
    log = ws.log_path(CAMPAIGN).read_text()
    assert log.count("## Session 1:") == 1
    assert "**Closed with `--force`:** no benchmark covers this step" in log
    assert "### Conclusion\n\nsession 1: indexed lookup" in log and "- Audit: passed" in log
    agent = [e for e in record.entries(ws, CAMPAIGN, 1) if e.get("type") == "agent"]
    assert len(agent) == 1  # recorded once, before the close, not again on resume
    (ws.scratch / "STOP").unlink()
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
    make_campaign(ws, plan="1=hang")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sessionctl", "run", CAMPAIGN, "--grace", "0.5s"],
        cwd=ws.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    child_file = ws.scratch / "test-agent" / "1.child"
    wait_for("the agent's child", child_file.exists)
    agent = int((ws.scratch / "test-agent" / "1.pid").read_text())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted during session 1" in err
    assert not alive(agent) and not alive(int(child_file.read_text()))
    assert "## Session 1 (aborted)" in ws.log_path(CAMPAIGN).read_text()
    assert_clean(ws)
