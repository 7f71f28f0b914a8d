"""Launching one agent: transcripts, the wall-clock and cost bounds, stopping the whole tree."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sessionctl import process
from sessionctl.agent.launch import (
    API_ERROR,
    BUDGET,
    EXITED,
    STOPPED,
    TIMEOUT,
    AgentRun,
    LiveStatus,
    launch,
    reap_session,
)
from sessionctl.agent.presets import AgentCommand

AGENT = Path(__file__).parent / "agents" / "scripted_agent.py"


def cmd(*argv: str, fmt: str = "auto") -> AgentCommand:
    return AgentCommand("command", tuple(argv), tuple(argv), fmt, False)  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def run_agent(
    tmp_path: Path,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] = os.environ,
    transcript: Path | None = None,
    **bounds: Any,
) -> AgentRun:
    """Launch ``argv`` in ``tmp_path``, its transcript in ``1.jsonl`` unless given."""
    out = transcript or tmp_path / "1.jsonl"
    return launch(cmd(*argv), env=env, cwd=tmp_path, transcript=out, **bounds)


def env_for(root: Path, session: int = 1) -> dict[str, str]:
    return {**os.environ, "SESSIONCTL_ROOT": str(root), "SESSIONCTL_SESSION": str(session)}


def test_normal_exit_writes_the_transcript_and_reports_progress(tmp_path: Path) -> None:
    code = (
        "import json,sys;"
        "print(json.dumps({'type':'assistant','message':{'id':'m1','content':["
        "{'type':'tool_use','id':'t1','name':'Bash','input':{'command':'make bench'}}]}}),"
        "flush=True);"
        "print('oops', file=sys.stderr, flush=True);"
        "import time; time.sleep(0.5);"
        "print(json.dumps({'type':'result','subtype':'success','num_turns':1,'total_cost_usd':0.02}));"
        "sys.exit(3)"
    )
    spawned: list[int] = []
    ticks: list[LiveStatus] = []
    out = tmp_path / "t" / "1.jsonl"
    run = run_agent(
        tmp_path,
        [sys.executable, "-c", code],
        transcript=out,
        timeout=30,
        grace=1,
        on_spawn=spawned.append,
        on_tick=ticks.append,
        tick=0.05,
    )
    assert run.exit_reason == EXITED and run.exit_code == 3 and not run.killed
    assert spawned == [run.pid]
    assert run.summary.cost_usd == 0.02 and run.summary.turns == 1
    assert any(t.activity == "Bash: make bench" for t in ticks)
    recs = records(out)
    assert recs[0]["type"] == "sessionctl" and recs[0]["event"] == "launch"
    assert "oops" in out.read_text().splitlines()
    assert recs[-1]["event"] == "exit" and recs[-1]["exit_code"] == 3
    entry = run.to_entry()
    assert (
        entry["type"] == "agent" and entry["exit_reason"] == "exited" and entry["cost_usd"] == 0.02
    )
    assert entry["summary"].startswith("1 turns, $0.02, ") and entry["summary"].endswith("exited 3")


def test_timeout_stops_the_agent_and_its_children(tmp_path: Path) -> None:
    out = tmp_path / "1.jsonl"
    run = run_agent(
        tmp_path,
        [sys.executable, str(AGENT), "hang"],
        env=env_for(tmp_path),
        transcript=out,
        timeout=1.0,
        grace=0.5,
        term_grace=2,
    )
    assert run.exit_reason == TIMEOUT and run.killed and "timeout after 1s" in run.detail
    child = int((tmp_path / ".sessionctl" / "test-agent" / "1.child").read_text())
    assert not alive(child) and not alive(run.pid or 0)
    assert process.session_pids(run.pid or 0) == []
    assert any(r.get("event") == "stop" and r.get("reason") == "timeout" for r in records(out))


def test_agent_ignoring_sigint_is_terminated_after_the_grace(tmp_path: Path) -> None:
    code = (
        "import signal,time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    run = run_agent(tmp_path, [sys.executable, "-c", code], timeout=0.5, grace=0.3, term_grace=2)
    assert run.exit_reason == TIMEOUT and run.exit_code == -signal.SIGTERM


def spending_agent(tmp_path: Path, **bounds: Any) -> AgentRun:
    """The scripted agent that keeps reporting more cost, until something stops it."""
    argv = [sys.executable, str(AGENT), "budget"]
    return run_agent(
        tmp_path, argv, env=env_for(tmp_path), timeout=30, grace=0.5, tick=0.05, **bounds
    )


def test_budget_watcher_kills_an_agent_over_its_budget(tmp_path: Path) -> None:
    run = spending_agent(tmp_path, budget_usd=0.25)
    assert run.exit_reason == BUDGET
    assert run.summary.cost_usd is not None and 0.25 < run.summary.cost_usd < 1.0
    assert "over the session budget $0.25" in run.detail


def test_should_stop_lets_the_loop_end_an_agent(tmp_path: Path) -> None:
    run = spending_agent(
        tmp_path, should_stop=lambda cost: "run budget spent" if (cost or 0) >= 0.3 else None
    )
    assert run.exit_reason == STOPPED and run.detail == "run budget spent"


def test_background_children_left_behind_are_stopped(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    code = (
        "import subprocess,sys;"
        "p=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']);"
        f"open({str(pidfile)!r},'w').write(str(p.pid))"
    )
    run = run_agent(tmp_path, [sys.executable, "-c", code], timeout=30, grace=0.5, term_grace=2)
    assert run.exit_reason == EXITED and run.exit_code == 0
    assert not alive(int(pidfile.read_text()))


def test_reap_session_kills_a_leftover_agent_group(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = process.spawn(
        [
            sys.executable,
            "-c",
            "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"open({str(ready)!r}, 'w').close(); time.sleep(60)",
        ]
    )
    # SIGTERM must find the handler installed, however slowly the interpreter starts.
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reap_session(proc.pid, term_grace=0.5) == [proc.pid]
    proc.wait(timeout=5)
    assert proc.returncode == -signal.SIGKILL
    assert reap_session(proc.pid) == []


def test_a_key_the_api_keeps_rejecting_stops_the_agent_early(tmp_path: Path) -> None:
    # Claude Code retries a 401 for ~3 minutes; three rejections in a row are enough to know.
    retry = {"type": "system", "subtype": "api_retry", "max_retries": 10, "error_status": 401,
             "error": "authentication_failed"}  # fmt: skip
    code = (
        "import json,time\n"
        f"for i in (1, 2, 3):\n    print(json.dumps({{**{retry!r}, 'attempt': i}}), flush=True)\n"
        "time.sleep(60)\n"
    )
    seen: list[LiveStatus] = []
    run = run_agent(
        tmp_path, [sys.executable, "-c", code], timeout=50, grace=1, on_tick=seen.append
    )
    assert run.exit_reason == API_ERROR and run.duration_s < 30
    assert run.detail == "stopped after 3 rejected API calls; check the agent's API key"
    assert run.ending.kind == "api_error" and run.ending.infrastructure
    assert run.ending.message.startswith("HTTP 401: authentication_failed; stopped after 3")
    # The live view showed the retries as they came.
    assert any(t.activity and "HTTP 401" in t.activity for t in seen)
