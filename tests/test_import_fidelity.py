"""Import: rendering the imported YAML keeps every word of the original prompt.

The importer moves prose to the campaign field it belongs in (rules, status, ...), so the
comparison is: the same words (as a multiset) once the superseded instructions (kept in the
YAML's `superseded:` list) are taken out, and every sentence of the original intact, as one
run of words, somewhere in the rendering. Words are whitespace-split tokens with decoration
removed (list markers, heading hashes, bold/strike markers, code-fence lines). The only
additions allowed are what sessionctl generates: its own section, the `- id: ...` line under
each next step, the default heading of a field that had none, and the target's metrics line.
Snapshots: see tests/test_render_prompt.py for how to regenerate them.
"""

from __future__ import annotations

import functools
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from test_render_prompt import assert_snapshot  # one snapshot rule for every rendered file
from typer.testing import CliRunner

from sessionctl import render
from sessionctl.campaign import importer, store
from sessionctl.campaign.titles import Ids
from sessionctl.cli import app
from sessionctl.workspace import Workspace

HERE = Path(__file__).resolve().parent
# The real handoff prompt from our first users (verbatim copy of shared/seeds/, so a clean
# clone tests without the shared folder).
SEED = HERE / "data" / "seeds" / "pgwire-throughput-prompt.md"
DATA_DIR = HERE / "data" / "prompts"
DATA = sorted(DATA_DIR.glob("*.md"))

_ID_LINE = re.compile(r"^\s*-\s+id: `[^`]+`(?: \(added in Session \d+\))?\s*$")
_FENCE = re.compile(r"^\s*(?:`{3,}|~{3,})")
_MARKER = re.compile(r"^(?:[-*+]|\d{1,9}[.)])(?:\s+|$)")


_DEFAULT_HEADINGS = {
    "## Context",
    "## Goal",
    "## Rules",
    "## How a session works",
    "## The target",
    "## Current status",
    "## Profiling notes",
    "## How to benchmark",
    "## Completed work",
    "### Optimizations",
    "### Diagnostics",
    "## Next steps",
}


def without_generated(rendered: str, original: str = "") -> str:
    """Drop what sessionctl adds: its own section, step-id lines, default headings it made.

    A lead-in line of the original ("**Remaining directions:**") rendered as a heading without
    its closing colon ("## Remaining directions") reads as the original line again.
    """
    have = {line.strip() for line in original.splitlines()}
    heading = re.compile(r"^#{1,6}\s+(.*?)\s*$")
    leads: dict[str, list[str]] = {}  # heading text -> the original lead-in lines it may be
    headings: Counter[str] = Counter()  # the original's own headings: never converted
    for s in (line.strip() for line in original.splitlines()):
        bare = re.sub(r"^\*\*(.*)\*\*$", r"\1", s)
        if (m := heading.match(s)) is not None:
            headings[m[1]] += 1
        elif bare.endswith(":"):
            leads.setdefault(bare.removesuffix(":").strip(), []).append(s)
    seen: Counter[str] = Counter()
    out: list[str] = []
    skipping = False
    for line in rendered.splitlines():
        if (m := heading.match(line)) is not None:
            seen[m[1]] += 1
            if seen[m[1]] > headings[m[1]] and leads.get(m[1]):
                line = leads[m[1]].pop()
        if line.startswith("## Recording your work with sessionctl"):
            skipping = True
            continue
        if skipping and re.match(r"^#{1,2}\s", line):
            skipping = False
        generated = line in _DEFAULT_HEADINGS or line.startswith("- Prometheus metrics: ")
        if generated and line.strip() not in have:
            continue
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
        out.extend(s.replace("**", "").replace("~~", "").split())
    return out


def sentences(text: str) -> list[list[str]]:
    """The original's sentences (cut at block boundaries too), each as its words."""
    out: list[list[str]] = []
    for line in text.splitlines():
        s = line.strip()
        if not s or _FENCE.match(line) or re.match(r"^(?:#{1,6}\s|[-*+]\s|\d{1,9}[.)]\s)", s):
            out.append([])  # a block boundary
        for word in tokens(line):
            if not out:
                out.append([])
            out[-1].append(word)
            if re.search(r"[.!?:;]\)?$", word):
                out.append([])
    return [chunk for chunk in out if chunk]


def roundtrip(
    text: str, name: str = "imported", **options: bool
) -> tuple[importer.ImportResult, str]:
    result = importer.import_prompt(text, name=name, source=f"{name}.md", **options)
    cf = store.loads(result.yaml, name=name, source=f"prompts/{name}.yaml")
    return result, render.render_prompt(cf.campaign)


def without_superseded(original: str, result: importer.ImportResult) -> str:
    """The original less the instructions the import set aside (whitespace may differ)."""
    for item in result.superseded:
        pattern = r"\s+".join(re.escape(w) for w in item["text"].split())
        original, n = re.subn(pattern, "", original, count=1)
        assert n == 1, f"superseded text not in the original: {item['text']!r}"
    return original


def assert_same_content(original: str, rendered: str) -> None:
    got = tokens(without_generated(rendered, original))
    want = tokens(original)
    if Counter(want) != Counter(got):
        lost = Counter(want) - Counter(got)
        added = Counter(got) - Counter(want)
        pytest.fail(f"words differ: lost {dict(lost)}, added {dict(added)}")
    joined = "\x00" + "\x00".join(got) + "\x00"
    for chunk in sentences(original):
        if "\x00" + "\x00".join(chunk) + "\x00" not in joined:
            pytest.fail(f"sentence not intact in the rendering: {' '.join(chunk)!r}")


def test_the_comparison_catches_lost_changed_and_broken_content() -> None:
    text = "Para one. Two words.\n\n- bullet A\n- bullet B\n\n```\ncode 1\n```\n"
    assert_same_content(text, "Para one. Two words.\n\n1. **bullet A**\n2. bullet B\n\ncode 1\n")
    # Whole sentences and blocks may move (the importer places them by field) ...
    assert_same_content(text, "- bullet B\n\nTwo words. Para one.\n\n- bullet A\n\ncode 1\n")
    bad = [
        "Para one. Two words.\n\n- bullet A\n\ncode 1\n",  # lost
        "Para one. Two words.\n\n- bullet A\n- bullet B\n\ncode 2\n",  # changed
        "Para Two one. words.\n\n- bullet A\n- bullet B\n\ncode 1\n",  # a sentence broken
        "Para one. Two words. Three.\n\n- bullet A\n- bullet B\n\ncode 1\n",  # added
    ]
    for rendered in bad:
        with pytest.raises(pytest.fail.Exception):
            assert_same_content(text, rendered)


@pytest.mark.parametrize("path", [SEED, *DATA], ids=lambda p: p.stem)
def test_rendering_the_import_reproduces_the_prompt(path: Path) -> None:
    original = path.read_text()
    result, rendered = roundtrip(original, path.stem)
    assert_same_content(without_superseded(original, result), rendered)
    assert_snapshot(f"import-{path.stem}.md", rendered)


def test_seed_import_recognises_the_structure() -> None:
    result, _ = roundtrip(SEED.read_text(), "pgwire")
    assert_snapshot("import-seed.yaml", result.yaml)
    c = store.loads(result.yaml, name="pgwire", source="p.yaml").campaign
    assert c.last_session == 46 and c.revision == 0
    assert [g.title for g in c.next_step_groups] == ["Immediate next steps (handoff):"]
    assert [s.id for s in c.next_steps] == [
        "remaining-histogram-observe",
        "btreemap-traversals-samples",
        "row-encoding-backendmessage",
        "allocator-contention-malloc",
        "get-cached-parsed-stmt-hashmap",
        "scaling-plateau-64c",
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
    assert c.layout[-2:] == ("next_steps.immediate-next-steps", "sessionctl")
    assert c.headings == {"title": ""}
    # The prose went where it belongs; the paragraph introducing the steps goes with them.
    assert c.context is not None and c.context.startswith("I'm working on a testbed")
    assert c.goal is not None and c.goal.startswith("Figure out how we can improve")
    assert "Please focus on where we spend time" in c.goal
    assert c.workflow is not None and c.workflow.startswith("We want to try one optimization")
    assert [r.split(",")[0] for r in c.rules] == [
        "We don't want to add optimizations that cache the result of a query and then return "
        "that straightaway",
        "Don't run tests",
    ]
    assert c.status is not None and c.status.startswith("The oracle read_ts bottleneck")
    assert c.target.notes is not None and "bin/environmentd --optimized" in c.target.notes
    assert bench.description == (
        "We have dbbench at ~/dbbench/dbbench, and you can use this script for testing:"
    )
    assert c.sections == ()
    assert [g.intro for g in c.next_step_groups] == [
        "Below here, I have some immediate next steps to explore."
    ]
    assert c.layout == (
        "context", "goal", "workflow", "rules", "benchmarks.dbbench", "target", "status",
        "next_steps.immediate-next-steps", "sessionctl",
    )  # fmt: skip
    # The instructions sessionctl carries out itself are kept, with what replaces them.
    assert [(x.text.split()[:4], x.replaced_by.split()[0]) for x in c.superseded] == [
        (["We", "have", "a", "log"], "`sessionctl"),
        (["After", "we", "tried", "an"], "`sessionctl"),
        (["Once", "you", "feel", "you"], "`sessionctl"),
        (["Update", "the", "prompt", "in"], "`sessionctl"),
    ]
    assert "logs/pgwire-perf-log.md" in c.superseded[0].replaced_by
    rendered = render.render_prompt(c)
    for gone in ("jj new", "update this prompt", "@pgwire-server-perf-log.md", "separate jj"):
        assert gone not in rendered
    # Not under "Current status": under the steps' heading, above the list it introduces.
    assert _under(rendered, "Below here, I have some") == "## Immediate next steps (handoff)"
    assert "Below here, I have some immediate next steps to explore.\n\n1. **Remaining" in rendered
    # `close --status` replaces the imported status: the prompt never carries two.
    from sessionctl.campaign import next_steps

    cf = store.loads(result.yaml, name="pgwire", source="p.yaml")
    next_steps.set_status(cf.doc, "Observes are batched.")
    after = render.render_prompt(store.loads(store.dumps(cf), name="pgwire", source="p").campaign)
    assert "The oracle read_ts bottleneck" not in after
    assert after.count("## Current status\n\nObserves are batched.\n") == 1


def test_completed_lists_groups_and_nested_steps() -> None:
    result, _ = roundtrip((HERE / "data" / "prompts" / "ddl-latency.md").read_text(), "ddl")
    c = store.loads(result.yaml, name="ddl", source="d.yaml").campaign
    assert c.title == "DDL latency with many objects" and c.last_session == 46
    assert [e.sessions for e in c.completed.optimizations] == [(12,), (15, 16), (46,)]
    assert [e.sessions for e in c.completed.diagnostics] == [(20,), (31,)]
    assert c.completed.optimizations[0].id == "batch-catalog-transactions"
    assert [g.title for g in c.next_step_groups] == [
        "Immediate next steps",
        "Previously identified next steps (ranked by Session 20 profiling)",
    ]
    assert [s.group for s in c.next_steps] == ["immediate-next-steps"] * 2 + [
        "previously-identified-next"
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


@pytest.mark.parametrize(
    "path",
    [
        SEED,
        HERE / "data" / "prompts" / "ddl-remaining-directions.md",
        HERE / "data" / "prompts" / "ddl-current-status.md",
    ],
    ids=lambda p: p.stem,
)
def test_each_users_prompt_shape_imports_tidy(path: Path) -> None:
    """Issue 17's bar: rules and status filled, plain titles, steps to start from, no
    instruction in the rendering that contradicts sessionctl."""
    result, rendered = roundtrip(path.read_text(), "shape")
    c = store.loads(result.yaml, name="shape", source="s.yaml").campaign
    assert c.rules and c.status and c.next_steps
    titles = [s.title for s in c.next_steps] + [e.title for e in c.completed.optimizations]
    assert not [t for t in titles if "**" in t or "~~" in t]
    assert result.superseded and all(x.text not in rendered for x in c.superseded)
    assert "jj new" not in rendered and "update this prompt" not in rendered.lower()


def test_completed_struck_items_and_remaining_directions() -> None:
    """The later revision of the users' DDL prompt: struck completed items, bold-led bullets."""
    text = (HERE / "data" / "prompts" / "ddl-remaining-directions.md").read_text()
    result, rendered = roundtrip(text, "ddl")
    c = store.loads(result.yaml, name="ddl", source="d.yaml").campaign
    assert [(e.title, e.sessions) for e in c.completed.optimizations] == [
        ("Batch catalog transactions during bootstrap", (7,)),
        ("Skip re-planning unaffected dependants.", (9, 10)),  # not the Session 7 it mentions
        ("Prefix map in `CatalogState::resolve`", (12,)),
        ("Cache `ObjectId → GlobalId` per transaction", (24,)),
    ]
    assert [(s.id, s.title) for s in c.next_steps] == [
        (
            "overlap-storage-collections",
            "Overlap storage_collections with open_data_handles + table_register (~8ms savings).",
        ),
        ("merge-allocate-id-catalog", "Merge allocate_id into the catalog transaction."),
        ("avoid-cloning-catalogstate", "Avoid cloning `CatalogState` for rollback."),
    ]
    first = c.next_steps[0].body
    assert first is not None and first.startswith("Currently\nsequential in")
    assert c.rules == (
        "Don't add caches that only hide the cost for the benchmark; we want the DDL path "
        "itself to be cheaper.",
        "We don't want to change the durable catalog format.",
    )
    assert c.status is not None and c.status.startswith("**Current status (after Session 24):**")
    assert [x.text for x in c.superseded] == [
        "We have a log file in @ddl-perf-log.md where we record what each session found.",
        "Please update this prompt when you finish an item, in a separate git commit.",
    ]
    assert "separate git commit" not in rendered and "@ddl-perf-log.md" not in rendered
    assert "**Completed (remove from consideration):**" in rendered


def test_current_status_section_with_subsections_and_ranked_groups() -> None:
    text = (HERE / "data" / "prompts" / "ddl-current-status.md").read_text()
    result, rendered = roundtrip(text, "ddl")
    c = store.loads(result.yaml, name="ddl", source="d.yaml").campaign
    assert c.status is not None and c.status.startswith("### Where the time goes\n")
    assert c.headings["status"] == "## Current Status (Session 50 - CREATE TABLE at 98 ms)"
    assert c.profiling_notes is not None and c.profiling_notes.startswith("Use `perf record")
    assert c.workflow == (
        "Measure the baseline, profile one statement, make one change, re-measure with the same"
        "\nbuild.\n"
    )
    assert [x.text for x in c.superseded] == [
        "Log: @ddl-perf-log.md.",
        "After each session, add a good description to the jj change and run `jj new`.",
    ]
    assert [(g.id, g.title) for g in c.next_step_groups] == [
        ("high-impact", "High impact:"),
        ("lower-impact", "Lower impact:"),
    ]
    assert c.headings["next_steps.high-impact"] == "## Previously identified optimizations (ranked)"
    # The generated heading is computed from the list, so it follows the list as it grows.
    assert (
        c.headings["completed.optimizations"] == "### Completed optimizations (Sessions {sessions})"
    )
    assert "### Completed optimizations (Sessions 7-9, 12)\n" in rendered
    from sessionctl.campaign import next_steps

    cf = store.loads(result.yaml, name="ddl", source="d.yaml")
    next_steps.resolve_step(
        cf.doc, "batch-builtin-table", session=51, kind="optimization", summary="one write"
    )
    next_steps.set_status(cf.doc, "CREATE TABLE at 90 ms.")
    after = store.loads(store.dumps(cf), name="ddl", source="d.yaml").campaign
    text_after = render.render_prompt(after)
    assert "### Completed optimizations (Sessions 7-9, 12, 51)\n" in text_after
    # The status heading named the old status's session: a new status drops it.
    assert "Session 50 - CREATE TABLE" not in text_after
    assert "## Current status\n\nCREATE TABLE at 90 ms.\n" in text_after


def test_how_to_work_imperatives_are_rules_not_verbatim_sections() -> None:
    """ "Please keep the object count at 100k ..." after the DDL prompt's steps is a rule."""
    result, rendered = roundtrip((DATA_DIR / "ddl-latency.md").read_text(), "ddl")
    c = store.loads(result.yaml, name="ddl", source="d.yaml").campaign
    keep = "Please keep the object count at 100k between sessions (Session 46 accidentally "
    assert [r for r in c.rules if r.startswith(keep)] == [keep + "dropped 2,000)."]
    assert not [s for s in c.sections if "Please keep" in s.body]
    assert _under(rendered, "Please keep the object count") == "## Rules"


@pytest.mark.parametrize(
    ("paragraph", "rule"),
    [
        ("Always rebuild with --release before measuring.", True),
        ("Make sure the filler objects exist first.", True),
        ("Please make sure the log is committed.", True),
        ("Please keep the object count at 100k.", True),
        ("Be sure to warm the cache.", True),
        ("Ensure the server runs on core 2.", True),
        ("Keeping the count steady matters.", False),
        ("Log in as mz_system and make sure the object count holds.", False),  # the target
    ],
)
def test_imperatives_about_how_to_work_signal_rules(paragraph: str, rule: bool) -> None:
    from sessionctl.campaign.placement import signal

    assert (signal(paragraph) == "rules") == rule


def test_keep_instructions_keeps_them_rendered() -> None:
    text = SEED.read_text()
    result, rendered = roundtrip(text, "pgwire", keep_instructions=True)
    assert "superseded:" not in result.yaml
    assert len(result.superseded) == 4  # still reported
    assert "start a new one with jj new" in rendered
    assert_same_content(text, rendered)


@pytest.mark.parametrize(
    ("item", "title", "sessions"),
    [
        (
            "**Skip re-planning (Session 10)**: builds on Session 9's index.",
            "Skip re-planning",
            [10],
        ),
        ("~~Prefix map~~ (Sessions 11, 12)", "Prefix map", [11, 12]),
        ("Session 12: batch catalog transactions (see Session 7)", "Session 12", [12]),
        ("**Radix sort** (Sessions 7-9, 11): 31 → 26 minutes.", "Radix sort", [7, 8, 9, 11]),
    ],
)
def test_completed_items_are_attributed_to_their_own_sessions(
    item: str, title: str, sessions: list[int]
) -> None:
    result, _ = roundtrip(f"Completed optimizations:\n- {item}\n", "x")
    (entry,) = store.loads(result.yaml, name="x", source="x.yaml").campaign.completed.optimizations
    assert (entry.title, list(entry.sessions)) == (title, sessions)


@pytest.mark.parametrize(
    "text",
    [
        "## Rules\n\n- Don't a.\n\nSome text.\n\n## Rules\n\n- Never b.\n",
        "## Context\n\nX is y.\n\n## Context\n\nMore context.\n",
        "## Status: empty\n\n## Next steps\n\n- Do it.\n",  # a field heading, nothing under it
    ],
)
def test_field_headings_keep_their_words(text: str) -> None:
    result, rendered = roundtrip(text, "x")
    assert_same_content(without_superseded(text, result), rendered)


@pytest.mark.parametrize(
    ("sentence", "replaced"),
    [
        ("Please update this prompt when done, in a separate git commit.", True),
        ("Add a good description to the jj change and start a new one with jj new.", True),
        ("Then git commit the changes.", True),
        ("Findings go into @point-query-log.md.", True),
        ("We record results in logs/x-perf-log.md.", False),  # the campaign's own log
        ("We measure at the git commit before the change.", False),
        ("Note down our results in the log file and then stop.", False),
    ],
)
def test_instructions_that_contradict_sessionctl(sentence: str, replaced: bool) -> None:
    from sessionctl.campaign.superseded import replaced_by

    assert (replaced_by(sentence, log_path="logs/x-perf-log.md") is not None) == replaced


def test_ids_are_short_unique_and_readable() -> None:
    ids = Ids()
    assert ids.for_title("Batch builtin table updates.") == "batch-builtin-table"
    assert ids.for_title("Batch builtin table retractions.") == "batch-builtin-table-retractions"
    assert ids.for_title("Batch builtin table updates.") == "batch-builtin-table-updates"
    assert ids.for_title("Merge allocate_id into the catalog") == "merge-allocate-id-catalog"
    assert ids.for_title("**Bold** and ~~struck~~") == "bold-struck"


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


STARTS = ["Check", "Measure", "Reduce", "Avoid", "Try", "Note"]
# Sentence openings the importer places (rules, status, goal, ...) or sets aside (superseded).
PLACED_STARTS = [
    *STARTS,
    "Don't",
    "We don't want",
    "Status:",
    "**Current status (after Session 3):**",
    "Figure out",
    "Use perf with",
    "We are currently benchmarking",
    "Session 12 added",
    "One optimization per session,",
    "Please update this prompt and",
    "Run jj new and",
    "Log: @x-log.md.",
]


def _sentence(rng: random.Random, n: int, starts: list[str] = STARTS) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    words[0] = rng.choice(starts)
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
def test_generated_prompts_with_placed_prose_roundtrip(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        sys.modules[__name__], "_sentence", functools.partial(_sentence, starts=PLACED_STARTS)
    )
    test_generated_prompts_roundtrip(seed + 1000)


@pytest.mark.parametrize("seed", range(60))
def test_generated_prompts_roundtrip(seed: int) -> None:
    rng = random.Random(seed)
    blocks = [_block(rng) for _ in range(rng.randint(2, 9))]
    if rng.random() < 0.5:
        blocks.insert(0, f"# {_sentence(rng, 3)}")
    text = "\n\n".join(blocks) + "\n"
    if seed % 10 == 3:
        text = text.replace("\n", "\r\n")  # Windows line endings
    result, rendered = roundtrip(text, f"gen{seed}")
    assert_same_content(without_superseded(text, result), rendered)


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
    assert [x["text"].split()[0] for x in info["superseded"]] == ["We", "After", "Once", "Update"]
    assert info["placed"] == ["context", "goal", "rules", "workflow", "target", "status"]
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
    moved = runner.invoke(app, ["next", "move", "scaling-plateau-64c", "1"])
    assert moved.exit_code == 0, moved.output
    text = ws.rendered_path("pgwire").read_text()
    assert text.index("Scaling plateau") < text.index("Remaining Histogram::observe")
    assert runner.invoke(app, ["prompt", "check", "pgwire"]).exit_code == 0


def test_cli_import_lists_the_superseded_instructions(ws: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    src = tmp_path / "prompt.md"
    src.write_text(SEED.read_text())
    result = runner.invoke(app, ["prompt", "import", str(src), "--campaign", "pgwire"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning: instruction not rendered") == 4
    assert "'Update the prompt in a separate jj change with a good description.' -> " in (
        " ".join(result.stderr.split())
    )
    assert "jj new" not in ws.rendered_path("pgwire").read_text()
    kept = runner.invoke(
        app, ["prompt", "import", str(src), "-C", "pgwire", "--force", "--keep-instructions"]
    )
    assert kept.exit_code == 0, kept.output
    assert kept.stderr.count("warning: instruction kept in the prompt") == 4
    assert "jj new" in ws.rendered_path("pgwire").read_text()
    assert "superseded:" not in ws.campaign_path("pgwire").read_text()


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


def _under(rendered: str, needle: str) -> str:
    """The last ``## `` heading above the first line containing ``needle``."""
    head = ""
    for line in rendered.splitlines():
        if line.startswith("## "):
            head = line
        if needle in line:
            return head
    raise AssertionError(f"{needle!r} not rendered")


@pytest.mark.parametrize(
    ("path", "bench_line", "first_step", "steps_heading"),
    [
        (SEED, "We have dbbench at", "Remaining Histogram::observe",
         "## Immediate next steps (handoff)"),
        (DATA_DIR / "sink-throughput.md", "Benchmark with dbbench", "Coalesce flushes",
         "## Next steps"),
        (DATA_DIR / "ddl-remaining-directions.md", None, "Overlap storage_collections",
         "## Remaining directions"),
    ],
    ids=lambda p: p.stem if isinstance(p, Path) else None,
)  # fmt: skip
def test_a_prompt_without_headings_renders_benchmarks_and_next_steps_under_their_own(
    path: Path, bench_line: str | None, first_step: str, steps_heading: str
) -> None:
    """The fields the import gives headings must not swallow what follows them: the pasted
    benchmark is not under "Rules", the next steps are not under "Current status"."""
    _, rendered = roundtrip(path.read_text(), "shape")
    if bench_line:
        assert _under(rendered, bench_line) == "## How to benchmark"
    # The lead-in line becomes a clean heading: no bold, no closing colon.
    assert _under(rendered, first_step) == steps_heading
    prompt = rendered.split("## Recording your work with sessionctl")[0]
    assert prompt.count("Next steps") <= 1  # a group titled "Next steps:" is not doubled
