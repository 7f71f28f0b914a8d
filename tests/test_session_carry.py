"""sessionctl's own edits never block `start`, and `abort --undo` takes a start back exactly.

Real git repositories and the real typer app; jj through a recording fake (exact argv).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from test_session_jj import CAMPAIGN as JJ_CAMPAIGN
from test_session_jj import FakeJj
from typer.testing import CliRunner

from sessionctl import process
from sessionctl.cli import app
from sessionctl.session import carry, engine, record
from sessionctl.vcs.base import Vcs
from sessionctl.vcs.jj import OP_TEMPLATE
from sessionctl.workspace import Workspace

CAMPAIGN = """\
schema: 1
revision: 1
title: Demo
last_session: 0
# a comment that must survive
next_steps:
  - id: first
    title: The first step
"""

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def demo(ws: Workspace) -> Workspace:
    """A committed campaign with its rendered prompt and an empty log, and a clean tree."""
    (ws.root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    (ws.root / "logs" / "demo-perf-log.md").write_text("# Demo perf log\n")
    (ws.root / "app.py").write_text("x = 1\n")
    assert invoke("prompt", "render")[0] == 0
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    return ws


def snapshot(root: Path) -> dict[str, str]:
    """Everything `abort --undo` must put back: history, index+tree state, the campaign files."""
    return {
        "log": git(root, "log", "--format=%H %s", "--all"),
        "status": git(root, "status", "--porcelain=v1", "--untracked-files=all"),
        "yaml": (root / "prompts" / "demo.yaml").read_text(),
        "md": (root / "prompts" / "demo.md").read_text()
        if (root / "prompts" / "demo.md").exists()
        else "<absent>",
        "perf-log": (root / "logs" / "demo-perf-log.md").read_text(),
    }


def test_next_add_then_start_carries_the_campaign_edits(demo: Workspace) -> None:
    root = demo.root
    assert invoke("next", "add", "--id", "second", "--title", "Another step")[0] == 0
    assert git(root, "status", "--porcelain").split() == [
        "M",
        "prompts/demo.md",
        "M",
        "prompts/demo.yaml",
    ]
    code, out, err = invoke("start", "--json")
    assert code == 0, err
    assert json.loads(out)["extra"]["carried"] == ["prompts/demo.md", "prompts/demo.yaml"]
    assert git(root, "status", "--porcelain") == ""  # the session starts clean
    subject, files = git(root, "log", "-1", "--format=%s", "--name-only").split("\n", 1)
    assert subject == "prompt(demo): before session 1: carry the campaign's edits"
    assert files.split() == ["prompts/demo.md", "prompts/demo.yaml"]
    message = git(root, "log", "-1", "--format=%B")
    assert "Session: 1\n" in message and "Prompt-Revision: 2\n" in message
    assert "- id: second" in git(root, "show", "HEAD:prompts/demo.yaml")


def test_a_hand_edited_yaml_is_carried_with_the_prompt_rendered_from_it(demo: Workspace) -> None:
    root = demo.root
    yaml = root / "prompts" / "demo.yaml"
    yaml.write_text(yaml.read_text().replace("The first step", "The first step, renamed"))
    assert invoke("start")[0] == 0
    assert "renamed" in git(root, "show", "HEAD:prompts/demo.md")  # re-rendered, then committed
    assert git(root, "status", "--porcelain") == ""


def test_other_files_still_block_start_and_only_they_are_named(demo: Workspace) -> None:
    assert invoke("next", "add", "--id", "second", "--title", "Another step")[0] == 0
    (demo.root / "app.py").write_text("x = 2\n")
    code, _, err = invoke("start")
    assert code == 1
    assert "not clean: M app.py;" in err and "prompts/" not in err
    assert len(err.strip().splitlines()) == 1
    assert record.current(demo, "demo") is None
    assert git(demo.root, "log", "-1", "--format=%s") == "campaign\n"  # nothing committed


def test_undo_right_after_a_start_that_carried_edits_restores_everything(demo: Workspace) -> None:
    root = demo.root
    assert invoke("next", "add", "--id", "second", "--title", "Another step")[0] == 0
    before = snapshot(root)
    code, out, _ = invoke("start")
    assert code == 0 and "Wrong step? `sessionctl abort --undo` takes this start back." in out
    assert snapshot(root) != before  # start did commit
    code, out, err = invoke("abort", "--undo")
    assert code == 0, err
    assert "undid the start of session 1 of demo" in out
    assert snapshot(root) == before
    assert record.current(demo, "demo") is None
    assert not record.session_path(demo, "demo", 1).exists()
    # ... and the same start can simply be made again.
    assert invoke("start")[0] == 0 and record.current(demo, "demo") is not None


def test_undo_removes_the_baseline_worktree_a_compare_made(demo: Workspace) -> None:
    from sessionctl.verdict.sides import baseline_worktree

    before = git(demo.root, "worktree", "list", "--porcelain")
    assert invoke("start")[0] == 0
    baseline_worktree(demo, "demo", record.current(demo, "demo"))  # what `compare` does first
    assert git(demo.root, "worktree", "list", "--porcelain") != before
    code, _, err = invoke("abort", "--undo")
    assert code == 0, err
    assert git(demo.root, "worktree", "list", "--porcelain") == before  # nothing left registered
    # The next start gets session 1 again, and its compare can make the worktree again.
    assert invoke("start")[0] == 0
    path = baseline_worktree(demo, "demo", record.current(demo, "demo"))
    assert (path / "app.py").read_text() == "x = 1\n"


def test_undo_after_a_clean_start_restores_the_prompt_it_rendered(ws: Workspace) -> None:
    # The YAML is committed but was never rendered: start writes prompts/demo.md; undo deletes it.
    (ws.root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    (ws.root / "logs" / "demo-perf-log.md").write_text("# Demo perf log\n")
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    before = snapshot(ws.root)
    assert invoke("start")[0] == 0
    assert (ws.root / "prompts" / "demo.md").exists()
    code, out, err = invoke("abort", "--undo", "--json")
    assert code == 0, err
    assert json.loads(out)["prompt_restored"] is True
    assert snapshot(ws.root) == before


def test_undo_refuses_once_something_was_recorded(demo: Workspace) -> None:
    assert invoke("start")[0] == 0
    assert invoke("record", "--phase", "profile", "--finding", "hot loop")[0] == 0
    code, _, err = invoke("abort", "--undo")
    assert code == 1
    assert "1 recorded entry" in err and "abort demo --reason" in err
    assert len(err.strip().splitlines()) == 1
    assert record.current(demo, "demo") is not None  # still open


def test_undo_refuses_when_files_changed_since_start(demo: Workspace) -> None:
    assert invoke("start")[0] == 0
    (demo.root / "app.py").write_text("x = 3\n")
    code, _, err = invoke("abort", "--undo")
    assert code == 1 and "files changed since start: app.py" in err
    assert record.current(demo, "demo") is not None


def test_undo_refuses_when_a_commit_was_made_since_start(demo: Workspace) -> None:
    assert invoke("start")[0] == 0
    (demo.root / "app.py").write_text("x = 4\n")
    git(demo.root, "commit", "-qam", "by hand")
    code, _, err = invoke("abort", "--undo")
    assert code == 1 and "the repository moved since start" in err


def test_abort_needs_a_reason_unless_undoing(demo: Workspace) -> None:
    assert invoke("start")[0] == 0
    code, _, err = invoke("abort")
    assert code == 2 and "--reason TEXT is required" in err
    code, _, err = invoke("abort", "--undo", "--reason", "x")
    assert code == 2 and "takes no --reason" in err


def test_undo_on_a_repository_without_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "fresh"
    (root / "prompts").mkdir(parents=True)
    (root / "logs").mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    (root / "logs" / "demo-perf-log.md").write_text("# Demo perf log\n")
    monkeypatch.chdir(root)
    before = git(root, "status", "--porcelain=v1", "--untracked-files=all")
    assert invoke("start")[0] == 0  # the campaign's files become the first commit
    assert git(root, "log", "--format=%s") == (
        "prompt(demo): before session 1: carry the campaign's edits\n"
    )
    assert invoke("abort", "--undo")[0] == 0
    no_head = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "HEAD"], cwd=root)
    assert no_head.returncode != 0  # no commits again
    assert git(root, "status", "--porcelain=v1", "--untracked-files=all") == before
    assert not (root / "prompts" / "demo.md").exists()


def test_jj_start_carries_then_undo_restores_the_operation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    (root / ".jj").mkdir(parents=True)
    (root / "prompts").mkdir()
    (root / "prompts" / "demo.yaml").write_text(JJ_CAMPAIGN)
    fake = CommittingJj()
    fake.summary = "M prompts/demo.yaml\n"
    monkeypatch.setattr(process, "run", fake)
    monkeypatch.chdir(root)
    ws = Workspace(root)
    s = engine.start(ws, "demo")
    calls = fake.take()
    title = "prompt(demo): before session 5: carry the campaign's edits"
    assert calls[:3] == [
        ["diff", "-r", "@", "--summary"],  # what is dirty: only the campaign's own YAML
        ["op", "log", "-n1", "--no-graph", "-T", OP_TEMPLATE],  # the checkpoint for --undo
        ["diff", "-r", "@", "--summary"],  # after re-rendering: what to carry
    ]
    assert calls[3] == ["commit", "-m", title, 'root-file:"prompts/demo.yaml"']
    assert calls[4] == ["describe", "@-", "--stdin"]
    assert s.extra["undo"]["checkpoint"] == "op1"
    result = carry.undo(ws, "demo", vcs=_jj(root))
    assert ["op", "restore", "op1"] in fake.take()
    assert result.uncommitted == ("prompts/demo.yaml",)
    assert record.current(ws, "demo") is None


class CommittingJj(FakeJj):
    """The recording fake, whose @ is empty after a `jj commit` (as jj leaves it)."""

    def __call__(self, argv: list[str], **kw: Any) -> process.Result:
        if list(argv)[3:4] == ["commit"]:
            self.summary = ""
        return super().__call__(argv, **kw)


def _jj(root: Path) -> Vcs:
    from sessionctl.vcs import detect

    return detect(root, prefer="jj")
