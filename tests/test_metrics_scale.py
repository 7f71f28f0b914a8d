"""Metrics at scale: the one-family parse skips other families, the full diff stays linear, and
large diffs are summarised, listed in full as plain text, or streamed as JSON."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from sessionctl.cli import app
from sessionctl.errors import ParseError
from sessionctl.metrics.delta import diff
from sessionctl.metrics.exposition import bucket_labels, label_key, parse

BOUNDS = ["0.005", "0.05", "0.5", "5", "+Inf"]


def pair(n_families: int, *, seed: int = 7) -> tuple[str, str]:
    """Two scrapes of ``n_families`` histograms (two series each); every third family idle."""
    rnd = random.Random(seed)
    a: list[str] = []
    b: list[str] = []
    for f in range(n_families):
        name = f"app_{f}_seconds"
        head = f"# HELP {name} Latency {f}.\n# TYPE {name} histogram\n"
        a.append(head)
        b.append(head)
        for s in range(2):
            labels = f'method="{"GET" if s else "POST"}",route="/x/{{id}}"'
            c = d = 0
            for le in BOUNDS:
                c += rnd.randint(0, 50)
                d += 0 if f % 3 == 0 else rnd.randint(0, 3)
                a.append(f'{name}_bucket{{{labels},le="{le}"}} {c}\n')
                b.append(f'{name}_bucket{{{labels},le="{le}"}} {c + d}\n')
            a.append(f"{name}_sum{{{labels}}} {c * 0.5}\n{name}_count{{{labels}}} {c}\n")
            b.append(f"{name}_sum{{{labels}}} {c * 0.5 + d}\n{name}_count{{{labels}}} {c + d}\n")
    return "".join(a), "".join(b)


def reference_deltas(before: str, after: str) -> dict[tuple[str, Any], float]:
    """after - before per series, from prometheus_client's parser (the independent reference)."""

    def values(text: str) -> dict[tuple[str, Any], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
        }

    b, a = values(before), values(after)
    return {k: v - b.get(k, 0.0) for k, v in a.items()}


# --- the one-family parse ------------------------------------------------------------------


def test_one_family_parse_never_reads_other_families_lines() -> None:
    good = '# TYPE want histogram\nwant_bucket{le="1"} 2\nwant_bucket{le="+Inf"} 3\nwant_count 3\n'
    text = (
        'want_sum{a="x"} 4\n'  # the very first line belongs to the wanted family
        "# TYPE other bogus\n"  # a broken TYPE of another family
        "other{bad 1 2 3\n" + good  # and a broken sample line
    )
    with pytest.raises(ParseError, match="<text>:2: unknown metric type"):
        parse(text)
    snap = parse(text, families=["want"])
    assert list(snap.families) == ["want"]
    assert [s[:3] for s in snap.families["want"].samples] == [
        ("want_sum", 'a="x"', 4.0),
        ("want_bucket", 'le="1"', 2.0),
        ("want_bucket", 'le="+Inf"', 3.0),
        ("want_count", "", 3.0),
    ]
    assert snap.families["want"].type == "histogram"


def test_one_family_parse_names_the_right_line_of_a_broken_wanted_sample() -> None:
    text = "a 1\nb 2\n# TYPE want counter\nwant_total 1\nwant_total{x=1} 2\nc 3\n"
    with pytest.raises(ParseError, match=r"^<text>:5: "):
        parse(text, families=["want_total"])


def test_one_family_parse_still_checks_openmetrics_eof_and_blank_led_lines() -> None:
    om = "# TYPE want counter\nwant_total 1\n# EOF\nother 2\n# EOF\n"
    with pytest.raises(ParseError, match=":3: '# EOF' before the end"):
        parse(om, families=["want"])
    snap = parse("other 1\n  want 5\n", families=["want"])  # leading blanks: slow path
    assert [s[2] for s in snap.families["want"].samples] == [5.0]


def test_one_family_parse_equals_the_full_parse_on_a_generated_exposition() -> None:
    before, _ = pair(40)
    full = parse(before)
    for name in ("app_0_seconds", "app_17_seconds", "app_39_seconds"):
        assert parse(before, families=[name]).families[name] == full.families[name]


@pytest.mark.parametrize(
    "raw",
    [
        'a="1",le="0.5"',
        'le="1"',
        'a="1",le="2",',
        'a="1",le="+Inf",b="2"',  # le not last
        'z="1",le="2"',  # le sorts before z
        'a="x,le=\\"1\\"",le="3"',  # a value that mentions le
        'a="x\\\\",le="4"',  # a value ending in an escaped backslash
        'a="1"',  # no le at all
        'le="1\\n"',  # an escape inside le
    ],
)
def test_bucket_labels_agree_with_the_label_parser(raw: str) -> None:
    full = label_key(raw)
    le = next((v for k, v in full if k == "le"), None)
    assert bucket_labels(raw) == (tuple(p for p in full if p[0] != "le"), le, full)


# --- the full diff -------------------------------------------------------------------------


def test_full_diff_matches_prometheus_client_series_by_series() -> None:
    before, after = pair(30)
    delta = diff(parse(before), parse(after))
    ours = {(s.name, s.labels): s.delta for s in delta.series}
    assert ours == reference_deltas(before, after)
    assert len(delta.groups) == 60 and not delta.warnings and not delta.missing


def _calls(fn: Callable[[], object]) -> int:
    """Python and C function calls made by ``fn`` (a deterministic measure of work)."""
    count = 0

    def prof(_frame: object, event: str, _arg: object) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def test_full_diff_work_grows_linearly_with_the_families() -> None:
    # Counted calls, not seconds: doubling the families must not double the work twice over
    # (the old diff scanned every family for each histogram's _created: 4x per doubling).
    work = []
    for n in (100, 200):
        before, after = (parse(t) for t in pair(n))
        work.append(_calls(lambda b=before, a=after: diff(b, a)))
    assert work[1] / work[0] <= 2.2, work


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str, dict[tuple[str, Any], float]]:
    before, after = pair(60)
    (tmp_path / "a.prom").write_text(before)
    (tmp_path / "b.prom").write_text(after)
    return str(tmp_path / "a.prom"), str(tmp_path / "b.prom"), reference_deltas(before, after)


def test_large_diff_is_summarised_by_default(
    files: tuple[str, str, dict[tuple[str, Any], float]],
) -> None:
    a, b, ref = files
    changed = sum(1 for d in ref.values() if d)
    r = CliRunner().invoke(app, ["metrics", "diff", a, b])
    assert r.exit_code == 0, r.output
    assert f"{changed:,} of {len(ref):,} series changed in 40 of 60 families" in r.stdout
    assert "Families changed" in r.stdout and "Top movers" in r.stdout
    assert r.stdout.count("│ histogram │") == 15  # the families table is capped
    assert "… 25 more families" in r.stdout
    assert f"--limit 0 lists all {changed:,} changed series" in r.stdout
    assert "_bucket{" not in r.stdout  # buckets are not top movers


def test_limit_0_lists_every_changed_series_as_plain_lines(
    files: tuple[str, str, dict[tuple[str, Any], float]],
) -> None:
    a, b, ref = files
    r = CliRunner().invoke(app, ["metrics", "diff", a, b, "--limit", "0"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("series "))
    rows = lines[header + 1 :]
    assert len(rows) == sum(1 for d in ref.values() if d)
    assert "│" not in r.stdout  # plain text, not a rich table
    first = rows[0].split()
    assert first[0].startswith("app_1_seconds_bucket{") and float(first[-1]) > 0


def test_json_is_streamed_complete_and_parseable(
    files: tuple[str, str, dict[tuple[str, Any], float]],
) -> None:
    a, b, ref = files
    r = CliRunner().invoke(app, ["metrics", "diff", a, b, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    got = {(s["name"], tuple(sorted(s["labels"].items()))): s["delta"] for s in out["series"]}
    assert got == {k: d for k, d in ref.items() if d}
    assert out["overview"]["changed"] == len(got) and out["overview"]["families_changed"] == 40
    assert len(out["groups"]) == 120 and out["values"] == [] and out["warnings"] == []


def test_one_family_scrape_of_a_file_decodes_only_the_wanted_lines(tmp_path: Path) -> None:
    from sessionctl.metrics.scrape import scrape

    text, _ = pair(20)
    path = tmp_path / "snap.prom"
    header = "# sessionctl-snapshot source=http://x/metrics taken_at=1700000000.5\n"
    # A byte that is not UTF-8 in another family's line: never decoded, so never an error.
    path.write_bytes(header.encode() + text.encode() + b'other_family{a="\xff"} 1\n')
    snap = scrape(str(path), families=["app_3_seconds"])
    assert snap.text == "" and snap.taken_at == 1700000000.5
    assert snap.families["app_3_seconds"] == parse(text).families["app_3_seconds"]
    with pytest.raises(ParseError, match="not valid utf-8"):
        scrape(str(path))  # the full parse decodes everything
    lines = text.count("\n") + 2
    path.write_bytes(header.encode() + text.encode() + b'app_3_seconds_sum{a="\xff"} 1\n')
    with pytest.raises(ParseError, match=rf"snap.prom:{lines}: not valid utf-8 \(byte 0xff\)"):
        scrape(str(path), families=["app_3_seconds"])


def test_overview_counts_resets_new_series_and_sums_per_family() -> None:
    from sessionctl.metrics.overview import overview

    before = parse('# TYPE c counter\nc_total{a="1"} 10\nc_total{a="2"} 5\n# TYPE g gauge\ng 1\n')
    after = parse(
        '# TYPE c counter\nc_total{a="1"} 4\nc_total{a="2"} 8\nc_total{a="3"} 2\n'
        "# TYPE g gauge\ng NaN\n"
    )
    delta = diff(before, after)
    changed = [s for s in delta.series if s.delta != 0 or s.new or s.reset]
    ov = overview(delta, changed, top=2)
    assert (ov.series, ov.changed, ov.resets, ov.new, ov.families_changed) == (4, 4, 1, 1, 2)
    c = next(f for f in ov.by_family if f.family == "c")
    assert (c.changed, c.series, c.delta, c.resets, c.new) == (3, 3, 4 + 3 + 2, 1, 1)
    assert [(s.labels, s.delta) for s in ov.movers] == [((("a", "1"),), 4.0), ((("a", "2"),), 3.0)]
