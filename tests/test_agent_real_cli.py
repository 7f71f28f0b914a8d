"""`sessionctl run` with the REAL agent CLIs, each talking to a local fake of its API.

The pinned `@anthropic-ai/claude-code` and `@openai/codex` are installed from npm into pytest's
cache folder once (reused by later runs; skipped with a reason where npm is missing). The fakes
(tests/agents/fake_apis.py) stream scripted model replies in the APIs' wire format; the CLIs
really run the tool calls, so the model's `sessionctl bench/record/close` really run against the
real PostgreSQL fixture. The agents' HOME, CLAUDE_CONFIG_DIR and CODEX_HOME are temp folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sessionctl.cli import app
from sessionctl.session import record
from sessionctl.workspace import Workspace
from tests.agents.fake_apis import FakeAPI, Script

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PACKAGES = ("@anthropic-ai/claude-code@2.1.197", "@openai/codex@0.171.0")
CAMPAIGN = "shop"
NEW_QUERY = "SQL = 'SELECT id FROM orders WHERE customer_id = %s'\n"


@pytest.fixture(scope="session")
def agent_bin(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding the real `claude` and `codex` (installed once into pytest's cache;
    into a temp folder of this run when the cache plugin is off, ``-p no:cacheprovider``)."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the real agent CLIs cannot be installed")
    name = "agent-clis-claude-2.1.197-codex-0.171.0"
    cache = getattr(pytestconfig, "cache", None)
    folder = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
    bindir = folder / "node_modules" / ".bin"
    if not ((bindir / "claude").exists() and (bindir / "codex").exists()):
        env = {
            **os.environ,
            "HOME": str(folder / "home"),  # npm must not write to the real $HOME
            "npm_config_cache": str(folder / "npm-cache"),
            "npm_config_update_notifier": "false",
        }
        proc = subprocess.run(
            ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund", *PACKAGES],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, f"npm install failed: {proc.stderr[-2000:]}"
    return bindir


@pytest.fixture
def agents_env(agent_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """PATH finds the real CLIs; their config folders are temp folders; no telemetry."""
    for var in list(os.environ):  # a caller's own keys, models or providers must not leak in
        if var.startswith(("ANTHROPIC_", "CLAUDE", "OPENAI_", "CODEX_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("PATH", f"{agent_bin}{os.pathsep}{os.environ['PATH']}")
    homes = {"claude": tmp_path / "claude-config", "codex": tmp_path / "codex-home"}
    for folder in homes.values():
        folder.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(homes["claude"]))
    monkeypatch.setenv("CODEX_HOME", str(homes["codex"]))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-fake")
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake")
    monkeypatch.setenv("DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("DISABLE_AUTOUPDATER", "1")
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    return homes


def point_at(monkeypatch: pytest.MonkeyPatch, homes: dict[str, Path], url: str) -> None:
    """Send both CLIs to ``url`` (a fake, or a port nobody listens on)."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    (homes["codex"] / "config.toml").write_text(
        'model = "gpt-fake"\nmodel_provider = "fake"\n'
        "[model_providers.fake]\n"
        f'name = "fake"\nbase_url = "{url}/v1"\nenv_key = "FAKE_OPENAI_KEY"\n'
        'wire_api = "responses"\n'
        # Codex's own retries only slow the tests down (sessionctl's bounds are tested here).
        "request_max_retries = 0\nstream_max_retries = 0\n"
    )


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port that refuses connections: bound but not listening, and held, so no other process
    (another test's server) can start listening on it meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def make_campaign(ws: Workspace, pg_url: str, *, preset: str, agent_extra: str = "") -> None:
    (ws.root / "app").mkdir(exist_ok=True)
    (ws.root / "app" / "query.py").write_text("SQL = 'SELECT * FROM orders'\n")
    ws.campaign_path(CAMPAIGN).write_text(
        "schema: 1\nrevision: 1\ntitle: Shop lookup\nlast_session: 0\n"
        "status: |\n  Nothing tried yet.\n"
        f"target:\n  sql_url: {pg_url}\n"
        "benchmarks:\n  - name: lookup\n    driver: builtin\n    query: select 1\n"
        "    concurrency: [1]\n    duration: 300ms\n"
        "next_steps:\n  - id: covering-index\n    title: A covering index for the lookup\n"
        "    paths: [app/]\n"
        f"agent:\n  preset: {preset}\n  timeout: 90s\n  grace: 2s\n{agent_extra}"
        "run:\n  max_without_improvement: null\n"
    )
    from sessionctl.campaign.store import write_prompt

    write_prompt(ws, CAMPAIGN)
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-q", "-m", "campaign")


def session_script(root: Path) -> list[Any]:
    """Measure, change one file, measure again, ask to close: what a good session does."""
    return [
        [("bash", "sessionctl bench --phase baseline")],
        [("read", str(root / "app" / "query.py"))],
        [("write", str(root / "app" / "query.py"), NEW_QUERY)],
        [("bash", "sessionctl record --phase remeasure --metric qps=150")],
        [("bash", "sessionctl bench --phase remeasure")],
        [("bash", "sessionctl close --summary 'narrower select list'")],
        [("text", "Session done: narrower select list.")],
    ]


def run_cli(*args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(app, ["run", CAMPAIGN, "--json", *args])
    out = result.stdout
    data = json.loads(out) if out.strip().startswith("{") else {}
    return result.exit_code, data, result.output


def agent_entry(ws: Workspace, n: int) -> dict[str, Any]:
    entries = record.entries(ws, CAMPAIGN, n)
    return next(e for e in reversed(entries) if e.get("type") == "agent")


def log_entry(ws: Workspace, n: int) -> str:
    text = ws.log_path(CAMPAIGN).read_text()
    return next(p for p in text.split("\n## Session ")[1:] if p.startswith(f"{n}"))


def tool_results(ws: Workspace, n: int) -> list[str]:
    """What the agent's tools answered, as its transcript shows (Claude or Codex)."""
    out = []
    for line in (ws.scratch / "transcripts" / CAMPAIGN / f"{n}.jsonl").read_text().splitlines():
        if not line.startswith("{"):
            continue
        obj = json.loads(line)
        if obj.get("type") == "user":
            for block in obj["message"]["content"]:
                if block.get("type") == "tool_result":
                    out.append(str(block.get("content")))
        item = obj.get("item") or {}
        if obj.get("type") == "item.completed" and item.get("type") == "command_execution":
            out.append(f"exit {item.get('exit_code')}: {item.get('aggregated_output')}")
    return out


# --- sessions that close ------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["claude", "codex"])
def test_a_real_agent_closes_a_session(
    preset: str,
    ws: Workspace,
    pg_url: str,
    agents_env: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_campaign(ws, pg_url, preset=preset)
    script = Script(session_script(ws.root))
    with FakeAPI("anthropic" if preset == "claude" else "openai", script) as api:
        point_at(monkeypatch, agents_env, api.url)
        code, data, output = run_cli("--sessions", "1", "--agent", preset)
    assert code == 0, output
    [s] = data["sessions"]
    assert s["outcome"] == "closed", (s, tool_results(ws, 1))
    assert s["ending"]["kind"] == "finished" and not s["ending"]["infrastructure"]
    # The model's `sessionctl` calls really ran: two benchmarks and one hand record landed.
    results = tool_results(ws, 1)
    assert sum("recorded into session 1 as baseline" in r for r in results) == 1
    assert any("close requested" in r for r in results), results
    closed = record.entries(ws, CAMPAIGN, 1)
    phases = [e.get("phase") for e in closed if e.get("type") == "measurement"]
    assert phases.count("baseline") == 1 and phases.count("remeasure") == 2
    assert (ws.root / "app" / "query.py").read_text() == NEW_QUERY
    entry = agent_entry(ws, 1)
    assert entry["audit"]["passed"] and entry["tool_calls"] == 6
    assert "narrower select list" in log_entry(ws, 1)
    assert git(ws.root, "status", "--porcelain") == ""
    if preset == "claude":
        # The true totals from `result` (each message's own usage says output_tokens: 1).
        assert entry["tokens"]["output"] == 7 * 50 and entry["tokens"]["input"] == 7 * 1000
        assert entry["cost_usd"] > 0 and entry["cost_source"] == "reported"
    else:
        assert entry["tokens"] == {"input": 7 * 1000, "cached_input": 0, "output": 7 * 50}


# --- endings that are not the step's fault --------------------------------------------------------


@pytest.mark.parametrize("preset", ["claude", "codex"])
def test_a_rejected_key_stops_the_run_after_two_sessions_blaming_no_step(
    preset: str,
    ws: Workspace,
    pg_url: str,
    agents_env: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_campaign(ws, pg_url, preset=preset)
    script = Script(session_script(ws.root), status=401)
    with FakeAPI("anthropic" if preset == "claude" else "openai", script) as api:
        point_at(monkeypatch, agents_env, api.url)
        code, data, output = run_cli("--sessions", "5")
    assert code == 1, output  # a wrapper script looping over `sessionctl run` stops
    assert data["infrastructure_failure"] is True
    assert [s["outcome"] for s in data["sessions"]] == ["infrastructure", "infrastructure"]
    assert data["stop_reason"].startswith(
        "2 sessions in a row whose agent never reached a working model"
    )
    for s in data["sessions"]:
        assert s["ending"]["kind"] == "api_error" and s["ending"]["infrastructure"]
        assert "401" in s["ending"]["message"]
    message = data["sessions"][1]["ending"]["message"]
    if preset == "codex":
        # The API's own words, as Codex passed them on.
        assert "Incorrect API key provided: sk-fake" in message
    else:
        # Claude Code retries a rejected key for minutes: sessionctl stops it after three.
        assert message.startswith("HTTP 401: authentication_failed")
        assert "stopped after 3 rejected API calls" in message
    entry = log_entry(ws, 2)
    assert "aborted" in entry.split("\n", 1)[0] and "401" in entry
    assert "infrastructure failure, not the step's fault" in entry
    # The step is not blamed: still first, and the status says nothing against it.
    camp_text = ws.campaign_path(CAMPAIGN).read_text()
    assert "Avoid this" not in camp_text and "marked failed" not in camp_text
    assert camp_text.index("id: covering-index") > 0
    assert agent_entry(ws, 1)["audit"]["skipped"] is True


@pytest.mark.parametrize("preset", ["claude", "codex"])
def test_an_unreachable_api_is_bounded_by_the_session_timeout(
    preset: str,
    ws: Workspace,
    pg_url: str,
    agents_env: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_campaign(ws, pg_url, preset=preset)
    with closed_port() as port:
        point_at(monkeypatch, agents_env, f"http://127.0.0.1:{port}")
        code, data, output = run_cli("--sessions", "1", "--timeout", "8s", "--grace", "2s")
    assert code == 1, output
    [s] = data["sessions"]
    # Whether or not the CLI got to print a retry line before the timeout (on a loaded machine
    # it may not have), no model reply in the whole session is an API error.
    assert s["outcome"] == "infrastructure" and s["exit_reason"] == "timeout"
    assert s["ending"]["kind"] == "api_error" and s["ending"]["infrastructure"]
    assert s["ending"]["message"].endswith("timeout after 8s")
    assert data["stop_reason"].startswith(
        "1 session(s) run; the last session's agent never reached a working model: "
    )
    assert "timeout after 8s" in log_entry(ws, 1)


def test_claude_tools_refused_by_its_permission_rules_are_listed(
    ws: Workspace, pg_url: str, agents_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The preset allows edits and `sessionctl ...`; a package install is not among them.
    make_campaign(ws, pg_url, preset="claude")
    script = Script(
        [
            [("bash", "sessionctl bench --phase baseline")],
            [("bash", "pip install --user orjson")],
            [("text", "Could not install it.")],
        ]
    )
    with FakeAPI("anthropic", script) as api:
        point_at(monkeypatch, agents_env, api.url)
        code, data, output = run_cli("--sessions", "1")
    assert code == 0, output
    [s] = data["sessions"]
    assert s["ending"]["kind"] == "refused_tools"
    assert s["ending"]["refused"] == ["Bash: pip install --user orjson"]
    assert not s["ending"]["infrastructure"]  # the model did run a tool: the session is judged
    assert s["outcome"] == "failed"
    assert any("refused 1 of 2 tool call(s): Bash: pip install" in p for p in s["problems"])
    assert "refused tools: the agent's permission rules refused" in log_entry(ws, 1)


def test_claude_turn_limit_is_named(
    ws: Workspace, pg_url: str, agents_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_campaign(ws, pg_url, preset="claude")
    with FakeAPI("anthropic", Script(session_script(ws.root))) as api:
        point_at(monkeypatch, agents_env, api.url)
        code, data, output = run_cli("--sessions", "1", "--max-turns", "1")
    assert code == 0, output
    [s] = data["sessions"]
    assert s["ending"] == {
        "kind": "turn_limit",
        "message": "Reached maximum number of turns (1)",
        "infrastructure": False,
        "refused": [],
    }
    assert s["outcome"] == "failed"
    assert "turn limit: Reached maximum number of turns (1)" in log_entry(ws, 1)


def test_claude_stops_itself_at_the_session_budget(
    ws: Workspace, pg_url: str, agents_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_campaign(ws, pg_url, preset="claude")
    with FakeAPI("anthropic", Script(session_script(ws.root), usage_in=200_000)) as api:
        point_at(monkeypatch, agents_env, api.url)
        code, data, output = run_cli("--sessions", "1", "--budget", "0.05")
    assert code == 0, output
    [s] = data["sessions"]
    assert s["ending"]["kind"] == "budget_limit", s
    assert s["ending"]["message"] == "Reached maximum budget ($0.05)"
    argv = agent_entry(ws, 1)["argv"]
    assert argv[argv.index("--max-budget-usd") + 1] == "0.05"
    assert s["outcome"] == "failed" and "budget limit: Reached maximum budget" in log_entry(ws, 1)


def test_codex_overspend_is_flagged_by_the_audit(
    ws: Workspace, pg_url: str, agents_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Codex reports its usage once, at exit: nothing can stop it mid-run; the audit flags it.
    prices = "  token_prices: {input: 1.25, cached_input: 0.125, output: 10}\n"
    make_campaign(ws, pg_url, preset="codex", agent_extra=prices)
    with FakeAPI("openai", Script(session_script(ws.root), usage_in=200_000)) as api:
        point_at(monkeypatch, agents_env, api.url)
        code, data, output = run_cli("--sessions", "1", "--budget", "0.05")
    assert code == 0, output
    [s] = data["sessions"]
    assert s["ending"]["kind"] == "finished" and s["outcome"] == "failed"
    # 7 replies x 200,000 input tokens at $1.25/M + 7 x 50 output tokens at $10/M
    assert s["cost_usd"] == pytest.approx(1.7535)
    assert s["problems"] == [
        "the agent spent $1.75, over the session budget $0.05 "
        "(its usage was reported too late to stop it)"
    ]


def test_claude_without_permission_rules_is_refused_everything_and_no_step_is_blamed(
    ws: Workspace, pg_url: str, agents_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the preset did before it passed --allowedTools: every edit and `sessionctl` refused,
    # and Claude still exits 0 with subtype success.
    extra = "  claude_args: [--permission-mode, default]\n"
    make_campaign(ws, pg_url, preset="claude", agent_extra=extra)
    with FakeAPI("anthropic", Script(session_script(ws.root))) as api:
        point_at(monkeypatch, agents_env, api.url)
        code, data, output = run_cli("--sessions", "1")
    assert code == 1, output  # the harness is broken, not the step: a wrapper must stop
    [s] = data["sessions"]
    assert "--allowedTools" not in agent_entry(ws, 1)["argv"]
    assert s["outcome"] == "infrastructure" and s["ending"]["kind"] == "refused_tools"
    assert s["ending"]["refused"] == [
        "Bash: sessionctl bench --phase baseline",
        f"Write: {ws.root / 'app' / 'query.py'}",
        "Bash: sessionctl record --phase remeasure --metric qps=150",
        "Bash: sessionctl bench --phase remeasure",
        "Bash: sessionctl close --summary 'narrower select list'",
    ]
    assert "Avoid this" not in ws.campaign_path(CAMPAIGN).read_text()
