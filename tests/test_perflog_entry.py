"""The perf log: appending keeps a hand-written log intact; entries and change descriptions
are rendered from templates (snapshots beside the tests).

Regenerate the snapshots after an intended template change with
``SESSIONCTL_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_perflog_entry.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import git

from sessionctl import perflog
from sessionctl.agent.launch import AgentRun
from sessionctl.agent.transcript import TranscriptSummary
from sessionctl.measurement import Measurement, Value
from sessionctl.session import engine, record
from sessionctl.session.close import NewStep, close
from sessionctl.vcs.base import NumStat
from sessionctl.verdict.session import ResultRow, judge_paired
from sessionctl.workspace import Workspace

SNAPSHOTS = Path(__file__).parent / "data" / "session"


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("SESSIONCTL_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs; see the module docstring to regenerate"


@pytest.mark.parametrize(
    ("existing", "expected_prefix"),
    [
        ("# My log\n\nSession 46: notes", "# My log\n\nSession 46: notes\n\n## S"),
        ("# My log\n", "# My log\n\n## S"),
        ("# My log\n\n\n", "# My log\n\n\n## S"),
        ("", "## S"),
        (None, "# Demo: performance log\n\nOne entry per session"),
    ],
)
def test_appended_keeps_the_existing_log_byte_for_byte(
    existing: str | None, expected_prefix: str
) -> None:
    text = perflog.appended(existing, "## Session 47: x\n\nbody\n\n\n", title="Demo")
    assert text.startswith(expected_prefix)
    if existing:
        assert text.startswith(existing)
    assert text.endswith("## Session 47: x\n\nbody\n")


def test_append_writes_under_the_lock(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    perflog.append(ws, "demo", "## Session 1: a\n", title="Demo")
    perflog.append(ws, "demo", "## Session 2: b\n", title="Demo")
    text = ws.log_path("demo").read_text()
    assert text.index("Session 1") < text.index("Session 2")
    assert perflog.has_session(text, 2) and not perflog.has_session(text, 3)
    assert perflog.has_session("### session 12 (hand-written)\n", 12)


def test_results_table_and_diffstat() -> None:
    rows = [
        ResultRow("qps@c64", "qps", "higher", 307000.0, 312000.0, 312 / 307, "improved",
                  1.01, 1.03, "paired", 8),
        ResultRow("errors", "", None, 0.0, 2.0, None, "inconclusive", method="unpaired"),
    ]  # fmt: skip
    table = perflog.results_table(rows)
    assert table.splitlines()[2] == (
        "| `qps@c64` | 307,000 qps | 312,000 qps | +1.6% "
        "| improved (95% CI +1.0% … +3.0%; paired, 8 pairs) |"
    )
    assert table.splitlines()[3] == "| `errors` | 0 | 2 | n/a | inconclusive (unpaired) |"
    assert perflog.results_table([]) == ""
    stat = perflog.format_diffstat([NumStat("src/a.rs", 10, 2), NumStat("img.png", None, None)])
    assert stat.splitlines() == [
        "src/a.rs | +10 -2",
        "img.png  | binary",
        "2 files changed, 10 insertions(+), 2 deletions(-)",
    ]
    row = ResultRow.from_dict(rows[0].to_dict())
    assert row == rows[0] and rows[0].to_dict()["ratio"] == pytest.approx(312 / 307)
    # A journal written before the rows moved to the verdict module still loads.
    old = {"name": "qps", "unit": "", "better": "higher", "before": 1.0, "after": 2.0}
    old |= {"verdict": "n/a", "ci_low": None, "ci_high": None, "method": None, "ratio": 2.0}
    assert ResultRow.from_dict(old).metric == "qps" and ResultRow.from_dict(old).ratio == 2.0


CAMPAIGN = """\
schema: 1
revision: 3
title: Demo throughput
last_session: 46
next_steps:
  - id: batch-observe
    title: Batch histogram observes
    effect: ~5% QPS
  - id: btree-cache
    title: Cache BTreeMap lookups
"""


def _session(ws: Workspace) -> None:
    (ws.root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    (ws.root / "app.py").write_text("a = 1\n")
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    engine.start(ws, "demo")
    for phase, qps in (
        ("baseline", (1000.0, 1020.0, 980.0)),
        ("remeasure", (1100.0, 1120.0, 1080.0)),
    ):
        values = (Value("qps@c64", sum(qps) / 3, "qps", "higher", qps),)
        record.record_measurement(
            ws, "demo", Measurement(source="builtin", name="read", phase=phase, values=values)
        )
    engine.record(ws, "demo", phase="profile", findings=["observe() is 30% of samples"])
    engine.record(ws, "demo", phase="change", findings=["one flush per 64 queries"])
    engine.record(ws, "demo", phase="note", findings=["the machine was busy"])
    (ws.root / "app.py").write_text("a = 2\nb = 3\n")
    # What `sessionctl run` records after its agent exits (closing comes after that).
    record.append(ws, "demo", {**agent_run().to_entry(), **AGENT_AUDIT})


AGENT_AUDIT = {
    "transcript": ".sessionctl/transcripts/demo/47.jsonl",
    "audit": {"passed": True, "problems": []},
    "by": "sessionctl",
}


def agent_run(**kw: object) -> AgentRun:
    summary = TranscriptSummary(
        format="claude",
        model="claude-sonnet-4-5",
        turns=12,
        cost_usd=0.4312,
        cost_source="reported",
        input_tokens=1520,
        cached_input_tokens=48000,
        output_tokens=3100,
        tool_calls=9,
    )
    fields: dict[str, object] = {
        "argv": ("claude", "-p", "<prompt: 900 chars>"),
        "preset": "claude",
        "pid": 4242,
        "exit_code": 0,
        "exit_reason": "exited",
        "duration_s": 201.4,
        "transcript": "/abs/.sessionctl/transcripts/demo/47.jsonl",
        "summary": summary,
        **kw,
    }
    return AgentRun(**fields)  # type: ignore[arg-type]


def test_agent_view_of_a_stopped_agent_and_a_failed_audit() -> None:
    entry = {
        **agent_run(exit_code=None, exit_reason="timeout", detail="timeout after 45m").to_entry(),
        "audit": {"passed": False, "problems": [{"code": "no-remeasure", "message": "no re"}]},
    }
    entry["cost_usd"] = None
    entry["tokens"] = {"input": 0, "cached_input": 0, "output": 0}
    view = perflog.agent_view([{"type": "finding", "text": "x"}, entry])
    assert view is not None
    assert (view["cost"], view["tokens"], view["duration"]) == ("cost n/a", None, "3m21s")
    assert view["end"] == "stopped: timeout after 45m"
    assert (view["audit"], view["problems"]) == ("failed", ["no re"])
    assert perflog.agent_view([{"type": "finding", "text": "x"}]) is None


def test_entry_and_messages_snapshot(ws: Workspace, frozen_now: str) -> None:
    _session(ws)
    plan = close(
        ws,
        "demo",
        resolve="batch-observe",
        add_steps=[NewStep("arena", "Arena allocation")],
        status_text="Observes batched.",
        summary="One flush per 64 queries; +10% QPS.",
        dry_run=True,
    ).plan
    check_snapshot("log-entry.md", plan.entry)
    check_snapshot("code-message.txt", plan.code.message)
    check_snapshot("prompt-message.txt", plan.prompt.message)


def test_workspace_template_overrides_the_packaged_one(ws: Workspace, frozen_now: str) -> None:
    _session(ws)
    (ws.root / "templates").mkdir()
    (ws.root / "templates" / "log-entry.md.j2").write_text(
        "## S{{ session }} {{ title }} [{{ verdict }}]\n"
    )
    plan = close(ws, "demo", dry_run=True).plan
    assert plan.entry == f"## S47 Batch histogram observes [{plan.verdict}]\n"
    assert plan.log_text.endswith(plan.entry)


def test_a_paired_comparison_gives_the_rows_and_the_trailers(
    ws: Workspace, frozen_now: str
) -> None:
    """The A/B numbers replace baseline vs re-measure; a compare-only metric gets a row too."""
    _session(ws)
    a, b = (
        [2000.0, 2010.0, 1990.0, 2005.0, 1995.0, 2000.0],
        [2200.0, 2214.0, 2190.0, 2203.0, 2196.0, 2201.0],
    )
    qps = judge_paired("qps@c64", a, b, better="higher", threshold=0.02)
    p99 = judge_paired("p99_ms@c64", [3.0, 3.1, 2.9, 3.0], [2.0, 2.1, 1.9, 2.0], better="lower",
                       threshold=0.05)  # fmt: skip
    judged = {"judgements": [qps.to_dict(), p99.to_dict()]}
    record.record_measurement(
        ws, "demo", Measurement(source="compare", name="read", phase=None, details=judged)
    )
    plan = close(ws, "demo", dry_run=True).plan
    rows = {r.metric: r for r in plan.results}
    assert set(rows) == {"qps@c64", "p99_ms@c64"}
    assert rows["qps@c64"].method == "paired" and rows["qps@c64"].n == 6
    assert rows["qps@c64"].before == pytest.approx(qps.a) and rows["qps@c64"].before > 1990
    assert rows["p99_ms@c64"].after_text == "2 ms" and rows["p99_ms@c64"].verdict == p99.verdict
    assert plan.verdict == qps.verdict == "improved"
    assert "| 64 | 2,000 → 2,201 (**+10.0%**) | 3 → 2 (**-33.4%**) |" in plan.entry
    trailers = plan.code.message.split("\n\n")[-1].splitlines()
    assert "Baseline-QPS: 2000" in trailers and "After-QPS: 2201" in trailers
    assert "Method: paired" in trailers and "Verdict: improved" in trailers
