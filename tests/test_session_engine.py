"""Opening sessions, recording into them, status and abort (real git repositories)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import git

from sessionctl.errors import (
    NoOpenSession,
    NothingToDo,
    SessionStateError,
    UsageError,
    VcsError,
)
from sessionctl.session import close as close_mod
from sessionctl.session import engine, record
from sessionctl.workspace import Workspace

CAMPAIGN = """\
schema: 1
revision: 2
title: Demo throughput
last_session: 9
status: Fast enough for now.
next_steps:
  - id: first
    title: The first step
  - id: second
    title: The second step
"""


def setup_campaign(repo: Path, text: str = CAMPAIGN) -> Workspace:
    (repo / "prompts" / "demo.yaml").write_text(text)
    (repo / "app.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "campaign")
    return Workspace(repo)


def test_start_opens_the_next_session_on_the_top_step(ws: Workspace, frozen_now: str) -> None:
    setup_campaign(ws.root)
    head = git(ws.root, "rev-parse", "HEAD").strip()
    s = engine.start(ws, "demo")
    assert (s.number, s.step_id, s.diagnostic, s.started_at) == (10, "first", False, frozen_now)
    assert s.start_revision["vcs"] == "git" and s.start_revision["commit"] == head
    assert record.current(ws, "demo") == s
    assert (ws.root / "prompts" / "demo.md").read_text().strip()  # the prompt was rendered
    cmds = engine.next_commands(s)
    assert cmds[0].startswith("sessionctl bench --phase baseline")
    assert cmds[-1].startswith("sessionctl close demo --resolve first")


def test_start_refuses_a_second_session_and_says_how_to_end_the_first(ws: Workspace) -> None:
    setup_campaign(ws.root)
    engine.start(ws, "demo", step="second")
    with pytest.raises(SessionStateError) as err:
        engine.start(ws, "demo")
    msg = str(err.value)
    assert "session 10 is already open on step 'second'" in msg
    assert "sessionctl close demo" in msg and "sessionctl abort demo --reason" in msg


def test_start_refuses_a_dirty_tree_unless_allowed(ws: Workspace) -> None:
    setup_campaign(ws.root)
    (ws.root / "app.py").write_text("x = 2\n")
    (ws.root / "notes.txt").write_text("scratch\n")
    with pytest.raises(VcsError, match=r"not clean: M app.py, \? notes.txt;.*--allow-dirty"):
        engine.start(ws, "demo")
    assert record.current(ws, "demo") is None
    s = engine.start(ws, "demo", allow_dirty=True)
    assert s.extra["dirty_at_start"] == ["app.py", "notes.txt"]


def test_start_needs_a_step_or_diagnostic(ws: Workspace) -> None:
    setup_campaign(ws.root, CAMPAIGN.split("next_steps:")[0])
    with pytest.raises(NothingToDo, match="none left"):
        engine.start(ws, "demo")
    with pytest.raises(UsageError, match="no step 'nope'"):
        engine.start(ws, "demo", step="nope")
    s = engine.start(ws, "demo", diagnostic=True)
    assert s.step_id is None and s.diagnostic


@pytest.mark.parametrize(
    ("text", "name", "value", "unit", "better"),
    [
        ("qps=1234", "qps", 1234.0, "", "higher"),
        ("p99=3.2ms", "p99", 3.2, "ms", "lower"),
        ("qps@c64 = 1.5e5", "qps@c64", 150000.0, "", "higher"),
        ("rows=-3", "rows", -3.0, "", None),
        ("mean_us@c8=12us", "mean_us@c8", 12.0, "us", "lower"),
    ],
)
def test_parse_metric(text: str, name: str, value: float, unit: str, better: str | None) -> None:
    v = engine.parse_metric(text)
    assert (v.name, v.value, v.unit, v.better) == (name, value, unit, better)


@pytest.mark.parametrize("bad", ["qps", "qps=", "=3", "qps=fast", "a=1=2", "p99=3.2 ms extra"])
def test_parse_metric_rejects_garbage_in_one_line(bad: str) -> None:
    with pytest.raises(UsageError) as err:
        engine.parse_metric(bad)
    assert "\n" not in str(err.value) and "name=value[unit]" in str(err.value)


def test_record_findings_files_and_metrics(ws: Workspace, tmp_path: Path) -> None:
    setup_campaign(ws.root)
    with pytest.raises(NoOpenSession, match="no open session") as err:
        engine.record(ws, "demo", findings=["x"])
    # Nothing to act on: exit 2, and still a session-state error for callers catching those.
    assert err.value.exit_code == 2 and isinstance(err.value, SessionStateError)
    engine.start(ws, "demo")
    profile = tmp_path / "flame.txt"
    profile.write_text("observe 30%\n")
    with pytest.raises(UsageError, match="--finding: blank"):
        engine.record(ws, "demo", phase="profile", findings=["observe is hot", "  "])
    assert record.entries(ws, "demo", 10) == []  # refused before anything was written
    engine.record(ws, "demo", phase="profile", findings=["observe is hot"], files=[profile] * 2)
    engine.record(ws, "demo", phase="baseline", metrics=["qps=1000", "p99=3ms"])
    engine.record(ws, "demo", phase="change")
    entries = record.entries(ws, "demo", 10)
    assert [e["type"] for e in entries] == ["finding", "file", "file", "measurement", "phase"]
    assert entries[1]["name"] == "files/flame.txt" and entries[2]["name"] == "files/flame-2.txt"
    stored = record.session_path(ws, "demo", 10) / "files" / "flame-2.txt"
    assert stored.read_text() == "observe 30%\n"
    (m,) = record.measurements(ws, "demo", 10)
    assert m.phase == "baseline" and [v.name for v in m.values] == ["qps", "p99"]
    with pytest.raises(UsageError, match="needs --phase"):
        engine.record(ws, "demo", metrics=["qps=1"])
    with pytest.raises(UsageError, match="unknown"):
        engine.record(ws, "demo", phase="lunch")
    with pytest.raises(UsageError, match="no such file"):
        engine.record(ws, "demo", files=[tmp_path / "missing"])
    with pytest.raises(UsageError, match="nothing to record"):
        engine.record(ws, "demo")
    assert len(record.entries(ws, "demo", 10)) == 5  # failed calls wrote nothing


def test_concurrent_recorders_keep_every_entry(ws: Workspace) -> None:
    setup_campaign(ws.root)
    engine.start(ws, "demo")
    pids = []
    for who in ("agent", "person"):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                os.environ["SESSIONCTL_AUTHOR"] = who
                for i in range(25):
                    engine.record(
                        ws, "demo", phase="profile", findings=[f"{who} {i}"], metrics=[f"n={i}"]
                    )
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    assert [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids] == [0, 0]
    entries = record.entries(ws, "demo", 10)
    texts = sorted(e["text"] for e in entries if e["type"] == "finding")
    assert texts == sorted(f"{w} {i}" for w in ("agent", "person") for i in range(25))
    assert sum(1 for e in entries if e["type"] == "measurement") == 50
    assert {e["by"] for e in entries} == {"agent", "person"}


def test_status_shows_phases_measurements_and_the_close_plan(ws: Workspace) -> None:
    setup_campaign(ws.root)
    idle = engine.status(ws, "demo")
    assert (
        not idle.open and idle.next_step == "first" and idle.commands == ("sessionctl start demo",)
    )
    engine.start(ws, "demo")
    engine.record(ws, "demo", phase="baseline", metrics=["qps=1000"])
    engine.record(ws, "demo", phase="profile", findings=["observe is hot"])
    (ws.root / "app.py").write_text("x = 3\n")
    (ws.root / "perf.data").write_text("junk\n")
    st = engine.status(ws, "demo")
    assert [(p.name, p.done) for p in st.phases] == [
        ("baseline", True),
        ("profile", True),
        ("change", True),  # app.py is edited, though nothing was recorded for it
        ("remeasure", False),
    ]
    assert st.phases[2].entries == 0
    assert st.measurements[0]["values"] == [{"name": "qps", "value": 1000.0, "unit": ""}]
    assert st.findings[0]["text"] == "observe is hot"
    assert len(st.missing) == 1 and "remeasure" in st.missing[0] and not st.can_close
    assert st.close_plan is not None
    assert st.close_plan["code"]["paths"] == ["app.py", "logs/demo-perf-log.md"]
    assert st.close_plan["prompt"]["paths"] == ["prompts/demo.yaml", "prompts/demo.md"]
    assert st.close_plan["left_out"] == ["perf.data"]
    assert st.close_plan["code"]["title"] == "perf(demo): session 10: The first step"
    d = st.to_dict()
    assert d["can_close"] is False and d["session"] == 10


def test_status_reports_a_journal_it_cannot_finish(ws: Workspace) -> None:
    setup_campaign(ws.root)
    engine.start(ws, "demo")
    close_mod.journal_path(ws, "demo").write_text("not json")
    st = engine.status(ws, "demo")
    assert st.pending_close is not None and "unreadable close journal" in st.pending_close["error"]
    assert st.close_plan is None


def test_abort_logs_why_keeps_findings_and_the_code(ws: Workspace, frozen_now: str) -> None:
    setup_campaign(ws.root)
    engine.start(ws, "demo")
    engine.record(ws, "demo", phase="profile", findings=["the lock is not the problem"])
    (ws.root / "app.py").write_text("x = 99\n")
    with pytest.raises(SessionStateError, match="needs a reason"):
        engine.abort(ws, "demo", reason=" ")
    result = engine.abort(ws, "demo", reason="the idea was wrong", status_text="Lock ruled out.")
    assert result.kept == ("app.py",) and result.discarded == ()
    assert (ws.root / "app.py").read_text() == "x = 99\n"
    log = (ws.root / "logs" / "demo-perf-log.md").read_text()
    assert "## Session 10 (aborted): The first step" in log
    assert "**Aborted:** the idea was wrong" in log and "the lock is not the problem" in log
    assert git(ws.root, "show", "--name-only", "--format=", "HEAD~1").split() == [
        "logs/demo-perf-log.md"
    ]
    assert (
        git(ws.root, "log", "-1", "--format=%s", "HEAD~1")
        == "perf(demo): session 10 aborted: The first step\n"
    )
    assert git(ws.root, "show", "--name-only", "--format=", "HEAD").split() == [
        "prompts/demo.md",
        "prompts/demo.yaml",
    ]
    from sessionctl.campaign import store

    camp = store.load(ws, "demo").campaign
    assert camp.last_session == 10 and [s.id for s in camp.next_steps] == ["first", "second"]
    assert camp.status == "Lock ruled out."
    assert record.current(ws, "demo") is None


def test_abort_killed_right_after_the_discard_keeps_the_patch(ws: Workspace) -> None:
    setup_campaign(ws.root)
    engine.start(ws, "demo")
    (ws.root / "app.py").write_text("x = 42\n")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child dies at the crash point
        try:
            os.environ[close_mod.ENV_CRASH] = "discard"  # discarded, not yet journaled
            engine.abort(ws, "demo", reason="dead end", discard=True)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 99
    assert (ws.root / "app.py").read_text() == "x = 1\n"  # the discard had happened
    assert engine.status(ws, "demo").pending_close is not None  # status only reports it
    close_mod.recover(ws, "demo")  # finishes the abort: the discard runs again, diff now empty
    assert record.current(ws, "demo") is None
    patch = ws.root / ".sessionctl/sessions/demo/10/discarded.patch"
    assert "+x = 42" in patch.read_text()  # the first pass's patch was not overwritten


def test_abort_discard_restores_tracked_files(ws: Workspace) -> None:
    setup_campaign(ws.root)
    engine.start(ws, "demo")
    (ws.root / "app.py").write_text("x = 99\n")
    (ws.root / "new.py").write_text("new\n")
    result = engine.abort(ws, "demo", reason="measurement was broken", discard=True)
    assert result.discarded == ("app.py",) and result.kept == ("new.py",)
    assert (ws.root / "app.py").read_text() == "x = 1\n"
    assert git(ws.root, "status", "--porcelain").splitlines() == ["?? new.py"]
    # Nothing is lost: the discarded edits were saved first, and the patch brings them back.
    patch = result.to_dict()["discard_patch"]
    assert patch == ".sessionctl/sessions/demo/10/discarded.patch"
    assert "+x = 99" in (ws.root / patch).read_text()
    entry = ws.log_path("demo").read_text()
    saved = f"The edits were saved first as `{patch}`; `git apply {patch}` brings them back."
    assert saved in entry
    git(ws.root, "apply", patch)
    assert (ws.root / "app.py").read_text() == "x = 99\n"
    git(ws.root, "checkout", "--", "app.py")
    # A stale session folder (current.json lost) is moved aside, never mixed into a new session.
    record.session_path(ws, "demo", 11).mkdir(parents=True)
    (record.session_path(ws, "demo", 11) / "entries.jsonl").write_text('{"type": "finding"}\n')
    (ws.root / "new.py").unlink()
    s = engine.start(ws, "demo")
    assert s.number == 11 and record.entries(ws, "demo", 11) == []
    assert (ws.session_dir("demo") / "11.stale-1" / "entries.jsonl").exists()
