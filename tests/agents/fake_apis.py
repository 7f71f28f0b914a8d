"""Local fakes of the Anthropic Messages API and the OpenAI Responses API, for the real agent CLIs.

Each fake answers every model request with the next scripted step, streamed as server-sent
events in the APIs' wire format. Which step comes next is read from the request itself (how many
tool results the conversation already holds), so a retried request gets the same answer and the
fakes keep no per-conversation state. A step is a list of actions:

- ``("bash", "sessionctl record ...")`` — a shell tool call;
- ``("read", "/abs/path")`` — a file read (Claude's Read tool, needed before a Write; Codex: cat);
- ``("write", "/abs/path", "content")`` — a file write (Claude's Write tool; Codex uses bash);
- ``("text", "...")`` — a plain message (a step made only of text ends the conversation).

``status`` makes every request fail with that HTTP status (e.g. 401) and the API's own error body.
Requests that are not the agent's main loop (Claude's side queries without tools) get a short
text answer. Every request body is kept in ``requests`` for the tests to look at.
"""

from __future__ import annotations

import itertools
import json
import shlex
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Action = tuple[str, ...]
Step = Sequence[Action]

ANTHROPIC_401 = {
    "type": "error",
    "error": {"type": "authentication_error", "message": "invalid x-api-key"},
}
OPENAI_401 = {
    "error": {
        "message": "Incorrect API key provided: sk-fake",
        "type": "invalid_request_error",
        "code": "invalid_api_key",
    }
}


@dataclass
class Script:
    """What the fake model does: one step per request, then a closing message."""

    steps: list[Step]
    usage_in: int = 1000  # input tokens reported per reply
    usage_out: int = 50
    status: int | None = None  # answer every request with this HTTP error
    requests: list[dict[str, Any]] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def step(self, index: int) -> Step:
        if index < len(self.steps):
            return self.steps[index]
        return [("text", "Session done.")]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        # Codex tries a WebSocket first and falls back to HTTPS; model lists are optional.
        self._json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {}
        script = self.server.script
        script.requests.append({"path": self.path, "body": body})
        if script.status is not None:
            err = ANTHROPIC_401 if self.server.kind == "anthropic" else OPENAI_401
            self._json(script.status, err)
            return
        if self.server.kind == "anthropic":
            if "count_tokens" in self.path:
                self._json(200, {"input_tokens": script.usage_in})
                return
            self._sse(_anthropic_events(script, body))
        else:
            self._sse(_openai_events(script, body))

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        for name, data in events:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, kind: str, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.kind = kind
        self.script = script


class FakeAPI:
    """A running fake (``kind``: ``anthropic`` or ``openai``) on 127.0.0.1; use as a context."""

    def __init__(self, kind: str, script: Script) -> None:
        self.server = _Server(kind, script)
        self.script = script
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the Anthropic Messages API -----------------------------------------------------------------


def _anthropic_events(script: Script, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    messages = body.get("messages") or []
    main = any(t.get("name") == "Bash" for t in body.get("tools") or ())
    done = sum(1 for m in messages if m.get("role") == "assistant")
    step: Step = script.step(done) if main else [("text", "ok")]
    n = next(script.ids)
    blocks: list[dict[str, Any]] = []
    for action in step:
        if action[0] == "bash":
            blocks.append(_tool_use(n, len(blocks), "Bash", {"command": action[1]}))
        elif action[0] == "read":
            blocks.append(_tool_use(n, len(blocks), "Read", {"file_path": action[1]}))
        elif action[0] == "write":
            blocks.append(
                _tool_use(n, len(blocks), "Write", {"file_path": action[1], "content": action[2]})
            )
        else:
            blocks.append({"type": "text", "text": action[1]})
    usage = {
        "input_tokens": script.usage_in,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_fake{n}",
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model") or "claude-fake",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage,
                },
            },
        )
    ]
    for i, block in enumerate(blocks):
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            start = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            (
                "content_block_start",
                {"type": "content_block_start", "index": i, "content_block": start},
            ),
            ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": i}),
        ]
    tool = any(b["type"] == "tool_use" for b in blocks)
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": script.usage_out},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def _tool_use(n: int, i: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_fake{n}_{i}", "name": name, "input": args}


# --- the OpenAI Responses API -------------------------------------------------------------------


def _openai_events(script: Script, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    items = body.get("input") or []
    done = sum(
        1
        for it in items
        if isinstance(it, dict)
        and it.get("type") in ("function_call_output", "custom_tool_call_output")
    )
    # One tool call per request: the step index counts the calls already answered.
    flat: list[Action] = [a for step in script.steps for a in step]
    n = next(script.ids)
    rid = f"resp_fake{n}"
    tools = {t.get("name") for t in body.get("tools") or () if isinstance(t, dict)}
    out: list[dict[str, Any]] = []
    if done < len(flat) and flat[done][0] in ("bash", "read", "write"):
        action = flat[done]
        cmd = action[1]
        if action[0] == "read":
            cmd = f"cat {shlex.quote(action[1])}"
        elif action[0] == "write":
            cmd = f"printf %s {shlex.quote(action[2])} > {shlex.quote(action[1])}"
        out.append(_function_call(n, tools, cmd))
    else:
        text = flat[done][1] if done < len(flat) else "Session done."
        out.append(
            {
                "type": "message",
                "id": f"msg_fake{n}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"type": "response.created", "response": {"id": rid}}),
    ]
    for i, item in enumerate(out):
        events.append(
            (
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": i, "item": item},
            )
        )
    usage = {
        "input_tokens": script.usage_in,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": script.usage_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": script.usage_in + script.usage_out,
    }
    events.append(
        (
            "response.completed",
            {"type": "response.completed", "response": {"id": rid, "usage": usage}},
        )
    )
    return events


def _function_call(n: int, tools: set[Any], cmd: str) -> dict[str, Any]:
    if "shell_command" in tools:
        name, args = "shell_command", {"command": cmd}
    elif "exec_command" in tools:
        name, args = "exec_command", {"cmd": cmd}
    else:
        name, args = "shell", {"command": ["bash", "-lc", cmd]}
    return {
        "type": "function_call",
        "id": f"fc_fake{n}",
        "call_id": f"call_fake{n}",
        "name": name,
        "arguments": json.dumps(args),
        "status": "completed",
    }
