#!/usr/bin/env python3
"""A scripted stand-in for an AI agent: does what a session asks (or misbehaves on purpose).

Usage: scripted_agent.py [--plan N=MODE,N=MODE...] [--cost USD] [MODE]

The mode for session $SESSIONCTL_SESSION comes from --plan, else MODE (default ``close``).
It prints Claude Code stream-json lines (init, tool calls, a final result with total_cost_usd)
and calls ``sessionctl`` the way an agent would: ``python -m sessionctl record/close/abort``.
It imports only the standard library, so tests may start it with ``python -S``.

Modes: a base mode, ``+`` misbehaviours, ``:ARG`` (``nolog+two``, ``close:step-1``):
  record       baseline, one change, remeasure, then exit without closing   (loop closes it)
  close[:ID]   like record, then ``sessionctl close [--resolve ID]``       (the loop closes it)
  wait[:ID]    like close, then waits for .sessionctl/test-agent/release    (resume tests)
  abort        one change, then ``sessionctl abort --reason ...``
  diagnostic   record a finding only (for a diagnostic session)
  nolog        one change, nothing recorded (``nolog+close``: ``close --force REASON``)
  +two         also a change in an unrelated area                            (audit fails)
  +forbidden   also a change that caches query results                      (audit fails)
  +edit-md     also a hand edit of prompts/*.md                             (audit fails)
  +edit-log    also a hand edit of the perf log                             (audit fails)
  +bypass      its ``sessionctl`` runs without SESSIONCTL_RUN: ``close`` really closes
  +scribble    after closing, a hand edit of the perf log                   (audit flags it)
  hang         starts a child process and sleeps forever                     (timeout)
  budget       reports growing cost in stream-json result lines, then sleeps (budget)
  api401       what Claude Code prints when the API rejects its key, then exits 1
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("SESSIONCTL_ROOT", "."))
SESSION = int(os.environ.get("SESSIONCTL_SESSION", "0"))
CAMPAIGN = os.environ.get("SESSIONCTL_CAMPAIGN", "")
STATE = ROOT / ".sessionctl" / "test-agent"
_n = 0


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def tool(name: str, args: dict, output: str) -> None:
    global _n
    _n += 1
    emit(
        {
            "type": "assistant",
            "message": {
                "id": f"msg_{_n}",
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"toolu_{_n}", "name": name, "input": args}],
            },
            "session_id": "scripted",
        }
    )
    emit(
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [
                    {"tool_use_id": f"toolu_{_n}", "type": "tool_result", "content": output}
                ],
            },
            "session_id": "scripted",
        }
    )


BYPASS = False  # run sessionctl as if by hand, outside `sessionctl run`


def sessionctl(*args: str) -> None:
    cmd = [sys.executable, "-m", "sessionctl", *args]
    env = {k: v for k, v in os.environ.items() if not (BYPASS and k == "SESSIONCTL_RUN")}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    tool("Bash", {"command": "sessionctl " + " ".join(args)}, (proc.stdout + proc.stderr)[-500:])
    if proc.returncode != 0:
        print(
            f"sessionctl {' '.join(args)} failed: {proc.stderr.strip()}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(1)


def edit(rel: str, line: str) -> None:
    path = ROOT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(line + "\n")
    tool("Edit", {"file_path": str(path)}, f"The file {path} has been updated.")


def result(cost: float) -> None:
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "duration_ms": 1200,
            "num_turns": _n + 1,
            "result": "done",
            "session_id": "scripted",
            "total_cost_usd": cost,
        }
    )


def change(n: int = SESSION) -> None:
    edit("app/query.py", f"LOOKUP_{n} = 'SELECT total FROM orders_by_customer WHERE id = %s'")


def release() -> None:
    """Wait until the test lets this agent go on."""
    while not (STATE / "release").exists():
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    plan: dict[int, str] = {}
    mode = "close"
    cost = 0.05
    it = iter(argv)
    for arg in it:
        if arg == "--plan":
            for part in next(it).split(","):
                k, v = part.split("=")
                plan[int(k)] = v
        elif arg == "--cost":
            cost = float(next(it))
        else:
            mode = arg
    mode, _, mode_arg = plan.get(SESSION, mode).partition(":")
    flags = set(mode.split("+"))
    global BYPASS
    BYPASS = "bypass" in flags
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / f"{SESSION}.pid").write_text(str(os.getpid()))
    emit(
        {
            "type": "system",
            "subtype": "init",
            "session_id": "scripted",
            "model": "scripted-agent",
            "cwd": str(ROOT),
        }
    )

    if mode == "hang":
        child = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(120)"])
        tool("Bash", {"command": "sleep 120"}, "")
        (STATE / f"{SESSION}.child").write_text(str(child.pid))
        time.sleep(120)
        return 0
    if mode == "budget":
        for i in range(1, 50):
            emit(
                {
                    "type": "result",
                    "subtype": "success",
                    "is_error": False,
                    "num_turns": i,
                    "session_id": "scripted",
                    "total_cost_usd": round(0.1 * i, 2),
                }
            )
            time.sleep(0.1)
        return 0
    if mode == "api401":
        # As claude-401-under-sessionctl.jsonl: retries, Claude's own message, an error result.
        for attempt in (1, 2):
            emit({"type": "system", "subtype": "api_retry", "attempt": attempt, "max_retries": 2,
                  "error_status": 401, "error": "authentication_failed"})  # fmt: skip
        text = "Invalid API key · Fix external API key"
        emit({"type": "assistant", "error": "authentication_failed",
              "message": {"id": "x", "model": "<synthetic>", "role": "assistant",
                          "content": [{"type": "text", "text": text}]}})  # fmt: skip
        emit({"type": "result", "subtype": "success", "is_error": True,
              "api_error_status": 401, "num_turns": 1, "result": text, "total_cost_usd": 0,
              "permission_denials": [], "modelUsage": {}})  # fmt: skip
        return 1
    if mode == "diagnostic":
        sessionctl("record", "--finding", "planning is 3% of the lookup latency")
        result(cost)
        return 0
    measured = not flags & {"nolog", "abort"}
    if measured:
        sessionctl("record", "--phase", "baseline", "--metric", "qps=100")
    change()
    if "two" in flags:
        edit("lib/cache.py", "CACHE_SIZE = 1024")
    if "forbidden" in flags:
        edit("app/query.py", "_result_cache = {}  # remember query results per customer")
    if "edit-md" in flags:
        edit(f"prompts/{CAMPAIGN}.md", "Note to self: skip the baseline next time.")
    if "edit-log" in flags:
        edit(f"logs/{CAMPAIGN}-perf-log.md", "## Session notes written by hand")
    if measured:
        sessionctl("record", "--phase", "remeasure", "--metric", "qps=150")
    if flags & {"close", "wait"}:
        args = ["--summary", f"session {SESSION}: indexed lookup"]
        args += ["--resolve", mode_arg] if mode_arg else []
        args += [] if measured else ["--force", "no benchmark covers this step"]
        sessionctl("close", *args)
    if "scribble" in flags:
        edit(f"logs/{CAMPAIGN}-perf-log.md", "PS: written by hand after the close")
    if "abort" in flags:
        sessionctl("abort", "--reason", "the index already exists upstream")
    if "wait" in flags:
        release()
    result(cost)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
