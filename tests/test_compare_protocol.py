"""The A/B protocol without a server: schedules, sides, preserved artefacts, baseline worktrees."""

from __future__ import annotations

import stat
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sessionctl.campaign.store import loads
from sessionctl.errors import UsageError
from sessionctl.process import Result
from sessionctl.session.record import OpenSession, write_current
from sessionctl.verdict.protocol import (
    AaSides,
    ArtifactSides,
    CompareResult,
    SqlSides,
    WorktreeSides,
    baseline_worktree,
    default_sides,
    preserve_artifacts,
    schedule,
    summary_markdown,
    to_measurement,
)
from sessionctl.verdict.session import judge_paired
from sessionctl.workspace import Workspace
from tests.conftest import git

CAMPAIGN = """schema: 1
revision: 1
title: t
target:
  sql_url: postgresql://u@127.0.0.1:1/db
  artifacts: [bin/server, "lib/*.so"]
  start: [bin/server, --data, "{artifacts}"]
  artifacts_param: "{artifacts}"
benchmarks:
  - name: b
    query: select 1
"""


def _campaign(ws: Workspace, text: str = CAMPAIGN) -> Any:
    ws.campaign_path("t").write_text(text)
    return loads(text, name="t", source="prompts/t.yaml").campaign


def test_abba_schedule_is_counterbalanced() -> None:
    assert schedule(6, "abba", 0) == ["AB", "BA", "BA", "AB", "AB", "BA"]
    assert schedule(1, "abba", 0) == ["AB"]


def test_random_schedule_is_balanced_and_seeded() -> None:
    one = schedule(8, "random", 42)
    assert one == schedule(8, "random", 42)
    assert one.count("AB") == one.count("BA") == 4
    assert any(schedule(8, "random", s) != one for s in range(1, 5))
    assert schedule(5, "random", 1).count("AB") == 3
    with pytest.raises(UsageError, match="--pairs"):
        schedule(0, "abba", 0)
    with pytest.raises(UsageError, match="abba or random"):
        schedule(2, "zigzag", 0)


def test_sides_kinds(tmp_path: Path) -> None:
    sql = SqlSides(a_sql=("DROP INDEX i",), b_sql=("CREATE INDEX i ON t (k)",))
    assert sql.same_server and sql.side("B").setup_sql == ("CREATE INDEX i ON t (k)",)
    art = ArtifactSides(tmp_path)
    assert not art.same_server and art.a.artifacts_dir == tmp_path and art.b.artifacts_dir is None
    wt = WorktreeSides(tmp_path)
    assert not wt.same_server and wt.a.root == tmp_path
    aa = AaSides(art)
    assert (
        aa.kind == "aa" and aa.same_server and aa.b.artifacts_dir == tmp_path and aa.b.label == "B"
    )
    assert AaSides().a.description == "the target as it is"
    assert art.to_dict()["A"]["artifacts_dir"] == str(tmp_path)


def test_sql_side_labels_join_statements_once() -> None:
    # The demo's statements end in ';': the label must not read `DROP INDEX …;; ANALYZE`.
    sides = SqlSides(
        a_sql=("DROP INDEX IF EXISTS i;",),
        b_sql=("CREATE INDEX IF NOT EXISTS i ON t (k);\n", "ANALYZE t ;", " ; "),
    )
    assert sides.a.description == "setup SQL: DROP INDEX IF EXISTS i"
    assert sides.b.description == "setup SQL: CREATE INDEX IF NOT EXISTS i ON t (k); ANALYZE t"
    assert sides.b.setup_sql[0].endswith(";\n")  # the statements run as given
    assert SqlSides().a.description == "setup SQL: none"


def test_preserve_artifacts_copies_all_or_nothing(ws: Workspace) -> None:
    camp = _campaign(ws)
    (ws.root / "bin").mkdir()
    server = ws.root / "bin" / "server"
    server.write_text("#!/bin/sh\n")
    server.chmod(0o755)
    (ws.root / "lib").mkdir()
    (ws.root / "lib" / "a.so").write_text("a")
    (ws.root / "lib" / "b.so").write_text("b")
    dest = preserve_artifacts(ws, camp, OpenSession("t", 3, None, False, "now"))
    assert dest == ws.session_dir("t") / "3" / "artifacts"
    assert (dest / "bin" / "server").stat().st_mode & stat.S_IXUSR
    assert sorted(p.name for p in (dest / "lib").iterdir()) == ["a.so", "b.so"]
    server.write_text("changed\n")  # a second call keeps the start-time copy
    assert preserve_artifacts(ws, camp, 3) == dest
    assert (dest / "bin" / "server").read_text() == "#!/bin/sh\n"


def test_preserve_artifacts_names_the_missing_entry(ws: Workspace) -> None:
    camp = _campaign(ws)
    with pytest.raises(UsageError, match=r"target\.artifacts\[0\]: bin/server does not exist"):
        preserve_artifacts(ws, camp, 1)
    assert not (ws.session_dir("t") / "1" / "artifacts").exists()
    bare = _campaign(ws, CAMPAIGN.replace('  artifacts: [bin/server, "lib/*.so"]\n', ""))
    with pytest.raises(UsageError, match=r"target\.artifacts: none listed"):
        preserve_artifacts(ws, bare, 1)


def test_git_baseline_worktree_is_the_starting_revision(ws: Workspace) -> None:
    start = git(ws.root, "rev-parse", "HEAD").strip()
    (ws.root / "README.md").write_text("changed after start\n")
    git(ws.root, "commit", "-qam", "later")
    session = OpenSession(
        "t", 2, None, False, "now", start_revision={"vcs": "git", "commit": start}
    )
    path = baseline_worktree(ws, "t", session)
    assert (path / "README.md").read_text() == "demo app\n"
    assert git(path, "rev-parse", "HEAD").strip() == start
    assert baseline_worktree(ws, "t", session) == path  # reused, not re-added


def test_jj_baseline_workspace_command_line(ws: Workspace) -> None:
    calls: list[tuple[list[str], Any]] = []

    def runner(argv: list[str], **kw: Any) -> Result:
        calls.append((argv, kw.get("cwd")))
        return Result(tuple(argv), 0, "", "")

    # A clean start (@ empty): the baseline is @'s parent; the start commit itself, hidden
    # once the agent edits, is never named as a parent (that would revive it, divergent).
    rev = {"vcs": "jj", "commit": "abc123", "empty": True}
    session = OpenSession("t", 4, None, False, "now", start_revision=rev)
    path = baseline_worktree(ws, "t", session, runner=runner)
    want = ["jj", "--no-pager", "--color=never", "workspace", "add", "--name",
            "sessionctl-baseline-4", "--revision", "abc123-", str(path)]  # fmt: skip
    assert calls == [(want, ws.root)]
    # A dirty start: its content is copied into the new workspace, not revived as a parent.
    calls.clear()
    rev = {"vcs": "jj", "commit": "def456", "empty": False}
    path = baseline_worktree(ws, "t", OpenSession("t", 6, None, False, "now", start_revision=rev),
                             runner=runner)  # fmt: skip
    assert calls == [
        (["jj", "--no-pager", "--color=never", "workspace", "add", "--name",
          "sessionctl-baseline-6", "--revision", "def456-", str(path)], ws.root),
        (["jj", "--no-pager", "--color=never", "restore", "--from", "def456"], path),
    ]  # fmt: skip
    with pytest.raises(UsageError, match="no starting revision"):
        baseline_worktree(ws, "t", OpenSession("t", 5, None, False, "now"), runner=runner)


def test_default_sides(ws: Workspace) -> None:
    camp = _campaign(ws)
    with pytest.raises(UsageError, match="--aa"):
        default_sides(ws, camp)
    assert default_sides(ws, camp, aa=True).a.description == "the target as it is"
    write_current(ws, OpenSession("t", 1, None, False, "now", {"vcs": "git", "commit": "x"}))
    (ws.session_dir("t") / "1" / "artifacts").mkdir(parents=True)
    sides = default_sides(ws, camp)
    assert (
        sides.kind == "artifacts"
        and sides.a.artifacts_dir == ws.session_dir("t") / "1" / "artifacts"
    )
    assert default_sides(ws, camp, aa=True).b.artifacts_dir == sides.a.artifacts_dir


def _result(aa: bool) -> CompareResult:
    a, b = [100.0, 101.0, 99.0], [120.0, 121.5, 118.0]
    runs = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        for side, v in (("A", x), ("B", y)):
            runs.append({"pair": i + 1, "side": side, "warmup": False, "values": {"qps@c4": v}})
    j = judge_paired("qps@c4", a, b, better="higher", threshold=0.02, first=["A", "B", "B"])
    return CompareResult("b", SqlSides(), "abba", 0, ("AB", "BA", "BA"), tuple(runs), (j,),
                         "saturated closed-loop run", aa, "", None)  # fmt: skip


def test_measurement_and_summary() -> None:
    res = _result(aa=False)
    m = to_measurement(res)
    assert (
        m.source == "compare"
        and m.phase is None
        and m.details["judgements"][0]["verdict"] == "improved"
    )
    v = m.value("qps@c4:ratio")
    assert v is not None and v.samples == pytest.approx((1.2, 121.5 / 101, 118 / 99))
    md = summary_markdown(res)
    assert "| `qps@c4` | 100 | 119.8 | +19.8% | +18.4% … +21.3% |" in md and "| improved |" in md
    cal = _result(aa=True)
    m2 = to_measurement(cal)
    assert "judgements" not in m2.details  # an A/A calibration never becomes the session's verdict
    assert m2.details["calibration"]["false_verdicts"] == 1
    assert m2.details["calibration"]["directional_verdicts"] == 1
    floor = cal.noise_floor()[0]
    assert floor["metric"] == "qps@c4" and floor["cv_a"] == pytest.approx(0.01)


def test_cli_table_shows_every_number(capsys: pytest.CaptureFixture[str]) -> None:
    from sessionctl import console
    from sessionctl.cli.compare import _show

    _show(console, _result(aa=True))
    out = capsys.readouterr()
    for text in (
        "A/A calibration of b",
        "qps@c4",
        "+18.4% … +21.3%",
        "improved",
        "noise floor",
        "false verdicts on identical sides: 1 improved/regressed, 1 with any direction "
        "(probably … included), of 1 metric",
        "not recorded",
    ):
        assert text in out.out, text
    assert "3 pairs: the Wilcoxon test cannot reach p<0.05" in out.out
    _show(console, _result(aa=True), record=False)
    assert "--no-record: not recorded" in capsys.readouterr().out
    _show(console, replace(_result(aa=True), session=4))
    assert "recorded into session 4 as a calibration (never the session's verdict)" in " ".join(
        capsys.readouterr().out.split()
    )


def _aa_trial(b: list[float]) -> CompareResult:
    """One A/A trial's result: A fixed, B as given (3 pairs of QPS)."""
    a = [100.0, 101.0, 99.0]
    runs = [
        {"pair": i + 1, "side": side, "warmup": False, "values": {"qps@c4": v}}
        for i, (x, y) in enumerate(zip(a, b, strict=True))
        for side, v in (("A", x), ("B", y))
    ]
    j = judge_paired("qps@c4", a, b, better="higher", threshold=0.02, first=["A", "B", "B"])
    return CompareResult("b", SqlSides(), "abba", 0, ("AB", "BA", "BA"), tuple(runs), (j,),
                         "saturated closed-loop run", True, "", None)  # fmt: skip


def test_calibration_counts_trials_and_pools_the_noise_floor() -> None:
    from sessionctl.verdict import stats
    from sessionctl.verdict.calibration import Calibration

    quiet = _aa_trial([100.5, 100.0, 99.5])
    loud = _aa_trial([120.0, 121.5, 118.0])  # improved: false in an A/A
    trials = (quiet,) * 19 + (loud,)
    assert quiet.directional_verdicts == 0 and loud.false_verdicts == 1
    cal = Calibration("b", trials)
    lenient, strict = cal.readings()
    assert (lenient["quiet_trials"], lenient["trials"], lenient["passed"]) == (19, 20, True)
    assert (lenient["ci_low"], lenient["ci_high"]) == stats.wilson(19, 20)
    assert strict["reading"] == "strict" and strict["quiet_trials"] == 19
    assert not Calibration("b", (quiet,) * 18 + (loud,) * 2).readings()[0]["passed"]  # 90 %
    (floor,) = cal.noise_floor()
    cvs = [x for t in trials for f in t.noise_floor() for x in (f["cv_a"], f["cv_b"])]
    assert floor["metric"] == "qps@c4"
    assert floor["median_cv"] == pytest.approx(statistics.median(cvs))
    assert cal.verdict_counts() == {"qps@c4": {quiet.judgements[0].verdict: 19, "improved": 1}}
    md = cal.summary_md()
    assert "| lenient | 19/20 | 95.0% |" in md and "| met |" in md
    data = cal.to_dict(runs=False)
    assert data["aa"] and "runs" not in data["trials"][0] and len(data["trials"]) == 20


def test_calibration_reports_the_false_verdict_share_with_its_interval() -> None:
    from sessionctl.verdict import stats
    from sessionctl.verdict.calibration import Calibration

    quiet = _aa_trial([100.5, 100.0, 99.5])
    loud = _aa_trial([120.0, 121.5, 118.0])  # improved: false in an A/A
    cal = Calibration("b", (quiet,) * 18 + (loud,) * 2)
    lenient = cal.readings()[0]
    assert (lenient["false_trials"], lenient["false_share"]) == (2, 0.1)
    low, high = stats.wilson(2, 20)
    assert (lenient["false_ci_low"], lenient["false_ci_high"]) == (low, high)
    line = cal.false_share_line()
    expected = f"lenient 2/20 = 10.0% (95% CI {low * 100:.1f}% … {high * 100:.1f}%)"
    assert line.startswith("false-verdict share: " + expected) and line.endswith("target <= 5.0%")
    assert line in cal.summary_md()


def test_calibration_pairs_needed_is_a_whole_number_of_pairs() -> None:
    from sessionctl.verdict.calibration import Calibration

    trials = (_aa_trial([100.5, 100.0, 99.5]), _aa_trial([120.0, 121.5, 118.0]))
    assert [f["pairs_needed"] for t in trials for f in t.noise_floor()] == [4, 3]
    (floor,) = Calibration("b", trials).noise_floor()
    assert floor["median_pairs_needed"] == 4  # the median 3.5, rounded up: pairs come whole
    assert "| 4 |" in Calibration("b", trials).summary_md()


def test_cli_says_why_a_comparison_was_not_recorded(capsys: pytest.CaptureFixture[str]) -> None:
    from sessionctl import console
    from sessionctl.cli.compare import _show
    from sessionctl.session.record import unrecorded_reason

    why = unrecorded_reason(7, "comparing")
    _show(console, replace(_result(aa=False), not_recorded=why))
    out = " ".join(capsys.readouterr().out.split())
    assert "not recorded: session 7 ended while comparing; rerun it in the open session" in out
    assert "no open session" not in out
