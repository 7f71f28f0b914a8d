"""The baseline a paired A/B needs: built artefacts preserved at `start`, worktrees removed at
the end (real git repositories, small files standing in for the build)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import git
from typer.testing import CliRunner

from sessionctl.campaign import store
from sessionctl.cli import app
from sessionctl.errors import ConfigError, UsageError
from sessionctl.reporting import NullReporter
from sessionctl.session import close as close_mod
from sessionctl.session import engine, record
from sessionctl.verdict import sides as ab_sides
from sessionctl.workspace import Workspace

CAMPAIGN = """\
schema: 1
revision: 1
title: Demo
last_session: 4
target:
  artifacts: [build/server, "build/lib/*.so"]
next_steps:
  - id: first
    title: The first step
"""


class Collect(NullReporter):
    """A reporter that keeps what it was told."""

    def __init__(self) -> None:
        self.infos: list[str] = []
        self.warnings: list[str] = []

    def info(self, message: str) -> None:
        self.infos.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def setup(repo: Path, *, build: bool = True, text: str = CAMPAIGN) -> Workspace:
    (repo / "prompts" / "demo.yaml").write_text(text)
    (repo / "app.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text("build/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "campaign")
    if build:
        (repo / "build" / "lib").mkdir(parents=True)
        (repo / "build" / "server").write_text("server v1\n")
        (repo / "build" / "lib" / "a.so").write_text("lib a v1\n")
        (repo / "build" / "lib" / "b.so").write_text("lib b v1\n")
    return Workspace(repo)


def test_start_preserves_the_build_and_compare_uses_it_as_side_a(ws: Workspace) -> None:
    setup(ws.root)
    rep = Collect()
    s = engine.start(ws, "demo", reporter=rep)
    folder = ".sessionctl/sessions/demo/5/artifacts"
    assert s.extra["artifacts"] == folder and record.current(ws, "demo") == s
    assert any(folder in m for m in rep.infos)
    assert engine.status(ws, "demo", plan=False).artifacts == folder
    kept = ws.root / folder
    assert (kept / "build" / "server").read_text() == "server v1\n"
    assert sorted(p.name for p in (kept / "build" / "lib").iterdir()) == ["a.so", "b.so"]
    # A rebuild during the session leaves the preserved copy as it was at start.
    (ws.root / "build" / "server").write_text("server v2\n")
    assert (kept / "build" / "server").read_text() == "server v1\n"
    sides = ab_sides.default_sides(ws, store.load(ws, "demo").campaign)
    assert sides.kind == "artifacts" and sides.a.artifacts_dir == kept
    # Scratch and build stay out of git (only the freshly rendered prompt is new).
    assert git(ws.root, "status", "--porcelain") == "?? prompts/demo.md\n"


def test_start_keeps_only_the_newest_builds(ws: Workspace) -> None:
    setup(ws.root, text=CAMPAIGN.replace("  artifacts: [", "  artifacts_keep: 2\n  artifacts: ["))
    rep = Collect()
    for n in (5, 6, 7):
        engine.start(ws, "demo", reporter=rep)
        engine.abort(ws, "demo", reason=f"session {n} done")
    built = sorted(d.name for d in ws.session_dir("demo").iterdir() if (d / "artifacts").is_dir())
    assert built == ["6", "7"]  # the newest session's build and the one before it
    assert (ws.session_dir("demo") / "5" / "closed.json").is_file()  # the record stays
    assert "deleted the preserved builds of session(s) 5 (target.artifacts_keep: 2)" in rep.infos
    bad = CAMPAIGN.replace("  artifacts: [", "  artifacts_keep: 0\n  artifacts: [")
    (ws.root / "prompts" / "demo.yaml").write_text(bad)
    with pytest.raises(ConfigError, match=r"target.artifacts_keep: must be >= 1"):
        store.load(ws, "demo")


def test_a_missing_artifact_stops_start_before_the_session_opens(ws: Workspace) -> None:
    setup(ws.root)
    (ws.root / "build" / "server").unlink()
    with pytest.raises(UsageError) as err:
        engine.start(ws, "demo")
    msg = str(err.value)
    assert "target.artifacts[0]: build/server does not exist" in msg and "build it" in msg
    assert record.current(ws, "demo") is None
    assert not (ws.session_dir("demo") / "5" / "artifacts").exists()
    # Through the CLI: one line on stderr, and once built, start opens the session.
    res = CliRunner().invoke(app, ["start", "demo"])
    [error] = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.exit_code == 2 and "target.artifacts[0]" in error
    (ws.root / "build" / "server").write_text("server v1\n")
    res = CliRunner().invoke(app, ["start", "demo"])
    assert res.exit_code == 0, res.output
    assert "Baseline build (side A of `sessionctl compare`): .sessionctl/sessions/demo/5/" in (
        res.stdout
    )
    res = CliRunner().invoke(app, ["status", "demo"])
    assert res.exit_code == 0 and ".sessionctl/sessions/demo/5/artifacts" in res.stdout


def test_no_artifacts_listed_means_nothing_is_preserved(ws: Workspace) -> None:
    setup(
        ws.root,
        build=False,
        text=CAMPAIGN.replace(
            '  artifacts: [build/server, "build/lib/*.so"]\n',
            "  sql_url: postgresql://u@127.0.0.1:1/db\n",
        ),
    )
    s = engine.start(ws, "demo")
    assert "artifacts" not in s.extra
    assert not (ws.session_dir("demo") / "5" / "artifacts").exists()


def worktrees(repo: Path) -> list[str]:
    return [
        line.split(" ", 1)[1]
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


@pytest.mark.parametrize("end", ["close", "abort"])
def test_close_and_abort_remove_the_baseline_worktree(ws: Workspace, end: str) -> None:
    setup(ws.root)
    s = engine.start(ws, "demo")
    tree = ab_sides.baseline_worktree(ws, "demo", s)
    assert (tree / "app.py").read_text() == "x = 1\n" and len(worktrees(ws.root)) == 2
    (ws.root / "app.py").write_text("x = 2\n")
    if end == "close":
        close_mod.close(ws, "demo", force_reason="worktree test")
    else:
        engine.abort(ws, "demo", reason="worktree test")
    assert not tree.exists() and worktrees(ws.root) == [str(ws.root)]
    assert record.current(ws, "demo") is None
    # The preserved build stays with the archived session.
    assert (ws.session_dir("demo") / "5" / "artifacts" / "build" / "server").is_file()


def test_a_baseline_that_cannot_be_removed_warns_and_the_close_completes(
    ws: Workspace,
) -> None:
    setup(ws.root)
    engine.start(ws, "demo")
    stray = ws.session_dir("demo") / "5" / "baseline"
    stray.mkdir(parents=True)
    (stray / "junk").write_text("not a worktree\n")
    rep = Collect()
    result = close_mod.close(ws, "demo", force_reason="stray folder", reporter=rep)
    assert len(result.commits) == 2 and record.current(ws, "demo") is None
    [warning] = [w for w in rep.warnings if "baseline worktree" in w]
    assert "session 5" in warning and "git worktree remove" in warning and "\n" not in warning
    assert close_mod.pending(ws, "demo") is None  # the journal finished
