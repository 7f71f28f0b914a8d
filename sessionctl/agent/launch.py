"""Run one agent for one session, bounded in wall-clock time and money.

The agent starts in its own session (``process.spawn``) so that on a timeout, a blown budget or
Ctrl-C the whole tree can be stopped: SIGINT to the agent, a grace period, then SIGTERM and
SIGKILL to every process in its session (``process.stop_tree``). Everything it prints goes to
one transcript file per session under sessionctl's ignored scratch folder — its stdout and
stderr as they are (stream-json / JSONL, plus any plain text), framed by ``{"type":
"sessionctl"}`` records (launch, spawned, stop, exit) — never into the repository.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sessionctl import process
from sessionctl.agent.ending import Ending, classify
from sessionctl.agent.presets import AgentCommand
from sessionctl.agent.transcript import Transcript, TranscriptSummary, over_budget
from sessionctl.measurement import now_iso
from sessionctl.workspace import Workspace

EXITED = "exited"
TIMEOUT = "timeout"
BUDGET = "budget"
INTERRUPTED = "interrupted"
STOPPED = "stopped"  # the loop asked (total budget of the run spent)
LOST = "lost"  # sessionctl itself died while the agent ran; found on resume
API_ERROR = "api_error"  # stopped early: the API keeps refusing the agent's credentials
KILLED_REASONS = frozenset({TIMEOUT, BUDGET, INTERRUPTED, STOPPED, LOST, API_ERROR})
# Claude Code retries a rejected key ~10 times over ~3 minutes; a few in a row are enough to
# know (one may be an OAuth token being refreshed).
AUTH_FAILURES_TO_STOP = 3


@dataclass(frozen=True)
class LiveStatus:
    """A snapshot of a running agent for the live view."""

    pid: int
    elapsed: float
    cost_usd: float | None
    turns: int
    tool_calls: int
    activity: str | None


@dataclass(frozen=True)
class AgentRun:
    """How one agent run ended."""

    argv: tuple[str, ...]  # as shown (prompt elided)
    preset: str
    pid: int | None
    exit_code: int | None
    exit_reason: str
    duration_s: float
    transcript: str
    summary: TranscriptSummary
    detail: str = ""  # e.g. "timeout after 2s", "cost $0.91 > budget $0.50"
    budget_usd: float | None = None  # the session's budget the run was given

    @property
    def killed(self) -> bool:
        return self.exit_reason in KILLED_REASONS

    @property
    def ending(self) -> Ending:
        """How the run ended (finished, refused tools, API error, turn limit, ...)."""
        return classify(
            exit_reason=self.exit_reason,
            exit_code=self.exit_code,
            detail=self.detail,
            summary=self.summary,
            preset=self.preset,
        )

    @property
    def overspent(self) -> str | None:
        """Why the run is over its budget though nothing stopped it (Codex reports at exit)."""
        cost, budget = self.summary.cost_usd, self.budget_usd
        if not over_budget(cost, budget) or self.ending.kind == "budget_limit":
            return None
        assert cost is not None and budget is not None
        return (
            f"the agent spent ${cost:.2f}, over the session budget ${budget:.2f} "
            "(its usage was reported too late to stop it)"
        )

    def describe(self) -> str:
        """One line: how the agent ended."""
        return self.ending.text()

    def to_entry(self) -> dict[str, Any]:
        """The session entry of type ``agent`` (turns, cost, duration, exit reason, transcript)."""
        s = self.summary
        return {
            "type": "agent",
            "preset": self.preset,
            "argv": list(self.argv),
            "pid": self.pid,
            "exit_code": self.exit_code,
            "exit_reason": self.exit_reason,
            "detail": self.detail,
            "duration_s": round(self.duration_s, 3),
            "turns": s.turns,
            "cost_usd": s.cost_usd,
            "cost_source": s.cost_source,
            "tokens": {
                "input": s.input_tokens,
                "cached_input": s.cached_input_tokens,
                "output": s.output_tokens,
            },
            "tool_calls": s.tool_calls,
            "agent_session_id": s.session_id,
            "model": s.model,
            "result_subtype": s.result_subtype,
            "is_error": s.is_error,
            "ending": self.ending.to_dict(),
            "budget_usd": self.budget_usd,
            "overspent": self.overspent,
            "transcript": self.transcript,
            "summary": self.text_summary(),
        }

    def text_summary(self) -> str:
        """``12 turns, $0.43, 3m20s, exited 0`` — the line a log entry shows."""
        from sessionctl.units import format_duration

        s = self.summary
        cost = f"${s.cost_usd:.2f}" if s.cost_usd is not None else "cost n/a"
        if self.exit_reason != EXITED:
            end = self.detail or self.exit_reason
        elif self.ending.kind in ("finished", "failed"):
            end = f"exited {self.exit_code}"
        else:
            end = self.ending.text()
        return f"{s.turns} turns, {cost}, {format_duration(round(self.duration_s, 1))}, {end}"


def transcript_path(ws: Workspace, campaign: str, session: int) -> Path:
    """Where session ``session``'s transcript lives (scratch, never committed)."""
    return ws.scratch / "transcripts" / campaign / f"{session}.jsonl"


def prompt_path(ws: Workspace, campaign: str, session: int) -> Path:
    """The prompt file handed to agents whose argv uses ``{prompt_file}``."""
    return ws.scratch / "transcripts" / campaign / f"{session}.prompt.md"


class _Transcript:
    """The transcript file: the agent writes into it directly, we append our records and tail it.

    The agent's stdout and stderr are the file itself (not pipes), so the agent never blocks on
    a full pipe and does not die of SIGPIPE if ``sessionctl run`` is killed: a later run finds
    it finished (or still running, and stops it).
    """

    def __init__(self, path: Path, parser: Transcript) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.reader: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.reader.seek(0, os.SEEK_END)
        self.parser = parser
        self.partial = b""
        # Every action the parser saw, in order, until the live view takes them: a fast agent
        # can make several tool calls (or exit) between two ticks, and each is shown.
        self.unseen: list[str] = []

    def record(self, obj: dict[str, Any]) -> None:
        """Append one ``{"type": "sessionctl"}`` line (a single write: atomic with O_APPEND)."""
        line = json.dumps({"type": "sessionctl", **obj}, default=str) + "\n"
        os.write(self.fd, line.encode("utf-8"))

    def poll(self) -> None:
        """Feed the parser whatever complete lines were written since the last poll."""
        data = self.reader.read()
        if not data:
            return
        *lines, self.partial = (self.partial + data).split(b"\n")
        for raw in lines:
            before = (self.parser.tool_calls, self.parser.activity)
            self.parser.feed(raw.decode("utf-8", "replace"))
            activity = self.parser.activity
            if activity and (self.parser.tool_calls, activity) != before:
                self.unseen.append(activity)

    def take_unseen(self) -> list[str | None]:
        """The actions seen since the last call (at least one entry: the latest, maybe None)."""
        taken, self.unseen = self.unseen, []
        return list(taken) or [self.parser.activity]

    def close_with(self, last: dict[str, Any]) -> None:
        """Read the rest of what the agent wrote, append our last record, close."""
        self.poll()
        self.record(last)
        self.close()

    def close(self) -> None:
        self.poll()
        if self.partial:
            self.parser.feed(self.partial.decode("utf-8", "replace"))
            self.partial = b""
        os.fsync(self.fd)
        os.close(self.fd)
        self.reader.close()


def launch(
    command: AgentCommand,
    *,
    env: Mapping[str, str],
    cwd: Path,
    transcript: Path,
    timeout: float,
    grace: float,
    budget_usd: float | None = None,
    token_prices: Mapping[str, float] | None = None,
    on_spawn: Callable[[int], None] | None = None,
    on_tick: Callable[[LiveStatus], None] | None = None,
    should_stop: Callable[[float | None], str | None] | None = None,
    tick: float = 0.2,
    term_grace: float = 5.0,
) -> AgentRun:
    """Run ``command`` to completion or until a bound stops it; return how it ended.

    ``should_stop(cost_so_far)`` lets the caller stop the agent for its own reasons (the run's
    total budget); it returns a one-line reason or None. Ctrl-C stops the agent tree and
    returns with ``exit_reason == "interrupted"`` rather than raising.
    """
    parser = Transcript(command.format, token_prices=token_prices)
    out = _Transcript(transcript, parser)
    started = time.monotonic()
    out.record(
        {
            "event": "launch",
            "at": now_iso(),
            "argv": list(command.shown),
            "preset": command.preset,
            "format": command.format,
            "timeout_s": timeout,
            "budget_usd": budget_usd,
        }
    )
    try:
        proc = process.spawn(command.argv, cwd=cwd, env=env, stdout=out.fd, stderr=out.fd)
    except BaseException as exc:
        out.record({"event": "exit", "reason": "spawn_failed", "error": str(exc)})
        out.close()
        raise
    if on_spawn is not None:
        on_spawn(proc.pid)
    out.record({"event": "spawned", "pid": proc.pid})

    def report() -> None:
        out.poll()
        if on_tick is None:
            return
        elapsed = time.monotonic() - started
        for activity in out.take_unseen():
            on_tick(
                LiveStatus(
                    proc.pid, elapsed, parser.cost_usd, parser.turns, parser.tool_calls, activity
                )
            )

    reason, detail = EXITED, ""
    try:
        while True:
            try:
                proc.wait(timeout=tick)
                break
            except subprocess.TimeoutExpired:
                pass
            report()
            elapsed = time.monotonic() - started
            cost = parser.cost_usd
            if elapsed >= timeout:
                reason, detail = TIMEOUT, f"timeout after {_secs(timeout)}"
            elif over_budget(cost, budget_usd) and not _ended_itself(parser):
                reason = BUDGET
                detail = f"cost ${cost:.2f} over the session budget ${budget_usd:.2f}"
            elif should_stop is not None and (why := should_stop(cost)):
                reason, detail = STOPPED, why
            elif parser.auth_failures >= AUTH_FAILURES_TO_STOP and not parser.model_answered:
                reason = API_ERROR
                detail = (
                    f"stopped after {parser.auth_failures} rejected API calls; "
                    "check the agent's API key"
                )
            if reason != EXITED:
                out.record({"event": "stop", "reason": reason, "detail": detail, "at": now_iso()})
                process.stop_tree(
                    proc, first_signal=signal.SIGINT, grace=grace, term_grace=term_grace
                )
                break
    except KeyboardInterrupt:
        reason, detail = INTERRUPTED, "interrupted by the user (Ctrl-C)"
        out.record({"event": "stop", "reason": reason, "at": now_iso()})
        process.stop_tree(
            proc, first_signal=signal.SIGINT, grace=min(grace, 5.0), term_grace=term_grace
        )
    # Whatever the agent left running in its session (a server, a benchmark) goes too.
    process.stop_tree(proc, grace=0.0, term_grace=term_grace)
    # What the agent did after the last tick (all of it, for an agent faster than one tick).
    report()
    duration = time.monotonic() - started
    code = proc.returncode
    out.close_with(
        {"event": "exit", "reason": reason, "exit_code": code, "duration_s": round(duration, 3)}
    )
    return AgentRun(
        argv=command.shown,
        preset=command.preset,
        pid=proc.pid,
        exit_code=code,
        exit_reason=reason,
        duration_s=duration,
        transcript=str(transcript),
        summary=parser.summary(),
        detail=detail,
        budget_usd=budget_usd,
    )


def _ended_itself(parser: Transcript) -> bool:
    """The agent's final word is out (Claude stopped at its own budget; Codex's turn is over,
    its usage only ever comes then): it is ending anyway, and the audit judges the cost."""
    if parser.format == "codex":
        return parser.result_subtype is not None
    return parser.result_subtype == "error_max_budget_usd"


def reap_session(sid: int, *, term_grace: float = 3.0) -> list[int]:
    """Make sure no process of an earlier agent (session id ``sid``) survives; return who was found.

    Used on resume, when the ``sessionctl run`` that spawned the agent is gone and we have only
    its pid. SIGTERM first, then SIGKILL to whatever is left in that session.
    """
    found = process.session_pids(sid)
    if not found:
        return []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        process.signal_session(sid, sig)
        deadline = time.monotonic() + term_grace
        while time.monotonic() < deadline and process.session_pids(sid):
            time.sleep(0.05)
        if not process.session_pids(sid):
            break
    return found


def _secs(seconds: float) -> str:
    from sessionctl.units import format_duration

    return format_duration(seconds)
