"""Presets, and transcript parsing on recorded Claude Code stream-json and Codex JSONL files."""

from __future__ import annotations

import json
import os
import sysconfig
from pathlib import Path

import pytest

from sessionctl.agent import presets
from sessionctl.agent.transcript import Transcript, describe_tool, over_budget, parse_file
from sessionctl.campaign.model import AgentSpec
from sessionctl.errors import UsageError

DATA = Path(__file__).parent / "data" / "transcripts"
CLAUDE_PRICES = {"input": 3.0, "cache_write": 3.75, "cached_input": 0.3, "output": 15.0}


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def tool_calls(t: Transcript, name: str) -> list[str]:
    """Feed the recorded transcript ``name`` to ``t``; the tool calls it shows, one line each."""
    return [e.text for e in t.feed_all(lines(name)) if e.kind == "tool_call"]


# --- Claude Code stream-json --------------------------------------------------------------------


def test_claude_success_extracts_cost_turns_session_and_result() -> None:
    t = parse_file(DATA / "claude-success.jsonl", "claude")
    s = t.summary()
    assert s.session_id == "4f1c2a9e-6b1d-4c3e-9a51-0d2f7e8b1a22"
    assert s.model == "claude-sonnet-4-5-20250929"
    assert s.turns == 11  # num_turns from the result wins over the assistant messages counted
    assert s.cost_usd == pytest.approx(0.4231)
    assert s.cost_source == "reported"
    assert s.result_subtype == "success" and not s.is_error
    assert s.duration_ms == 84213
    assert s.result_text == "Session 3 is closed: the index doubled lookup throughput."
    # One line per content block repeats the message id and usage: counted once each.
    assert (s.input_tokens, s.output_tokens, s.cached_input_tokens) == (34, 446, 63220)


def test_claude_tool_calls_are_shown_one_line_each() -> None:
    t = Transcript("claude")
    assert tool_calls(t, "claude-success.jsonl") == [
        "Bash: sessionctl bench lookup --phase baseline",
        "Read: /work/app/app/query.py",
        "Edit: /work/app/app/query.py",
        "Bash: sessionctl bench lookup --phase remeasure",
        "Bash: sessionctl close --summary 'Index customer_id: 2x QPS'",
    ]
    assert t.activity == "Bash: sessionctl close --summary 'Index customer_id: 2x QPS'"


def test_claude_cost_is_unknown_until_the_result_unless_tokens_are_priced() -> None:
    t = Transcript("claude")
    t.feed_all(lines("claude-success.jsonl")[:-1])
    assert t.cost_usd is None and t.turns == 6
    priced = Transcript("claude", token_prices=CLAUDE_PRICES)
    priced.feed_all(lines("claude-success.jsonl")[:-1])
    assert priced.cost_usd is not None and 0.05 < priced.cost_usd < 0.4231


def test_claude_budget_kill_decision_line_by_line() -> None:
    src = lines("claude-success.jsonl")
    # Reported cost only: the decision can flip only on the final result line.
    t = Transcript("claude")
    flips = [i for i, line in enumerate(src) if (t.feed(line), over_budget(t.cost_usd, 0.40))[1]]
    assert flips and flips[0] == len(src) - 1
    t2 = Transcript("claude")
    assert not any((t2.feed(line), over_budget(t2.cost_usd, 0.50))[1] for line in src)
    # With token prices the estimate crosses $0.05 mid-run, at the second API message (the Read).
    t3 = Transcript("claude", token_prices=CLAUDE_PRICES)
    first = next(
        i for i, line in enumerate(src) if (t3.feed(line), over_budget(t3.cost_usd, 0.05))[1]
    )
    assert json.loads(src[first])["message"]["content"][0]["name"] == "Read"


def test_claude_max_turns_result() -> None:
    t = Transcript("claude")
    events = t.feed_all(lines("claude-max-turns.jsonl"))
    s = t.summary()
    assert s.result_subtype == "error_max_turns" and s.is_error
    assert s.turns == 3 and s.cost_usd == pytest.approx(0.0912)
    assert s.result_text is None
    assert [e.text for e in events if e.kind == "tool_call"] == [
        "Grep: fetchone app",
        "TodoWrite: 2 items",
    ]
    assert any(e.kind == "tool_result" and e.text.startswith("error: Permission") for e in events)


# --- Codex exec --json ----------------------------------------------------------------------------


def test_codex_success_extracts_thread_usage_and_tools() -> None:
    t = parse_file(DATA / "codex-success.jsonl", "codex")
    s = t.summary()
    assert s.session_id == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    assert s.turns == 1 and s.result_subtype == "success" and not s.is_error
    assert (s.input_tokens, s.cached_input_tokens, s.output_tokens) == (26549, 22272, 1590)
    assert s.cost_usd is None  # Codex reports tokens, not money
    assert s.tool_calls == 4
    assert s.result_text is not None and s.result_text.startswith("Added an index")


def test_codex_tool_calls_and_priced_tokens() -> None:
    t = Transcript("codex", token_prices={"input": 1.25, "cached_input": 0.125, "output": 10.0})
    assert tool_calls(t, "codex-success.jsonl") == [
        "$ bash -lc 'sessionctl bench lookup --phase baseline'",
        "edit: add /work/app/migrations/001_orders_customer_idx.sql",
        "$ bash -lc 'sessionctl bench lookup --phase remeasure'",
        "search: postgres covering index include",
    ]
    # Cached tokens are part of input_tokens in Codex's usage: priced once, at the cached rate.
    expected = ((26549 - 22272) * 1.25 + 22272 * 0.125 + 1590 * 10.0) / 1e6
    assert t.cost_usd == pytest.approx(expected)
    assert t.summary().cost_source == "tokens"
    assert over_budget(t.cost_usd, 0.02) and not over_budget(t.cost_usd, 0.03)


def test_codex_failed_turn() -> None:
    s = parse_file(DATA / "codex-failed.jsonl", "codex").summary()
    assert s.is_error and s.result_subtype == "turn.failed"
    assert any("context window" in e for e in s.errors)


# --- auto detection and robustness ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"), [("claude-success.jsonl", "claude"), ("codex-success.jsonl", "codex")]
)
def test_auto_detects_the_format(name: str, fmt: str) -> None:
    t = Transcript("auto")
    t.feed_all(["some banner text", *lines(name)])
    assert t.format == fmt and t.tool_calls >= 4


def test_plain_text_and_our_own_records_are_tolerated() -> None:
    t = Transcript("auto")
    t.feed_all(
        [
            json.dumps({"type": "sessionctl", "event": "launch"}),
            json.dumps({"type": "stderr", "text": "warning"}),
            "{not json",
            "running the benchmark...",
        ]
    )
    assert t.format == "auto" and t.activity == "running the benchmark..." and t.cost_usd is None


def test_describe_tool_falls_back_to_the_first_string_argument() -> None:
    assert (
        describe_tool("mcp__db__query", {"limit": 3, "sql": "select 1"})
        == "mcp__db__query: select 1"
    )
    assert describe_tool("Bash", {"command": "echo   a\n  b"}) == "Bash: echo a b"
    assert len(describe_tool("Bash", {"command": "x" * 500})) == 160


# --- presets ----------------------------------------------------------------------------------


def build(
    spec: AgentSpec, prompt: str = "# Prompt\nDo one thing.", **kw: object
) -> presets.AgentCommand:
    args = {
        "prompt": prompt,
        "prompt_file": Path("/s/p.md"),
        "session": 7,
        "campaign": "demo",
        "root": Path("/w"),
    }
    args.update(kw)
    return presets.build(spec, **args)  # type: ignore[arg-type]


def test_claude_preset_argv_with_turns_budget_and_extra_args() -> None:
    cmd = build(
        AgentSpec(preset="claude", max_turns=30, args=("--model", "sonnet")), budget_usd=2.0
    )
    assert cmd.argv == (
        "claude", "-p", "# Prompt\nDo one thing.", "--output-format", "stream-json", "--verbose",
        "--max-turns", "30", "--max-budget-usd", "2",
        "--allowedTools", "Edit,Write,Bash(sessionctl:*)", "--model", "sonnet",
    )  # fmt: skip
    assert cmd.format == "claude" and cmd.native_budget
    assert cmd.shown[2] == "<prompt: 22 chars>"


def test_claude_preset_allows_edits_sessionctl_and_the_benchmarks_without_bypassing() -> None:
    cmd = build(AgentSpec(preset="claude"), allow_commands=("pgbench", "/opt/db bench"))
    allowed = cmd.argv[cmd.argv.index("--allowedTools") + 1]
    assert allowed == "Edit,Write,Bash(sessionctl:*),Bash(pgbench:*),Bash(/opt/db bench:*)"
    # Refused as root, so never passed; a campaign that chose its own permission mode keeps it.
    assert "--dangerously-skip-permissions" not in cmd.argv
    own = build(AgentSpec(preset="claude", args=("--permission-mode", "acceptEdits")))
    assert "--allowedTools" not in own.argv
    assert own.argv[-2:] == ("--permission-mode", "acceptEdits")


def test_preset_args_never_reach_another_preset() -> None:
    spec = AgentSpec(
        preset="claude",
        args=("--allowedTools", "Bash(cargo:*)"),
        claude_args=("--model", "opus"),
        codex_args=("-m", "gpt-5-codex"),
    )
    claude = build(spec)
    assert claude.argv[-4:] == ("--allowedTools", "Bash(cargo:*)", "--model", "opus")
    codex = build(spec, preset="codex")  # `--agent codex` on a claude campaign
    assert "--allowedTools" not in codex.argv and "--model" not in codex.argv
    assert codex.argv[-3:] == ("-m", "gpt-5-codex", "# Prompt\nDo one thing.")


def test_codex_preset_passes_the_prompt_last_and_runs_in_the_root() -> None:
    cmd = build(AgentSpec(preset="codex"))
    assert cmd.argv[:3] == ("codex", "exec", "--json")
    # Loopback sockets for `sessionctl bench`, and no login shell to reset PATH.
    settings = [cmd.argv[i + 1] for i, a in enumerate(cmd.argv) if a == "-c"]
    assert settings == ["sandbox_workspace_write.network_access=true", "allow_login_shell=false"]
    assert cmd.argv[cmd.argv.index("--sandbox") + 1] == "workspace-write"
    assert cmd.argv[cmd.argv.index("-C") + 1] == "/w"
    assert (
        cmd.argv[-1] == "# Prompt\nDo one thing."
        and cmd.format == "codex"
        and not cmd.native_budget
    )


@pytest.mark.parametrize(
    "own",
    [
        ("--sandbox", "danger-full-access"),
        ("-s", "danger-full-access"),
        ("--sandbox=read-only",),
        ("--dangerously-bypass-approvals-and-sandbox",),
    ],
)
def test_codex_args_that_choose_a_sandbox_replace_the_presets(own: tuple[str, ...]) -> None:
    # `codex exec` fails with "the argument '--sandbox' cannot be used multiple times".
    cmd = build(AgentSpec(preset="codex", codex_args=own))
    assert "workspace-write" not in cmd.argv and "--sandbox" not in cmd.argv[: -1 - len(own)]
    assert cmd.argv[-1 - len(own) : -1] == own
    assert cmd.argv[cmd.argv.index("-C") + 1] == "/w"  # the rest of the preset stays


def test_command_preset_expands_placeholders_once() -> None:
    spec = AgentSpec(
        preset="command",
        argv=("agent", "--file", "{prompt_file}", "-n{session}", "{prompt}", "{x}"),
    )
    cmd = build(spec, prompt="keep {session} and {{braces}}")
    assert cmd.argv == ("agent", "--file", "/s/p.md", "-n7", "keep {session} and {{braces}}", "{x}")
    assert cmd.format == "auto"


def test_preset_override_and_errors() -> None:
    assert build(AgentSpec(preset="command", argv=("a",)), preset="claude").argv[0] == "claude"
    with pytest.raises(UsageError, match="needs an argv template"):
        build(AgentSpec(preset="claude"), preset="command")
    with pytest.raises(UsageError, match="unknown preset"):
        build(AgentSpec(), preset="gemini")
    with pytest.raises(UsageError, match=r"\{prompt_file\}"):
        build(AgentSpec(preset="claude"), prompt="x" * 200_000)


def test_agent_env_points_the_agent_at_its_session() -> None:
    env = presets.agent_env(
        AgentSpec(env={"EXTRA": "1"}),
        session=4,
        campaign="demo",
        root=Path("/w"),
        base={"PATH": "/bin"},
    )
    # This sessionctl's folder comes first, so the agent's `sessionctl` is this one.
    scripts = sysconfig.get_path("scripts")
    assert os.path.exists(os.path.join(scripts, "sessionctl"))
    assert env == {
        "PATH": f"{scripts}:/bin",
        "EXTRA": "1",
        "SESSIONCTL_SESSION": "4",
        "SESSIONCTL_CAMPAIGN": "demo",
        "SESSIONCTL_ROOT": "/w",
        "SESSIONCTL_AUTHOR": "agent",
        "SESSIONCTL_RUN": str(os.getpid()),  # its close/abort become requests to this loop
    }
    assert (
        presets.agent_env(AgentSpec(), session=4, campaign="d", root=Path("/w"), run_id="r7")[
            "SESSIONCTL_RUN"
        ]
        == "r7"
    )


def test_campaign_agent_fields_for_presets_validate() -> None:
    from ruamel.yaml import YAML

    from sessionctl.campaign.schema import build as build_campaign

    doc = YAML(typ="rt").load(
        "schema: 1\nrevision: 1\ntitle: t\n"
        "agent:\n  preset: codex\n  args: --model gpt-5-codex\n"
        "  token_prices: {input: 1.25, cached_input: 0.125, output: 10}\n"
        "audit:\n  max_areas: 2\n"
    )
    c = build_campaign(doc, name="t", source="prompts/t.yaml")
    assert c.agent.args == ("--model", "gpt-5-codex")
    assert c.agent.token_prices == {"input": 1.25, "cached_input": 0.125, "output": 10.0}
    assert c.audit.max_areas == 2
    cmd = build(c.agent)
    assert cmd.argv[-3:] == ("--model", "gpt-5-codex", "# Prompt\nDo one thing.")
