"""Rendering: snapshots, data-not-template, template lookup/export, drift check, shipped prompts.

Snapshots live in tests/snapshots/. After an intended change to the templates, regenerate
them with ``SESSIONCTL_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_render_*.py
tests/test_import_*.py`` and review the diff (tests/snapshots/README.md says the same).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionctl import render
from sessionctl.campaign import store
from sessionctl.cli import app
from sessionctl.errors import ConfigError, UsageError
from sessionctl.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"


def assert_snapshot(name: str, text: str) -> None:
    """Compare with tests/snapshots/NAME (rewrite it when SESSIONCTL_UPDATE_SNAPSHOTS=1)."""
    path = SNAPSHOTS / name
    if os.environ.get("SESSIONCTL_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), (
        f"{path}: no snapshot; run with SESSIONCTL_UPDATE_SNAPSHOTS=1 to create it"
    )
    assert text == path.read_text(), (
        f"{path}: rendering changed; if intended, regenerate (see module doc)"
    )


# Every partial exercised: target with preflight, three driver kinds, metrics, both completed
# lists, profiling notes, a custom section placed by `layout`, heading overrides.
FULL = """\
schema: 1
revision: 7
title: Everything at once
last_session: 12
context: |
  Context paragraph.
goal: Make it faster.
rules:
  - First rule.
  - |
    A rule with two lines:
    the second one.
workflow: Measure, change one thing, measure again.
target:
  start: [bin/server, --release, --port, "6875"]
  cwd: ~/src/server
  sql_url: postgres://app:hunter2@localhost:6875/app
  system_sql_url: postgres://admin@localhost:6877/app
  setup_sql:
    - set work_mem = '64MB'
    - alter system set fast_path = true;
  metrics_url: http://localhost:6878/metrics
  ready: {url: http://localhost:6878/ready}
  preflight:
    - name: objects
      sql: select count(*) from pg_class
      expect: ">= 100"
      fix: run the filler first
benchmarks:
  - name: point
    driver: builtin
    description: Single-row lookups.
    concurrency: [1, 16]
    duration: 10s
    warmup: 2s
    query: select * from t where id = 1
  - name: mix
    driver: dbbench
    config: |
      duration=5s
      [job]
      query=select 1
  - name: ddl
    driver: ddl
    ddl:
      count_sql: select count(*) from pg_class
      filler: create table f_{n} (a int)
      levels: [0, 1000]
      probes: {create: create table p (a int)}
metrics:
  - name: peek_seconds
    labels: {method: cached, path: fast}
    description: Time in the cached peek path.
    per_query: true
  - name: requests_total
    kind: counter
    stats: [rate]
status: "Faster by 12%. Literal braces stay: {{ not_a_variable }} and {% raw %}."
completed:
  intro: Everything finished so far.
  optimizations:
    - id: o1
      title: Batched writes
      sessions: [3, 4]
      summary: -20% latency
    - id: o2
      title: Session 9 did the prefix map
      sessions: [9]
  diagnostics:
    - id: d1
      title: Lock contention is not the issue
      sessions: [11]
profiling_notes: perf shows 30% in malloc.
next_step_groups:
  - id: now
    title: Immediate
    intro: Start here.
  - id: old
    title: From Session 5 profiling
    level: 0
next_steps:
  - id: cache
    title: Cache plans
    body: |
      Plans are rebuilt for every query.
      - sub-bullet one
      - sub-bullet two
    effect: ~10% QPS
    paths: [src/plan.rs, src/peek.rs]
    added_in: 12
    group: now
  - id: alloc.
    title: Arena allocation.
    body: Avoid malloc on the hot path.
    group: old
sections:
  - id: history
    title: A bit of history
    level: 3
    body: |
      We started in 2023.

      ```sql
      select 1;
      ```
layout: [context, history, goal, rules, workflow, target, benchmarks, metrics, status, completed,
  profiling_notes, next_steps, sessionctl]
headings:
  goal: "## What we want"
  profiling_notes: ""
"""


@pytest.fixture
def full() -> store.CampaignFile:
    return store.loads(FULL, name="full", source="prompts/full.yaml")


def test_full_campaign_snapshot(full: store.CampaignFile) -> None:
    assert_snapshot("full.md", render.render_prompt(full.campaign))


def test_campaign_text_is_data_never_a_template(full: store.CampaignFile) -> None:
    text = render.render_prompt(full.campaign)
    assert "Literal braces stay: {{ not_a_variable }} and {% raw %}." in text


def test_passwords_are_redacted(full: store.CampaignFile) -> None:
    text = render.render_prompt(full.campaign)
    assert "hunter2" not in text
    assert "postgres://app:***@localhost:6875/app" in text


def test_default_layout_puts_sections_before_next_steps() -> None:
    cf = store.loads(
        "schema: 1\nrevision: 0\ntitle: T\nstatus: S\n"
        "sections:\n  - {id: extra, title: Extra, body: B}\n"
        "next_steps:\n  - {id: a, title: A}\n",
        name="t",
        source="t.yaml",
    )
    text = render.render_prompt(cf.campaign)
    assert text.index("## Current status") < text.index("## Extra") < text.index("## Next steps")
    assert text.rstrip().splitlines()[-1].startswith("Next steps: `sessionctl next list`")


def test_an_old_layout_still_renders_what_was_configured_after_it() -> None:
    """An imported layout predates target/benchmarks/metrics/status added later: all render."""
    base = (
        "schema: 1\nrevision: 3\ntitle: T\n"
        "sections:\n  - {id: intro, body: Intro text.}\n"
        "next_step_groups:\n  - {id: g1, title: 'First:', level: 0}\n"
        "  - {id: g2, title: 'Later:', level: 0}\n"
        "next_steps:\n  - {id: a, title: A, group: g1}\n  - {id: b, title: B, group: g2}\n"
        "layout: [intro, next_steps.g1, sessionctl]\n"
    )
    old = render.render_prompt(store.loads(base, name="t", source="t.yaml").campaign)
    assert "Later:" in old and "## The target" not in old  # the unlisted group is not lost
    added = (
        "target:\n  metrics_url: http://localhost:6878/metrics\n"
        "benchmarks:\n  - {name: b1, driver: builtin, query: select 1}\n"
        "metrics:\n  - {name: mz_peek_seconds, kind: histogram}\n"
        "status: Where we are.\n"
    )
    text = render.render_prompt(store.loads(base + added, name="t", source="t.yaml").campaign)
    order = [
        "Intro text.",
        "## The target",
        "## How to benchmark",
        "## Metrics and how to read them",
        "## Current status",
        "## First\n",  # the first group's lead-in heads the steps: a heading, no colon
        "Later:",
        "## Recording your work",
    ]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions), text


@pytest.mark.parametrize(
    ("yaml_tail", "message"),
    [
        ("layout: [status, nope]\n", r"t\.yaml:\d+:\d+: layout\[1\]: unknown item 'nope'"),
        ("layout: [status, status]\n", r"layout\[1\]: 'status' is listed twice"),
        ("layout: [next_steps.zz]\n", r"layout\[0\]: no next_step 'zz' \(have: none\)"),
        ("headings: {colour: x}\n", r"headings\.colour: unknown item 'colour'"),
        ("sections: [{id: status, body: x}]\n", r"sections\[0\]\.id: 'status' is reserved"),
    ],
)
def test_layout_references_are_validated(yaml_tail: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        store.loads("schema: 1\nrevision: 0\ntitle: T\n" + yaml_tail, name="t", source="t.yaml")


# --- templates: lookup order, errors, export ----------------------------------------------


def test_workspace_and_campaign_templates_override_packaged(ws: Workspace) -> None:
    ws.campaign_path("t").write_text("schema: 1\nrevision: 0\ntitle: T\nstatus: all good\n")
    (ws.templates_dir / "partials").mkdir(parents=True)
    (ws.templates_dir / "partials" / "status.md.j2").write_text(
        "STATUS (workspace): {{ c.status }}"
    )
    assert "STATUS (workspace): all good" in store.write_prompt(ws, "t").read_text()
    own = ws.root / "my-templates" / "partials"
    own.mkdir(parents=True)
    (own / "status.md.j2").write_text("STATUS (campaign): {{ c.status }}")
    ws.campaign_path("t").write_text(
        "schema: 1\nrevision: 0\ntitle: T\nstatus: all good\ntemplates: my-templates\n"
    )
    text = store.write_prompt(ws, "t").read_text()
    assert "STATUS (campaign): all good" in text and "workspace" not in text
    listed = {
        r["name"]: r["source"] for r in render.list_templates(ws, store.load(ws, "t").campaign)
    }
    assert listed["partials/status.md.j2"] == "campaign"
    assert listed["prompt.md.j2"] == "packaged"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ c.no_such_field }}", r"partials/status\.md\.j2:1: template error: .*no_such_field"),
        (
            "{{ c.__class__.__mro__ }}",
            r"partials/status\.md\.j2:1: template error: .*__class__.* is unsafe",
        ),
        ("{% if %}", r"partials/status\.md\.j2:1: template error: "),
    ],
)
def test_template_errors_are_one_line_config_errors(
    ws: Workspace, template: str, message: str
) -> None:
    ws.campaign_path("t").write_text("schema: 1\nrevision: 0\ntitle: T\nstatus: s\n")
    (ws.templates_dir / "partials").mkdir(parents=True)
    (ws.templates_dir / "partials" / "status.md.j2").write_text(template)
    with pytest.raises(ConfigError, match=message) as info:
        store.write_prompt(ws, "t")
    assert "\n" not in str(info.value)
    assert not ws.rendered_path("t").exists()


def test_render_template_for_other_areas(ws: Workspace) -> None:
    (ws.templates_dir).mkdir()
    (ws.templates_dir / "log-entry.md.j2").write_text("## Session {{ n }}\n{{ text }}\n")
    out = render.render_template("log-entry.md.j2", {"n": 47, "text": "{{ x }}"}, ws=ws)
    assert out == "## Session 47\n{{ x }}\n"
    with pytest.raises(ConfigError, match=r"nope\.md\.j2: template not found"):
        render.render_template("nope.md.j2", {}, ws=ws)


def test_template_export_and_list_cli(ws: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    dest = tmp_path / "tpl"
    result = runner.invoke(
        app, ["template", "export", "partials/next_steps.md.j2", "--to", str(dest)]
    )
    assert result.exit_code == 0, result.output
    exported = dest / "partials" / "next_steps.md.j2"
    assert (
        exported.read_text()
        == (render.packaged_templates_dir() / "partials" / "next_steps.md.j2").read_text()
    )
    again = runner.invoke(app, ["template", "export", "next_steps", "--to", str(dest)])
    assert again.exit_code == 2 and "already exists; pass --force" in again.stderr
    exported.write_text("changed")
    forced = runner.invoke(app, ["template", "export", "next_steps", "--to", str(dest), "--force"])
    assert forced.exit_code == 0 and exported.read_text() != "changed"
    everything = runner.invoke(app, ["template", "export"])  # into the workspace's templates/
    assert everything.exit_code == 0, everything.output
    assert (ws.templates_dir / "prompt.md.j2").is_file()
    listed = json.loads(runner.invoke(app, ["template", "list", "--json"]).stdout)
    assert {r["source"] for r in listed} == {"workspace"}
    assert any(r["name"] == "partials/sessionctl.md.j2" for r in listed)
    with pytest.raises(UsageError, match="no such packaged template"):
        render.export_templates("nope", to=dest)


# --- drift ----------------------------------------------------------------------------------


def test_prompt_check_reports_drift_with_diff(ws: Workspace) -> None:
    ws.campaign_path("t").write_text("schema: 1\nrevision: 0\ntitle: T\nstatus: fine\n")
    runner = CliRunner()
    missing = runner.invoke(app, ["prompt", "check", "t"])
    assert (
        missing.exit_code == 1
        and "not rendered yet; run `sessionctl prompt render`" in missing.stderr
    )
    assert runner.invoke(app, ["prompt", "render", "t"]).exit_code == 0
    ok = runner.invoke(app, ["prompt", "check"])
    assert ok.exit_code == 0 and "prompts/t.md is up to date" in ok.stdout
    md = ws.rendered_path("t")
    md.write_text(md.read_text().replace("fine", "fine, edited by hand"))
    drift = runner.invoke(app, ["prompt", "check", "t"])
    assert drift.exit_code == 1
    assert "-fine\n+fine, edited by hand\n" in drift.stdout
    assert (
        drift.stderr.count("\n") == 1
        and "prompts/t.md: differs from the YAML rendering" in drift.stderr
    )
    as_json = runner.invoke(app, ["prompt", "check", "t", "--json"])
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert (
        data["drift"] is True and data["valid"] is True and "+fine, edited by hand" in data["diff"]
    )


def test_prompt_show_yaml_and_json(ws: Workspace) -> None:
    ws.campaign_path("t").write_text(
        "schema: 1\nrevision: 2\ntitle: T  # a comment\ntarget:\n  sql_url: postgres://u:pw@h/db\n"
    )
    runner = CliRunner()
    shown = runner.invoke(app, ["prompt", "show"])
    assert shown.exit_code == 0 and "# a comment" in shown.stdout and ":pw@" not in shown.stdout
    data = json.loads(runner.invoke(app, ["prompt", "show", "t", "--json"]).stdout)
    assert data["revision"] == 2 and data["name"] == "t"
    assert data["target"]["sql_url"] == "postgres://u:***@h/db"
    assert data["next_steps"] == [] and data["completed"]["optimizations"] == []


def test_render_stdout_does_not_write(ws: Workspace) -> None:
    ws.campaign_path("t").write_text("schema: 1\nrevision: 0\ntitle: T\n")
    result = CliRunner().invoke(app, ["prompt", "render", "t", "--stdout"])
    assert result.exit_code == 0 and result.stdout.startswith("# T\n")
    assert not ws.rendered_path("t").exists()


# --- the shipped example campaigns ----------------------------------------------------------


@pytest.mark.parametrize("path", sorted((REPO / "prompts").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_prompts_validate_and_are_not_drifted(path: Path) -> None:
    ws = Workspace(REPO)
    assert store.check_prompt(ws, path.stem) is None, f"run `sessionctl prompt render {path.stem}`"


def test_pgwire_example_has_the_structured_content() -> None:
    c = store.load(Workspace(REPO), "pgwire-throughput").campaign
    assert c.last_session == 46 and c.target.start == ("bin/environmentd", "--optimized")
    assert c.target.system_sql_url == "postgres://mz_system@localhost:6877/materialize"
    assert c.target.setup_sql == ("alter system set enable_frontend_peek_sequencing=true",)
    assert c.benchmarks[0].driver == "dbbench" and "[64 connections]" in (
        c.benchmarks[0].config or ""
    )
    assert [m.name for m in c.metrics] == [
        "mz_frontend_peek_seconds",
        "mz_frontend_peek_read_ts_seconds",
    ]
    assert c.metrics[0].labels == {"method": "try_frontend_peek_cached"}
    assert c.completed.optimizations[0].id == "peek_read_ts_fast" and c.completed.optimizations[
        0
    ].sessions == (46,)
    assert len(c.next_steps) == 6 and all(s.effect and s.body for s in c.next_steps)
    assert any("cache the result" in r for r in c.rules) and any("run tests" in r for r in c.rules)
