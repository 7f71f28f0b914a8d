"""Campaign files: round-trip preservation, revision bumps, migration, and every error path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionctl.campaign import migrate, next_steps, store
from sessionctl.cli import app
from sessionctl.errors import CampaignNotFound, ConfigError
from sessionctl.workspace import Workspace

# A file in the style people really write: comments everywhere, quoting, block scalars.
COMMENTED = """\
# Campaign: DDL latency.   (top comment, kept)
schema: 1   # schema version
revision: 3
title: "DDL latency with many objects"  # quoted title stays quoted
last_session: 12

# ---- prose ----
context: |
  We measure DDL statements as the catalog grows.
  Two lines, literal block.
rules:
  - 'One optimization per session.'   # single-quoted
  - Never drop objects to look faster.
benchmarks:
  - name: ddl
    driver: ddl
    ddl:
      count_sql: select count(*) from mz_objects
      filler: create table f_{n} (a int)
      levels: [0, 1000]   # flow sequence
next_step_groups:
  - id: now
    title: Immediate
next_steps:
  # The best idea first.
  - id: cache-ids
    title: Cache id lookups
    body: |
      Profile shows 22% in lookups.
      Keep this literal block intact.
    effect: ~20%   # rough guess
    group: now
  - id: batch-writes  # inline comment on the id
    title: Batch writes
    paths:
      - src/catalog.rs   # where it happens
    group: now
  # trailing comment about the list
# Completed work follows.
completed:
  optimizations:
    - id: parallel
      title: Parallel sort
      sessions: [4]
"""


def write(ws: Workspace, name: str, text: str) -> Path:
    path = ws.campaign_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_untouched_document_dumps_byte_identical() -> None:
    cf = store.loads(COMMENTED, name="ddl", source="prompts/ddl.yaml")
    assert store.dumps(cf) == COMMENTED
    assert cf.campaign.title == "DDL latency with many objects"
    assert [s.id for s in cf.campaign.next_steps] == ["cache-ids", "batch-writes"]


@pytest.mark.parametrize(
    "text",
    [
        "schema: 1\nrevision: 0\ntitle: t\nrules:\n- a\n- b\nnext_steps:\n- id: x\n  title: X\n",
        "schema: 1\nrevision: 0\ntitle: t\ntarget:\n"
        "    sql_url: postgres://u@h/db\n    setup_sql:\n        - select 1\n",
        "---\nschema: 1\nrevision: 0\ntitle: t\n",
    ],
    ids=["indentless-dashes", "four-space", "explicit-start"],
)
def test_other_indentation_styles_survive(text: str) -> None:
    cf = store.loads(text, name="t", source="t.yaml")
    assert store.dumps(cf) == text


def test_editing_one_step_keeps_every_other_line(ws: Workspace) -> None:
    path = write(ws, "ddl", COMMENTED)
    with store.edit(ws, "ddl") as cf:
        next_steps.edit_step(cf.doc, "batch-writes", title="Batch catalog writes")
    before = COMMENTED.splitlines()
    after = path.read_text().splitlines()
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [
        ("revision: 3", "revision: 4"),
        ("    title: Batch writes", "    title: Batch catalog writes"),
    ]


def test_trailing_comments_stay_at_the_end_of_the_list(ws: Workspace) -> None:
    path = write(ws, "ddl", COMMENTED)
    with store.edit(ws, "ddl") as cf:
        next_steps.drop_step(cf.doc, "batch-writes")
    text = path.read_text()
    assert "  # trailing comment about the list\n# Completed work follows.\ncompleted:" in text
    with store.edit(ws, "ddl") as cf:
        next_steps.add_step(cf.doc, id="new", title="New idea")
    text = path.read_text()
    assert re.search(
        r"- id: new\n\s+title: New idea\n\s+group: now\n  # trailing comment about the list\n", text
    )
    with store.edit(ws, "ddl") as cf:
        next_steps.move_step(cf.doc, "new", 1)
    text = path.read_text()
    assert text.index("id: new") < text.index("id: cache-ids")
    assert (
        "    effect: ~20%   # rough guess\n    group: now\n  # trailing comment about the list\n"
        in text
    )


def test_save_bumps_revision_and_refreshes_the_view(ws: Workspace) -> None:
    write(ws, "ddl", COMMENTED)
    cf = store.load(ws, "ddl")
    next_steps.set_status(cf.doc, "Sessions 1-12 done.\nNext: caching.")
    next_steps.set_last_session(cf.doc, 13)
    campaign = store.save(ws, cf)
    assert campaign.revision == 4 and cf.campaign is campaign
    assert campaign.status == "Sessions 1-12 done.\nNext: caching.\n"
    assert campaign.last_session == 13
    assert (
        "status: |\n  Sessions 1-12 done.\n  Next: caching.\n"
        in ws.campaign_path("ddl").read_text()
    )
    store.save(ws, cf, bump=False)
    assert store.load(ws, "ddl").campaign.revision == 4


def test_save_rerenders_existing_markdown_and_keeps_hand_edits(ws: Workspace) -> None:

    write(ws, "ddl", COMMENTED)
    md = store.write_prompt(ws, "ddl")
    assert "Cache id lookups" in md.read_text()
    with store.edit(ws, "ddl") as cf:
        next_steps.edit_step(cf.doc, "cache-ids", title="Cache every id lookup")
    assert "Cache every id lookup" in md.read_text()
    assert cf.notices == []
    md.write_text(md.read_text() + "\nA hand-written note.\n")
    with store.edit(ws, "ddl") as cf:
        next_steps.drop_step(cf.doc, "cache-ids")
    assert "A hand-written note." not in md.read_text()
    assert len(cf.notices) == 1 and "had hand edits" in cf.notices[0]
    backups = list((ws.scratch / "backups").iterdir())
    assert len(backups) == 1 and "A hand-written note." in backups[0].read_text()


def test_invalid_edit_is_refused_and_file_unchanged(ws: Workspace) -> None:
    path = write(ws, "ddl", COMMENTED)
    message = r"^prompts/ddl\.yaml:\d+:\d+: next_steps\[0\]\.group: no group 'nope' .*unchanged\)$"
    with pytest.raises(ConfigError, match=message), store.edit(ws, "ddl") as cf:
        cf.doc["next_steps"][0]["group"] = "nope"
    assert path.read_text() == COMMENTED


def test_load_missing_campaign(ws: Workspace) -> None:
    with pytest.raises(CampaignNotFound, match=r"prompts/nope\.yaml: no such campaign"):
        store.load(ws, "nope")


def test_several_campaigns_and_none_named_is_a_usage_error(ws: Workspace) -> None:
    write(ws, "ddl", COMMENTED)
    write(ws, "shop", COMMENTED)
    before = {p: p.read_bytes() for p in ws.prompts_dir.iterdir()}
    result = CliRunner().invoke(app, ["next", "list"])
    assert result.exit_code == 2, result.output  # the command line must say which: usage
    assert result.stderr == (
        "error: several campaigns (ddl, shop); name one, or set SESSIONCTL_CAMPAIGN\n"
    )
    assert {p: p.read_bytes() for p in ws.prompts_dir.iterdir()} == before
    named = CliRunner().invoke(app, ["next", "list", "ddl", "--json"])
    assert named.exit_code == 0, named.output


V0 = """\
# An old draft (schema 0).
schema: 0
title: Old draft
session: 9   # last session
steps:
  - id: a   # keep me
    title: Step A
"""


def test_migrates_schema_0_on_load_and_writes_on_save(ws: Workspace) -> None:
    path = write(ws, "old", V0)
    cf = store.load(ws, "old")
    assert cf.migrated_from == 0
    assert cf.campaign.schema == 1 and cf.campaign.last_session == 9
    assert [s.id for s in cf.campaign.next_steps] == ["a"]
    assert path.read_text() == V0  # loading never writes
    store.save(ws, cf)
    text = path.read_text()
    assert text.startswith("# An old draft (schema 0).\nschema: 1\nrevision: 1\ntitle: Old draft\n")
    # The renamed key is longer, so its comment shifts; everything else is byte-identical.
    assert "last_session: 9 # last session\nnext_steps:\n  - id: a   # keep me\n" in text
    assert store.load(ws, "old").migrated_from is None


def test_upgrade_leaves_current_and_unknown_versions_alone() -> None:
    doc = {"schema": 1, "steps": []}
    assert migrate.upgrade(doc) is None and "steps" in doc
    assert migrate.upgrade({"schema": "one"}) is None


# --- every error path, through the CLI: one line, exit 1, file untouched --------------------

GOOD = "schema: 1\nrevision: 0\ntitle: T\nnext_steps:\n  - id: a\n    title: A\n"
ERRORS = {
    "unknown-key": (
        GOOD + "colour: blue\n",
        r"prompts/bad\.yaml:7:1: colour: unknown key \(known: .*\)",
    ),
    "unknown-nested-key": (
        GOOD.replace("    title: A\n", "    title: A\n    efect: big\n"),
        r"prompts/bad\.yaml:7:5: next_steps\[0\]\.efect: unknown key \(known: id, title, .*\)",
    ),
    "duplicate-id": (
        GOOD + "  - id: a\n    title: again\n",
        r"prompts/bad\.yaml:7:9: next_steps\[1\]\.id: duplicate id 'a'",
    ),
    "wrong-type": (
        GOOD.replace("revision: 0", "revision: soon"),
        r"prompts/bad\.yaml:2:11: revision: expected an integer, got 'soon'",
    ),
    "wrong-list-type": (
        GOOD + "rules: just one\n",
        r"prompts/bad\.yaml:7:8: rules: expected a list of a string, got 'just one'",
    ),
    "malformed-yaml": (
        GOOD + "  - id: b\n   title: misaligned\n",
        r"prompts/bad\.yaml:8:4: expected <block end>, but found '<block mapping start>'",
    ),
    "unclosed-quote": (
        'schema: 1\nrevision: 0\ntitle: "never closed\n',
        r"prompts/bad\.yaml:4:1: found unexpected end of stream \(while scanning a quoted scalar\)",
    ),
    "duplicate-key": (
        GOOD + "title: Again\n",
        r"prompts/bad\.yaml:7:1: found duplicate key \"title\" with value \"Again\"",
    ),
    "newer-schema": (
        GOOD.replace("schema: 1", "schema: 7"),
        r"prompts/bad\.yaml:1:9: schema: version 7 is newer than this sessionctl understands "
        r"\(1\); upgrade sessionctl",
    ),
    "open-loop-load": (
        GOOD + "compare:\n  open_loop_load: 1.5\n",
        r"prompts/bad\.yaml:8:19: compare\.open_loop_load: must be in \[0, 1\)",
    ),
    "one-pair": (
        GOOD + "compare:\n  pairs: 1\n",
        r"prompts/bad\.yaml:8:10: compare\.pairs: must be >= 2",
    ),
    "zero-rate": (
        GOOD + "benchmarks:\n  - name: b\n    driver: builtin\n    query: select 1\n    rate: 0\n",
        r"prompts/bad\.yaml:11:11: benchmarks\[0\]\.rate: must be > 0 \(queries/s\)",
    ),
    "not-a-mapping": (
        "- just\n- a list\n",
        r"prompts/bad\.yaml:1:1: \(top level\): a campaign file must be a mapping",
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
@pytest.mark.parametrize(
    "argv",
    [
        ["prompt", "check", "bad"],
        ["next", "add", "-C", "bad", "--id", "z", "--title", "Z"],
        ["prompt", "render", "bad"],
    ],
    ids=["check", "next-add", "render"],
)
def test_bad_file_gives_one_line_and_exit_1(ws: Workspace, case: str, argv: list[str]) -> None:
    text, pattern = ERRORS[case]
    path = write(ws, "bad", text)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(rf"error: {pattern}.*", lines[0]), lines[0]
    assert path.read_text() == text
    assert not ws.rendered_path("bad").exists()
