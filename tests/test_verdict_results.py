"""The session's results rows, headline and commit trailers, from constructed measurements."""

from __future__ import annotations

import math
import random
import re

import pytest

from sessionctl.campaign.model import CompareSpec
from sessionctl.measurement import Measurement, Value
from sessionctl.units import format_number
from sessionctl.verdict.judgement import Judgement, judge_paired
from sessionctl.verdict.protocol import CompareResult, SqlSides, to_measurement
from sessionctl.verdict.session import (
    ResultRow,
    headline,
    results_rows,
    rows_from,
    summarize_session,
    trailers,
)

SPEC = CompareSpec()


def _bench(
    phase: str, qps: tuple[float, ...], p99: tuple[float, ...], name: str = "lookup"
) -> Measurement:
    return Measurement("builtin", name, phase, (
        Value("qps@c4", sorted(qps)[len(qps) // 2], "queries/s", "higher", qps),
        Value("p99_ms@c4", sorted(p99)[len(p99) // 2], "ms", "lower", p99),
        Value("errors@c4", 0.0, "", "lower", (0.0,) * len(qps)),
    ))  # fmt: skip


def _compare(judgements: list[Judgement], name: str = "lookup", **details: object) -> Measurement:
    return Measurement("compare", name, None, (), "", None,
                       {"judgements": [j.to_dict() for j in judgements], **details})  # fmt: skip


def _paired(rng: random.Random, metric: str, a0: float, ratio: float, unit: str) -> Judgement:
    a = [a0 * rng.lognormvariate(0, 0.03) for _ in range(6)]
    b = [x * ratio * rng.lognormvariate(0, 0.03) for x in a]
    better = "higher" if metric.startswith("qps") else "lower"
    j = judge_paired(metric, a, b, better=better, threshold=0.02, first=list("ABBAAB"))
    return Judgement.from_dict(j.to_dict() | {"unit": unit})


def _session() -> tuple[list[Measurement], Judgement, Judgement]:
    """The colleague's case: bench numbers say +2451 %, the paired comparison about +6700 %."""
    rng = random.Random(1)
    qps = _paired(rng, "qps@c4", 147.2, 68.25, "queries/s")
    p50 = _paired(rng, "p50_ms@c4", 13.5, 1 / 60, "ms")  # measured only by compare
    ms = [
        _bench("baseline", (146.0, 147.0, 149.0), (30.0, 31.0, 33.0)),
        _bench("remeasure", (3700.0, 3755.0, 3790.0), (2.0, 2.1, 2.2)),
        _compare([qps, p50]),
    ]
    return ms, qps, p50


def test_paired_rows_show_the_paired_numbers_not_the_bench_ones() -> None:
    ms, qps, _ = _session()
    rows = results_rows(ms, compare=SPEC)
    assert [(r.metric, r.method) for r in rows] == [
        ("qps@c4", "paired"), ("p50_ms@c4", "paired"),
        ("p99_ms@c4", "unpaired"), ("errors@c4", "unpaired"),
    ]  # fmt: skip
    row = rows[0]
    assert (row.before, row.after, row.ratio) == (qps.a, qps.b, qps.ratio)
    assert row.after is not None and row.before is not None and row.ratio is not None
    assert row.after / row.before == pytest.approx(row.ratio, rel=1e-12)
    assert row.ci_low is not None and row.ci_high is not None
    assert row.ci_low < row.ratio < row.ci_high  # the delta sits inside its own interval
    assert row.delta is not None and row.delta > 6000  # not the unpaired +2451 %
    assert row.delta_text == f"{(qps.ratio - 1) * 100:+.1f}%"
    assert row.before_text == f"{format_number(row.before)} queries/s"
    assert row.after_text == f"{format_number(row.after)} queries/s" and "," in row.after_text
    assert row.interval_text.count("%") == 2 and "…" in row.interval_text
    assert row.verdict == qps.verdict == "improved" and row.n == 6 and row.better == "higher"


def test_compare_only_metrics_get_rows_with_their_unit() -> None:
    ms, _, p50 = _session()
    row = next(r for r in results_rows(ms, compare=SPEC) if r.metric == "p50_ms@c4")
    assert row.unit == "ms" and row.before == p50.a and row.after == p50.b
    assert row.before_text.endswith(" ms") and row.delta is not None and row.delta < -90
    # A record from before units were kept: the unit follows the driver's naming.
    bare = Judgement.from_dict(p50.to_dict() | {"unit": "", "metric": "qps@c8"})
    only = rows_from([bare], [])
    assert only[0].unit == "queries/s" and only[0].method == "paired"


def test_unpaired_rows_use_the_judged_geometric_means() -> None:
    ms, _, _ = _session()
    rows = {r.metric: r for r in results_rows(ms, compare=SPEC)}
    p99 = rows["p99_ms@c4"]
    assert p99.before == pytest.approx(math.exp(sum(map(math.log, (30.0, 31.0, 33.0))) / 3))
    assert p99.unit == "ms" and p99.ratio == pytest.approx(p99.after / p99.before)
    assert p99.ci_low is not None and p99.ci_low < p99.ratio < (p99.ci_high or 0)
    errors = rows["errors@c4"]  # zeros: no ratio, the measured values shown as they are
    assert (errors.before, errors.after, errors.ratio) == (0.0, 0.0, None)
    assert errors.delta_text == "n/a" and errors.interval_text == "n/a"
    assert errors.verdict == "inconclusive" and errors.before_text == "0"


def test_rows_with_several_benchmarks_and_round_trip() -> None:
    ms, _, _ = _session()
    other = [_bench("baseline", (10.0, 11.0), (5.0, 5.5), "scan"),
             _bench("remeasure", (12.0, 12.5), (4.0, 4.4), "scan")]  # fmt: skip
    rows = results_rows([*ms, *other], compare=SPEC)
    labels = [r.metric for r in rows]
    assert labels[:2] == ["lookup:qps@c4", "lookup:p50_ms@c4"] and "scan:qps@c4" in labels
    scan = next(r for r in rows if r.metric == "scan:qps@c4")
    assert scan.unit == "queries/s" and scan.method == "unpaired"
    d = scan.to_dict()
    assert d["name"] == "scan:qps@c4" and d["delta_text"] == scan.delta_text
    assert ResultRow.from_dict(d) == scan
    legacy = {"name": "qps", "unit": "", "better": "higher", "before": 1.0, "after": 2.0}
    old = ResultRow.from_dict(legacy | {"verdict": None, "method": None, "ratio": 2.0})
    assert (old.metric, old.method, old.verdict, old.delta_text) == (
        "qps",
        "unpaired",
        "n/a",
        "+100.0%",
    )
    assert results_rows([], compare=SPEC) == []


def test_headline_prefers_the_highest_concurrency_qps() -> None:
    def j(metric: str) -> Judgement:
        return Judgement(metric, "inconclusive")

    assert headline([j("p99_ms@c64"), j("qps@c4"), j("qps@c64"), j("qps@c16")]) == j("qps@c64")
    assert headline([j("lookup:qps@c8"), j("scan:qps@c32")]) == j("scan:qps@c32")
    assert headline([j("p50_ms@c4"), j("tps@c8"), j("rps")]) == j("tps@c8")
    assert headline([j("create.median_ms@1k"), j("objects@1k")]) == j("create.median_ms@1k")
    assert headline([]) is None


def test_trailers_are_plain_numbers_for_the_headline() -> None:
    j = Judgement("qps@c4", "improved", ratio=68.253, ci_low=53.101, ci_high=86.71,
                  method="paired", n=6, better="higher", a=147.2, b=147.2 * 68.253,
                  unit="queries/s")  # fmt: skip
    low = Judgement("p99_ms@c4", "no change", ratio=1.0, ci_low=0.99, ci_high=1.01, a=3.0, b=3.0)
    assert trailers([low, j], []) == [
        ("Verdict", "improved"),
        ("Metric", "qps@c4"),
        ("Baseline-QPS", "147.2"),
        ("After-QPS", "10047"),
        ("Effect", "+6725.3%"),
        ("CI", "+5210.1%..+8571.0%"),
        ("Method", "paired"),
    ]
    assert trailers([], []) == []


def test_trailers_from_a_session_match_its_rows() -> None:
    ms, qps, _ = _session()
    judged = summarize_session(ms, compare=SPEC)
    got = dict(trailers(judged, ms))
    row = rows_from(judged, ms)[0]
    assert got["Metric"] == "qps@c4" and got["Verdict"] == qps.verdict and got["Method"] == "paired"
    for key in ("Baseline-QPS", "After-QPS"):
        assert re.fullmatch(r"-?\d+(\.\d+)?", got[key]), got[key]  # no unit, no separators
    assert float(got["After-QPS"]) == pytest.approx(row.after, rel=1e-3)
    assert got["Effect"] == row.delta_text
    assert re.fullmatch(r"[+-]\d+\.\d%\.\.[+-]\d+\.\d%", got["CI"])
    # Latency only, unpaired, with the benchmark's name in the label: the key drops it.
    lat = [_bench("baseline", (1.0, 1.0), (5.0, 5.2)), _bench("remeasure", (1.0, 1.0), (4.0, 4.1))]
    lat += [_bench("baseline", (1.0, 1.1), (1.0, 1.1), "scan"),
            _bench("remeasure", (1.0, 1.1), (1.0, 1.1), "scan")]  # fmt: skip
    only = [j for j in summarize_session(lat, compare=SPEC) if j.metric == "lookup:p99_ms@c4"]
    keys = [k for k, _ in trailers(only, lat)]
    assert keys[:4] == ["Verdict", "Metric", "Baseline-P99-MS", "After-P99-MS"]


def _aa_result() -> CompareResult:
    a, b = [100.0, 101.0, 99.0], [100.5, 100.0, 99.5]
    runs = [
        {"pair": i + 1, "side": side, "warmup": False, "values": {"qps@c4": v}}
        for i, (x, y) in enumerate(zip(a, b, strict=True))
        for side, v in (("A", x), ("B", y))
    ]
    j = judge_paired("qps@c4", a, b, better="higher", threshold=0.02)
    return CompareResult("lookup", SqlSides(), "abba", 0, ("AB", "BA", "BA"), tuple(runs), (j,),
                         "saturated closed-loop run", True, "", None)  # fmt: skip


def test_an_aa_calibration_is_never_the_sessions_verdict() -> None:
    ms, qps, p50 = _session()
    cal = to_measurement(_aa_result())
    assert cal.details["calibration"]["metrics"] == 1 and "judgements" not in cal.details
    assert summarize_session([cal], compare=SPEC) == []
    # Even a calibration record that kept its judgements (an older or hand-made one) is skipped,
    # and it does not displace the real comparison recorded before it.
    leaky = _compare([qps], aa=True, calibration={"false_verdicts": 0})
    judged = summarize_session([*ms, cal, leaky], compare=SPEC)
    assert judged[:2] == [qps, p50]
    assert [r.metric for r in results_rows([leaky], compare=SPEC)] == []
