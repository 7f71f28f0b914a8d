"""How an agent run ended, in one word and one line: finished, refused tools, API error, ...

Read from what sessionctl saw (its own stop reason, the exit code) and what the agent said in its
transcript (Claude Code's ``result`` subtype, ``permission_denials`` and ``api_retry`` lines;
Codex's ``error`` and ``turn.failed`` events). The console, the session record, the log entry
and ``run --json`` all show the same :class:`Ending`.

An ending is an *infrastructure* failure when the agent never got a working model (the API
refused the key, could not be reached, ...), or when its own permission rules refused every
tool call it made or any ``sessionctl`` command: none of that says anything about the step the
session was working on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sessionctl.agent.transcript import TranscriptSummary

FINISHED = "finished"
REFUSED_TOOLS = "refused_tools"
API_ERROR = "api_error"
TURN_LIMIT = "turn_limit"
BUDGET_LIMIT = "budget_limit"
TIMEOUT = "timeout"
KILLED = "killed"
FAILED = "failed"  # exited non-zero for a reason the transcript does not tell

KINDS = (FINISHED, REFUSED_TOOLS, API_ERROR, TURN_LIMIT, BUDGET_LIMIT, TIMEOUT, KILLED, FAILED)
_SHOWN = {
    FINISHED: "finished",
    REFUSED_TOOLS: "refused tools",
    API_ERROR: "API error",
    TURN_LIMIT: "turn limit",
    BUDGET_LIMIT: "budget limit",
    TIMEOUT: "timeout",
    KILLED: "killed",
    FAILED: "failed",
}


@dataclass(frozen=True)
class Ending:
    """One agent run's ending: its kind, one line saying why, and whether the step is to blame."""

    kind: str
    message: str
    infrastructure: bool = False
    refused: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``API error``, ``refused tools``, ... (what a table column shows)."""
        return label(self.kind)

    def text(self) -> str:
        """``API error: Invalid API key · Fix external API key`` (a log entry's line)."""
        return self.label if self.kind == FINISHED else f"{self.label}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "infrastructure": self.infrastructure,
            "refused": list(self.refused),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ending:
        return cls(
            str(d.get("kind") or FAILED),
            str(d.get("message") or ""),
            bool(d.get("infrastructure")),
            tuple(str(x) for x in d.get("refused") or ()),
        )


def label(kind: str) -> str:
    """How a kind is shown: ``api_error`` -> ``API error``, ``refused_tools`` -> ``refused tools``
    (a launch exit reason such as ``budget`` or ``interrupted`` shows as it is)."""
    return _SHOWN.get(kind) or kind.replace("_", " ")


def classify(
    *,
    exit_reason: str,
    exit_code: int | None,
    detail: str,
    summary: TranscriptSummary,
    preset: str | None = None,
) -> Ending:
    """Name how a run ended; ``exit_reason`` is launch's (exited, timeout, api_error, ...).

    ``preset``: the agent was launched as ``claude`` or ``codex``, whose first act is to call
    its model, so a whole session timeout without one model reply is an API that never
    answered, whether or not the CLI got to print a retry line.
    """
    s = summary
    subtype = s.result_subtype or ""
    first_error = s.errors[0] if s.errors else ""
    no_model = not s.model_answered
    if exit_reason == API_ERROR or (no_model and s.api_error and exit_reason != "interrupted"):
        return Ending(API_ERROR, _api_message(s, exit_reason, detail), infrastructure=True)
    silent = no_model and not s.tool_calls and not s.denied
    if exit_reason == "timeout" and silent and preset in ("claude", "codex"):
        return Ending(API_ERROR, _api_message(s, exit_reason, detail), infrastructure=True)
    if exit_reason == "timeout":
        return Ending(TIMEOUT, f"the agent was stopped: {detail or 'timeout'}")
    if exit_reason == "budget":
        return Ending(BUDGET_LIMIT, f"the agent was stopped: {detail or 'budget'}")
    if exit_reason in ("interrupted", "stopped", "lost"):
        return Ending(KILLED, f"the agent was stopped: {detail or exit_reason}")
    if subtype == "error_max_turns":
        return Ending(TURN_LIMIT, first_error or "the agent reached its turn limit")
    if subtype == "error_max_budget_usd":
        return Ending(BUDGET_LIMIT, first_error or "the agent reached its budget")
    if s.denied:
        refused = tuple(dict.fromkeys(s.denied))
        # The harness's fault, not the step's: nothing was allowed, or `sessionctl` itself was
        # refused (without it the session can neither measure nor close).
        everything = s.tool_calls > 0 and len(s.denied) >= s.tool_calls
        everything = everything or any(_runs_sessionctl(d) for d in refused)
        return Ending(
            REFUSED_TOOLS,
            f"the agent's permission rules refused {len(s.denied)} of {s.tool_calls} tool "
            f"call(s): {'; '.join(refused)}",
            infrastructure=everything,
            refused=refused,
        )
    if exit_code not in (0, None) or s.is_error:
        why = first_error or s.api_error or (s.result_text if s.is_error else None)
        code = f"the agent exited with code {exit_code}" if exit_code not in (0, None) else ""
        message = "; ".join(x for x in (code, why) if x) or "the agent reported an error"
        return Ending(FAILED, message)
    return Ending(FINISHED, "the agent finished by itself")


def _runs_sessionctl(call: str) -> bool:
    """``Bash: sessionctl bench ...`` (as :func:`~sessionctl.agent.transcript.describe_tool`)."""
    command = call.removeprefix("Bash: ").lstrip()
    return call.startswith("Bash: ") and command.split(" ", 1)[0].endswith("sessionctl")


def _api_message(s: TranscriptSummary, exit_reason: str, detail: str) -> str:
    status = (
        f" (HTTP {s.api_status})"
        if s.api_status and f"{s.api_status}" not in (s.api_error or "")
        else ""
    )
    said = (s.api_error or "no answer from the API") + status
    if exit_reason in ("timeout", API_ERROR) and detail:
        return f"{said}; {detail}"
    if s.api_retries:
        return f"{said} (after {s.api_retries} {'retry' if s.api_retries == 1 else 'retries'})"
    return said
