"""How agent runs end, read from what the real CLIs printed (tests/data/transcripts/real/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessionctl.agent.ending import Ending, classify
from sessionctl.agent.launch import AgentRun
from sessionctl.agent.transcript import TranscriptSummary, parse_file

REAL = Path(__file__).parent / "data" / "transcripts" / "real"
CODEX_PRICES = {"input": 1.25, "cached_input": 0.125, "output": 10.0}


def read(name: str, **exit: object) -> tuple[TranscriptSummary, dict[str, object]]:
    """The transcript's summary and how sessionctl saw it end (its own exit/stop lines)."""
    path = REAL / name
    seen: dict[str, object] = {"reason": "exited", "exit_code": 0, "detail": ""}
    for line in path.read_text().splitlines():
        obj = json.loads(line) if line.startswith("{") else {}
        if obj.get("type") == "sessionctl" and obj.get("event") == "stop":
            seen["detail"] = obj.get("detail") or ""
        if obj.get("type") == "sessionctl" and obj.get("event") == "exit":
            seen.update(reason=obj["reason"], exit_code=obj["exit_code"])
    seen.update(exit)
    prices = CODEX_PRICES if name.startswith("codex") else None
    return parse_file(path, token_prices=prices).summary(), seen


def ending_of(name: str, **exit: object) -> Ending:
    s, seen = read(name, **exit)
    return classify(
        exit_reason=str(seen["reason"]),
        exit_code=seen["exit_code"],  # type: ignore[arg-type]
        detail=str(seen["detail"]),
        summary=s,
    )


def test_claude_401_is_an_api_error_with_claudes_message_and_blames_nothing() -> None:
    e = ending_of("claude-401-under-sessionctl.jsonl")
    assert e.kind == "api_error" and e.infrastructure
    assert e.message == "Invalid API key · Fix external API key (HTTP 401) (after 10 retries)"
    assert e.text().startswith("API error: Invalid API key")


def test_claude_unreachable_and_the_timeout_that_bounds_it_are_api_errors() -> None:
    e = ending_of("claude-unreachable.jsonl", exit_code=1)
    assert e.kind == "api_error" and e.infrastructure
    assert e.message == "API Error: Unable to connect to API (ConnectionRefused) (after 10 retries)"
    # Stopped by the session timeout while still retrying: still not the step's fault.
    e = ending_of("claude-timeout-sigint-under-sessionctl.jsonl")
    assert e.kind == "api_error" and e.infrastructure
    assert e.message == "no answer from the API (unknown); timeout after 10s"


@pytest.mark.parametrize(
    "name", ["claude-timeout-sigint-under-sessionctl.jsonl", "codex-unreachable.jsonl"]
)
def test_a_timeout_before_any_model_reply_is_an_api_error_without_a_retry_line(
    name: str, tmp_path: Path
) -> None:
    # The same real transcripts, cut as if the timeout came before the CLI printed its first
    # retry: the API never answered, so the step is still not to blame.
    cut = tmp_path / name
    lines = (REAL / name).read_text().splitlines(keepends=True)
    cut.write_text("".join(x for x in lines if "api_retry" not in x and "Reconnecting" not in x))
    s = parse_file(cut).summary()
    assert s.api_retries == 0 and s.api_error is None
    preset = name.split("-", 1)[0]
    e = classify(
        exit_reason="timeout", exit_code=0, detail="timeout after 8s", summary=s, preset=preset
    )
    assert e == Ending("api_error", "no answer from the API; timeout after 8s", True)
    # A command agent's silence says nothing about a model; a reply before the timeout is the
    # agent's own slowness: both stay timeouts.
    e = classify(exit_reason="timeout", exit_code=0, detail="timeout after 8s", summary=s)
    assert e.kind == "timeout" and not e.infrastructure
    answered, _ = read("claude-success-under-sessionctl.jsonl")
    e = classify(
        exit_reason="timeout",
        exit_code=0,
        detail="timeout after 8s",
        summary=answered,
        preset="claude",
    )
    assert e.kind == "timeout" and not e.infrastructure


def test_claude_default_permissions_refuse_every_tool_and_each_is_listed() -> None:
    e = ending_of("claude-default-permissions-under-sessionctl.jsonl")
    assert e.kind == "refused_tools" and e.infrastructure  # every call refused: the harness
    assert e.refused == (
        "Bash: sessionctl bench --phase baseline",
        "Write: /home/dev/shop/migrations/002_covering_idx.sql",
        "Bash: sessionctl bench --phase remeasure",
        "Bash: sessionctl close --summary covering-index-tried",
    )
    assert e.message.startswith("the agent's permission rules refused 4 of 4 tool call(s): ")


def test_claudes_own_turn_and_budget_stops_are_named_with_its_words() -> None:
    turns = ending_of("claude-max-turns-under-sessionctl.jsonl")
    assert (turns.kind, turns.message) == ("turn_limit", "Reached maximum number of turns (2)")
    budget = ending_of("claude-max-budget-under-sessionctl.jsonl")
    assert (budget.kind, budget.message) == ("budget_limit", "Reached maximum budget ($0.2)")
    assert not turns.infrastructure and not budget.infrastructure


def test_claude_token_totals_come_from_the_result_not_the_first_snapshots() -> None:
    s, _ = read("claude-success-under-sessionctl.jsonl")
    # Each assistant line says output_tokens: 1; the result's modelUsage has the totals.
    assert (s.input_tokens, s.output_tokens) == (18000, 2400)
    assert s.cost_usd == 0.15 and s.turns == 5 and s.model_answered
    assert ending_of("claude-success-under-sessionctl.jsonl").kind == "finished"
    s, _ = read("claude-max-budget-under-sessionctl.jsonl")
    assert (s.input_tokens, s.output_tokens) == (40000, 6000)  # its `usage` says 0 and 0


def test_codex_401_and_unreachable_keep_the_apis_message() -> None:
    e = ending_of("codex-401.jsonl", exit_code=1)
    assert e.kind == "api_error" and e.infrastructure
    assert e.message == (
        "unexpected status 401 Unauthorized: Incorrect API key provided: sk-fake, "
        "url: http://127.0.0.1:18051/v1/responses (after 1 retry)"
    )
    e = ending_of("codex-unreachable.jsonl", reason="timeout", detail="timeout after 1m")
    assert e.kind == "api_error" and e.infrastructure
    assert e.message == "Connection failed: error sending request; timeout after 1m"


def test_codex_success_and_its_usage() -> None:
    s, _ = read("codex-success-under-sessionctl.jsonl")
    assert (s.input_tokens, s.cached_input_tokens, s.output_tokens) == (40000, 30000, 1500)
    assert s.tool_calls == 4 and s.model_answered
    assert ending_of("codex-success-under-sessionctl.jsonl").kind == "finished"


def test_codex_overspend_is_flagged_though_nothing_could_stop_it() -> None:
    s, _ = read("codex-budget-ignored-under-sessionctl.jsonl")
    run = AgentRun(
        argv=("codex",),
        preset="codex",
        pid=1,
        exit_code=0,
        exit_reason="exited",
        duration_s=6.0,
        transcript="t",
        summary=s,
        budget_usd=0.01,
    )
    assert run.ending.kind == "finished"
    assert s.cost_usd == pytest.approx(0.78)  # 600,000 in at $1.25/M + 3,000 out at $10/M
    assert run.overspent == (
        "the agent spent $0.78, over the session budget $0.01 "
        "(its usage was reported too late to stop it)"
    )
    entry = run.to_entry()
    assert entry["overspent"] == run.overspent and entry["ending"]["kind"] == "finished"
    within = AgentRun(**{**run.__dict__, "budget_usd": 1.0})
    assert within.overspent is None


def test_an_ending_survives_its_record() -> None:
    e = ending_of("claude-default-permissions-under-sessionctl.jsonl")
    assert Ending.from_dict(json.loads(json.dumps(e.to_dict()))) == e


def test_a_refused_sessionctl_is_the_harness_fault_a_refused_install_is_not() -> None:
    def ending(*denied: str) -> Ending:
        s = TranscriptSummary("claude", tool_calls=3, model_answered=True, denied=denied)
        return classify(exit_reason="exited", exit_code=0, detail="", summary=s)

    assert ending("Bash: sessionctl close --summary x").infrastructure
    assert ending("Bash: /venv/bin/sessionctl bench").infrastructure
    assert not ending("Bash: pip install orjson").infrastructure
    assert not ending("Bash: echo sessionctl").infrastructure
    assert ending("Bash: pip install orjson").kind == "refused_tools"
