"""Next steps: add / edit / move / resolve / drop, in the core and through `sessionctl next`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionctl.campaign import next_steps, store
from sessionctl.cli import app
from sessionctl.errors import UsageError
from sessionctl.workspace import Workspace

BASE = """\
schema: 1
revision: 5
title: Throughput
last_session: 46
next_step_groups:
  - id: now   # the handoff list
    title: Immediate next steps
  - id: later
    title: Previously identified
next_steps:
  - id: a
    title: Step A
    group: now
  - id: b
    title: Step B
    effect: ~5%
    group: now
  - id: c
    title: Step C
    group: later
"""


@pytest.fixture
def camp(ws: Workspace) -> Workspace:
    ws.campaign_path("t").write_text(BASE)
    return ws


def ids(ws: Workspace) -> list[str]:
    return [s.id for s in store.load(ws, "t").campaign.next_steps]


def run(*argv: str) -> object:
    return CliRunner().invoke(app, list(argv))


def test_add_defaults_to_last_and_joins_the_neighbours_group() -> None:
    cf = store.loads(BASE, name="t", source="t.yaml")
    next_steps.add_step(
        cf.doc, id="d", title="Step  D", body="line 1\nline 2", paths=["src/x.rs"], added_in=46
    )
    next_steps.add_step(cf.doc, id="a2", title="After A", group="now")
    next_steps.add_step(cf.doc, id="top", title="Top", rank=1)
    c = store.validate(cf.doc, name="t", source="t.yaml")
    assert [s.id for s in c.next_steps] == ["top", "a", "b", "a2", "c", "d"]
    d = c.step("d")
    assert (d.title, d.body, d.paths, d.added_in, d.group) == (
        "Step D",
        "line 1\nline 2\n",
        ("src/x.rs",),
        46,
        "later",
    )
    assert c.step("top").group == "now"
    assert "    body: |\n      line 1\n      line 2\n" in store.dumps(cf)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": "a", "title": "dup"}, "duplicate id 'a'"),
        ({"id": "two words", "title": "x"}, "must be one word"),
        ({"id": "x", "title": "  "}, "non-empty --title"),
        ({"id": "x", "title": "x", "group": "nope"}, "no group 'nope' \\(have: now, later\\)"),
        ({"id": "x", "title": "x", "rank": 9}, "rank 9: must be between 1 and 4"),
    ],
)
def test_add_rejects_bad_requests_without_changing_anything(
    kwargs: dict[str, object], message: str
) -> None:
    cf = store.loads(BASE, name="t", source="t.yaml")
    with pytest.raises(UsageError, match=message):
        next_steps.add_step(cf.doc, **kwargs)  # type: ignore[arg-type]
    assert store.dumps(cf) == BASE


def test_edit_move_drop_keep_ranks_dense() -> None:
    cf = store.loads(BASE, name="t", source="t.yaml")
    next_steps.edit_step(cf.doc, "b", id="b2", effect=None, body="why")
    next_steps.move_step(cf.doc, "c", 1)
    next_steps.drop_step(cf.doc, "a")
    c = store.validate(cf.doc, name="t", source="t.yaml")
    assert [s.id for s in c.next_steps] == ["c", "b2"]
    assert c.step("b2").effect is None and c.step("b2").body == "why"
    with pytest.raises(UsageError, match="no step 'a'"):
        next_steps.move_step(cf.doc, "a", 1)
    with pytest.raises(UsageError, match="rank 3: must be between 1 and 2"):
        next_steps.move_step(cf.doc, "c", 3)
    with pytest.raises(UsageError, match="unknown field"):
        next_steps.edit_step(cf.doc, "c", colour="red")


def test_resolve_moves_step_into_completed_with_session() -> None:
    cf = store.loads(BASE, name="t", source="t.yaml")
    next_steps.resolve_step(cf.doc, "b", session=47, kind="optimization", summary="+4% QPS")
    next_steps.resolve_step(cf.doc, "c", session=47, kind="diagnostic", summary=None)
    c = store.validate(cf.doc, name="t", source="t.yaml")
    assert [s.id for s in c.next_steps] == ["a"]
    (opt,) = c.completed.optimizations
    assert (opt.id, opt.title, opt.sessions, opt.summary) == ("b", "Step B", (47,), "+4% QPS")
    assert c.completed.diagnostics[0].sessions == (47,)
    assert "sessions: [47]" in store.dumps(cf)
    # Re-resolving the same id (a step taken up again later) appends the session.
    next_steps.add_step(cf.doc, id="b", title="Step B again")
    next_steps.resolve_step(cf.doc, "b", session=49, kind="optimization", summary="+2% more")
    c = store.validate(cf.doc, name="t", source="t.yaml")
    assert c.completed.optimizations[0].sessions == (47, 49)
    assert c.completed.optimizations[0].summary == "+2% more"


def test_cli_list_json(camp: Workspace) -> None:
    result = run("next", "list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(s["rank"], s["id"], s["group"]) for s in data["steps"]] == [
        (1, "a", "now"),
        (2, "b", "now"),
        (3, "c", "later"),
    ]
    assert data["revision"] == 5 and data["groups"][0] == {
        "id": "now",
        "title": "Immediate next steps",
    }
    table = run("next", "list")
    assert (
        table.exit_code == 0 and "Step B" in table.stdout and "Immediate next steps" in table.stdout
    )


def test_cli_every_change_bumps_revision_and_rerenders(camp: Workspace) -> None:

    md = store.write_prompt(camp, "t")
    steps = [
        [
            "next",
            "add",
            "--id",
            "d",
            "--title",
            "Step D",
            "--effect",
            "~1%",
            "--path",
            "a.rs",
            "--path",
            "b.rs",
        ],
        ["next", "edit", "d", "--title", "Step D, sharpened", "--group", "now"],
        ["next", "move", "d", "1"],
        ["next", "resolve", "a", "--session", "47", "--as", "optimization", "--summary", "done"],
        ["next", "drop", "c"],
    ]
    for i, argv in enumerate(steps, start=1):
        result = run(*argv)
        assert result.exit_code == 0, result.output
        assert f"(revision {5 + i})" in result.stdout
        assert store.load(camp, "t").campaign.revision == 5 + i
    assert ids(camp) == ["d", "b"]
    text = md.read_text()
    assert "1. **Step D, sharpened**" in text and "- Code: `a.rs`, `b.rs`" in text
    assert "**Step A** (Session 47): done" in text
    assert "Step C" not in text
    assert run("prompt", "check").exit_code == 0


def test_cli_resolve_defaults_to_the_last_session(camp: Workspace) -> None:
    result = run("next", "resolve", "c", "--as", "diagnostic")
    assert result.exit_code == 0, result.output
    assert "Session 46" in result.stdout
    assert store.load(camp, "t").campaign.completed.diagnostics[0].sessions == (46,)


@pytest.mark.parametrize(
    ("argv", "message", "code"),
    [
        (
            ["next", "move", "zz", "1"],
            "prompts/t.yaml: next_steps: no step 'zz' (have: a, b, c)",
            2,
        ),
        (
            ["next", "add", "--id", "a", "--title", "x"],
            "prompts/t.yaml: next_steps: duplicate id 'a'",
            2,
        ),
        (["next", "resolve", "a", "--as", "win"], "--as 'win': use optimization or diagnostic", 2),
        (["next", "edit", "a"], "next edit: nothing to change", 2),
        (["next", "list", "nope"], "no such campaign (have: t)", 1),
    ],
)
def test_cli_errors_are_one_line_and_change_nothing(
    camp: Workspace, argv: list[str], message: str, code: int
) -> None:
    before = camp.campaign_path("t").read_text()
    result = run(*argv)
    assert result.exit_code == code, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert camp.campaign_path("t").read_text() == before


def test_help_text_on_every_next_command() -> None:
    for sub in ("list", "add", "edit", "move", "resolve", "drop"):
        result = run("next", sub, "--help")
        assert result.exit_code == 0
        assert "Usage" in result.stdout and len(result.stdout.splitlines()) > 4


def test_concurrent_edits_serialise_under_the_lock(camp: Workspace) -> None:
    import threading

    errors: list[BaseException] = []

    def add(k: int) -> None:
        try:
            with store.edit(camp, "t") as cf:
                next_steps.add_step(cf.doc, id=f"t{k}", title=f"T{k}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    c = store.load(camp, "t").campaign
    assert c.revision == 9 and sorted(ids(camp)) == sorted(["a", "b", "c", "t0", "t1", "t2", "t3"])
    assert Path(camp.campaign_path("t")).read_text().count("- id:") == 7 + 2  # + two groups
