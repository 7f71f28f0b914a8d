"""The jj backend: the exact command lines it issues (a recording runner), its parsers, and
the real thing when jj is installed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import jj_required

from sessionctl.errors import CommandError, VcsError
from sessionctl.process import Result
from sessionctl.vcs.jj import (
    AT_TEMPLATE,
    OP_TEMPLATE,
    JjVcs,
    fileset,
    parse_git_diff,
    parse_summary,
)

G = ["jj", "--no-pager", "--color=never"]
OP = "a" * 128
CHANGE = "kkmpptxzrspxrzommnulwmwkkqwworpl"
COMMIT = "b1cb6b2f" + "0" * 32


class Recorder:
    """A runner that records argv/stdin/cwd and answers from a function of argv."""

    def __init__(self, answer: Callable[[list[str]], str] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.answer = answer or (lambda argv: "")

    def __call__(self, argv: list[str], **kw: Any) -> Result:
        self.calls.append({"argv": list(argv), "input": kw.get("input"), "cwd": kw.get("cwd")})
        return Result(tuple(argv), 0, self.answer(list(argv)), "")

    @property
    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls]


def default_answer(argv: list[str]) -> str:
    if argv[3:5] == ["op", "log"]:
        return OP + "\n"
    if argv[3:6] == ["log", "-r", "@"]:
        return f"{CHANGE} {COMMIT} empty ok\n"
    if argv[3:6] == ["log", "-r", "@-"]:
        return f"{CHANGE} {COMMIT}\n"
    return ""


def test_revision_and_checkpoint_argv(tmp_path: Path) -> None:
    rec = Recorder(default_answer)
    rev = JjVcs(tmp_path, runner=rec).revision()
    assert rec.argvs == [
        [*G, "log", "-r", "@", "--no-graph", "-T", AT_TEMPLATE],
        [*G, "op", "log", "-n1", "--no-graph", "-T", OP_TEMPLATE],
    ]
    assert AT_TEMPLATE.endswith('++ "\\n"') and OP_TEMPLATE == 'id ++ "\\n"'
    assert (rev.change, rev.commit, rev.op, rev.empty) == (CHANGE, COMMIT, OP, True)
    assert all(c["cwd"] == tmp_path for c in rec.calls)


def test_restore_and_discard_argv(tmp_path: Path) -> None:
    rec = Recorder()
    v = JjVcs(tmp_path, runner=rec)
    v.restore(OP)
    v.discard(["src/a b.rs", 'weird"name'])
    v.diff(["src/a b.rs"])
    assert v.diff([]) == ""
    assert rec.argvs == [
        [*G, "op", "restore", OP],
        [*G, "restore", 'root-file:"src/a b.rs"', 'root-file:"weird\\"name"'],
        [*G, "diff", "--git", 'root-file:"src/a b.rs"'],  # git-style, so `git apply` takes it
    ]


def test_commit_paths_selects_then_describes_via_stdin(tmp_path: Path) -> None:
    rec = Recorder(default_answer)
    message = "perf(x): session 3: t\n\nbody\n\nSession: 3\n"
    made = JjVcs(tmp_path, runner=rec).commit_paths(
        title="perf(x): session 3: t",
        message=message,
        paths=["src/a.rs", "logs/x.md"],
        scratch=tmp_path,
    )
    assert rec.argvs == [
        [
            *G,
            "commit",
            "-m",
            "perf(x): session 3: t",
            'root-file:"src/a.rs"',
            'root-file:"logs/x.md"',
        ],
        [*G, "describe", "@-", "--stdin"],
        [*G, "log", "-r", "@-", "--no-graph", "-T", 'change_id ++ " " ++ commit_id ++ "\\n"'],
    ]
    assert rec.calls[1]["input"] == message
    assert made.change == CHANGE and made.commit == COMMIT


def test_failure_becomes_vcs_error(tmp_path: Path) -> None:
    def boom(argv: list[str], **kw: Any) -> Result:
        raise CommandError(
            "`jj op restore x` exited with 1: Error: No operation ID matching", argv=argv
        )

    with pytest.raises(VcsError, match="No operation ID"):
        JjVcs(tmp_path, runner=boom).restore("x")


def test_jj_editor_is_disabled_for_every_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JJ_EDITOR", raising=False)
    seen: list[str | None] = []

    def runner(argv: list[str], **kw: Any) -> Result:
        seen.append(kw["env"].get("JJ_EDITOR"))
        return Result(tuple(argv), 0, "", "")

    JjVcs(tmp_path, runner=runner).discard(["a"])
    assert seen == ["false"]


def test_parse_summary_statuses_and_renames() -> None:
    text = "M src/lib.rs\nA agent_logs/t.json\nD old.rs\nR src/{a.rs => b.rs}\nC {x => y}\n"
    got = {c.path: c.status for c in parse_summary(text)}
    assert got == {
        "src/lib.rs": "M",
        "agent_logs/t.json": "?",
        "old.rs": "D",
        "src/a.rs": "D",
        "src/b.rs": "?",
        "y": "?",
    }
    assert parse_summary("") == []


def test_parse_git_diff_counts_lines() -> None:
    diff = (
        "diff --git a/src/a.rs b/src/a.rs\nindex 1..2 100644\n--- a/src/a.rs\n+++ b/src/a.rs\n"
        "@@ -1,2 +1,3 @@\n-old\n+new\n+more\n ctx\n"
        "diff --git a/img.png b/img.png\nBinary files a/img.png and b/img.png differ\n"
    )
    stats = parse_git_diff(diff)
    assert (stats["src/a.rs"].added, stats["src/a.rs"].removed) == (2, 1)
    assert stats["img.png"].added is None


def test_fileset_quotes_literal_paths() -> None:
    assert fileset("prompts/x*.md") == 'root-file:"prompts/x*.md"'
    assert fileset("a\\b") == 'root-file:"a\\\\b"'


# --- the real jj -------------------------------------------------------------------------------


def _jj(root: Path, *args: str) -> str:
    return subprocess.run(
        ["jj", "--no-pager", "--color=never", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@jj_required
def test_real_jj_commit_paths_and_restore(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    _jj(root, "git", "init")
    (root / "a.txt").write_text("a\n")
    (root / "stray.log").write_text("s\n")
    v = JjVcs(root)
    cp = v.checkpoint()
    assert len(cp) >= 12
    assert {c.path: c.status for c in v.working_changes()} == {"a.txt": "?", "stray.log": "?"}
    made = v.commit_paths(title="t", message="t\n\nbody\n", paths=["a.txt"], scratch=tmp_path)
    assert v.files_in("@-") == ["a.txt"]
    assert v.description("@-") == "t\n\nbody\n"
    assert [c.path for c in v.working_changes()] == ["stray.log"]  # left out, in the new @
    assert made.change
    v.restore(cp)
    assert (
        json.loads(_jj(root, "log", "-r", "@", "--no-graph", "-T", 'json(description) ++ "\\n"'))
        == ""
    )
