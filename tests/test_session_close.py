"""Closing sessions in real git repositories: the full flow, the rules, rollback, and crash
recovery at every step of the journaled close."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import git

from sessionctl.errors import SessionStateError, VcsError
from sessionctl.measurement import Measurement, Value
from sessionctl.session import close as close_mod
from sessionctl.session import engine, record
from sessionctl.session.close import NewStep, close, recover
from sessionctl.workspace import Workspace

CAMPAIGN = """\
schema: 1
revision: 7
title: Demo throughput
last_session: 46
# The status is rewritten by close; this comment must survive.
status: |
  Observes dominate the profile.
next_steps:
  - id: batch-observe
    title: Batch histogram observes
    body: one_query timing calls observe per query.
    effect: ~5% QPS
  - id: btree-cache
    title: Cache BTreeMap lookups
"""
NOW = "2026-11-22T10:00:00Z"


def setup_campaign(repo: Path) -> Workspace:
    """Commit a campaign and a tiny app into ``repo``; return its workspace."""
    (repo / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    (repo / "src").mkdir(exist_ok=True)
    (repo / "src" / "app.py").write_text("def query():\n    return 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "campaign")
    return Workspace(repo)


def measurement(phase: str, qps: tuple[float, ...], p99: tuple[float, ...]) -> Measurement:
    return Measurement(
        source="builtin",
        name="read",
        phase=phase,
        values=(
            Value("qps@c64", sum(qps) / len(qps), "qps", "higher", qps),
            Value("p99_ms@c64", sum(p99) / len(p99), "ms", "lower", p99),
        ),
        summary_md="",
    )


def work_session(ws: Workspace) -> None:
    """Start, measure, profile, change one file, leave a stray file, re-measure."""
    engine.start(ws, "demo")
    record.record_measurement(
        ws, "demo", measurement("baseline", (1000, 1010, 990), (3.2, 3.3, 3.1))
    )
    engine.record(ws, "demo", phase="profile", findings=["observe() is 30% of samples at 64c"])
    (ws.root / "src" / "app.py").write_text("def query():\n    return 2\n\n# batched\n")
    (ws.root / "agent_transcript.jsonl").write_text("{}\n")
    engine.record(ws, "demo", phase="change", findings=["batched the observes"])
    record.record_measurement(
        ws, "demo", measurement("remeasure", (1200, 1210, 1190), (2.9, 3.0, 2.8))
    )


CLOSE_ARGS: dict[str, Any] = {
    "resolve": "batch-observe",
    "add_steps": (NewStep("arena", "Arena allocation for single-row queries"),),
    "status_text": "Observes are batched; allocation is next.",
    "summary": "Batched histogram observes: one flush per 64 queries.",
}


def commits(repo: Path) -> list[str]:
    return git(repo, "log", "--format=%H").split()


def test_full_session_in_a_real_git_repo(ws: Workspace, frozen_now: str) -> None:
    setup_campaign(ws.root)
    before = commits(ws.root)
    work_session(ws)
    result = close(ws, "demo", **CLOSE_ARGS)

    after = commits(ws.root)
    assert len(after) == len(before) + 2
    assert [c.commit for c in result.commits] == after[1::-1]
    # Change 1: the code and the log entry, nothing else.
    code_msg = git(ws.root, "log", "-1", "--format=%B", "HEAD~1")
    assert git(ws.root, "show", "--name-only", "--format=", "HEAD~1").split() == [
        "logs/demo-perf-log.md",
        "src/app.py",
    ]
    assert code_msg.startswith("perf(demo): session 47: Batch histogram observes\n\n")
    assert "| `qps@c64` | 1,000 qps | 1,200 qps | +20.0% |" in code_msg
    trailers = git(ws.root, "log", "-1", "--format=%(trailers:only,unfold)", "HEAD~1")
    assert "Session: 47\nStep: batch-observe\nSession-Kind: optimization\n" in trailers
    assert f"Verdict: {result.plan.verdict}\n" in trailers
    assert result.plan.verdict not in (None, "n/a")
    assert "Baseline-QPS: 1000\nAfter-QPS: 1200\n" in trailers
    # Change 2: only the YAML and its rendering.
    assert git(ws.root, "show", "--name-only", "--format=", "HEAD").split() == [
        "prompts/demo.md",
        "prompts/demo.yaml",
    ]
    assert git(ws.root, "log", "-1", "--format=%s", "HEAD").startswith(
        "prompt(demo): after session 47: "
    )
    # The log has exactly one entry for the session, with the results and the diff stat.
    log = (ws.root / "logs" / "demo-perf-log.md").read_text()
    assert log.count("## Session 47") == 1
    assert "observe() is 30% of samples at 64c" in log and "`src/app.py` (+3 −1)" in log
    # The YAML: step rotated out, new step in, status, last session, revision, comment kept.
    from sessionctl.campaign import store

    camp = store.load(ws, "demo").campaign
    assert [s.id for s in camp.next_steps] == ["btree-cache", "arena"]
    assert camp.completed.optimizations[0].sessions == (47,)
    assert (camp.last_session, camp.revision) == (47, 8)
    assert camp.status.strip() == "Observes are batched; allocation is next."
    assert (
        "# The status is rewritten by close; this comment must survive."
        in (ws.root / "prompts" / "demo.yaml").read_text()
    )
    # Clean state: only the stray file, left out; no open session, no journal.
    assert git(ws.root, "status", "--porcelain").splitlines() == ["?? agent_transcript.jsonl"]
    assert result.plan.left_out == ("agent_transcript.jsonl",)
    assert record.current(ws, "demo") is None
    assert not close_mod.journal_path(ws, "demo").exists()
    closed = close_mod.load_closed(ws, "demo", 47)
    assert closed is not None and closed["verdict"] == result.plan.verdict
    assert {j["metric"] for j in result.judgements} == {"qps@c64", "p99_ms@c64"}
    # The next session starts from here.
    (ws.root / "agent_transcript.jsonl").unlink()
    nxt = engine.start(ws, "demo")
    assert (nxt.number, nxt.step_id) == (48, "btree-cache")


def test_close_requires_measurements_unless_forced(ws: Workspace, frozen_now: str) -> None:
    setup_campaign(ws.root)
    engine.start(ws, "demo")
    engine.record(ws, "demo", phase="baseline", metrics=["qps=1000"])
    with pytest.raises(SessionStateError, match="a remeasure measurement"):
        close(ws, "demo")
    result = close(ws, "demo", force_reason="the server crashed during the re-measure")
    msg = git(ws.root, "log", "-1", "--format=%B", "HEAD~1")
    assert "Forced: the server crashed during the re-measure" in msg
    log = (ws.root / "logs" / "demo-perf-log.md").read_text()
    assert "**Closed with `--force`:** the server crashed during the re-measure" in log
    assert result.plan.missing and "No code change." in log


def test_diagnostic_session_needs_a_finding(ws: Workspace, frozen_now: str) -> None:
    setup_campaign(ws.root)
    engine.start(ws, "demo", diagnostic=True)
    with pytest.raises(SessionStateError, match="a finding"):
        close(ws, "demo")
    engine.record(ws, "demo", findings=["read_ts is 0.2µs now"])
    result = close(ws, "demo", summary="Nothing left in read_ts.")
    assert result.plan.code.title == "perf(demo): session 47 (diagnostic): Batch histogram observes"
    assert result.plan.verdict is None
    assert "Verdict:" not in git(ws.root, "log", "-1", "--format=%B", "HEAD~1")
    assert "read_ts is 0.2µs now" in (ws.root / "logs" / "demo-perf-log.md").read_text()


def snapshot_tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and ".git/" not in f"{p.relative_to(root)}/"[:5]
        and ".sessionctl" not in p.parts
    }


def test_dry_run_prints_the_plan_and_touches_nothing(ws: Workspace, frozen_now: str) -> None:
    setup_campaign(ws.root)
    work_session(ws)
    files = snapshot_tree(ws.root)
    head = commits(ws.root)
    result = close(ws, "demo", dry_run=True, **CLOSE_ARGS)
    assert snapshot_tree(ws.root) == files and commits(ws.root) == head
    assert record.current(ws, "demo") is not None
    plan = result.plan
    assert plan.code.paths == ("src/app.py", "logs/demo-perf-log.md")
    assert plan.prompt.paths == ("prompts/demo.yaml", "prompts/demo.md")
    assert plan.entry in plan.log_text and "revision: 8" in plan.yaml_text
    assert result.to_dict()["plan"]["code"]["message"].startswith("perf(demo): session 47")


def test_include_puts_a_new_file_into_the_code_change(ws: Workspace, frozen_now: str) -> None:
    setup_campaign(ws.root)
    work_session(ws)
    (ws.root / "src" / "batch.py").write_text("BATCH = 64\n")
    (ws.root / "src" / "staged_stray.txt").write_text("an agent ran git add -A\n")
    git(ws.root, "add", "src/staged_stray.txt")
    result = close(ws, "demo", include=["src/batch.py"], **CLOSE_ARGS)
    assert "src/batch.py" in result.plan.code.paths
    assert "src/batch.py" in git(ws.root, "show", "--name-only", "--format=", "HEAD~1").split()
    assert result.plan.left_out == ("agent_transcript.jsonl", "src/staged_stray.txt")
    assert "src/staged_stray.txt" not in git(ws.root, "ls-tree", "-r", "--name-only", "HEAD")


def test_failing_vcs_step_rolls_everything_back(ws: Workspace, frozen_now: str) -> None:
    setup_campaign(ws.root)
    work_session(ws)
    hook = ws.root / ".git" / "hooks" / "commit-msg"
    hook.write_text(
        '#!/bin/sh\nif head -1 "$1" | grep -q "^prompt("; then\n'
        '  echo "no prompt commits" >&2; exit 1\nfi\n'
    )
    hook.chmod(0o755)
    head = commits(ws.root)
    log_before = (ws.root / "logs").iterdir()
    yaml_before = (ws.root / "prompts" / "demo.yaml").read_text()
    with pytest.raises(VcsError, match=r"commit prompt failed.*rolled back"):
        close(ws, "demo", **CLOSE_ARGS)
    assert commits(ws.root) == head
    assert list(log_before) == [] and not (ws.root / "logs" / "demo-perf-log.md").exists()
    assert (ws.root / "prompts" / "demo.yaml").read_text() == yaml_before
    assert (ws.root / "src" / "app.py").read_text().endswith("# batched\n")  # the work is kept
    assert record.current(ws, "demo") is not None
    assert not close_mod.journal_path(ws, "demo").exists()
    hook.unlink()
    assert len(close(ws, "demo", **CLOSE_ARGS).commits) == 2


def test_recording_is_refused_while_a_close_is_pending(ws: Workspace, frozen_now: str) -> None:
    setup_campaign(ws.root)
    work_session(ws)
    close_mod.journal_path(ws, "demo").write_text("{}")
    with pytest.raises(SessionStateError, match="being closed"):
        engine.record(ws, "demo", findings=["late"])
    close_mod.journal_path(ws, "demo").unlink()


# --- crash at every step ------------------------------------------------------------------------

CRASH_POINTS = [
    "journal",
    "log",
    "log:done",
    "prompt",
    "prompt:done",
    "commit_code:pre",
    "commit_code",
    "commit_code:done",
    "commit_prompt:pre",
    "commit_prompt",
    "commit_prompt:done",
    "finish",
    "finish:done",
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A repository with a session ready to close (built once, copied per crash point)."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {
            "HOME": str(tmp_path_factory.mktemp("home")),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Test User",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test User",
            "GIT_COMMITTER_EMAIL": "test@example.com",
            "SESSIONCTL_NOW": NOW,
        }.items():
            mp.setenv(k, v)
        repo = tmp_path_factory.mktemp("prepared") / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        (repo / "prompts").mkdir()
        (repo / "logs").mkdir()
        (repo / "logs" / "demo-perf-log.md").write_text(
            "# Hand-written log\n\nSession 46: read_ts fast path.\n"
        )
        ws = setup_campaign(repo)
        work_session(ws)
        yield repo


def final_state(root: Path) -> dict[str, Any]:
    ws = Workspace(root)
    return {
        "log": (root / "logs" / "demo-perf-log.md").read_text(),
        "yaml": (root / "prompts" / "demo.yaml").read_text(),
        "md": (root / "prompts" / "demo.md").read_text(),
        "count": len(commits(root)),
        "messages": [git(root, "log", "-1", "--format=%B", rev) for rev in ("HEAD~1", "HEAD")],
        "trees": [git(root, "rev-parse", f"{rev}^{{tree}}").strip() for rev in ("HEAD~1", "HEAD")],
        "status": git(root, "status", "--porcelain"),
        "open": record.current(ws, "demo") is not None,
        "journal": close_mod.journal_path(ws, "demo").exists(),
        "closed": close_mod.load_closed(ws, "demo", 47) is not None,
    }


@pytest.fixture(scope="module")
def reference(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The final state of an uninterrupted close."""
    root = tmp_path_factory.mktemp("reference") / "repo"
    shutil.copytree(prepared, root, symlinks=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SESSIONCTL_NOW", NOW)
        close(Workspace(root), "demo", **CLOSE_ARGS)
        return final_state(root)


def _close_in_child(root: Path, point: str) -> int:
    """Run close in a forked child that dies at ``point``; return its exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        code = 1
        try:
            os.environ[close_mod.ENV_CRASH] = point
            close(Workspace(root), "demo", **CLOSE_ARGS)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_at_every_step_then_rerun_gives_the_same_result(
    point: str, prepared: Path, reference: dict[str, Any], tmp_path: Path, frozen_now: str
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(prepared, root, symlinks=True)
    assert _close_in_child(root, point) == 99
    ws = Workspace(root)
    assert close_mod.pending(ws, "demo") is not None
    # `status` only reports it (a read command never finishes nor rolls back); close finishes.
    crashed = (commits(root), git(root, "status", "--porcelain"), snapshot_tree(root))
    st = engine.status(ws, "demo")
    assert st.pending_close is not None and st.recovered is None
    assert st.commands == ("sessionctl close demo",)
    assert (commits(root), git(root, "status", "--porcelain"), snapshot_tree(root)) == crashed
    again = close(ws, "demo", **CLOSE_ARGS)
    assert again.recovered and len(again.commits) == 2
    assert final_state(root) == reference
    assert reference["count"] == len(commits(prepared)) + 2
    assert reference["log"].startswith(
        "# Hand-written log\n\nSession 46: read_ts fast path.\n\n## Session 47"
    )
    assert recover(ws, "demo") is None


def test_crash_in_a_real_cli_process_then_status_reports_and_close_finishes(
    prepared: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(prepared, root, symlinks=True)
    env = {**os.environ, close_mod.ENV_CRASH: "commit_code", "SESSIONCTL_NOW": NOW}
    argv = [
        sys.executable,
        "-m",
        "sessionctl",
        "--root",
        str(root),
        "close",
        "demo",
        "--resolve",
        "batch-observe",
    ]
    argv += ["--add-step", "arena: Arena allocation for single-row queries"]
    argv += ["--status", CLOSE_ARGS["status_text"], "--summary", CLOSE_ARGS["summary"], "--json"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=root)
    assert proc.returncode == 99, proc.stderr
    env.pop(close_mod.ENV_CRASH)
    out = subprocess.run(
        [sys.executable, "-m", "sessionctl", "--root", str(root), "status", "demo", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["recovered"] is None and data["pending_close"]["remaining"][0] == "commit_code"
    assert data["commands"] == ["sessionctl close demo"]
    again = subprocess.run(
        [sys.executable, "-m", "sessionctl", "--root", str(root), "close", "demo", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert again.returncode == 0, again.stderr
    assert "finished the interrupted close of session 47" in json.loads(again.stdout)["recovered"]
    assert final_state(root) == reference


def test_workspace_in_a_subfolder_of_the_repository(git_repo: Path, frozen_now: str) -> None:
    sub = git_repo / "tools" / "perf"
    (sub / "prompts").mkdir(parents=True)
    ws = setup_campaign(sub)
    work_session(ws)
    (git_repo / "README.md").write_text("edited at the repository root\n")
    result = close(ws, "demo", **CLOSE_ARGS)
    assert result.plan.code.paths == (
        "README.md",
        "tools/perf/src/app.py",
        "tools/perf/logs/demo-perf-log.md",
    )
    assert git(git_repo, "show", "--name-only", "--format=", "HEAD").split() == [
        "tools/perf/prompts/demo.md",
        "tools/perf/prompts/demo.yaml",
    ]
    assert result.plan.left_out == ("tools/perf/agent_transcript.jsonl",)
