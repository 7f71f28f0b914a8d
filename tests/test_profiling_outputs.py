"""The flame graph SVG and the speedscope JSON, built from a real PostgreSQL profile."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sessionctl.profiling.flamegraph import build_tree, render_svg, write_svg
from sessionctl.profiling.folded import Stack, collapse_file
from sessionctl.profiling.speedscope import SCHEMA, to_speedscope, write_speedscope

DATA = Path(__file__).parent / "data" / "perf"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def stacks() -> dict[Stack, int]:
    m = json.loads((DATA / "pg15-pgserver-dwarf-simple-c4.json").read_text())
    return collapse_file(
        DATA / "pg15-pgserver-dwarf-simple-c4.perf.txt.gz", window=tuple(m["window"])
    ).stacks


def test_flamegraph_is_well_formed_svg_with_a_frame_per_function(
    tmp_path: Path, stacks: dict[Stack, int]
) -> None:
    path = write_svg(tmp_path / "f.svg", stacks, title="pgbench -S <c4> & friends", queries=37149)
    root = ET.parse(path).getroot()  # raises on malformed XML
    assert root.tag == f"{SVG}svg"
    frames = root.findall(f".//{SVG}g[@class='frame']")
    names = {g.get("data-n") for g in frames}
    assert {"all", "exec_simple_query", "PostgresMain", "base_yyparse"} <= names
    total = sum(stacks.values())
    all_frame = next(g for g in frames if g.get("data-n") == "all")
    assert int(all_frame.get("data-w") or 0) == total
    title = all_frame.find(f"{SVG}title")
    assert (
        title is not None
        and f"{total:,} samples" in (title.text or "")
        and "/query" in (title.text or "")
    )
    assert "pgbench -S &lt;c4&gt; &amp; friends" in path.read_text()  # the title is escaped
    # Children never extend past their parent: widths in samples nest.
    tree = build_tree(stacks)
    assert tree.value == total
    for child in tree.children.values():
        assert sum(c.value for c in child.children.values()) <= child.value


def test_flamegraph_drops_frames_narrower_than_min_width() -> None:
    tiny = {("a", "b"): 1_000_000, ("a", "c"): 1}
    svg = render_svg(tiny, min_width=0.1)
    assert 'data-n="b"' in svg and 'data-n="c"' not in svg


def test_flamegraph_handles_very_deep_stacks() -> None:
    deep = {tuple(f"f{i}" for i in range(3000)): 5}
    root = ET.fromstring(render_svg(deep))
    assert len(root.findall(f".//{SVG}g[@class='frame']")) == 3001


def test_speedscope_has_the_schema_required_keys(tmp_path: Path, stacks: dict[Stack, int]) -> None:
    path = write_speedscope(
        tmp_path / "p.speedscope.json", stacks, name="pg", period_ns=1_001_001.0
    )
    doc = json.loads(path.read_text())
    for key in ("$schema", "shared", "profiles"):
        assert key in doc
    assert doc["$schema"] == SCHEMA
    frames = doc["shared"]["frames"]
    assert all(set(f) == {"name"} for f in frames)
    prof = doc["profiles"][0]
    for key in ("type", "name", "unit", "startValue", "endValue", "samples", "weights"):
        assert key in prof
    assert prof["type"] == "sampled" and prof["unit"] == "nanoseconds"
    assert len(prof["samples"]) == len(prof["weights"]) == len(stacks)
    assert all(0 <= i < len(frames) for s in prof["samples"] for i in s)
    assert prof["endValue"] == pytest.approx(sum(stacks.values()) * 1_001_001.0)
    # Stacks are root first, like the folded input.
    first = prof["samples"][0]
    assert tuple(frames[i]["name"] for i in first) in stacks


def test_speedscope_without_period_counts_samples() -> None:
    doc = to_speedscope({("a", "b"): 3, ("a",): 2})
    prof = doc["profiles"][0]
    assert prof["unit"] == "none" and sorted(prof["weights"]) == [2, 3] and prof["endValue"] == 5
