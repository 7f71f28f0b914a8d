"""The session flow on a jj workspace: the exact jj command lines, step by step.

jj cannot be installed here, so a recording runner stands in for it (answering the read
commands the way jj's documented templates do); the real-jj flow runs when jj is on PATH.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import jj_required

from sessionctl import process
from sessionctl.errors import CommandError, VcsError
from sessionctl.measurement import Measurement, Value
from sessionctl.session import close as close_mod
from sessionctl.session import engine, record
from sessionctl.session.close import close, recover
from sessionctl.vcs.jj import AT_TEMPLATE, OP_TEMPLATE
from sessionctl.workspace import Workspace

G = ["jj", "--no-pager", "--color=never"]
CAMPAIGN = """\
schema: 1
revision: 1
title: Demo
last_session: 4
next_steps:
  - id: first
    title: The first step
"""
DIFF = (
    "diff --git a/src/app.rs b/src/app.rs\n--- a/src/app.rs\n+++ b/src/app.rs\n"
    "@@ -1 +1,2 @@\n-a\n+b\n+c\n"
)
LOG_AT_MINUS = ["log", "-r", "@-", "--no-graph", "-T", 'change_id ++ " " ++ commit_id ++ "\\n"']


class FakeJj:
    """Records every jj argv; answers reads like jj would; can fail one command."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.inputs: list[str | None] = []
        self.summary = ""
        self.ops = 0
        self.commits = 0
        self.fail_on: Callable[[list[str]], bool] | None = None

    def __call__(self, argv: list[str], **kw: Any) -> process.Result:
        args = list(argv)
        self.calls.append(args)
        self.inputs.append(kw.get("input"))
        rest = args[3:]
        if self.fail_on is not None and self.fail_on(rest):
            raise CommandError(f"`{' '.join(args)}` exited with 1: Error: boom", argv=args)
        out = ""
        if rest[:2] == ["op", "log"]:
            self.ops += 1
            out = f"op{self.ops}\n"
        elif rest[:3] == ["log", "-r", "@"]:
            out = "chg0 cmt0 empty ok\n"
        elif rest == LOG_AT_MINUS:
            self.commits += 1
            out = f"chg{self.commits} cmt{self.commits}\n"
        elif rest[:4] == ["diff", "-r", "@", "--summary"]:
            out = self.summary
        elif rest[:4] == ["diff", "-r", "@", "--git"]:
            out = DIFF
        return process.Result(tuple(args), 0, out, "")

    def take(self) -> list[list[str]]:
        calls, self.calls = self.calls, []
        return [c[3:] for c in calls]


@pytest.fixture
def jj_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Workspace, FakeJj]:
    root = tmp_path / "repo"
    (root / ".jj").mkdir(parents=True)
    (root / "prompts").mkdir()
    (root / "src").mkdir()
    (root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    (root / "src" / "app.rs").write_text("a\n")
    fake = FakeJj()
    monkeypatch.setattr(process, "run", fake)
    monkeypatch.chdir(root)
    return Workspace(root), fake


def _work(ws: Workspace, fake: FakeJj) -> None:
    for phase, qps in (("baseline", 100.0), ("remeasure", 120.0)):
        values = (Value("qps", qps, "", "higher"),)
        record.record_measurement(
            ws, "demo", Measurement(source="manual", name="m", phase=phase, values=values)
        )
    (ws.root / "src" / "app.rs").write_text("b\nc\n")
    fake.summary = "M src/app.rs\nA agent_logs/t.json\nM prompts/demo.md\n"


def test_start_and_close_issue_the_documented_sequence(jj_ws: tuple[Workspace, FakeJj]) -> None:
    ws, fake = jj_ws
    s = engine.start(ws, "demo")
    assert fake.take() == [
        ["diff", "-r", "@", "--summary"],
        ["log", "-r", "@", "--no-graph", "-T", AT_TEMPLATE],
        ["op", "log", "-n1", "--no-graph", "-T", OP_TEMPLATE],
    ]
    assert s.start_revision == {
        "vcs": "jj",
        "commit": "cmt0",
        "change": "chg0",
        "op": "op1",
        "branch": None,
        "empty": True,
    }
    _work(ws, fake)
    result = close(ws, "demo", resolve="first", summary="done")
    code, prompt = result.plan.code, result.plan.prompt
    assert code.paths == ("src/app.rs", "logs/demo-perf-log.md")
    assert result.plan.left_out == ("agent_logs/t.json",)
    assert fake.take() == [
        ["diff", "-r", "@", "--summary"],  # plan: what the working-copy change holds
        ["diff", "-r", "@", "--git", 'root-file:"src/app.rs"'],  # plan: the diff stat
        ["op", "log", "-n1", "--no-graph", "-T", OP_TEMPLATE],  # the close's checkpoint
        ["op", "log", "-n1", "--no-graph", "-T", OP_TEMPLATE],  # before change 1
        ["commit", "-m", code.title, 'root-file:"src/app.rs"', 'root-file:"logs/demo-perf-log.md"'],
        ["describe", "@-", "--stdin"],
        LOG_AT_MINUS,
        ["op", "log", "-n1", "--no-graph", "-T", OP_TEMPLATE],  # before change 2
        [
            "commit",
            "-m",
            prompt.title,
            'root-file:"prompts/demo.yaml"',
            'root-file:"prompts/demo.md"',
        ],
        ["describe", "@-", "--stdin"],
        LOG_AT_MINUS,
    ]
    assert [i for i in fake.inputs if i] == [code.message, prompt.message]
    assert [(c.change, c.commit) for c in result.commits] == [("chg1", "cmt1"), ("chg2", "cmt2")]
    assert "src/app.rs | +2 -1" in code.message
    assert record.current(ws, "demo") is None


def test_failed_jj_step_restores_the_operation_checkpoint(jj_ws: tuple[Workspace, FakeJj]) -> None:
    ws, fake = jj_ws
    engine.start(ws, "demo")  # op1
    _work(ws, fake)
    fake.take()
    # Change 2 fails; change 1 is already made and must be undone too.
    fake.fail_on = lambda rest: rest[:2] == ["commit", "-m"] and rest[2].startswith("prompt(demo)")
    with pytest.raises(VcsError, match=r"commit prompt failed.*rolled back to op2"):
        close(ws, "demo")
    calls = fake.take()
    assert [c[0] for c in calls].count("commit") == 2
    assert calls[-1] == ["op", "restore", "op2"]  # the checkpoint taken before anything was written
    assert calls[-2][:2] == ["commit", "-m"]
    assert record.current(ws, "demo") is not None
    assert not (ws.root / "logs" / "demo-perf-log.md").exists()
    assert (ws.root / "prompts" / "demo.yaml").read_text() == CAMPAIGN


class Crash(BaseException):
    """Stands in for the process dying."""


def test_recovery_after_a_crash_inside_a_jj_step(
    jj_ws: tuple[Workspace, FakeJj], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, fake = jj_ws
    engine.start(ws, "demo")
    _work(ws, fake)

    def crash(point: str) -> None:
        if point == "commit_code":
            raise Crash()

    monkeypatch.setattr(close_mod, "_crash", crash)
    with pytest.raises(Crash):
        close(ws, "demo")
    fake.take()
    monkeypatch.setattr(close_mod, "_crash", lambda point: None)
    done = recover(ws, "demo")
    assert done is not None and "commit_code" in done
    calls = fake.take()
    # Back to the operation recorded just before change 1 (op3), then change 1 again, then 2.
    assert calls[0] == ["op", "restore", "op3"]
    assert calls[1][:2] == ["commit", "-m"] and calls[1][-1] == 'root-file:"logs/demo-perf-log.md"'
    assert [c[0] for c in calls[1:]] == [
        "commit",
        "describe",
        "log",
        "op",
        "commit",
        "describe",
        "log",
    ]
    assert record.current(ws, "demo") is None


def test_abort_commits_only_the_log_and_discards_through_jj_restore(
    jj_ws: tuple[Workspace, FakeJj],
) -> None:
    ws, fake = jj_ws
    engine.start(ws, "demo")
    fake.summary = "M src/app.rs\nA scratch.txt\n"
    fake.take()
    result = engine.abort(ws, "demo", reason="dead end", discard=True)
    assert result.discarded == ("src/app.rs",) and result.kept == ("scratch.txt",)
    calls = fake.take()
    commits = [c for c in calls if c[0] == "commit"]
    assert commits[0][3:] == ['root-file:"logs/demo-perf-log.md"']
    assert commits[1][3:] == ['root-file:"prompts/demo.yaml"', 'root-file:"prompts/demo.md"']
    # after both changes are made: save the edits as a patch, then restore
    assert calls[-2:] == [
        ["diff", "--git", 'root-file:"src/app.rs"'],
        ["restore", 'root-file:"src/app.rs"'],
    ]


# --- the real jj -------------------------------------------------------------------------------


@jj_required
def test_real_jj_full_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["jj", "git", "init"], cwd=root, check=True, capture_output=True)
    (root / "prompts").mkdir()
    (root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    (root / "src").mkdir()
    (root / "src" / "app.rs").write_text("a\n")
    subprocess.run(["jj", "commit", "-m", "initial"], cwd=root, check=True, capture_output=True)
    monkeypatch.chdir(root)
    ws = Workspace(root)
    engine.start(ws, "demo")
    subprocess.run(["jj", "commit", "-m", "render"], cwd=root, check=True, capture_output=True)
    for phase, qps in (("baseline", 100.0), ("remeasure", 120.0)):
        values = (Value("qps", qps, "", "higher"),)
        record.record_measurement(
            ws, "demo", Measurement(source="manual", name="m", phase=phase, values=values)
        )
    (root / "src" / "app.rs").write_text("b\n")
    (root / "stray.log").write_text("s\n")
    result = close(ws, "demo", resolve="first")

    def names(rev: str) -> list[str]:
        out = subprocess.run(
            ["jj", "diff", "-r", rev, "--name-only"],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        )
        return sorted(out.stdout.split())

    assert names("@--") == ["logs/demo-perf-log.md", "src/app.rs"]
    assert names("@-") == ["prompts/demo.md", "prompts/demo.yaml"]
    assert names("@") == ["stray.log"]
    assert len(result.commits) == 2
