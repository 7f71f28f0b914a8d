"""Compact log entries: one results table, counted warnings, the profile's top, the reasoning.

The DDL entry below is a whole session as `close` writes it (3 object levels x 2 statements,
every value the ddl driver records); its snapshot is tests/data/session/log-entry-ddl.md
(regenerate as described in tests/test_perflog_entry.py).
"""

from __future__ import annotations

import json
from dataclasses import replace

from conftest import git
from test_perflog_entry import check_snapshot

from sessionctl import perflog_compact
from sessionctl.measurement import Measurement, Value
from sessionctl.session import engine, record
from sessionctl.session.close import close
from sessionctl.verdict.session import ResultRow, default_unit
from sessionctl.workspace import Workspace

CAMPAIGN = """\
schema: 1
revision: 1
title: DDL at scale
last_session: 46
{detail}target:
  start: [bin/environmentd, --optimized]
benchmarks:
  - name: ddl
    driver: ddl
    ddl:
      count_sql: select count(*) from mz_objects
      filler: create table f{{n}} (a int)
      levels: [0, 50000, 100000]
      probes:
        create_table: create table p{{n}} (a int)
        drop_view: drop view v{{n}}
next_steps:
  - id: skip-replan
    title: Skip re-planning unaffected dependants
"""
LEVELS = {"n0": 0, "n50k": 50_000, "n100k": 100_000}
KINDS = {"create_table": 12.0, "drop_view": 9.0}


def _ddl_values(speedup: float) -> tuple[Value, ...]:
    """Everything the ddl driver records for one run: 3 levels x 2 statements."""
    out: list[Value] = []
    for label, count in LEVELS.items():
        for kind, base in KINDS.items():
            ms = base + count / 400
            probes = tuple(ms * speedup * (1 + k / 100) for k in range(-5, 5))
            med = sorted(probes)[5]
            out += [
                Value(f"{kind}.median_ms@{label}", med, "ms", "lower", probes),
                Value(f"{kind}.p90_ms@{label}", max(probes) * 0.99, "ms", "lower"),
                Value(f"{kind}.max_ms@{label}", max(probes), "ms", "lower"),
                Value(f"mz_catalog_transact.ms_per_{kind}@{label}", med * 0.6, "ms", "lower"),
                Value(f"mz_builtin_updates.ms_per_{kind}@{label}", med * 0.2, "ms", "lower"),
            ]
        out.append(Value(f"objects@{label}", float(count), "objects"))
    for kind in KINDS:
        out.append(Value(f"{kind}.slope_ms_per_1k", 2.5 * speedup, "ms/1k objects", "lower"))
        out.append(Value(f"{kind}.growth_exponent", 1.0, "", "lower"))
    return tuple(out)


def _ddl_session(ws: Workspace, *, detail: str = "") -> None:
    (ws.root / "prompts" / "ddl.yaml").write_text(CAMPAIGN.format(detail=detail))
    (ws.root / "catalog.rs").write_text("fn transact() {}\n")
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    engine.start(ws, "ddl", step="skip-replan")
    for phase, speedup in (("baseline", 1.0), ("remeasure", 0.7)):
        m = Measurement(source="ddl", name="ddl", phase=phase, values=_ddl_values(speedup))
        record.record_measurement(ws, "ddl", m)
    profile = Measurement(
        source="profile",
        name="ddl",
        phase="profile",
        values=(Value("samples_per_query@c1", 1234.0, "samples/query", "lower"),),
        details={
            "files": {"flamegraph": str(ws.root / ".sessionctl" / "p" / "flamegraph.svg")},
            "top": [
                {"name": "Catalog::transact", "self_per_query": 512.0, "self_share": 0.41},
                {"name": "BTreeMap::clone", "self_per_query": 210.0, "self_share": 0.17},
            ],
        },
    )
    record.record_measurement(ws, "ddl", profile)
    engine.record(ws, "ddl", phase="profile", findings=["transact clones the catalog state"])
    engine.record(
        ws, "ddl", root_causes=["every DDL re-plans all dependants, even unaffected ones"]
    )
    engine.record(ws, "ddl", phase="change", findings=["skip dependants with no changed input"])
    engine.record(ws, "ddl", observations=["the gain grows with the object count"])
    (ws.root / "catalog.rs").write_text("fn transact() { skip(); }\n")


def test_a_ddl_entry_is_one_table_under_3_kb(ws: Workspace, frozen_now: str) -> None:
    _ddl_session(ws)
    plan = close(ws, "ddl", summary="Skipping unaffected dependants: -30%.", dry_run=True).plan
    entry = plan.entry
    assert len(plan.results) >= 30  # every value was judged ...
    assert len(entry.encode()) < 3000, entry  # ... and the entry stays short
    check_snapshot("log-entry-ddl.md", entry)
    assert (
        "**Results (`ddl`, median per statement):**\n\n"
        "| objects | `create_table` (ms) | `drop_view` (ms) |" in entry
    )
    assert entry.count("\n| ") == 4  # one header and the three levels
    assert "**Root cause:** every DDL re-plans all dependants" in entry
    assert "**Key observations:**\n\n- the gain grows with the object count" in entry
    assert "`Catalog::transact` 512/q" in entry and "(1,234 samples/query)" in entry
    assert "[flame graph](.sessionctl/p/flamegraph.svg)" in entry
    assert "**Setup:** `ddl` (ddl; 0, 50k, 100k objects; 10 probes/level); target " in entry
    assert "target `bin/environmentd --optimized`\n" in entry
    assert "more judged metrics in `.sessionctl/sessions/ddl/47/closed.json`" in entry


def test_log_detail_full_keeps_every_row(ws: Workspace, frozen_now: str) -> None:
    _ddl_session(ws, detail="log_detail: full\n")
    plan = close(ws, "ddl", dry_run=True).plan
    assert "| metric | before | after | delta | verdict |" in plan.entry
    assert plan.entry.count("\n| `") == len(plan.results)
    assert len(plan.entry.encode()) > 3 * 3000


def test_cumulative_gain_starts_at_the_earliest_session_with_the_metric(
    ws: Workspace,
) -> None:
    row = ResultRow("qps@c64", "queries/s", "higher", 300.0, 330.0, 1.1, "improved")
    assert perflog_compact.cumulative_gain(ws, "demo", 47, row) is None  # nothing earlier
    for n, before, after in ((44, 250.0, 275.0), (45, 280.0, 300.0)):
        folder = ws.session_dir("demo") / str(n)
        folder.mkdir(parents=True)
        results = [
            {"metric": "qps@c64", "unit": "queries/s", "before": before, "after": after,
             "ratio": after / before},
            {"metric": "x", "before": 1.0, "after": 1.0, "ratio": 1.0},
        ]  # fmt: skip
        (folder / "closed.json").write_text(json.dumps({"results": results}))
    # The words `history` uses: first before → last after, and compounded (1.1 x 1.0714 x 1.1).
    assert perflog_compact.cumulative_gain(ws, "demo", 47, row) == (
        "`qps@c64`: 250.0 queries/s → 330.0 queries/s = +32.0% over 3 sessions (44-47; compounded "
        "+29.6%)"
    )


def test_a_results_cell_outside_the_grids_names_the_unit() -> None:
    """Rows from a record that kept no unit get the one the commit message infers."""
    from sessionctl import perflog

    rows = [
        ResultRow("p50_ms", "", "lower", 10.0, 8.0, 0.8, "improved"),
        ResultRow("lookup:flush_us@c4", "", "lower", 300.0, 330.0, 1.1, "inconclusive"),
        ResultRow("score", "", "higher", 3.0, 4.0, 4 / 3, "improved"),
        ResultRow("qps@c64", "queries/s", "higher", 100.0, 120.0, 1.2, "improved"),
    ]
    table, left_out = perflog_compact.results_table(
        rows[:3], headline="p50_ms", watched=["flush_us", "score"]
    )
    assert left_out == 0
    assert "| `p50_ms` | 10 ms → 8 ms (**-20.0%**) | improved |" in table
    assert "| `lookup:flush_us@c4` | 300.0 us → 330.0 us (+10.0%) | inconclusive |" in table
    assert "| `score` | 3 → 4 (**+33.3%**) | improved |" in table  # no suffix: no unit
    grid, _ = perflog_compact.results_table(rows[3:], headline="qps@c64")
    assert "| 64 | 100.0 → 120.0 (**+20.0%**) |" in grid  # the grid's header names the unit
    with_units = [replace(r, unit=default_unit(r.metric)) for r in rows[:2]]
    assert "| 10 ms | 8 ms |" in perflog.results_table(with_units)  # the commit message's


def test_warnings_collapse_to_one_line_with_counts() -> None:
    line = perflog_compact.warnings_line(
        [f"m{k}@n0: single run per side" for k in range(30)]
        + ["p99_ms@c64: 4 pairs: the test cannot reach p<0.05", "HEAD moved since the start"]
    )
    assert line == (
        "single run per side (×30); 4 pairs: the test cannot reach p<0.05; "
        "HEAD moved since the start"
    )


def test_record_cli_takes_observations_and_root_causes(ws: Workspace) -> None:
    from typer.testing import CliRunner

    from sessionctl.cli import app

    (ws.root / "prompts" / "ddl.yaml").write_text(CAMPAIGN.format(detail=""))
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    engine.start(ws, "ddl", step="skip-replan")
    cause = "re-planning on postgres://u:secret@h/db"
    argv = ["record", "--observation", "gain grows with objects", "--root-cause", cause]
    result = CliRunner().invoke(app, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["observations"] == ["gain grows with objects"]
    kinds = [(e["type"], e["text"]) for e in record.entries(ws, "ddl", 47)]
    assert kinds == [
        ("observation", "gain grows with objects"),
        ("root_cause", "re-planning on postgres://u:***@h/db"),  # never stored with a password
    ]
    empty = CliRunner().invoke(app, ["record", "--observation", " "])
    assert empty.exit_code == 2 and "--observation: blank" in empty.stderr


def test_the_entry_sits_at_the_level_of_a_hand_kept_log(ws: Workspace, frozen_now: str) -> None:
    _ddl_session(ws)
    log = ws.log_path("ddl")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("# DDL log\n\n### Session 46: Prefix map (2026-11-20)\n\n**Goal:** ...\n")
    entry = close(ws, "ddl", summary="done", dry_run=True).plan.entry
    assert entry.startswith("### Session 47: Skip re-planning unaffected dependants (2026-11-22)")
    assert "\n#### Conclusion\n\ndone\n" in entry
    assert perflog_compact.heading_marks(None) == "##"


def test_warnings_that_differ_only_in_numbers_are_one() -> None:
    line = perflog_compact.warnings_line(
        [
            "qps@c1: high run-to-run spread on A: CV 22% over 2 runs (> 10%)",
            "qps@c4: high run-to-run spread on A: CV 12% over 2 runs (> 10%)",
            "p50_ms@c1: high run-to-run spread on after: CV 51% over 3 runs (> 10%)",
            "p50_ms@c4: high run-to-run spread on after: CV 70% over 3 runs (> 10%)",
            "p99_ms@c4: high run-to-run spread on after: CV 57% over 3 runs (> 10%)",
            "qps@c4: 2 pairs: the Wilcoxon test cannot reach p<0.05 (needs >= 6 pairs)",
        ]
    )
    assert line == (
        "high run-to-run spread on A: CV 12–22% over 2 runs (> 10%) (×2); "
        "high run-to-run spread on after: CV 51–70% over 3 runs (> 10%) (×3); "
        "2 pairs: the Wilcoxon test cannot reach p<0.05 (needs >= 6 pairs)"
    )


def test_changes_line_reads_after_a_finding_that_ends_its_sentence(
    ws: Workspace, frozen_now: str
) -> None:
    _ddl_session(ws)
    engine.record(ws, "ddl", phase="change", findings=["Added the index and applied it."])
    entry = close(ws, "ddl", dry_run=True).plan.entry
    assert "; Added the index and applied it. `catalog.rs` (+1 −1)" in entry
    assert ".;" not in entry
