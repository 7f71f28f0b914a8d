"""Per-query reports and diffs on real PostgreSQL profiles (tests/data/perf, pgbench -S)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessionctl.errors import UsageError
from sessionctl.profiling.diff import diff_profiles, sweep
from sessionctl.profiling.folded import collapse_file
from sessionctl.profiling.report import Profile, analyze, fmt, focus_matcher, function_totals

DATA = Path(__file__).parent / "data" / "perf"


def load(name: str) -> Profile:
    m = json.loads((DATA / f"{name}.json").read_text())
    c = collapse_file(DATA / f"{name}.perf.txt.gz", window=tuple(m["window"]))
    return Profile(
        stacks=c.stacks,
        queries=m["queries"],
        event=c.event,
        frequency=m["frequency"],
        period_ns=c.mean_period,
        concurrency=m["concurrency"],
        label=name,
    )


@pytest.fixture(scope="module")
def simple4() -> Profile:
    return load("pg15-pgserver-dwarf-simple-c4")


@pytest.fixture(scope="module")
def prepared4() -> Profile:
    return load("pg15-pgserver-dwarf-prepared-c4")


@pytest.fixture(scope="module")
def simple1() -> Profile:
    return load("pg15-pgserver-dwarf-simple-c1")


def test_self_and_inclusive_totals_are_consistent(simple4: Profile) -> None:
    self_c, incl_c = function_totals(simple4)
    assert sum(self_c.values()) == simple4.samples
    assert all(incl_c[f] >= self_c[f] for f in self_c)
    assert max(incl_c.values()) <= simple4.samples


def test_report_divides_by_queries_and_ranks_functions(simple4: Profile) -> None:
    r = analyze(
        simple4,
        focus=["exec_simple_query", "PortalRun", "re:^base_yyparse$"],
        groups={
            "parser": "base_yyparse|core_yylex|raw_parser",
            "allocator": "AllocSet|palloc|malloc|free",
        },
        top=10,
    )
    assert r.samples == simple4.samples and r.queries == 37149
    assert r.samples_per_query == pytest.approx(simple4.samples / 37149)
    # cpu-clock at 999 Hz: one sample is ~1 ms of CPU, so samples/query * 1e6 ns / 1000 = µs/query.
    assert r.cpu_us_per_query == pytest.approx(r.samples_per_query * 1001.001, rel=0.01)
    assert len(r.top_self) == 10
    assert [x.self_samples for x in r.top_self] == sorted(
        (x.self_samples for x in r.top_self), reverse=True
    )
    assert r.top_incl[0].incl_share == pytest.approx(
        1.0
    )  # the backend's main loop holds everything
    names = {x.name for x in r.top_incl}
    assert "PostgresMain" in names and "exec_simple_query" in {
        x.name for x in analyze(simple4, top=20).top_incl
    }
    focus = {x.name: x for x in r.focus}
    assert focus["exec_simple_query"].incl_per_query == pytest.approx(
        focus["exec_simple_query"].incl_samples / 37149
    )
    assert 0.5 < focus["exec_simple_query"].incl_share < 1.0
    assert focus["PortalRun"].incl_samples > 0
    assert focus["^base_yyparse$"].incl_samples > 0
    groups = {g.name: g for g in r.groups}
    assert groups["parser"].incl_samples >= focus["^base_yyparse$"].incl_samples
    assert groups["allocator"].self_samples > 0


def test_values_and_markdown(simple4: Profile) -> None:
    r = analyze(simple4, focus=["exec_simple_query"], groups={"parser": "base_yyparse|raw_parser"})
    values = {v.name: v for v in r.values("@c4")}
    assert values["samples_per_query@c4"].value == pytest.approx(r.samples_per_query)
    assert values["samples_per_query@c4"].better == "lower"
    assert "exec_simple_query.incl_per_query@c4" in values
    assert "parser.per_query@c4" in values
    assert "cpu_us_per_query@c4" in values
    md = r.to_markdown(top=5)
    assert (
        "**Top functions by self samples**" in md and "**Top functions by inclusive samples**" in md
    )
    assert "| `exec_simple_query` |" in md
    assert f"{r.samples:,} samples, 37,149 queries" in md
    assert json.loads(json.dumps(r.to_dict()))["queries"] == 37149


def test_focus_names_match_by_path_segment() -> None:
    m = focus_matcher("try_frontend_peek_cached")
    assert m.search("mz_adapter::peek::PeekClient::try_frontend_peek_cached")
    assert m.search("mz_adapter::peek::try_frontend_peek_cached::{{closure}}")
    assert not m.search("mz_adapter::peek::try_frontend_peek_cached_inner")
    assert focus_matcher("Histogram::observe").search("prometheus::histogram::Histogram::observe")
    assert not focus_matcher("ExecInterpExpr").search("ExecInterpExprStillValid")


def test_bad_group_regex_names_the_field(simple4: Profile) -> None:
    with pytest.raises(UsageError, match=r"profile.groups.alloc: bad regular expression"):
        analyze(simple4, groups={"alloc": "malloc("})


def test_profile_folder_round_trip(tmp_path: Path, simple4: Profile) -> None:
    simple4.save(tmp_path / "p")
    back = Profile.load(tmp_path / "p")
    assert back.stacks == simple4.stacks and back.queries == simple4.queries
    assert back.concurrency == 4 and back.period_ns == simple4.period_ns
    bare = Profile.load(tmp_path / "p" / "stacks.folded")
    assert bare.queries is None and bare.samples == simple4.samples
    with pytest.raises(UsageError, match="not a profile folder"):
        Profile.load(tmp_path)


def test_diff_simple_vs_prepared_protocol(simple4: Profile, prepared4: Profile) -> None:
    d = diff_profiles(
        simple4,
        prepared4,
        focus=["exec_simple_query", "PortalRun"],
        groups={
            "parser": "base_yyparse|core_yylex|raw_parser",
            "planner": "^(standard_planner|pg_plan_query)$",
        },
    )
    assert d.unit == "query"
    assert d.a_total == pytest.approx(simple4.samples / simple4.queries)
    assert d.b_total < d.a_total * 0.75  # no parse/plan per execution: far fewer samples per query
    deltas = [abs(r.d_self) for r in d.rows]
    assert deltas == sorted(deltas, reverse=True)
    lost = {r.name for r in d.lost(15)}
    assert "base_yyparse" in lost  # the parser no longer runs per execution
    rows = {r.name: r for r in d.rows}
    assert rows["base_yyparse"].b_incl == 0 and rows["base_yyparse"].a_incl > 0
    groups = {g.name: g for g in d.groups}
    assert groups["parser"].b_incl == 0 and groups["planner"].d_incl < 0
    assert {f.name: f for f in d.focus}["exec_simple_query"].b_incl == 0
    md = d.to_markdown(top=5)
    assert md.startswith(
        "Profile diff pg15-pgserver-dwarf-simple-c4 → pg15-pgserver-dwarf-prepared-c4"
    )
    assert "| `base_yyparse` |" in md and "-100%" in md
    assert json.loads(json.dumps(d.to_dict()))["unit"] == "query"


def test_diff_without_query_counts_falls_back_to_shares(
    simple4: Profile, prepared4: Profile
) -> None:
    a = Profile(stacks=simple4.stacks, label="a")
    d = diff_profiles(a, prepared4, by="incl")
    assert d.unit == "sample" and d.a_total == pytest.approx(1.0)
    incl = [abs(r.d_incl) for r in d.rows]
    assert incl == sorted(incl, reverse=True)
    assert "shares of all samples" in d.to_markdown()
    with pytest.raises(UsageError):
        diff_profiles(a, prepared4, by="bogus")  # type: ignore[arg-type]


def test_sweep_orders_by_concurrency_and_growth(simple1: Profile, simple4: Profile) -> None:
    s = sweep([simple4, simple1])
    assert s.concurrency == (1, 4)
    assert s.totals[0] == pytest.approx(simple1.samples / simple1.queries)
    growth = [r.growth for r in s.rows]
    assert growth == sorted(growth, reverse=True)
    top = s.rows[0]
    assert top.per_query[1] > top.per_query[0]
    md = s.to_markdown(top=5)
    assert "| function | c1 | c4 | growth | × |" in md
    with pytest.raises(UsageError):
        sweep([simple1])


def test_fmt_keeps_four_significant_digits() -> None:
    assert fmt(None) == "n/a"
    assert fmt(0) == "0"
    assert fmt(3.218e-05) == "0.00003218"
    assert fmt(0.06983) == "0.06983"
    assert fmt(802.4) == "802.4"
    assert fmt(306999.6) == "307,000"
