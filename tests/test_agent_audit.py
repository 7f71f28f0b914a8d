"""The audit's checks, one by one, on hand-made inputs and a real git diff."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sessionctl.agent import audit
from sessionctl.agent.audit import DiffSummary, FileDiff
from sessionctl.campaign.model import AuditSpec, ForbiddenPattern, NextStep
from sessionctl.errors import ConfigError
from sessionctl.workspace import Workspace

DIFF = """\
diff --git a/app/query.py b/app/query.py
index 1111111..2222222 100644
--- a/app/query.py
+++ b/app/query.py
@@ -3,0 +4,2 @@ def lookup(conn, customer):
+    # use the new index
+    return conn.execute(SQL_INDEXED, (customer,))
@@ -10 +12 @@ def other():
-    x = 1
+    x = 2
diff --git a/docs/old.md b/docs/old.md
deleted file mode 100644
--- a/docs/old.md
+++ /dev/null
@@ -1,2 +0,0 @@
-a
-b
diff --git a/img.png b/img.png
new file mode 100644
Binary files /dev/null and b/img.png differ
"""


def test_parse_unified_diff_counts_lines_hunks_and_keeps_added_lines() -> None:
    files = {f.path: f for f in audit.parse_unified_diff(DIFF)}
    q = files["app/query.py"]
    assert (q.added, q.removed, q.hunks) == (3, 1, 2)
    assert q.added_lines == (
        (4, "    # use the new index"),
        (5, "    return conn.execute(SQL_INDEXED, (customer,))"),
        (12, "    x = 2"),
    )
    assert (files["docs/old.md"].removed, files["docs/old.md"].added) == (2, 0)
    assert files["img.png"].binary and files["img.png"].new
    text = DiffSummary(tuple(files.values())).text()
    assert text.startswith("3 files, 3 hunks, +3 -3: app/query.py (+3 -1, 2 hunks)")
    assert "img.png (binary)" in text


def step(*paths: str) -> NextStep:
    return NextStep(id="idx", title="Index", paths=paths)


def fd(path: str, *lines: str) -> FileDiff:
    return FileDiff(path, added=len(lines), hunks=1, added_lines=tuple(enumerate(lines, 1)))


def test_one_change_rules() -> None:
    spec = AuditSpec(max_files=2)
    one = DiffSummary((fd("app/query.py", "x"), fd("tests/test_query.py", "y")))
    assert audit.check_diff(one, spec, step=step("app/")) == []
    many = DiffSummary((fd("app/a.py"), fd("app/b.py"), fd("app/c.py")))
    assert [p.code for p in audit.check_diff(many, spec, step=None)] == ["many-files"]
    unrelated = DiffSummary((fd("app/query.py"), fd("lib/cache.py")))
    problems = audit.check_diff(unrelated, AuditSpec(), step=step("app/"))
    assert [p.message for p in problems] == [
        "looks like more than one change: edits in unrelated areas app/, lib/"
    ]
    # A step naming two folders makes them one area; max_areas=None switches the check off.
    both = DiffSummary((fd("app/query.py"), fd("migrations/001.sql")))
    assert audit.check_diff(both, AuditSpec(), step=step("app/", "migrations/")) == []
    assert audit.check_diff(unrelated, AuditSpec(max_areas=None), step=None) == []
    assert audit.areas_of([fd("README.md"), fd("app/x.py")], None) == {".", "app"}


def test_forbidden_patterns_name_file_line_and_message() -> None:
    spec = AuditSpec(
        forbidden=(ForbiddenPattern(r"lru_cache|_result_cache", "caches query results"),)
    )
    diff = DiffSummary((fd("app/q.py", "import functools", "@functools.lru_cache(None)"),))
    (p,) = audit.check_forbidden(diff, spec)
    assert p.message == "app/q.py:2: caches query results (matches `lru_cache|_result_cache`)"
    with pytest.raises(ConfigError, match=r"audit.forbidden\[0\].pattern: bad regular expression"):
        audit.check_forbidden(diff, AuditSpec(forbidden=(ForbiddenPattern("(", "x"),)))


def test_records_needed_for_optimization_and_diagnostic_sessions() -> None:
    base = {"type": "measurement", "phase": "baseline"}
    re_ = {"type": "measurement", "phase": "remeasure"}
    assert audit.check_records([base, re_], diagnostic=False) == []
    assert [p.code for p in audit.check_records([base], diagnostic=False)] == ["no-remeasure"]
    assert [
        p.code
        for p in audit.check_records([{"type": "phase", "phase": "baseline"}], diagnostic=False)
    ] == [
        "no-baseline",
        "no-remeasure",
    ]
    assert [p.code for p in audit.check_records([], diagnostic=True)] == ["no-finding"]
    assert audit.check_records([{"type": "finding", "text": "x"}], diagnostic=True) == []


def test_log_written_only_by_close() -> None:
    before = "# Log\n\n## Session 1: a\n"
    entry = "## Session 2: b\n\nbody\n"
    closed = before + "\n" + entry
    assert audit.check_log(before, before, number=2, closed=False) == []
    assert [p.code for p in audit.check_log(before, before + "x\n", number=2, closed=False)] == [
        "log-edited"
    ]
    assert (
        audit.check_log(before, closed, number=2, closed=True, entry=entry, log_text=closed) == []
    )
    missing = audit.check_log(before, before, number=2, closed=True)
    assert [p.code for p in missing] == ["log-missing"]
    # Earlier entries rewritten, text slipped in beside the entry, or an edit after close.
    rewritten = closed.replace("## Session 1: a", "## Session 1: A")
    assert (
        "earlier entries changed"
        in audit.check_log(before, rewritten, number=2, closed=True)[0].message
    )
    beside = before + "\nmy notes\n" + entry
    assert (
        "beside session 2"
        in audit.check_log(before, beside, number=2, closed=True, entry=entry)[0].message
    )
    after_close = closed + "more\n"
    problems = audit.check_log(
        before, after_close, number=2, closed=True, entry=entry, log_text=closed
    )
    assert "after close wrote it" in problems[0].message


def test_agent_end_is_judged() -> None:
    assert audit.check_agent("exited", 0, "") == []
    assert audit.check_agent("exited", 2, "")[0].message == "the agent exited with code 2"
    assert audit.check_agent("timeout", None, "timeout after 2s")[0].message == (
        "the agent was stopped: timeout after 2s"
    )


def test_session_diff_on_a_real_git_repo(ws: Workspace) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ws.root, check=True, capture_output=True, text=True
        ).stdout

    (ws.root / "app").mkdir()
    (ws.root / "app" / "q.py").write_text("a\n")
    (ws.root / "notes.txt").write_text("mine\n")
    git("add", "app/q.py")
    git("commit", "-q", "-m", "app")
    start = git("rev-parse", "HEAD").strip()
    snap = audit.snapshot(ws, "shop", start_commit=start, dirty=["notes.txt"])
    (ws.root / "app" / "q.py").write_text("a\nb\n")
    (ws.root / "app" / "new.py").write_text("x = 1\ny = 2\n")
    (ws.root / "logs" / "shop-perf-log.md").write_text("# hand\n")  # judged by the log check
    ws.ensure_scratch()
    (ws.scratch / "junk").write_text("ignored")
    diff = audit.session_diff(ws, "shop", start_commit=start, snap=snap)
    assert [(f.path, f.added, f.new) for f in diff.files] == [
        ("app/new.py", 2, True),
        ("app/q.py", 1, False),
    ]
    # A file dirty before the session counts once it changes.
    (ws.root / "notes.txt").write_text("mine, edited\n")
    assert "notes.txt" in [
        f.path for f in audit.session_diff(ws, "shop", start_commit=start, snap=snap).files
    ]
    # Committing behind sessionctl's back is flagged.
    assert audit.check_commits(ws, start_commit=start) == []
    git("add", "app/q.py")
    git("commit", "-q", "-m", "sneaky")
    assert [p.code for p in audit.check_commits(ws, start_commit=start)] == ["self-commit"]


def test_snapshot_round_trips(tmp_path: Path) -> None:
    snap = audit.Snapshot("log", "abc", ("x.md.r1",), {"a": "h"})
    assert audit.Snapshot.from_dict(snap.to_dict()) == snap


def test_prompt_hand_edit_is_told_apart_from_a_yaml_edit(ws: Workspace) -> None:
    from sessionctl.campaign.store import write_prompt

    ws.campaign_path("shop").write_text("schema: 1\nrevision: 1\ntitle: Shop\nstatus: old\n")
    write_prompt(ws, "shop")
    snap = audit.snapshot(ws, "shop", start_commit=None)
    assert audit.check_prompt_edit(ws, "shop", snap=snap) == []
    # Editing the YAML (the source of truth) without re-rendering is not a hand edit of the .md.
    ws.campaign_path("shop").write_text("schema: 1\nrevision: 1\ntitle: Shop\nstatus: new\n")
    assert audit.check_prompt_edit(ws, "shop", snap=snap) == []
    # Re-rendering it is fine too; editing the .md by hand is not.
    write_prompt(ws, "shop")
    assert audit.check_prompt_edit(ws, "shop", snap=snap) == []
    md = ws.rendered_path("shop")
    md.write_text(md.read_text() + "\nSkip the baseline.\n")
    (p,) = audit.check_prompt_edit(ws, "shop", snap=snap)
    assert p.code == "prompt-edited" and p.message.startswith("prompts/shop.md was edited by hand")
