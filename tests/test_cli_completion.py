"""Shell completion: typer's own --install-completion/--show-completion, without a slower start.

Each check runs sessionctl in a fresh process, the way a shell does: completion is an environment
variable (``_SESSIONCTL_COMPLETE``) and the words typed so far.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from sessionctl.cli import COMMANDS

PROBE = """\
import json, sys
sys.argv = ["sessionctl", *json.loads(sys.argv[1])]
from sessionctl.cli import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nPROBE " + json.dumps(sorted(sys.modules)) + "\\n")
"""


def run(args: list[str], env: dict[str, str]) -> tuple[str, set[str]]:
    """stdout, and the modules the process loaded."""
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env=full,
        check=True,
    )
    return done.stdout, set(json.loads(done.stderr.rsplit("\nPROBE ", 1)[1]))


def complete(words: str) -> tuple[list[str], set[str]]:
    """What bash completion offers after ``words`` (the last word is the one being completed)."""
    parts = words.split(" ")
    out, modules = run(
        [],
        {
            "_SESSIONCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
        },
    )
    return out.split(), modules


def test_command_names_complete_without_building_any_command() -> None:
    offered, modules = complete("sessionctl sta")
    assert offered == ["start", "status"]
    assert not [
        m for m in modules if m.startswith("sessionctl.cli.") and m != "sessionctl.cli.click_compat"
    ]
    everything, _ = complete("sessionctl ")
    assert set(COMMANDS) <= set(everything)


def test_subcommands_and_options_complete() -> None:
    offered, _ = complete("sessionctl next ")
    assert {"add", "move", "resolve"} <= set(offered)
    offered, _ = complete("sessionctl abort --u")
    assert offered == ["--undo"]


def test_show_completion_prints_the_script_for_the_shell() -> None:
    out, _ = run(["--show-completion", "bash"], {})
    assert "_SESSIONCTL_COMPLETE=complete_bash" in out
    assert "complete -o default -F _sessionctl_completion sessionctl" in out


def test_install_completion_writes_the_script_and_sources_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    out, _ = run(["--install-completion", "bash"], {"HOME": str(home)})
    assert "completion installed" in out
    script = home / ".bash_completions" / "sessionctl.sh"
    assert "_SESSIONCTL_COMPLETE=complete_bash" in script.read_text()
    assert str(script) in (home / ".bashrc").read_text()
