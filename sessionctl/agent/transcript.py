"""Read an agent's output stream: Claude Code ``stream-json``, Codex ``exec --json``, or plain text.

A :class:`Transcript` is fed one line at a time (as the agent prints them) and keeps what the
loop needs while the agent runs — the cost so far, turns, the last tool call — and what the
session records afterwards (:class:`TranscriptSummary`).

Claude Code reports money only in its ``result`` message (``total_cost_usd``); Codex reports
only tokens (``turn.completed.usage``). Where a campaign gives ``agent.token_prices`` (USD per
million tokens) the token counts are priced too, so a budget can be enforced mid-run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sessionctl.agent.presets import Format

_CLAUDE_TYPES = frozenset({"system", "assistant", "user", "result", "stream_event"})
_OURS = frozenset({"sessionctl", "stderr"})  # lines launch.py writes into the transcript itself
_SHORT = 160
_HTTP_STATUS = re.compile(r"\bstatus (\d{3})\b")


@dataclass(frozen=True)
class AgentEvent:
    """One thing worth showing: a tool call, a tool result, a message, the final result."""

    kind: str  # "init" | "tool_call" | "tool_result" | "message" | "turn" | "result" | "error"
    text: str = ""


@dataclass(frozen=True)
class TranscriptSummary:
    """What a finished (or killed) agent run amounted to, as recorded into the session."""

    format: str
    session_id: str | None = None
    model: str | None = None
    turns: int = 0
    cost_usd: float | None = None
    cost_source: str | None = None  # "reported" by the agent, or "tokens" priced by us
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0
    last_tool: str | None = None
    result_subtype: str | None = None
    is_error: bool = False
    result_text: str | None = None
    duration_ms: int | None = None
    errors: tuple[str, ...] = ()
    # How it ended, as the agent said it (read by sessionctl.agent.ending)
    model_answered: bool = False  # at least one real model reply (not a synthetic error)
    api_error: str | None = None  # the API's (or the CLI's) message for a failed API call
    api_status: int | None = None  # its HTTP status, when known
    api_retries: int = 0  # failed API calls the agent retried
    auth_failures: int = 0  # of which were rejected credentials (HTTP 401/403)
    denied: tuple[str, ...] = ()  # tool calls the agent's permission rules refused
    terminal_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["errors"] = list(self.errors)
        d["denied"] = list(self.denied)
        return d


def one_line(text: str, limit: int = _SHORT) -> str:
    """Collapse whitespace and cut to ``limit`` characters (for a live status line)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_tool(name: str, args: Mapping[str, Any] | None) -> str:
    """A one-line description of a Claude Code tool call, e.g. ``Bash: sessionctl record ...``."""
    args = args or {}
    keys = {
        "Bash": ("command",),
        "Read": ("file_path",),
        "Edit": ("file_path",),
        "MultiEdit": ("file_path",),
        "Write": ("file_path",),
        "NotebookEdit": ("notebook_path",),
        "Grep": ("pattern", "path"),
        "Glob": ("pattern",),
        "WebFetch": ("url",),
        "WebSearch": ("query",),
        "Task": ("description",),
    }.get(name)
    if name == "TodoWrite":
        return f"TodoWrite: {len(args.get('todos') or [])} items"
    parts: list[str] = []
    if keys:
        parts = [str(args[k]) for k in keys if args.get(k)]
    else:
        first = next((v for v in args.values() if isinstance(v, str) and v), None)
        parts = [first] if first else []
    return one_line(f"{name}: {' '.join(parts)}" if parts else name)


class Transcript:
    """Incremental parser for one agent run's output."""

    def __init__(
        self, fmt: Format = "auto", *, token_prices: Mapping[str, float] | None = None
    ) -> None:
        self.format: str = fmt
        self.prices = dict(token_prices or {})
        self.session_id: str | None = None
        self.model: str | None = None
        self.turns = 0
        self.reported_cost: float | None = None
        self.input_tokens = 0
        self.cached_input_tokens = 0
        self.cache_write_tokens = 0
        self.output_tokens = 0
        self.tool_calls = 0
        self.last_tool: str | None = None
        self.last_text: str | None = None
        self.result_subtype: str | None = None
        self.is_error = False
        self.result_text: str | None = None
        self.duration_ms: int | None = None
        self.errors: list[str] = []
        self.model_answered = False
        self.api_error: str | None = None
        self.api_status: int | None = None
        self.api_retries = 0
        self.auth_failures = 0
        self.denied: list[str] = []
        self.terminal_reason: str | None = None
        self.lines = 0
        # Claude repeats an assistant message once per content block with the same usage.
        self._claude_usage: dict[str, dict[str, int]] = {}
        self._codex_started: set[str] = set()

    # --- reading -----------------------------------------------------------------------------

    def feed(self, line: str) -> list[AgentEvent]:
        """Take one output line; return the events it carried (possibly none)."""
        line = line.strip()
        if not line:
            return []
        self.lines += 1
        obj: Any = None
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = None
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            self.last_text = one_line(line)
            return []
        kind = obj["type"]
        if kind in _OURS:
            return []
        if self.format == "auto":
            if kind in _CLAUDE_TYPES:
                self.format = "claude"
            elif kind.startswith(("thread.", "turn.", "item.")) or kind == "error":
                self.format = "codex"
            else:
                return []
        if self.format == "claude":
            return self._claude(obj)
        if self.format == "codex":
            return self._codex(obj)
        return []

    def feed_all(self, lines: Iterable[str]) -> list[AgentEvent]:
        out: list[AgentEvent] = []
        for line in lines:
            out.extend(self.feed(line))
        return out

    # --- Claude Code stream-json ---------------------------------------------------------------

    def _claude(self, obj: dict[str, Any]) -> list[AgentEvent]:
        kind = obj["type"]
        events: list[AgentEvent] = []
        if obj.get("session_id"):
            self.session_id = str(obj["session_id"])
        if kind == "system":
            if obj.get("subtype") == "init":
                self.model = obj.get("model") or self.model
                events.append(AgentEvent("init", f"model {self.model or '?'}"))
            elif obj.get("subtype") == "api_retry":
                events.append(self._claude_retry(obj))
        elif kind == "assistant":
            msg = obj.get("message") or {}
            if msg.get("model") == "<synthetic>" or obj.get("error"):
                # Claude Code's own message about a failed API call, not a model reply.
                text = one_line(_text_of(msg.get("content")) or str(obj.get("error")), 500)
                self.api_error = text
                self.last_text = one_line(text)
                return [AgentEvent("error", text)]
            self.model_answered = True
            mid = str(msg.get("id") or f"line{self.lines}")
            if mid not in self._claude_usage:
                self.turns += 1
                events.append(AgentEvent("turn", str(self.turns)))
            usage = msg.get("usage")
            if isinstance(usage, dict):
                self._claude_usage[mid] = {k: _int(v) for k, v in usage.items() if _is_num(v)}
                self._sum_claude_usage()
            for block in msg.get("content") or ():
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "tool_use":
                    self.tool_calls += 1
                    self.last_tool = describe_tool(
                        str(block.get("name") or "?"), block.get("input")
                    )
                    events.append(AgentEvent("tool_call", self.last_tool))
                elif block.get("type") == "text" and block.get("text"):
                    self.last_text = one_line(block["text"])
                    events.append(AgentEvent("message", self.last_text))
        elif kind == "user":
            msg = obj.get("message") or {}
            content = msg.get("content")
            for block in content if isinstance(content, list) else ():
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    text = _text_of(block.get("content"))
                    flag = "error: " if block.get("is_error") else ""
                    events.append(AgentEvent("tool_result", one_line(flag + text)))
        elif kind == "result":
            self.result_subtype = str(obj.get("subtype") or "") or None
            self.is_error = bool(obj.get("is_error")) or (
                self.result_subtype is not None and self.result_subtype.startswith("error")
            )
            cost: Any = obj.get("total_cost_usd", obj.get("cost_usd"))
            if _is_num(cost):
                # Cumulative per Claude session; keep the largest in case several results stream.
                self.reported_cost = max(float(cost), self.reported_cost or 0.0)
            if _is_num(obj.get("num_turns")):
                self.turns = max(self.turns, int(obj["num_turns"]))
            if _is_num(obj.get("duration_ms")):
                self.duration_ms = int(obj["duration_ms"])
            if isinstance(obj.get("result"), str):
                self.result_text = one_line(obj["result"], 500)
            for err in obj.get("errors") or ():
                self.errors.append(one_line(str(err)))
            if _is_num(obj.get("api_error_status")):
                self.api_status = int(obj["api_error_status"])
            if self.is_error and self.result_text and not self.model_answered:
                self.api_error = self.result_text
            if isinstance(obj.get("terminal_reason"), str):
                self.terminal_reason = obj["terminal_reason"]
            for d in obj.get("permission_denials") or ():
                if isinstance(d, dict):
                    self.denied.append(
                        describe_tool(str(d.get("tool_name") or "?"), d.get("tool_input"))
                    )
            self._claude_totals(obj)
            events.append(AgentEvent("result", self.result_subtype or "result"))
        return events

    def _claude_retry(self, obj: dict[str, Any]) -> AgentEvent:
        """A ``system/api_retry`` line: a failed API call Claude Code will retry."""
        self.api_retries += 1
        status = obj.get("error_status")
        self.api_status = _int(status) if _is_num(status) else self.api_status
        if status in (401, 403):
            self.auth_failures += 1
        what = str(obj.get("error") or "error")
        # No HTTP status: nothing answered (refused, unresolvable, timed out).
        no_answer = f"no answer from the API ({what})"
        self.api_error = f"HTTP {status}: {what}" if _is_num(status) else no_answer
        attempt, most = obj.get("attempt"), obj.get("max_retries")
        self.last_text = one_line(f"{self.api_error} (retry {attempt}/{most})")
        return AgentEvent("error", self.last_text)

    def _claude_totals(self, obj: dict[str, Any]) -> None:
        """The true token totals: per-message usage is only the stream's first snapshot."""
        models = obj.get("modelUsage")
        if isinstance(models, dict) and models:
            rows = [m for m in models.values() if isinstance(m, dict)]
            self.input_tokens = sum(_int(m.get("inputTokens")) for m in rows)
            self.cached_input_tokens = sum(_int(m.get("cacheReadInputTokens")) for m in rows)
            self.cache_write_tokens = sum(_int(m.get("cacheCreationInputTokens")) for m in rows)
            self.output_tokens = sum(_int(m.get("outputTokens")) for m in rows)
            return
        usage = obj.get("usage")
        if isinstance(usage, dict) and any(_int(v) for v in usage.values() if _is_num(v)):
            self.input_tokens = _int(usage.get("input_tokens"))
            self.cached_input_tokens = _int(usage.get("cache_read_input_tokens"))
            self.cache_write_tokens = _int(usage.get("cache_creation_input_tokens"))
            self.output_tokens = _int(usage.get("output_tokens"))

    def _sum_claude_usage(self) -> None:
        u = self._claude_usage.values()
        self.input_tokens = sum(x.get("input_tokens", 0) for x in u)
        self.cached_input_tokens = sum(x.get("cache_read_input_tokens", 0) for x in u)
        self.cache_write_tokens = sum(x.get("cache_creation_input_tokens", 0) for x in u)
        self.output_tokens = sum(x.get("output_tokens", 0) for x in u)

    # --- Codex exec --json ---------------------------------------------------------------------

    def _codex(self, obj: dict[str, Any]) -> list[AgentEvent]:
        kind = obj["type"]
        events: list[AgentEvent] = []
        if kind == "thread.started":
            self.session_id = str(obj.get("thread_id") or "") or None
            events.append(AgentEvent("init", f"thread {self.session_id}"))
        elif kind == "turn.started":
            self.turns += 1
            events.append(AgentEvent("turn", str(self.turns)))
        elif kind == "turn.completed":
            usage = obj.get("usage") or {}
            # Per-turn counts: a multi-turn run adds up.
            self.input_tokens += _int(usage.get("input_tokens"))
            self.cached_input_tokens += _int(usage.get("cached_input_tokens"))
            self.output_tokens += _int(usage.get("output_tokens"))
            if not self.is_error:
                self.result_subtype = "success"
            events.append(AgentEvent("result", "turn completed"))
        elif kind == "turn.failed":
            err = obj.get("error") or {}
            message = one_line(str(err.get("message") if isinstance(err, dict) else err))
            self.is_error = True
            self.result_subtype = "turn.failed"
            self.errors.append(message)
            self._codex_api_error(message)
            events.append(AgentEvent("error", message))
        elif kind == "error":
            message = one_line(str(obj.get("message") or "error"))
            self.errors.append(message)
            if message.startswith("Reconnecting..."):
                self.api_retries += 1
                self.last_text = message
            self._codex_api_error(message)
            events.append(AgentEvent("error", message))
        elif kind in ("item.started", "item.updated", "item.completed"):
            item = obj.get("item") or {}
            events.extend(self._codex_item(kind, item))
        return events

    def _codex_api_error(self, message: str) -> None:
        """Keep the API's message (``Reconnecting... 2/5 (unexpected status 401 ...)``)."""
        inner = message
        if message.startswith("Reconnecting...") and "(" in message and message.endswith(")"):
            inner = message[message.index("(") + 1 : -1]
        self.api_error = inner
        if (m := _HTTP_STATUS.search(inner)) is not None:
            self.api_status = int(m.group(1))
            if self.api_status in (401, 403) and not message.startswith("Reconnecting..."):
                self.auth_failures += 1

    def _codex_item(self, kind: str, item: dict[str, Any]) -> list[AgentEvent]:
        itype = item.get("type")
        iid = str(item.get("id") or "")
        events: list[AgentEvent] = []
        if itype not in ("error", None):
            self.model_answered = True
        if itype in ("command_execution", "mcp_tool_call", "web_search", "file_change"):
            if kind == "item.updated" or (kind == "item.completed" and iid in self._codex_started):
                pass
            else:
                if kind == "item.started":
                    self._codex_started.add(iid)
                self.tool_calls += 1
                self.last_tool = _codex_tool(item)
                events.append(AgentEvent("tool_call", self.last_tool))
            if kind == "item.completed" and itype == "command_execution":
                out = one_line(str(item.get("aggregated_output") or ""))
                events.append(AgentEvent("tool_result", f"exit {item.get('exit_code')}: {out}"))
        elif itype == "agent_message" and kind == "item.completed":
            text = str(item.get("text") or "")
            self.last_text = one_line(text)
            self.result_text = one_line(text, 500)
            events.append(AgentEvent("message", self.last_text))
        elif itype == "error":
            message = one_line(str(item.get("message") or "error"))
            events.append(AgentEvent("error", message))
        return events

    # --- what it adds up to --------------------------------------------------------------------

    @property
    def token_cost(self) -> float | None:
        """The token counts priced with ``token_prices`` (None when no prices are configured)."""
        if not self.prices:
            return None
        p_in = self.prices.get("input", 0.0)
        p_cached = self.prices.get("cached_input", p_in)
        p_write = self.prices.get("cache_write", p_in)
        p_out = self.prices.get("output", 0.0)
        # Codex counts cached tokens inside input_tokens; Claude counts them separately.
        uncached = self.input_tokens - (self.cached_input_tokens if self.format == "codex" else 0)
        total = (
            max(uncached, 0) * p_in
            + self.cached_input_tokens * p_cached
            + self.cache_write_tokens * p_write
            + self.output_tokens * p_out
        )
        return total / 1_000_000

    @property
    def cost_usd(self) -> float | None:
        """Money spent so far: the agent's own report, or priced tokens, whichever is larger."""
        known = [c for c in (self.reported_cost, self.token_cost) if c is not None]
        return max(known) if known else None

    @property
    def activity(self) -> str | None:
        """What to show as the agent's latest action: its last tool call, else its last line."""
        return self.last_tool or self.last_text

    def summary(self) -> TranscriptSummary:
        source = None
        if self.cost_usd is not None:
            source = "reported" if self.cost_usd == self.reported_cost else "tokens"
        return TranscriptSummary(
            format=self.format,
            session_id=self.session_id,
            model=self.model,
            turns=self.turns,
            cost_usd=round(self.cost_usd, 6) if self.cost_usd is not None else None,
            cost_source=source,
            input_tokens=self.input_tokens,
            cached_input_tokens=self.cached_input_tokens,
            output_tokens=self.output_tokens,
            tool_calls=self.tool_calls,
            last_tool=self.last_tool,
            result_subtype=self.result_subtype,
            is_error=self.is_error,
            result_text=self.result_text,
            duration_ms=self.duration_ms,
            errors=tuple(self.errors[-5:]),
            model_answered=self.model_answered,
            api_error=self.api_error,
            api_status=self.api_status,
            api_retries=self.api_retries,
            auth_failures=self.auth_failures,
            denied=tuple(self.denied),
            terminal_reason=self.terminal_reason,
        )


def over_budget(cost_usd: float | None, budget_usd: float | None) -> bool:
    """Whether a run that has spent ``cost_usd`` must be stopped for ``budget_usd``."""
    return budget_usd is not None and cost_usd is not None and cost_usd > budget_usd


def parse_file(
    path: Path, fmt: Format = "auto", *, token_prices: Mapping[str, float] | None = None
) -> Transcript:
    """Parse a whole transcript file (missing file → an empty transcript)."""
    t = Transcript(fmt, token_prices=token_prices)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                t.feed(line)
    except FileNotFoundError:
        pass
    return t


def _codex_tool(item: dict[str, Any]) -> str:
    itype = item.get("type")
    if itype == "command_execution":
        return one_line(f"$ {item.get('command') or ''}")
    if itype == "mcp_tool_call":
        return one_line(f"{item.get('server')}.{item.get('tool')}")
    if itype == "web_search":
        return one_line(f"search: {item.get('query') or ''}")
    changes = item.get("changes") or []
    paths = ", ".join(
        f"{c.get('kind', '?')} {c.get('path', '?')}" for c in changes if isinstance(c, dict)
    )
    return one_line(f"edit: {paths}")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return ""


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(v: Any) -> int:
    return int(v) if _is_num(v) else 0
