"""Fault injection around the session's files and git: a full disk, git lock files, a failing
hook, a merge in progress, a crashed atomic write (issue 19, items 1-4).

After any failed or rolled-back close, ``git status --porcelain`` must be exactly what it was
before the close; ``status`` never starts a rollback.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import git
from test_session_close import CLOSE_ARGS, commits, setup_campaign, snapshot_tree, work_session
from typer.testing import CliRunner

from sessionctl import files
from sessionctl.cli import app
from sessionctl.errors import VcsError
from sessionctl.session import close as close_mod
from sessionctl.session import engine, record
from sessionctl.session.close import close
from sessionctl.workspace import Workspace

runner = CliRunner()


def porcelain(root: Path) -> list[str]:
    return git(root, "status", "--porcelain", "--untracked-files=all").splitlines()


def state(root: Path) -> tuple[list[str], list[str], dict[str, bytes]]:
    """Commits, the index/working-tree status and every file: what a failure must not change."""
    return commits(root), porcelain(root), snapshot_tree(root)


# --- 1. disk full while recording ---------------------------------------------------------------


def _disk_full_after(monkeypatch: pytest.MonkeyPatch, nbytes: int) -> None:
    """Let ``os.write`` put ``nbytes`` on disk (a short write), then fail with ENOSPC."""
    real = os.write
    budget = [nbytes]

    def write(fd: int, data: bytes | memoryview) -> int:
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real(fd, bytes(data[: budget[0]]))
        budget[0] -= n
        return n

    monkeypatch.setattr(os, "write", write)


def test_record_on_a_full_disk_fails_and_loses_nothing(
    ws: Workspace, frozen_now: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_campaign(ws.root)
    engine.start(ws, "demo")
    engine.record(ws, "demo", phase="baseline", metrics=["qps=1000"])
    with monkeypatch.context() as mp:
        _disk_full_after(mp, 20)
        res = runner.invoke(app, ["record", "demo", "--finding", "observe() is hot"])
    assert res.exit_code == 1, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err
    assert "entries.jsonl" in err and "free some disk space" in err
    # The file is as before: the torn half-line was cut off again.
    assert [e["type"] for e in record.entries(ws, "demo", 47)] == ["measurement"]
    # Space is back: the next record is stored whole, not glued onto a torn line.
    engine.record(ws, "demo", findings=["after the disk was freed"])
    found = [e.get("text") for e in record.entries(ws, "demo", 47)]
    assert found == [None, "after the disk was freed"]


def test_a_line_torn_by_a_crash_does_not_swallow_the_next_record(
    ws: Workspace, frozen_now: str
) -> None:
    setup_campaign(ws.root)
    engine.start(ws, "demo")
    engine.record(ws, "demo", findings=["first"])
    path = record.entries_path(ws, "demo", 47)
    with path.open("a") as fh:
        fh.write('{"type": "finding", "text": "torn by kill -9')  # no newline: the crash
    engine.record(ws, "demo", findings=["second"])
    assert [e["text"] for e in record.entries(ws, "demo", 47)] == ["first", "second"]


# --- 2. recovery with a git lock left behind; status only reports -------------------------------


def _crash_close(root: Path, point: str) -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child dies at `point`
        try:
            os.environ[close_mod.ENV_CRASH] = point
            close(Workspace(root), "demo", **CLOSE_ARGS)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 99


def test_recovery_with_a_stale_ref_lock_changes_nothing_until_the_lock_is_gone(
    ws: Workspace, frozen_now: str
) -> None:
    setup_campaign(ws.root)
    work_session(ws)
    _crash_close(ws.root, "commit_prompt:pre")  # died committing the prompt...
    lock = ws.root / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")  # ...with git's ref lock left behind
    crashed = state(ws.root)

    st = engine.status(ws, "demo")  # a read command: reports, touches nothing
    assert st.pending_close is not None and st.pending_close["remaining"][0] == "commit_prompt"
    assert st.commands == ("sessionctl close demo",)
    assert state(ws.root) == crashed

    with pytest.raises(
        VcsError, match=r"main\.lock: a git lock file exists.*sessionctl close demo"
    ):
        close(ws, "demo", **CLOSE_ARGS)
    assert state(ws.root) == crashed  # no half-done reset

    lock.unlink()
    done = close(ws, "demo", **CLOSE_ARGS)
    assert done.recovered and len(commits(ws.root)) == len(crashed[0]) + 1
    assert git(ws.root, "show", "--name-only", "--format=", "HEAD").split() == [
        "prompts/demo.md",
        "prompts/demo.yaml",
    ]
    assert porcelain(ws.root) == ["?? agent_transcript.jsonl"]
    assert record.current(ws, "demo") is None


def test_a_rollback_stopped_by_a_lock_keeps_the_journal_then_restores_the_index(
    ws: Workspace, frozen_now: str
) -> None:
    setup_campaign(ws.root)
    work_session(ws)
    (ws.root / "src" / "staged.txt").write_text("the user staged this\n")
    git(ws.root, "add", "src/staged.txt")
    before = state(ws.root)
    # The prompt commit fails, and a ref lock appears just then: the rollback cannot move HEAD.
    hook = ws.root / ".git" / "hooks" / "commit-msg"
    hook.write_text(
        '#!/bin/sh\nif head -1 "$1" | grep -q "^prompt("; then\n'
        "  [ -e .git/locked-once ] || { touch .git/locked-once .git/refs/heads/main.lock; }\n"
        "  exit 1\nfi\n"
    )
    hook.chmod(0o755)
    with pytest.raises(VcsError, match=r"so did the rollback.*sessionctl close demo"):
        close(ws, "demo", **CLOSE_ARGS)
    assert close_mod.pending(ws, "demo") is not None
    (ws.root / ".git" / "refs" / "heads" / "main.lock").unlink()
    # The rerun redoes the prompt commit; the hook still refuses it: a clean rollback now.
    with pytest.raises(VcsError, match=r"commit prompt failed.*rolled back"):
        close(ws, "demo", **CLOSE_ARGS)
    assert state(ws.root) == before
    assert record.current(ws, "demo") is not None and close_mod.pending(ws, "demo") is None


# --- 3. a failed close leaves the index as it was -----------------------------------------------


def test_a_failing_pre_commit_hook_leaves_the_index_as_it_was(
    ws: Workspace, frozen_now: str
) -> None:
    setup_campaign(ws.root)
    work_session(ws)
    hook = ws.root / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint failed' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = state(ws.root)
    with pytest.raises(VcsError, match=r"commit code failed.*lint failed.*rolled back"):
        close(ws, "demo", **CLOSE_ARGS)
    assert state(ws.root) == before
    assert porcelain(ws.root) == [
        " M src/app.py",
        "?? agent_transcript.jsonl",
        "?? prompts/demo.md",
    ]


def test_close_during_a_merge_refuses_before_touching_anything(
    ws: Workspace, frozen_now: str
) -> None:
    setup_campaign(ws.root)
    git(ws.root, "checkout", "-q", "-b", "other")
    (ws.root / "README.md").write_text("theirs\n")
    git(ws.root, "commit", "-qam", "theirs")
    git(ws.root, "checkout", "-q", "main")
    (ws.root / "README.md").write_text("ours\n")
    git(ws.root, "commit", "-qam", "ours")
    work_session(ws)
    merge = subprocess.run(["git", "merge", "other"], cwd=ws.root, capture_output=True)
    assert merge.returncode == 1  # a conflict: README.md holds markers
    before = state(ws.root)
    assert "UU README.md" in before[1]
    with pytest.raises(VcsError, match=r"a merge is in progress.*git merge --abort"):
        close(ws, "demo", **CLOSE_ARGS)
    assert state(ws.root) == before  # the conflicted file is not staged as resolved
    assert close_mod.pending(ws, "demo") is None and record.current(ws, "demo") is not None


def test_close_on_a_detached_head_says_so(ws: Workspace, frozen_now: str) -> None:
    from sessionctl.reporting import NullReporter

    class Collect(NullReporter):
        def __init__(self) -> None:
            self.warnings: list[str] = []

        def warn(self, text: str) -> None:
            self.warnings.append(text)

    setup_campaign(ws.root)
    git(ws.root, "checkout", "-q", "--detach")
    work_session(ws)
    rep = Collect()
    close(ws, "demo", reporter=rep, **CLOSE_ARGS)
    assert any("HEAD is detached" in w and "git switch -c" in w for w in rep.warnings)


# --- 4. a temp file left by a killed atomic write ----------------------------------------------


def test_start_removes_an_atomic_write_temp_file_left_by_a_crash(
    ws: Workspace, frozen_now: str
) -> None:
    setup_campaign(ws.root)
    target = ws.root / "logs" / "demo-perf-log.md"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - killed between the temp file and the rename
        os.replace = lambda *a, **k: os._exit(9)  # type: ignore[assignment]
        files.atomic_write(target, "half a close\n")
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9
    left = [p for p in (ws.root / "logs").iterdir()]
    assert len(left) == 1 and files.stale_temp_file(left[0])
    session = engine.start(ws, "demo")
    assert session.number == 47
    assert list((ws.root / "logs").iterdir()) == []
    # A temp file of a live writer (this process) is not touched.
    assert not files.stale_temp_file(target.with_name(f".x.{os.getpid()}.abc.sessionctl-tmp"))
    assert json.loads(record.current_path(ws, "demo").read_text())["number"] == 47


def test_a_refused_carry_commit_at_start_leaves_the_index_as_it_was(
    ws: Workspace, frozen_now: str
) -> None:
    setup_campaign(ws.root)
    yaml = ws.root / "prompts" / "demo.yaml"
    yaml.write_text(yaml.read_text().replace("title: Demo throughput", "title: Demo QPS"))
    hook = ws.root / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint failed' >&2\nexit 1\n")
    hook.chmod(0o755)
    git(ws.root, "add", "prompts/demo.yaml")  # staged by the user; must stay exactly so
    (ws.root / "prompts" / "demo.md").write_text("stale render\n")
    before = porcelain(ws.root)
    with pytest.raises(VcsError, match="lint failed") as refused:
        engine.start(ws, "demo")
    assert porcelain(ws.root) == before and record.current(ws, "demo") is None
    # One line that says what start was doing and how to go on, not just git's argv.
    message = str(refused.value)
    assert (
        message.startswith("start: committing the campaign's own edits (") and "\n" not in message
    )
    assert message.endswith("then rerun `sessionctl start demo`")
