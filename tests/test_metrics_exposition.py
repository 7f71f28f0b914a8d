"""The exposition parser: upstream's tricky snippets, garbage with line numbers, and agreement with
prometheus_client on a generated Materialize-like exposition (full and filtered parses)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

from sessionctl.errors import ParseError
from sessionctl.metrics import label_key, parse
from sessionctl.metrics.exposition import Snapshot, format_labels

DATA = Path(__file__).parent / "data" / "metrics"
SNIPPETS = {
    s["id"]: s for s in json.loads((DATA / "prom-expo-snippets.json").read_text())["snippets"]
}


def flat(snap: Snapshot) -> list[tuple[str, dict[str, str], Any, int | None]]:
    return [
        (n, dict(label_key(raw)), _v(v), ts)
        for f in snap.families.values()
        for n, raw, v, ts in f.samples
    ]


def _v(v: float) -> Any:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return v


def test_expfmt_scenario_2_matches_expected_families() -> None:
    sn = SNIPPETS["expfmt-scenario-2"]
    snap = parse(sn["text"], source=sn["id"])
    got = [
        {
            "name": f.name,
            "type": f.type,
            "help": f.help,
            "samples": [
                {
                    "name": n,
                    "labels": dict(label_key(raw)),
                    "value": _v(v),
                    **({"timestamp_ms": ts} if ts else {}),
                }
                for n, raw, v, ts in f.samples
            ],
        }
        for f in snap.families.values()
    ]
    assert got == sn["expected_families"]


def test_evil_summary_groups_by_declared_type_not_adjacency() -> None:
    sn = SNIPPETS["expfmt-scenario-3-evil-summary"]
    snap = parse(sn["text"], source=sn["id"])

    def key(row: tuple[str, dict[str, str], Any, int | None]) -> str:
        n, lb, v, ts = row
        return repr((n, sorted(lb.items()), v if v == "NaN" else float(v), ts))

    assert sorted(map(key, flat(snap))) == sorted(map(key, sn["expected_flat_samples"]))
    assert snap.families["my_summary"].type == "summary"
    assert {s[0] for s in snap.families["my_summary"].samples} == {
        "my_summary",
        "my_summary_count",
        "my_summary_sum",
    }
    assert snap.families["fake_sum"].type == "untyped"
    assert snap.families["another_summary"].type == "summary"


def test_prometheus_server_test_input_is_accepted() -> None:
    sn = SNIPPETS["promparse-TestPromParse"]
    snap = parse(sn["text"], source=sn["id"])
    gc = snap.families["go_gc_duration_seconds"]
    assert gc.type == "summary"  # "# <TAB>TYPE" is still a TYPE line
    labelsets = [
        dict(label_key(raw)) for n, raw, _v, _t in gc.samples if n == "go_gc_duration_seconds"
    ]
    assert {"quantile": "2.0", "a": "b"} in labelsets  # no comma between labels: server accepts
    assert labelsets.count({"quantile": "1.0", "a": "b"}) == 4  # blanks around '=' and ','
    assert snap.families["go_goroutines"].samples == (("go_goroutines", "", 33.0, 123123),)
    assert snap.families["some_counter_total"].type == "counter"  # TYPE before HELP
    assert snap.families["some_counter_total"].help == "Help after type."
    assert dict(label_key(snap.families["null_byte_metric"].samples[0][1])) == {"a": "abc\x00"}
    assert dict(label_key(snap.families["testmetric"].samples[1][1])) == {"label": '"bar"'}
    hist = snap.families["prometheus_http_request_duration_seconds"]
    assert [s[2] for s in hist.samples] == [423, 1423, 1423, 2000, 1423]


def test_openmetrics_input_with_exemplars_and_eof() -> None:
    sn = SNIPPETS["omparse-TestOpenMetricsParse"]
    snap = parse(sn["text"], source=sn["id"])
    foo = snap.families["foo"]
    assert foo.type == "counter"
    assert ("foo_total", "", 17.0, 1520879607789) in foo.samples  # float seconds -> ms
    assert snap.families["fizz_created"].type == "gauge"  # a gauge named *_created stays itself
    assert {s[0] for s in snap.families["something"].samples} == {
        "something_count",
        "something_sum",
        "something_created",
        "something_bucket",
    }
    assert math.isnan(snap.families["nansum"].samples[2][2])
    with pytest.raises(ParseError, match=r"^om:2: '# EOF' before the end"):
        parse("a 1\n# EOF\nb 2\n# EOF\n", source="om")


def test_docs_example_is_rejected_at_the_line_without_a_value() -> None:
    sn = SNIPPETS["docs-exposition-example"]
    with pytest.raises(
        ParseError, match=r"^docs-exposition-example:10: my\.dotted\.metric has no value$"
    ):
        parse(sn["text"], source=sn["id"])


def test_accepts_everything_the_format_allows() -> None:
    text = (
        "# HELP m Esc \\\\ and \\n and \\t kept\n"
        'm{a="x\\\\y",b="q\\"",c="l1\\nl2",d="{id},=#",} 1.5 -1000\n'
        'm{a="2"} NaN\n\n'
        'm{a="3"} +Inf 12\n'
        '  m { a = "4" } -Inf\n'
        "u 08\n"
        "# TYPE m gauge\n"  # TYPE after the samples
        '{"dotted.name", "label.x"="v"} 2\n'
        'm{a="5"} 1e3  \t\n'  # trailing blanks
        'm{a="6"} .5'  # no final newline
    )
    snap = parse(text, source="t")
    m = snap.families["m"]
    assert m.type == "gauge" and m.help == "Esc \\ and \n and \\t kept"
    assert dict(label_key(m.samples[0][1])) == {
        "a": "x\\y",
        "b": 'q"',
        "c": "l1\nl2",
        "d": "{id},=#",
    }
    assert m.samples[0][2:] == (1.5, -1000)
    assert [_v(s[2]) for s in m.samples[1:]] == ["NaN", "+Inf", "-Inf", 1000.0, 0.5]
    assert snap.families["u"].type == "untyped" and snap.families["u"].samples[0][2] == 8.0
    assert dict(label_key(snap.families["dotted.name"].samples[0][1])) == {"label.x": "v"}


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ('a 1\nb{x="1" 2\n', 2, "expected a label name, got '2'"),
        ("a 1\nb{x 2\n", 2, "expected '=' after label name 'x'"),
        ("ok 1\n\nm{label=bla} 3.14\n", 3, "expected '\"' to start the value of label 'label'"),
        ('m{label="bla"} 3.14 2.72\n', 1, "invalid timestamp '2.72'"),
        ('m{label="bla"} 3.14 2 3\n', 1, "unexpected text '3' after the value"),
        ("# TYPE metric bla\n", 1, "unknown metric type 'bla'"),
        ("# TYPE m counter\n# TYPE m gauge\n", 2, "second # TYPE for m"),
        ("foo 1_2\n", 1, "invalid value '1_2'"),
        ("foo 0x1p-3\n", 1, "invalid value '0x1p-3'"),
        ("foo +NaN\n", 1, "invalid value '+NaN'"),
        ("foo 1e400\n", 1, "out of range"),
        ("{} 3.14\n", 1, "sample has no metric name"),
        ('{label="bla"} 3.14 2\n', 1, "sample has no metric name"),
        ('m {a="1",a="2"} 1\n', 1, "duplicate label name 'a'"),
        ('m{a="unterminated} 1\n', 1, "unterminated"),
        ("m\n", 1, "m has no value"),
        ("x 1\ny 2\nthis is garbage\n", 3, "invalid value 'is' for this"),
        ("x= 1\n", 1, "invalid character '=' in metric name"),
        ("3cats 1\n", 1, "expected a metric name"),
        ('m{a="1"\n', 1, "unterminated label set"),
        ('m{a="1"} abc\n', 1, "invalid value 'abc'"),
    ],
)
def test_rejects_garbage_with_line_number(text: str, line: int, what: str) -> None:
    with pytest.raises(ParseError) as err:
        parse(text, source="scrape.prom")
    msg = str(err.value)
    assert msg.startswith(f"scrape.prom:{line}: "), msg
    assert what in msg
    assert "\n" not in msg


def test_duplicate_labels_on_the_fast_path_are_reported_when_read() -> None:
    # The fast path validates label syntax in the regex but parses label text lazily (that is
    # where the speed comes from), so a duplicate name surfaces when the labels are first read.
    snap = parse('m{a="1",a="2"} 1\n', source="s")
    with pytest.raises(ParseError, match="duplicate label name 'a'"):
        label_key(snap.families["m"].samples[0][1])


def test_format_labels_round_trips() -> None:
    labels = (("a", 'x"y\\z\nw'), ("b", "{id}"))
    snap = parse(f"m{format_labels(labels)} 1\n")
    assert label_key(snap.families["m"].samples[0][1]) == labels


# --- agreement with prometheus_client, full and filtered --------------------------------------


def _bench_module() -> Any:
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "metrics_parser.py"
    spec = importlib.util.spec_from_file_location("metrics_parser_bench", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def generated() -> str:
    return _bench_module().generate(60)


def test_full_parse_agrees_with_prometheus_client(generated: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    ref = {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for fam in text_string_to_metric_families(generated)
        for s in fam.samples
    }
    ref_help = {fam.name: fam.documentation for fam in text_string_to_metric_families(generated)}
    snap = parse(generated)
    ours = {(n, label_key(raw)): v for f in snap.families.values() for n, raw, v, _ in f.samples}
    assert ours == ref
    assert len(ours) == 60 * 2 * 14
    assert {f.name: f.help for f in snap.families.values()} == ref_help
    assert all(f.type == "histogram" for f in snap.families.values())


def test_filtered_parse_equals_full_parse_restricted(generated: str) -> None:
    wanted = [
        "app_subsystem_1_request_duration_seconds",
        "app_subsystem_59_request_duration_seconds",
    ]
    full = parse(generated)
    part = parse(generated, families=wanted)
    assert sorted(part.families) == sorted(wanted)
    for name in wanted:
        assert part.families[name] == full.families[name]
    # names that merely share a prefix are not dragged in
    prefixed = parse(generated, families=["app_subsystem_1"])
    assert "app_subsystem_1_request_duration_seconds" not in prefixed.families


def test_filtered_parse_keeps_restart_signals_and_skips_unwanted_lines() -> None:
    text = (
        "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 17\n"
        '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 2\n'
        "# TYPE h_created gauge\nh_created 5\n"
        "# TYPE h_other gauge\nh_other 3\n"
        "unrelated garbage line\n"
    )
    snap = parse(text, families=["h"])
    assert set(snap.families) == {"h", "h_created", "process_start_time_seconds"}
    with pytest.raises(ParseError, match=":11: "):
        parse(text)
