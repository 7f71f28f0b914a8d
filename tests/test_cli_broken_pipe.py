"""`sessionctl status | head -1`: a reader that goes away early ends the CLI quietly.

The real console script runs with its stdout on a pipe whose reading end is already closed, so
its first write fails with EPIPE every time (no race with a reader that may or may not have
read yet). It must exit 141 (128 + SIGPIPE, what a shell reports for `git log | head -1`) with
nothing on stderr: no error line, no traceback, no "Exception ignored" at interpreter exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, git

from sessionctl.session import engine
from sessionctl.workspace import Workspace

CAMPAIGN = """\
schema: 1
revision: 1
title: Pipes
last_session: 0
next_steps:
  - id: first
    title: The first step
"""


def console_script() -> list[str]:
    """The installed `sessionctl` script beside this Python (its body, where it is missing)."""
    script = Path(sys.executable).parent / "sessionctl"
    if script.is_file():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "import sys; from sessionctl.cli import main; sys.exit(main())"]


def run_into_closed_pipe(argv: list[str], cwd: Path) -> tuple[int, str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte is written
    try:
        proc = subprocess.run(
            [*console_script(), *argv],
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100", "TERM": "dumb"},
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr


@pytest.fixture
def demo(ws: Workspace) -> Workspace:
    (ws.root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    engine.start(ws, "demo")
    engine.record(ws, "demo", phase="profile", findings=["observe is hot"])
    return ws


@pytest.mark.parametrize(
    "argv",
    [["status"], ["status", "--json"], ["next", "list"], ["--help"], ["status", "--help"],
     ["--version"]],
)  # fmt: skip
def test_a_closed_stdout_pipe_exits_141_quietly(demo: Workspace, argv: list[str]) -> None:
    code, err = run_into_closed_pipe(argv, demo.root)
    assert (code, err) == (141, "")


def test_an_error_line_still_reaches_stderr_when_stdout_is_closed(demo: Workspace) -> None:
    code, err = run_into_closed_pipe(["record", "--finding", "   "], demo.root)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err


def test_a_broken_pipe_that_is_not_stdout_is_still_an_error(
    demo: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from sessionctl.campaign import store
    from sessionctl.cli import app

    def agent_went_away(*_args: object, **_kwargs: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")  # e.g. writing the prompt to a dead agent

    monkeypatch.setattr(store, "load", agent_went_away)
    result = CliRunner().invoke(app, ["next", "list"])
    assert result.exit_code == 1
    assert result.stderr == "error: Broken pipe; fix that, then rerun the command\n"
