"""Campaign-level behaviour: the headline metric, numbering from the log, retired steps.

Everything runs through the real typer app against real git repositories.
"""

from __future__ import annotations

import json

import pytest
from conftest import git
from typer.testing import CliRunner

from sessionctl.cli import app
from sessionctl.workspace import Workspace

HEADLINE = """\
schema: 1
revision: 1
title: DDL latency
last_session: 0
headline: {metric: p50_ms, better: lower}
next_steps:
  - id: cache-plans
    title: Cache the plans
  - id: batch-writes
    title: Batch the catalog writes
"""

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def setup(ws: Workspace, text: str = HEADLINE, log: str | None = None) -> Workspace:
    (ws.root / "prompts" / "ddl.yaml").write_text(text)
    (ws.root / "app.py").write_text("x = 1\n")
    if log is not None:
        (ws.root / "logs" / "ddl-perf-log.md").write_text(log)
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    return ws


def record(phase: str, *metrics: str) -> None:
    args = ["record", "--phase", phase]
    for m in metrics:
        args += ["--metric", m]
    code, _, err = invoke(*args)
    assert code == 0, err


def last_message(ws: Workspace, rev: str = "HEAD~1") -> str:
    return git(ws.root, "log", "-1", "--format=%B", rev)


def test_a_p50_headline_decides_the_verdict_subject_and_trailers(
    ws: Workspace, frozen_now: str
) -> None:
    setup(ws)
    assert invoke("start")[0] == 0
    record("baseline", "p50_ms=10", "p50_ms=10.3", "p50_ms=9.8", "qps=500", "qps=505", "qps=498")
    (ws.root / "app.py").write_text("x = 2\n")
    record("remeasure", "p50_ms=5", "p50_ms=5.1", "p50_ms=4.9", "qps=500", "qps=499", "qps=503")
    code, out, err = invoke("close", "--resolve", "cache-plans", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["verdict"] == "improved"
    assert result["plan"]["headline"]["metric"] == "p50_ms"
    assert result["plan"]["headline"]["source"] == "campaign"
    message = last_message(ws)
    subject = message.splitlines()[0]
    assert subject.startswith("perf(ddl): session 1: Cache the plans (p50_ms -")
    assert subject.endswith("%, improved)")
    trailers = dict(
        line.split(": ", 1) for line in message.strip().splitlines()[-9:] if ": " in line
    )
    assert trailers["Verdict"] == "improved"
    assert trailers["Metric"] == "p50_ms"
    assert trailers["Baseline-P50-MS"].startswith("10")
    assert trailers["After-P50-MS"].startswith("5")
    # qps did not move: a QPS-hard-wired verdict would have said inconclusive/no change.
    rows = {r["metric"]: r["verdict"] for r in result["plan"]["results"]}
    assert rows["p50_ms"] == "improved" and rows["qps"] != "improved"
    log = (ws.root / "logs" / "ddl-perf-log.md").read_text()
    assert "verdict: **improved** on `p50_ms`" in log


def test_without_a_headline_the_output_says_which_metric_was_used(ws: Workspace) -> None:
    setup(ws, HEADLINE.replace("headline: {metric: p50_ms, better: lower}\n", ""))
    assert invoke("start")[0] == 0
    record("baseline", "qps@c4=100", "qps@c4=101", "qps@c4=99", "p50_ms=10", "p50_ms=10.1")
    record("remeasure", "qps@c4=100", "qps@c4=102", "qps@c4=99", "p50_ms=5", "p50_ms=5.1")
    code, out, err = invoke("close", "--dry-run")
    assert code == 0, err
    assert "verdict on qps@c4 (the campaign sets no headline" in out
    assert "perf(ddl): session 1: Cache the plans\n" in out  # today's subject, unchanged


def test_close_metric_overrides_the_headline_once(ws: Workspace) -> None:
    setup(ws)
    assert invoke("start")[0] == 0
    record("baseline", "p50_ms=10", "p50_ms=10.1", "p50_ms=9.9", "p99_ms=30", "p99_ms=31")
    record("remeasure", "p50_ms=10", "p50_ms=10.1", "p50_ms=9.9", "p99_ms=60", "p99_ms=61")
    code, out, err = invoke("close", "--metric", "p99_ms", "--json", "--dry-run")
    assert code == 0, err
    plan = json.loads(out)["plan"]
    assert plan["headline"]["metric"] == "p99_ms" and plan["headline"]["source"] == "option"
    assert plan["verdict"] == "regressed"
    assert "(p99_ms +" in plan["code"]["title"] and plan["code"]["title"].endswith("regressed)")


def test_a_headline_not_measured_gives_na_and_a_warning(ws: Workspace) -> None:
    setup(ws)
    assert invoke("start")[0] == 0
    record("baseline", "qps=100", "qps=101")
    record("remeasure", "qps=150", "qps=151")
    code, out, err = invoke("close", "--json", "--dry-run")
    assert code == 0, err
    plan = json.loads(out)["plan"]
    assert plan["verdict"] == "n/a"
    assert any("p50_ms (the campaign's headline) was not measured" in w for w in plan["warnings"])
    assert "Verdict: n/a\nMetric: p50_ms" in plan["code"]["message"]


def test_start_numbers_past_the_log_and_says_so(ws: Workspace) -> None:
    log = "# DDL log\n\n## Session 24 — baseline\n\ntext\n\n## Session 25 — indexes\n\nmore\n"
    setup(ws, HEADLINE.replace("last_session: 0", "last_session: 24"), log=log)
    code, out, err = invoke("start", "--json")
    assert code == 0, err
    started = json.loads(out)
    note = "last_session: 24 but logs/ddl-perf-log.md has Session 25; opening session 26"
    assert started["number"] == 26 and note in started["extra"]["numbering"]
    assert invoke("abort", "--reason", "r")[0] == 0
    code, out, err = invoke("start")  # 26 is in the log and in last_session now: no warning
    assert code == 0 and "Session 27 of ddl is open" in out and "last_session" not in err


def test_log_key_names_the_log_file_close_appends_to(ws: Workspace) -> None:
    text = HEADLINE.replace("last_session: 0", "last_session: 3\nlog: notes/ddl.md")
    (ws.root / "notes").mkdir()
    original = "My log\r\n## Session 7 - old\r\nkept as is\r\n"
    (ws.root / "notes" / "ddl.md").write_bytes(original.encode())
    setup(ws, text)
    code, out, err = invoke("start", "--json")
    assert code == 0 and json.loads(out)["number"] == 8, err
    code, _, err = invoke("abort", "--reason", "nothing to gain")
    assert code == 0, err
    data = (ws.root / "notes" / "ddl.md").read_bytes()
    assert data.startswith(original.encode())  # byte for byte, entries appended
    assert b"## Session 8 (aborted)" in data
    assert not (ws.root / "logs" / "ddl-perf-log.md").exists()


def test_a_log_outside_the_workspace_is_refused(ws: Workspace) -> None:
    setup(ws, HEADLINE + "log: ../elsewhere.md\n")
    code, _, err = invoke("prompt", "check")
    assert code == 1
    assert "log: '../elsewhere.md': give a path inside the workspace" in err


def test_abort_retire_moves_the_step_and_keeps_everything_recorded(ws: Workspace) -> None:
    setup(ws)
    assert invoke("start")[0] == 0
    record("baseline", "p50_ms=10", "p50_ms=10.2")
    assert invoke("record", "--phase", "profile", "--finding", "planner dominates")[0] == 0
    assert invoke("record", "--phase", "change", "--finding", "memoized the plan cache")[0] == 0
    record("remeasure", "p50_ms=10.1", "p50_ms=10.0")
    code, out, err = invoke("abort", "--reason", "no gain on p50", "--retire", "--discard")
    assert code == 0, err
    assert "Retired step cache-plans" in out
    subject = git(ws.root, "log", "-1", "--format=%s").strip()
    assert subject == "prompt(ddl): after session 1 (aborted): retire cache-plans"
    code, out, _ = invoke("next", "list", "--json")
    listed = json.loads(out)
    assert [s["id"] for s in listed["steps"]] == ["batch-writes"]
    assert listed["retired"] == [
        {"id": "cache-plans", "title": "Cache the plans", "why": "no gain on p50", "sessions": [1]}
    ]
    prompt = (ws.root / "prompts" / "ddl.md").read_text()
    assert "## Tried, did not help" in prompt
    assert "- Cache the plans (Session 1): no gain on p50 (id: `cache-plans`)" in prompt
    log = (ws.root / "logs" / "ddl-perf-log.md").read_text()
    entry = log[log.index("## Session 1") :]
    assert "- planner dominates" in entry  # the profile finding
    assert "**Tried:** memoized the plan cache" in entry  # the change finding
    assert "| `p50_ms` | 10.1 ms → 10 ms (-0.5%) | inconclusive |" in entry  # measured, judged
    assert "**Cumulative:**" not in entry  # an abort's change is not kept
    assert "Retired `cache-plans`" in entry
    # The full record keeps every measurement too.
    record_json = json.loads((ws.session_dir("ddl") / "1" / "closed.json").read_text())
    assert [r["metric"] for r in record_json["results"]] == ["p50_ms"]
    # start and run never pick it; naming it says how to bring it back.
    code, out, err = invoke("start", "--json")
    assert code == 0 and json.loads(out)["step_id"] == "batch-writes", err
    assert invoke("abort", "--reason", "again")[0] == 0
    code, _, err = invoke("start", "--step", "cache-plans")
    assert code == 2 and "sessionctl next unretire cache-plans" in err
    code, out, err = invoke("next", "unretire", "cache-plans", "--rank", "1", "--json")
    assert code == 0, err
    assert [s["id"] for s in json.loads(out)["steps"]] == ["cache-plans", "batch-writes"]
    assert "Tried, did not help" not in (ws.root / "prompts" / "ddl.md").read_text()


def test_next_retire_by_hand_and_its_errors(ws: Workspace) -> None:
    setup(ws)
    code, _, err = invoke("next", "retire", "batch-writes", "--why", " ")
    assert code == 2 and "retire needs a reason" in err
    code, _, err = invoke("next", "retire", "nope", "--why", "x")
    assert code == 2 and "no step 'nope'" in err
    code, out, err = invoke("next", "retire", "batch-writes", "--why", "lock contention", "--json")
    assert code == 0, err
    assert json.loads(out)["retired"][0]["sessions"] == []
    text = (ws.root / "prompts" / "ddl.yaml").read_text()
    assert (
        "retired:\n  - id: batch-writes\n    title: Batch the catalog writes\n    why: lock" in text
    )
    code, out, _ = invoke("next", "list", "--retired")
    assert "batch-writes" in out and "lock contention" in out


def test_a_step_both_active_and_retired_is_a_config_error(ws: Workspace) -> None:
    setup(ws, HEADLINE + "retired:\n  - id: cache-plans\n    title: t\n    why: w\n")
    code, _, err = invoke("prompt", "check")
    assert code == 1
    assert "retired[0].id: 'cache-plans' is also in next_steps" in err


@pytest.mark.parametrize("retire", [True, False])
def test_abort_retire_of_a_session_on_no_step_is_refused(ws: Workspace, retire: bool) -> None:
    setup(ws, HEADLINE.split("next_steps:")[0])
    assert invoke("start", "--diagnostic")[0] == 0
    code, _, err = invoke("abort", "--reason", "r", *(["--retire"] if retire else []))
    if retire:
        assert code != 0 and "nothing to retire" in err
    else:
        assert code == 0, err


PROMPT_MD = """\
# DDL latency

Session 24 made CREATE TABLE 2x faster.

## Next steps

1. Cache the plans
2. Batch the catalog writes
"""


def test_prompt_import_adopts_a_log_from_outside_byte_for_byte(ws: Workspace, tmp_path) -> None:
    src = tmp_path / "prompt.md"
    src.write_text(PROMPT_MD)
    theirs = tmp_path / "their-log.md"
    original = "# Log\r\n\r\n## Session 24 — x\r\n\r\n## Session 25 — y\r\n".encode()
    theirs.write_bytes(original)
    code, out, err = invoke("prompt", "import", str(src), "--campaign", "ddl", "--log",
                            str(theirs), "--json")  # fmt: skip
    assert code == 0, err
    info = json.loads(out)["log"]
    assert info == {"path": "logs/ddl-perf-log.md", "highest_session": 25, "next_session": 26}
    assert json.loads(out)["last_session"] == 25  # the summary says what the YAML now holds
    assert (ws.root / "logs" / "ddl-perf-log.md").read_bytes() == original
    yaml_text = (ws.root / "prompts" / "ddl.yaml").read_text()
    assert "last_session: 25" in yaml_text and "\nlog:" not in yaml_text
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "imported")
    code, out, err = invoke("start", "--json")
    assert code == 0 and json.loads(out)["number"] == 26, err
    assert "numbering" not in json.loads(out)["extra"]  # campaign and log agree after import
    assert invoke("abort", "--reason", "r")[0] == 0
    data = (ws.root / "logs" / "ddl-perf-log.md").read_bytes()
    assert data.startswith(original) and b"\r\n## Session 26 (aborted)" in data
    assert b"\n" not in data.replace(b"\r\n", b"")  # the entry follows the log's CRLF endings


def test_prompt_import_names_a_log_inside_the_workspace(ws: Workspace) -> None:
    (ws.root / "docs").mkdir()
    (ws.root / "docs" / "perf.md").write_text("## Session 3: old\n")
    (ws.root / "prompt.md").write_text(PROMPT_MD)
    code, out, err = invoke("prompt", "import", "prompt.md", "-C", "ddl", "--log", "docs/perf.md")
    assert code == 0, err
    assert "log: docs/perf.md (highest session 3; the next session is 25)" in out
    assert "\nlog: docs/perf.md\n" in (ws.root / "prompts" / "ddl.yaml").read_text()
    assert not (ws.root / "logs" / "ddl-perf-log.md").exists()
    assert ws.log_path("ddl") == ws.root / "docs" / "perf.md"


def test_status_names_the_headline_the_verdict_will_be_on(ws: Workspace) -> None:
    setup(ws)
    code, out, _ = invoke("status")
    assert code == 0 and "Headline: p50_ms (lower is better)" in out
    assert invoke("start")[0] == 0
    code, out, _ = invoke("status", "--json")
    assert code == 0 and json.loads(out)["headline"] == "p50_ms (lower is better)"
    assert json.loads(out)["headline_now"] is None
    record("baseline", "p50_ms=10ms", "qps=100")
    code, out, _ = invoke("status")
    assert "10 ms (no re-measure yet)" in out
    record("remeasure", "p50_ms=8ms")
    code, out, _ = invoke("status", "--json")
    now = json.loads(out)["headline_now"]
    assert now == {"metric": "p50_ms", "before": 10.0, "after": 8.0, "unit": "ms"}
    code, out, _ = invoke("status")
    assert "10 ms → 8 ms (-20.0%, judged at close)" in out


def test_run_stops_on_the_headline_verdict_not_on_qps(ws: Workspace) -> None:
    """The scripted agent lifts qps 100 -> 150 but never measures the p50 headline: the
    session's verdict is n/a, so with max_without_improvement 1 the loop stops after it."""
    from test_run_loop import make_campaign, run_cli

    make_campaign(
        ws,
        plan="1=close:step-1",
        max_without_improvement="1",
        extra="headline: {metric: p50_ms, better: lower}\n",
    )
    code, data, output = run_cli("--sessions", "3")
    assert code == 0, output
    assert [(s["session"], s["verdict"]) for s in data["sessions"]] == [(1, "n/a")]
    assert data["stop_reason"] == "1 sessions in a row without an improved verdict on p50_ms"
    # history shows the agent's cost the run recorded, and the headline it could not measure.
    code, out, err = invoke("history", "shop", "--json")
    assert code == 0, err
    (row,) = json.loads(out)["sessions"]
    assert data["sessions"][0]["cost_usd"] > 0
    assert row["cost_usd"] == pytest.approx(data["sessions"][0]["cost_usd"])
    assert row["headline"]["metric"] == "p50_ms" and row["headline"]["before"] is None


def test_under_run_abort_retire_and_close_metric_are_recorded_requests(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionctl.session import record as session_record
    from sessionctl.session import request

    setup(ws)
    assert invoke("start")[0] == 0
    monkeypatch.setenv("SESSIONCTL_RUN", "1")
    code, out, err = invoke("abort", "--reason", "no gain", "--retire", "--json")
    assert code == 0 and json.loads(out)["request"]["retire"] is True, err
    record("baseline", "p50_ms=10", "p50_ms=10.1")
    record("remeasure", "p50_ms=9", "p50_ms=9.1")
    code, out, err = invoke("close", "--metric", "p99_ms", "--json")
    assert code == 0 and json.loads(out)["request"]["metric"] == "p99_ms", err
    entries = session_record.entries(ws, "ddl", 1)
    kinds = [
        (e["type"], e.get("retire"), e.get("metric")) for e in entries if "request" in e["type"]
    ]
    assert kinds == [("abort_request", True, None), ("close_request", None, "p99_ms")]
    latest = request.latest("ddl", 1, entries)
    assert latest is not None and latest.kind == "close" and latest.metric == "p99_ms"
    abort_entry = next(e for e in entries if e["type"] == "abort_request")
    assert request.Request.from_entry("ddl", 1, abort_entry).retire is True


def test_a_paired_headline_is_read_in_the_declared_direction() -> None:
    from sessionctl.campaign.model import CompareSpec
    from sessionctl.measurement import Measurement
    from sessionctl.verdict.judgement import Judgement
    from sessionctl.verdict.session import summarize_session

    judged = Judgement(metric="score", verdict="probably improved", ratio=1.2, ci_low=1.01,
                       ci_high=1.4, better="higher")  # fmt: skip
    other = Judgement(metric="qps@c4", verdict="improved", ratio=1.3, better="higher")
    m = Measurement(source="compare", name="bench", phase="compare",
                    details={"judgements": [judged.to_dict(), other.to_dict()]})  # fmt: skip
    plain = summarize_session([m], compare=CompareSpec())
    assert [j.verdict for j in plain] == ["probably improved", "improved"]
    declared = summarize_session([m], compare=CompareSpec(), primary="score", better="lower")
    assert [(j.metric, j.verdict, j.better) for j in declared] == [
        ("score", "probably regressed", "lower"),
        ("qps@c4", "improved", "higher"),  # not the headline: untouched
    ]
    assert "read as the headline's lower is better" in declared[0].warnings[-1]


def test_the_log_entrys_cumulative_gain_follows_the_headline_and_skips_aborts(
    ws: Workspace,
) -> None:
    from sessionctl import perflog_compact
    from sessionctl.verdict.session import ResultRow

    for n, kind, before, after in ((1, "abort", 20.0, 19.0), (2, "close", 10.0, 6.0)):
        folder = ws.session_dir("ddl") / str(n)
        folder.mkdir(parents=True)
        results = [{"metric": "lookup:p50_ms", "unit": "ms", "before": before, "after": after,
                    "ratio": after / before}]  # fmt: skip
        (folder / "closed.json").write_text(json.dumps({"kind": kind, "results": results}))
    row = ResultRow("lookup:p50_ms", "ms", "lower", 6.0, 4.0, 4 / 6, "improved")
    # Session 1 was aborted (its change not kept): the gain starts at session 2.
    assert perflog_compact.cumulative_gain(ws, "ddl", 3, row, metric="p50_ms") == (
        "`p50_ms`: 10 ms → 4 ms = -60.0% over 2 sessions (2-3; compounded -60.0%)"
    )


def test_close_says_a_warning_many_metrics_share_once(ws: Workspace) -> None:
    setup(ws)
    assert invoke("start")[0] == 0
    record("baseline", "p50_ms=10", "p90_ms=12", "p99_ms=20", "p50_ms=10.1", "p50_ms=9.9")
    (ws.root / "app.py").write_text("x = 2\n")
    record("remeasure", "p50_ms=5", "p90_ms=6", "p99_ms=9", "p50_ms=5.1", "p50_ms=4.9")
    code, _, err = invoke("close", "--resolve", "cache-plans")
    assert code == 0, err
    lines = [line for line in err.splitlines() if "single run per side" in line]
    assert lines == ["warning: single run per side (2 metrics: p90_ms, p99_ms)"], err
    assert "warning: p50_ms: unpaired: drift" in err  # a warning of one metric still names it


def test_the_log_entrys_results_give_a_recorded_value_the_commit_messages_unit(
    ws: Workspace, frozen_now: str
) -> None:
    """`p50_ms` recorded by hand has no unit: the entry infers "ms" as the commit message does."""
    setup(ws)
    assert invoke("start")[0] == 0
    record("baseline", "p50_ms=10", "p50_ms=10.1", "p50_ms=9.9")
    (ws.root / "app.py").write_text("x = 2\n")
    record("remeasure", "p50_ms=5", "p50_ms=5.1", "p50_ms=4.9")
    assert invoke("close", "--resolve", "cache-plans")[0] == 0
    assert "| `p50_ms` | 10 ms | 5 ms | -50.0% |" in last_message(ws)
    log = (ws.root / "logs" / "ddl-perf-log.md").read_text()
    assert "| `p50_ms` | 10 ms → 5 ms (**-50.0%**) | improved |" in log


def test_the_log_entry_names_the_next_step_like_the_users_entries(ws: Workspace) -> None:
    setup(ws)
    assert invoke("start")[0] == 0
    record("baseline", "p50_ms=10", "p50_ms=10.1", "p50_ms=9.9")
    (ws.root / "app.py").write_text("x = 2\n")
    record("remeasure", "p50_ms=5", "p50_ms=5.1", "p50_ms=4.9")
    assert invoke("close", "--resolve", "cache-plans")[0] == 0
    log = (ws.root / "logs" / "ddl-perf-log.md").read_text()
    assert "- Resolved `cache-plans`.\n- Next: `batch-writes`: Batch the catalog writes\n" in log
