"""Import: rendering the imported YAML reproduces the original prompt's content, in order.

The comparison normalises both texts to a token sequence: list markers, heading hashes, bold
markers and code-fence lines are decoration (they may differ), every other word, number and
code line must be there in the original order. The only additions allowed are the rendered
"Recording your work with sessionctl" section and the `- id: ...` line under each next step.
Snapshots: see tests/test_render_prompt.py for how to regenerate them.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from test_render_prompt import assert_snapshot  # one snapshot rule for every rendered file
from typer.testing import CliRunner

from sessionctl import render
from sessionctl.campaign import importer, store
from sessionctl.cli import app
from sessionctl.workspace import Workspace

HERE = Path(__file__).resolve().parent
# The real handoff prompt from our first users (verbatim copy of shared/seeds/, so a clean
# clone tests without the shared folder).
SEED = HERE / "data" / "seeds" / "pgwire-throughput-prompt.md"
DATA = sorted((HERE / "data" / "prompts").glob("*.md"))

_ID_LINE = re.compile(r"^\s*-\s+id: `[^`]+`(?: \(added in Session \d+\))?\s*$")
_FENCE = re.compile(r"^\s*(?:`{3,}|~{3,})")
_MARKER = re.compile(r"^(?:[-*+]|\d{1,9}[.)])(?:\s+|$)")


def without_generated(rendered: str) -> str:
    """Drop what sessionctl adds: its own section and the step-id lines."""
    out: list[str] = []
    skipping = False
    for line in rendered.splitlines():
        if line.startswith("## Recording your work with sessionctl"):
            skipping = True
            continue
        if skipping and re.match(r"^#{1,2}\s", line):
            skipping = False
        if not skipping and not _ID_LINE.match(line):
            out.append(line)
    return "\n".join(out)


def tokens(text: str) -> list[str]:
    """The content of a markdown text as words, decoration removed."""
    out: list[str] = []
    for line in text.splitlines():
        if _FENCE.match(line):
            continue
        s = line.strip()
        if re.fullmatch(r"=+|-+", s):
            continue  # setext underline
        if re.match(r"^#{1,6}\s", s):
            s = re.sub(r"^#{1,6}\s+|\s+#+$", "", s)  # ATX heading, with optional closing hashes
        while (m := _MARKER.match(s)) is not None:
            s = s[m.end() :]
        out.extend(s.replace("**", "").split())
    return out


def roundtrip(text: str, name: str = "imported") -> tuple[importer.ImportResult, str]:
    result = importer.import_prompt(text, name=name, source=f"{name}.md")
    cf = store.loads(result.yaml, name=name, source=f"prompts/{name}.yaml")
    return result, render.render_prompt(cf.campaign)


def assert_same_content(original: str, rendered: str) -> None:
    want, got = tokens(original), tokens(without_generated(rendered))
    if want != got:
        import difflib

        diff = "\n".join(
            list(difflib.unified_diff(want, got, "original", "rendered", lineterm="", n=3))[:60]
        )
        pytest.fail(f"content differs:\n{diff}")


def test_the_comparison_catches_lost_and_reordered_content() -> None:
    text = "Para one.\n\n- bullet A\n- bullet B\n\n```\ncode 1\n```\n"
    assert tokens(text) == tokens(
        "# x\n".replace("# x\n", "") + "Para one.\n\n1. **bullet A**\n2. bullet B\n\ncode 1\n"
    )
    assert tokens(text) != tokens("Para one.\n\n- bullet B\n- bullet A\n\ncode 1\n")
    assert tokens(text) != tokens("Para one.\n\n- bullet A\n\ncode 1\n")
    assert tokens(text) != tokens("Para one.\n\n- bullet A\n- bullet B\n\ncode 2\n")


@pytest.mark.parametrize("path", [SEED, *DATA], ids=lambda p: p.stem)
def test_rendering_the_import_reproduces_the_prompt(path: Path) -> None:
    original = path.read_text()
    _result, rendered = roundtrip(original, path.stem)
    assert_same_content(original, rendered)
    assert_snapshot(f"import-{path.stem}.md", rendered)


def test_seed_import_recognises_the_structure() -> None:
    result, _ = roundtrip(SEED.read_text(), "pgwire")
    assert_snapshot("import-seed.yaml", result.yaml)
    c = store.loads(result.yaml, name="pgwire", source="p.yaml").campaign
    assert c.last_session == 46 and c.revision == 0
    assert [g.title for g in c.next_step_groups] == ["Immediate next steps (handoff):"]
    assert [s.id for s in c.next_steps] == [
        "remaining-histogram-observe-calls",
        "btreemap-traversals-374-samples",
        "row-encoding-backendmessage-send",
        "allocator-contention-malloc-609",
        "get-cached-parsed-stmt",
        "scaling-plateau-at-64c",
    ]
    first = c.next_steps[0]
    assert first.title == "Remaining Histogram::observe calls (~802 samples/query at 64c)"
    assert first.body is not None and first.body.startswith(
        "one_query\ntiming and record_time_to_first_row"
    )
    (bench,) = c.benchmarks
    assert bench.driver == "dbbench" and bench.binary == "~/dbbench/dbbench"
    assert (
        bench.config == "duration=20s\n\n[64 connections]\nquery=select * from t\nconcurrency=64\n"
    )
    assert bench.concurrency == (64,) and bench.duration == 20.0
    assert c.target.metrics_url == "http://localhost:6878/metrics"
    assert c.layout[-2:] == ("next_steps.immediate-next-steps-handoff", "sessionctl")
    assert c.headings == {"title": ""}


def test_completed_lists_groups_and_nested_steps() -> None:
    result, _ = roundtrip((HERE / "data" / "prompts" / "ddl-latency.md").read_text(), "ddl")
    c = store.loads(result.yaml, name="ddl", source="d.yaml").campaign
    assert c.title == "DDL latency with many objects" and c.last_session == 46
    assert [e.sessions for e in c.completed.optimizations] == [(12,), (15, 16), (46,)]
    assert [e.sessions for e in c.completed.diagnostics] == [(20,), (31,)]
    assert c.completed.optimizations[0].id == "batch-catalog-transactions-during"
    assert [g.title for g in c.next_step_groups] == [
        "Immediate next steps",
        "Previously identified next steps (ranked by Session 20 profiling)",
    ]
    assert [s.group for s in c.next_steps] == ["immediate-next-steps"] * 2 + [
        "previously-identified-next-steps-ranked"
    ] * 3
    cache = c.next_steps[0]
    assert cache.body is not None and "1. Add the cache to `TransactionState`." in cache.body
    assert (
        c.next_steps[3].body == "- Only helps `DROP`, not `CREATE`.\n"
        "- Check with the storage team whether ordering matters.\n"
    )


def test_other_prompt_shapes() -> None:
    sink, _ = roundtrip((HERE / "data" / "prompts" / "sink-throughput.md").read_text(), "sink")
    c = store.loads(sink.yaml, name="sink", source="s.yaml").campaign
    assert (
        c.benchmarks[0].concurrency == (4, 8) and c.benchmarks[0].binary == "/opt/dbbench/dbbench"
    )
    assert c.benchmarks[0].config is not None and c.benchmarks[0].config.startswith(
        "duration=30s\n\n[setup]"
    )
    assert [e.sessions for e in c.completed.diagnostics] == [(3,), (4, 5)]
    assert c.last_session == 7
    query, _ = roundtrip((HERE / "data" / "prompts" / "query-latency.md").read_text(), "query")
    q = store.loads(query.yaml, name="query", source="q.yaml").campaign
    assert q.last_session == 31  # "Session 32 is next"
    assert q.next_steps[0].body is not None and "```rust" in q.next_steps[0].body
    assert q.title == "Point-query latency" and q.sections[0].title is None


# --- generated prompts -----------------------------------------------------------------------

WORDS = (
    "peek",
    "latency",
    "throughput",
    "the",
    "a",
    "of",
    "to",
    "in",
    "we",
    "our",
    "(~802",
    "samples/query",
    "at",
    "64c)",
    "`read_ts`",
    "Histogram::observe",
    "BTreeMap",
    "etc.",
    "e.g.",
    "µs",
    "374-673µs",
    "99.97%+",
    "→",
    "oracle",
    "tokio",
    "malloc=3",
    "x,y",
    "flush:",
    "batch;",
    "CRDB",
    "round-trip",
    "2,000",
    "v1.2",
    "[link](http://x/y)",
    "it's",
    '"quoted"',
    "*em*",
    "_under_",
)


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    words[0] = rng.choice(["Check", "Measure", "Reduce", "Avoid", "Try", "Note"])
    return " ".join(words)


def _paragraph(rng: random.Random) -> str:
    return "\n".join(_sentence(rng, rng.randint(3, 12)) for _ in range(rng.randint(1, 4)))


def _item(rng: random.Random, ordered: bool, depth: int = 0) -> list[str]:
    marker = "1." if ordered else rng.choice("-*+")
    head = f"{_sentence(rng, rng.randint(2, 10))}{rng.choice(['', ':', '.'])}"
    lines = [f"{marker} {head} {_sentence(rng, 4)}"]
    pad = " " * (len(marker) + 1)
    for _ in range(rng.randint(0, 2)):
        lines.append(pad + _sentence(rng, rng.randint(2, 8)))
    if depth == 0 and rng.random() < 0.2:
        lines.extend(["", pad + _sentence(rng, rng.randint(3, 8))])  # a second paragraph
    if depth == 0 and rng.random() < 0.4:
        sub_ordered = rng.random() < 0.5
        for k in range(rng.randint(1, 3)):
            sub = _item(rng, sub_ordered, depth + 1)
            if sub_ordered:
                sub[0] = f"{k + 1}." + sub[0][2:]
            lines.extend(pad + ln for ln in sub)
    return lines


def _list(rng: random.Random) -> str:
    ordered = rng.random() < 0.4
    loose = rng.random() < 0.25
    items = []
    for k in range(rng.randint(1, 4)):
        item = _item(rng, ordered)
        if ordered:
            item[0] = f"{k + 1}." + item[0][2:]
        elif rng.random() < 0.1:
            item[0] = item[0][:2] + "[ ] " + item[0][2:]
        if loose and items:
            items.append("")
        items.extend(item)
    return "\n".join(items)


def _block(rng: random.Random) -> str:
    kind = rng.choice(["para", "para", "list", "heading", "code", "next", "done", "ini"])
    if kind == "para":
        return _paragraph(rng)
    if kind == "list":
        return _list(rng)
    if kind == "heading":
        closing = " ##" if rng.random() < 0.2 else ""
        return f"{'#' * rng.randint(2, 3)} {_sentence(rng, rng.randint(1, 5))}{closing}"
    if kind == "code":
        return "```sh\n" + "\n".join(_sentence(rng, 5) for _ in range(rng.randint(1, 3))) + "\n```"
    if kind == "next":
        lead = rng.choice(
            [
                "Next steps:",
                "## Next steps",
                "Previously identified next steps (ranked by Session 20 profiling):",
            ]
        )
        return f"{lead}\n{_list(rng)}" if not lead.startswith("#") else f"{lead}\n\n{_list(rng)}"
    if kind == "done":
        lead = rng.choice(["Completed optimizations:", "### Completed diagnostics"])
        items = [
            f"- Session {rng.randint(1, 60)}: {_sentence(rng, 6)}" for _ in range(rng.randint(1, 3))
        ]
        return lead + "\n" + ("\n" if lead.startswith("#") else "") + "\n".join(items)
    ini = (
        f"duration={rng.randint(5, 60)}s\n\n[{rng.randint(1, 128)} connections]\n"
        f"query=select {rng.randint(1, 9)}\nconcurrency={rng.randint(1, 128)}"
    )
    if rng.random() < 0.5:
        return f"Use this config:\n```ini\n{ini}\n```"
    return f"Run dbbench with this script for testing:\n{ini}"


@pytest.mark.parametrize("seed", range(60))
def test_generated_prompts_roundtrip(seed: int) -> None:
    rng = random.Random(seed)
    blocks = [_block(rng) for _ in range(rng.randint(2, 9))]
    if rng.random() < 0.5:
        blocks.insert(0, f"# {_sentence(rng, 3)}")
    text = "\n\n".join(blocks) + "\n"
    if seed % 10 == 3:
        text = text.replace("\n", "\r\n")  # Windows line endings
    _, rendered = roundtrip(text, f"gen{seed}")
    assert_same_content(text, rendered)


# --- the CLI --------------------------------------------------------------------------------


def test_cli_import_render_check_and_force(ws: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    src = tmp_path / "prompt.md"
    src.write_text(SEED.read_text())
    result = runner.invoke(app, ["prompt", "import", str(src), "--campaign", "pgwire", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["yaml"] == "prompts/pgwire.yaml" and info["markdown"] == "prompts/pgwire.md"
    assert info["next_steps"] == 6 and info["last_session"] == 46 and info["benchmarks"] == 1
    assert runner.invoke(app, ["prompt", "check", "pgwire"]).exit_code == 0
    yaml_before = ws.campaign_path("pgwire").read_text()
    again = runner.invoke(app, ["prompt", "import", str(src), "--campaign", "pgwire"])
    assert (
        again.exit_code == 2 and "prompts/pgwire.yaml: already exists; pass --force" in again.stderr
    )
    assert ws.campaign_path("pgwire").read_text() == yaml_before
    forced = runner.invoke(app, ["prompt", "import", str(src), "--campaign", "pgwire", "--force"])
    assert forced.exit_code == 0, forced.output
    # The imported campaign is a normal one: reorder and resolve through the CLI.
    moved = runner.invoke(app, ["next", "move", "scaling-plateau-at-64c", "1"])
    assert moved.exit_code == 0, moved.output
    text = ws.rendered_path("pgwire").read_text()
    assert text.index("Scaling plateau") < text.index("Remaining Histogram::observe")
    assert runner.invoke(app, ["prompt", "check", "pgwire"]).exit_code == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prompt", "import", "missing.md", "--campaign", "x"], "missing.md: cannot read"),
        (
            ["prompt", "import", "{src}", "--campaign", "bad name"],
            "--campaign 'bad name': use letters",
        ),
    ],
)
def test_cli_import_errors(ws: Workspace, tmp_path: Path, argv: list[str], message: str) -> None:
    src = tmp_path / "p.md"
    src.write_text("Some prompt.\n")
    result = CliRunner().invoke(app, [a.replace("{src}", str(src)) for a in argv])
    assert result.exit_code == 2 and message in result.stderr
    assert not list(ws.prompts_dir.iterdir())
