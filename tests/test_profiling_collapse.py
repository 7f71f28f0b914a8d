"""Folding real `perf script` output captured from PostgreSQL 15 under pgbench (tests/data/perf)."""

from __future__ import annotations

import functools
import gzip
import json
import shutil
from pathlib import Path

import pytest

from sessionctl.errors import ParseError
from sessionctl.profiling.folded import (
    Collapsed,
    _split_frame,
    collapse_file,
    collapse_perf_script,
    demangle_names,
    format_folded,
    parse_folded,
    tidy_name,
)

DATA = Path(__file__).parent / "data" / "perf"
DEBIAN = "pg15-debian-fp-simple-c4"  # stripped binary, frame-pointer stacks
PGSERVER = "pg15-pgserver-dwarf-simple-c4"  # unstripped binary, DWARF stacks


def meta(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


@functools.cache
def collapse(name: str) -> Collapsed:
    return collapse_perf_script(lines(name), window=tuple(meta(name)["window"]))


@functools.cache
def lines(name: str) -> tuple[str, ...]:
    with gzip.open(DATA / f"{name}.perf.txt.gz", "rt") as fh:
        return tuple(fh.readlines())


def incl(c: Collapsed) -> dict[str, int]:
    out: dict[str, int] = {}
    for stack, n in c.stacks.items():
        for f in set(stack):
            out[f] = out.get(f, 0) + n
    return out


@pytest.mark.parametrize("name", [DEBIAN, PGSERVER])
def test_window_keeps_exactly_the_samples_of_the_measured_window(name: str) -> None:
    c = collapse(name)
    m = meta(name)
    assert c.samples == m["samples_in_window"] == sum(c.stacks.values())
    assert c.dropped > 0  # connection set-up before the window was recorded and left out
    assert c.event == "cpu-clock"
    assert c.mean_period == pytest.approx(1_001_001, rel=0.01)  # 999 Hz cpu-clock: ~1 ms per sample
    assert m["window"][0] <= c.first_time <= c.last_time <= m["window"][1]
    everything = collapse_file(DATA / f"{name}.perf.txt.gz")
    assert everything.samples == c.samples + c.dropped


@pytest.mark.parametrize("name", [DEBIAN, PGSERVER])
def test_frames_are_root_first_without_offsets_or_separators(name: str) -> None:
    c = collapse(name)
    roots = {s[0] for s in c.stacks}
    assert roots & {"_start", "__libc_start_call_main"}
    for stack in c.stacks:
        for f in stack:
            assert ";" not in f and "+0x" not in f and f.strip() == f and f
    # Callers come before callees: PostgresMain sits above main in every stack holding both.
    for stack in c.stacks:
        if "PostgresMain" in stack and "main" in stack:
            assert stack.index("main") < stack.index("PostgresMain")
    assert not any(f.endswith("@GLIBC_2.2.5") or "@@GLIBC" in f for s in c.stacks for f in s)


def test_unstripped_postgres_shows_executor_and_parser_functions() -> None:
    c = collapse(PGSERVER)
    inc = incl(c)
    for fn in (
        "exec_simple_query",
        "PortalRun",
        "base_yyparse",
        "raw_parser",
        "pg_plan_query",
        "PostgresMain",
    ):
        assert inc.get(fn, 0) > 0, fn
    assert inc["exec_simple_query"] > 0.5 * c.samples
    chains = [s for s in c.stacks if "base_yyparse" in s]
    assert chains and all(
        s.index("exec_simple_query") < s.index("raw_parser") < s.index("base_yyparse")
        for s in chains
    )


def test_stripped_postgres_names_unresolved_frames_after_the_binary() -> None:
    c = collapse(DEBIAN)
    inc = incl(c)
    assert inc["[postgres]"] > 0.9 * c.samples  # static functions (exec_simple_query...) fold here
    assert inc["PostgresMain"] > 0.9 * c.samples  # exported ones keep their names
    assert "[unknown]" not in inc or inc["[unknown]"] < 0.05 * c.samples


def test_pid_filter_follows_forks_of_the_postmaster() -> None:
    text = lines(PGSERVER)
    forks = [ln for ln in text if "PERF_RECORD_FORK" in ln]
    postmaster = int(forks[0].split("):(")[1].split(":")[0])
    followed = collapse_perf_script(text, pids=[postmaster])
    assert followed.samples == collapse_perf_script(text).samples
    assert len(followed.pids) >= 4  # the backends serving the four pgbench clients
    alone = collapse_perf_script(text, pids=[postmaster], follow_forks=False)
    assert alone.samples < followed.samples / 10


def test_comm_filter_and_root_comm_frame() -> None:
    text = lines(DEBIAN)
    assert collapse_perf_script(text, comm="^pgbench$").samples == 0
    with_comm = collapse_perf_script(text, comm="postgres", include_comm=True)
    assert with_comm.samples > 0 and {s[0] for s in with_comm.stacks} == {"postgres"}
    assert with_comm.root_is_comm


def test_folded_text_round_trips() -> None:
    c = collapse(PGSERVER)
    text = format_folded(c.stacks)
    assert text.splitlines()[0].endswith(f" {max(c.stacks.values())}")  # heaviest first
    assert parse_folded(text) == c.stacks


def test_parse_folded_rejects_garbage_with_a_line_number() -> None:
    with pytest.raises(ParseError, match=r"x.folded:2:"):
        parse_folded("a;b 3\nnot-a-count\n", source="x.folded")
    with pytest.raises(ParseError, match="not a number"):
        parse_folded("a;b many\n")
    assert parse_folded("main (app.py:3);work (app.py:9) 12\n\n") == {
        ("main (app.py:3)", "work (app.py:9)"): 12
    }


def test_frame_lines_with_parentheses_and_deleted_modules() -> None:
    assert _split_frame("\t 5330a8 hash_search (/usr/bin/postgres)") == (
        "5330a8",
        "hash_search",
        "/usr/bin/postgres",
    )
    assert _split_frame(
        "\t 10 std::function<void ()>::operator()() const+0x1d (/usr/lib/libx.so)"
    ) == (
        "10",
        "std::function<void ()>::operator()() const+0x1d",
        "/usr/lib/libx.so",
    )
    assert _split_frame("  ff f+0x1 (/opt/app (deleted))") == ("ff", "f+0x1", "/opt/app (deleted)")
    assert _split_frame("not a frame") is None


def test_tidy_names() -> None:
    assert tidy_name("exec_simple_query+0x212", "/usr/bin/postgres") == "exec_simple_query"
    assert tidy_name("[unknown]", "/usr/lib/postgresql/15/bin/postgres") == "[postgres]"
    assert tidy_name("[unknown]", "[unknown]") == "[unknown]"
    assert tidy_name("[unknown]", "[vdso]") == "[vdso]"
    assert tidy_name("mz_adapter::peek::try_frontend_peek_cached::h0123456789abcdef", "x") == (
        "mz_adapter::peek::try_frontend_peek_cached"
    )
    assert (
        tidy_name("hashbrown::raw::RawTable<T>::find.llvm.123456789", "x")
        == "hashbrown::raw::RawTable<T>::find"
    )
    assert tidy_name("ns::f(int, char const*) const", "x") == "ns::f"
    assert tidy_name("(anonymous namespace)::g(int)", "x") == "(anonymous namespace)::g"
    assert tidy_name("Foo::operator()(int)", "x") == "Foo::operator()"
    assert (
        tidy_name("std::vector<void (*)(int)>::push_back(int)", "x")
        == "std::vector<void (*)(int)>::push_back"
    )
    assert tidy_name("a;b", "x") == "a:b"
    assert tidy_name("llseek@GLIBC_2.2.5", "libc.so.6") == "llseek"
    assert (
        tidy_name("do_syscall_64", "[kernel.kallsyms]", annotate_kernel=True) == "do_syscall_64_[k]"
    )


def test_header_variants_without_callchains() -> None:
    text = [
        "tokio-runtime-w 4242/4250 [001] 100.500000:     250000 cpu-clock:u:      "
        "55aa mz::f+0x1 (/bin/environmentd)\n",
        "\n",
        "timely:work-0 4242/4251 [000] 100.600000:     250000 cpu-clock:u: \n",
        "\t55ab mz::g+0x2 (/bin/environmentd)\n",
        "\t55ac mz::f+0x3 (/bin/environmentd)\n",
        "\n",
        "perf 9/9 [000] 100.7: 1 sched:sched_switch: prev_comm=perf\n",
        "\n",
    ]
    c = collapse_perf_script(text)
    assert c.event == "cpu-clock:u"
    assert c.stacks == {("mz::f",): 1, ("mz::f", "mz::g"): 1}
    assert c.dropped == 1  # the other event
    assert c.period_total == 500000
    assert collapse_perf_script(text, window=(100.55, 101)).stacks == {("mz::f", "mz::g"): 1}


@pytest.mark.skipif(shutil.which("c++filt") is None, reason="c++filt (binutils) is not installed")
def test_demangles_cxx_and_rust_legacy_names() -> None:
    mapping, note = demangle_names(
        [
            "_ZN4core3ptr13drop_in_place17h0123456789abcdefE",
            "_ZNSt6vectorIiSaIiEE9push_backERKi",
            "plain_c",
        ]
    )
    assert note is None
    assert mapping["_ZN4core3ptr13drop_in_place17h0123456789abcdefE"] == "core::ptr::drop_in_place"
    assert mapping["_ZNSt6vectorIiSaIiEE9push_backERKi"].startswith("std::vector<int")
    assert mapping["_ZNSt6vectorIiSaIiEE9push_backERKi"].endswith("::push_back")
    assert "plain_c" not in mapping
    text = [
        "app 1/1 1.0: 1 cpu-clock: \n",
        "\t1 _ZN4core3ptr13drop_in_place17h0123456789abcdefE+0x4 (/bin/app)\n",
        "\n",
    ]
    assert collapse_perf_script(text).stacks == {("core::ptr::drop_in_place",): 1}
