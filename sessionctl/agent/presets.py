"""Agent presets: the argv sessionctl launches for Claude Code, Codex, or any command.

The prompt travels as one argv element (``{prompt}``) or as a file (``{prompt_file}``), never
through a shell. Placeholders are replaced textually and only once, so a ``{`` inside the prompt
is passed through untouched.
"""

from __future__ import annotations

import os
import re
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sessionctl.campaign.model import AgentSpec
from sessionctl.errors import UsageError

Preset = Literal["claude", "codex", "command"]
Format = Literal["claude", "codex", "auto"]
PRESETS: tuple[str, ...] = ("claude", "codex", "command")

# Linux refuses a single argv element longer than MAX_ARG_STRLEN (32 pages = 128 KiB).
MAX_ARG_BYTES = 128 * 1024 - 1

_PLACEHOLDER = re.compile(r"\{(prompt|prompt_file|session|campaign|root)\}")

# `claude -p` is print (headless) mode; stream-json needs --verbose to emit every message.
CLAUDE_ARGV: tuple[str, ...] = (
    "claude",
    "-p",
    "{prompt}",
    "--output-format",
    "stream-json",
    "--verbose",
)
# In print mode Claude Code refuses every edit and every Bash command that is not read-only
# unless a rule allows it (and --dangerously-skip-permissions refuses to run as root): allow the
# file tools, `sessionctl ...` and the campaign's benchmark binaries, nothing else.
CLAUDE_ALLOWED_TOOLS: tuple[str, ...] = ("Edit", "Write", "Bash(sessionctl:*)")
# `codex exec` runs read-only by default; workspace-write lets it edit the checkout it runs in.
# Its sandbox forbids every socket, even to 127.0.0.1, so `sessionctl bench` could not reach the
# server: network_access lifts that. A login shell (`bash -lc`) lets /etc/profile reset PATH,
# so sessionctl's own folder would vanish from it: commands run in a plain `bash -c`.
CODEX_ARGV: tuple[str, ...] = (
    "codex",
    "exec",
    "--json",
    "--sandbox",
    "workspace-write",
    "-c",
    "sandbox_workspace_write.network_access=true",
    "-c",
    "allow_login_shell=false",
    "--skip-git-repo-check",
    "-C",
    "{root}",
)

ENV_SESSION = "SESSIONCTL_SESSION"
ENV_CAMPAIGN = "SESSIONCTL_CAMPAIGN"
ENV_ROOT = "SESSIONCTL_ROOT"
ENV_AUTHOR = "SESSIONCTL_AUTHOR"
# Set for every agent the loop launches: its `sessionctl close`/`abort` become requests the
# loop carries out after the audit (see sessionctl.session.request).
ENV_RUN = "SESSIONCTL_RUN"


@dataclass(frozen=True)
class AgentCommand:
    """What to execute for one session, and how to read what it prints."""

    preset: str
    argv: tuple[str, ...]
    shown: tuple[str, ...]  # argv with the prompt text elided (for logs and --dry-run)
    format: Format
    native_budget: bool  # the agent CLI stops itself at the budget too (Claude's --max-budget-usd)

    def to_dict(self) -> dict[str, object]:
        return {
            "preset": self.preset,
            "argv": list(self.shown),
            "format": self.format,
            "native_budget": self.native_budget,
        }


def expand(template: Sequence[str], values: Mapping[str, str]) -> tuple[str, ...]:
    """Replace ``{prompt}``-style placeholders in each argv element (unknown braces stay)."""
    return tuple(_PLACEHOLDER.sub(lambda m: values[m.group(1)], part) for part in template)


def build(
    spec: AgentSpec,
    *,
    prompt: str,
    prompt_file: Path,
    session: int,
    campaign: str,
    root: Path,
    preset: str | None = None,
    budget_usd: float | None = None,
    max_turns: int | None = None,
    source: str = "agent",
    allow_commands: Sequence[str] = (),
) -> AgentCommand:
    """Build the argv for ``spec`` (or ``preset`` overriding it) for one session.

    ``agent.args`` go to the campaign's own preset only; ``agent.claude_args`` and
    ``agent.codex_args`` to that preset whichever way it was chosen (``--agent``), so arguments
    meant for one CLI never reach the other. ``allow_commands``: programs besides
    ``sessionctl`` Claude Code may run without asking (the campaign's benchmark binaries).
    """
    chosen = preset or spec.preset
    if chosen not in PRESETS:
        raise UsageError(f"--agent {chosen}: unknown preset; use one of {', '.join(PRESETS)}")
    turns = max_turns if max_turns is not None else spec.max_turns
    own = spec.preset == chosen
    extra = [*(spec.args if own else ()), *preset_args(spec, chosen)]
    template: list[str]
    fmt: Format
    native_budget = False
    if chosen == "claude":
        template = list(spec.argv) if spec.argv and own else list(CLAUDE_ARGV)
        if turns is not None and "--max-turns" not in template:
            template += ["--max-turns", str(turns)]
        # Documented for print mode; checked between turns, so we still watch the stream too.
        if budget_usd is not None and "--max-budget-usd" not in template:
            template += ["--max-budget-usd", f"{budget_usd:g}"]
            native_budget = True
        if not _grants_permissions([*template, *extra]):
            template += ["--allowedTools", ",".join(claude_allowed_tools(allow_commands))]
        template += extra
        fmt = "claude"
    elif chosen == "codex":
        if spec.argv and own:
            template = list(spec.argv) + extra
        else:
            base = list(CODEX_ARGV)
            if _chooses_sandbox(extra):
                # `codex exec` refuses a second --sandbox: the campaign's choice replaces ours.
                i = base.index("--sandbox")
                del base[i : i + 2]
            template = [*base, *extra, "{prompt}"]
        fmt = "codex"
    else:
        if not spec.argv or not own:
            raise UsageError(
                f"{source}: agent.argv: preset 'command' needs an argv template, e.g. "
                "argv: [my-agent, --prompt-file, '{prompt_file}']"
            )
        template = list(spec.argv) + extra
        fmt = "auto"
    values = {
        "prompt": prompt,
        "prompt_file": str(prompt_file),
        "session": str(session),
        "campaign": campaign,
        "root": str(root),
    }
    argv = expand(template, values)
    for part in argv:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_ARG_BYTES:
            raise UsageError(
                f"{source}: agent.argv: the prompt ({len(prompt.encode())} bytes) is too long "
                "for one argument; pass it as a file with '{prompt_file}' in agent.argv"
            )
    shown = expand(template, {**values, "prompt": f"<prompt: {len(prompt)} chars>"})
    return AgentCommand(chosen, argv, shown, fmt, native_budget)


def preset_args(spec: AgentSpec, preset: str) -> tuple[str, ...]:
    """``agent.claude_args`` / ``agent.codex_args``: arguments for that preset only."""
    if preset == "claude":
        return tuple(spec.claude_args)
    if preset == "codex":
        return tuple(spec.codex_args)
    return ()


def claude_allowed_tools(commands: Sequence[str] = ()) -> tuple[str, ...]:
    """The permission rules the claude preset passes: file edits, sessionctl, the benchmarks."""
    extra = tuple(dict.fromkeys(f"Bash({c}:*)" for c in commands if c and "," not in c))
    return (*CLAUDE_ALLOWED_TOOLS, *extra)


_PERMISSION_FLAGS = frozenset(
    {"--dangerously-skip-permissions", "--permission-mode", "--allow-dangerously-skip-permissions"}
)


def _grants_permissions(argv: Sequence[str]) -> bool:
    """Whether the campaign's own claude arguments already say what the agent may do."""
    return any(a.split("=", 1)[0] in _PERMISSION_FLAGS for a in argv)


def _chooses_sandbox(argv: Sequence[str]) -> bool:
    """Whether the campaign's own codex arguments pick a sandbox (``--sandbox X``, ``-s X``)."""
    return (
        any(a in ("--sandbox", "-s") or a.startswith(("--sandbox=", "-s=")) for a in argv)
        or "--dangerously-bypass-approvals-and-sandbox" in argv
    )


def agent_env(
    spec: AgentSpec,
    *,
    session: int,
    campaign: str,
    root: Path,
    base: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> dict[str, str]:
    """The agent's environment: ours, the campaign's extras, and where its records must land.

    ``run_id`` (default: this process's pid) marks the agent as run by ``sessionctl run``.
    """
    env = dict(os.environ if base is None else base)
    env.update(spec.env)
    # The agent runs `sessionctl ...`: make it this one, even from a venv nobody activated.
    scripts = sysconfig.get_path("scripts")
    if scripts and os.path.exists(os.path.join(scripts, "sessionctl")):
        parts = [p for p in env.get("PATH", "").split(os.pathsep) if p]
        if not parts or parts[0] != scripts:
            env["PATH"] = os.pathsep.join([scripts, *(p for p in parts if p != scripts)])
    env[ENV_SESSION] = str(session)
    env[ENV_CAMPAIGN] = campaign
    env[ENV_ROOT] = str(root)
    env[ENV_AUTHOR] = "agent"
    env[ENV_RUN] = run_id or str(os.getpid())
    return env
