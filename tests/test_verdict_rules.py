"""Verdicts: the rule, the cross-checks, the warnings, thresholds and the session summary."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from sessionctl.campaign.model import CompareSpec
from sessionctl.measurement import Measurement, Value
from sessionctl.verdict import stats
from sessionctl.verdict.judgement import (
    VERDICTS,
    Judgement,
    classify,
    infer_better,
    judge_family,
    judge_paired,
    judge_unpaired,
    threshold_for,
)
from sessionctl.verdict.session import summarize_session

D = math.log(1.02)


@pytest.mark.parametrize(
    ("low", "high", "better", "want"),
    [
        (0.03, 0.05, "higher", "improved"),
        (0.03, 0.05, "lower", "regressed"),
        (-0.05, -0.03, "lower", "improved"),
        (-0.01, 0.015, "higher", "no change"),
        (-0.01, 0.015, None, "no change"),
        (0.005, 0.04, "higher", "probably improved"),  # significant, crosses the threshold
        (-0.04, -0.001, "higher", "probably regressed"),
        (-0.01, 0.05, "higher", "inconclusive"),  # includes no change, reaches beyond threshold
        (0.03, 0.05, None, "inconclusive"),  # direction unknown
        (
            D,
            0.05,
            "higher",
            "probably improved",
        ),  # a bound exactly on the threshold is not beyond it
    ],
)
def test_classify(low: float, high: float, better: str | None, want: str) -> None:
    assert classify(low, high, delta=D, better=better) == want
    assert want in VERDICTS


def _noisy(
    rng: random.Random, n: int, effect: float, noise: float
) -> tuple[list[float], list[float]]:
    a = [1000 * rng.lognormvariate(0, 0.05) for _ in range(n)]
    b = [x * effect * rng.lognormvariate(0, noise) for x in a]
    return a, b


def test_clear_improvement_is_improved_with_all_three_methods() -> None:
    a, b = _noisy(random.Random(0), 8, 1.20, 0.01)
    j = judge_paired("qps@c4", a, b, better="higher", threshold=0.02)
    assert j.verdict == "improved"
    assert j.ci_low is not None and j.ci_high is not None and 1.02 < j.ci_low < 1.2 < j.ci_high
    assert j.boot_low is not None and j.boot_high is not None and j.boot_low > 1.02
    assert j.p_t is not None and j.p_t < 1e-6
    assert j.p_wilcoxon == pytest.approx(2 / 2**8)
    assert j.mde is not None and 0 < j.mde < 0.05 and j.pairs_needed is not None
    assert j.a is not None and j.b is not None and j.b / j.a == pytest.approx(j.ratio)
    assert j.method == "paired" and j.n == 8


def test_lower_is_better_latency() -> None:
    a, b = _noisy(random.Random(1), 6, 0.7, 0.01)
    assert judge_paired("p99_ms@c4", a, b, better="lower", threshold=0.05).verdict == "improved"
    assert judge_paired("p99_ms@c4", b, a, better="lower", threshold=0.05).verdict == "regressed"


def test_identical_sides_are_no_change() -> None:
    a = [100.0, 101.0, 99.0, 100.5]
    j = judge_paired("qps", a, list(a), better="higher", threshold=0.02)
    assert j.verdict == "no change" and j.ratio == 1.0 and j.ci_low == j.ci_high == 1.0
    assert j.p_wilcoxon == 1.0


def test_wilcoxon_disagreement_downgrades() -> None:
    a = [100.0] * 6
    b = [
        110.5,
        110.5,
        110.5,
        110.5,
        110.5,
        99.9,
    ]  # t says beyond 2 %; one pair points the other way
    j = judge_paired("qps", a, b, better="higher", threshold=0.02)
    assert j.verdict == "probably improved"
    assert any("cross-checks disagree" in w and "rank test" in w for w in j.warnings)


def test_probably_needs_the_cross_checks_too() -> None:
    a = [100.0] * 6
    lr = [0.02, 0.025, 0.015, 0.03, 0.02, -0.002]  # t: CI above 0 but across 2 %; one pair below
    b = [100.0 * math.exp(x) for x in lr]
    j = judge_paired("qps", a, b, better="higher", threshold=0.02)
    assert j.ci_low is not None and 1.0 < j.ci_low < 1.02 < (j.ci_high or 0)
    assert j.verdict == "inconclusive"
    assert any("probably improved -> inconclusive" in w for w in j.warnings)
    j2 = judge_paired(
        "qps", a, [100.0 * math.exp(x) for x in [*lr[:5], 0.001]], better="higher", threshold=0.02
    )
    assert j2.verdict == "probably improved"  # all six pairs agree on the direction


def test_few_pairs_say_wilcoxon_cannot_reach_significance() -> None:
    a, b = _noisy(random.Random(2), 4, 1.3, 0.01)
    j = judge_paired("qps", a, b, better="higher", threshold=0.02)
    assert j.verdict == "improved"  # the rank test is not held against n that cannot reach p < .05
    assert any("cannot reach p<0.05" in w for w in j.warnings)


def test_single_pair_is_inconclusive() -> None:
    j = judge_paired("qps", [100.0], [120.0], better="higher", threshold=0.02)
    assert j.verdict == "inconclusive" and j.ci_low is None and j.ratio == pytest.approx(1.2)
    assert j.warnings == ("single pair: no interval",)


def test_two_pairs_never_name_a_direction() -> None:
    a = [10.0, 12.0]
    b = [10.0 * 1.0813, 12.0 * 1.0817]  # the acceptance case: "regressed +8.1%" from 2 pairs
    j = judge_paired("p50_ms@c4", a, b, better="lower", threshold=0.02)
    assert j.verdict == "inconclusive" and j.n == 2
    assert j.ratio == pytest.approx(1.0815, abs=1e-4) and j.ci_high is not None
    assert j.ci_low is not None and j.ci_low > 1.02  # the t interval alone would say regressed
    assert j.warnings[0] == (
        "2 pairs: a direction needs at least 3 (no bootstrap cross-check with fewer): "
        "regressed -> inconclusive; rerun with --pairs 3 or more"
    )
    three = judge_paired("p50_ms@c4", [*a, 11.0], [*b, 11.0 * 1.0815], better="lower",
                         threshold=0.02)  # fmt: skip
    assert three.verdict == "regressed" and not any("--pairs" in w for w in three.warnings)


def test_zero_values_give_no_ratio() -> None:
    j = judge_paired("errors@c4", [0.0, 0.0], [0.0, 1.0], better="lower", threshold=0.02)
    assert j.verdict == "inconclusive" and j.ratio is None
    with pytest.raises(ValueError):
        judge_paired("qps", [1.0, 2.0], [1.0], better="higher", threshold=0.02)


def test_warnings_spread_drift_order_outliers() -> None:
    first = ["A", "B", "B", "A", "A", "B", "B", "A"]
    a = [1000.0 * (1 + 0.08 * i) for i in range(8)]  # drifting machine, 8 % per pair
    b = [x * (1.06 if f == "A" else 1 / 1.06) for x, f in zip(a, first, strict=True)]
    j = judge_paired("qps", a, b, better="higher", threshold=0.02, first=first)
    text = " | ".join(j.warnings)
    assert "high run-to-run spread on A" in text
    assert "drift across run order" in text
    assert "order effect: second run in a pair +6.0%" in text
    assert "unbalanced" not in text
    c = [100.0, 101.0, 99.0, 100.0, 100.5, 99.5, 100.2]
    d = [100.0, 101.0, 99.0, 100.0, 100.5, 99.5, 140.0]
    j2 = judge_paired("qps", c, d, better="higher", threshold=0.02)
    assert any("1 outlier pair(s)" in w and "#7" in w for w in j2.warnings)


def test_unknown_direction() -> None:
    a, b = _noisy(random.Random(4), 6, 1.3, 0.01)
    j = judge_paired("widgets", a, b, better=None, threshold=0.02)
    assert j.verdict == "inconclusive"
    assert any("which direction is better is unknown" in w for w in j.warnings)


def test_aa_noise_rarely_gives_a_false_verdict() -> None:
    rng = random.Random(5)
    false = directional = 0
    for _ in range(150):
        a, b = _noisy(rng, 6, 1.0, 0.05)
        j = judge_paired("qps", a, b, better="higher", threshold=0.02, seed=rng.randint(0, 99))
        false += j.verdict in ("improved", "regressed")
        directional += j.verdict not in ("no change", "inconclusive")
    assert false <= 5  # far below 5 %: the whole interval must clear the threshold
    assert directional <= 9  # 'probably' needs t, rank test and bootstrap to agree at 5 %


def _aa_metrics(rng: random.Random, n: int = 6) -> list[Judgement]:
    """One A/A comparison's three metrics: QPS, a p50 tied to it, an independent noisy p99."""
    runs = {side: [1000 * rng.lognormvariate(0, 0.06) for _ in range(n)] for side in "AB"}
    p50 = {s: [2000 / q * rng.lognormvariate(0, 0.02) for q in v] for s, v in runs.items()}
    p99 = {s: [10 * rng.lognormvariate(0, 0.2) for _ in range(n)] for s in "AB"}
    seed = rng.randint(0, 999)
    return [
        judge_paired(name, v["A"], v["B"], better=better, threshold=t, seed=seed, family=3)
        for name, v, better, t in (
            ("qps@c2", runs, "higher", 0.02),
            ("p50_ms@c2", p50, "lower", 0.02),
            ("p99_ms@c2", p99, "lower", 0.05),
        )
    ]


def test_a_comparison_claims_a_false_direction_at_most_five_percent_of_the_time() -> None:
    rng = random.Random(12)
    raw = adjusted = 0
    for _ in range(400):
        js = _aa_metrics(rng)
        raw += any(j.verdict not in ("no change", "inconclusive") for j in js)
        adjusted += any(j.verdict not in ("no change", "inconclusive") for j in judge_family(js))
    # Each metric alone errs at up to 5 %; three of them together err more often than that,
    # and Holm brings the comparison as a whole back under 5 %.
    assert raw > adjusted
    assert adjusted <= 0.05 * 400


def test_holm_steps_a_weak_direction_down_and_keeps_a_strong_one() -> None:
    strong = judge_paired("qps@c2", *_noisy(random.Random(1), 8, 1.2, 0.01),
                          better="higher", threshold=0.02)  # fmt: skip
    weak = replace(strong, metric="p50_ms@c2", verdict="probably improved", p_t=0.03,
                   better="lower", warnings=())  # fmt: skip
    flat = replace(weak, metric="p99_ms@c2", verdict="inconclusive", p_t=0.5)
    none = Judgement("errors@c2", "inconclusive")  # no t test: not part of the family
    out = judge_family([strong, weak, flat, none])
    assert [j.family for j in out] == [3, 3, 3, 1]
    assert strong.p_t is not None and strong.p_t < 0.001
    assert out[0].verdict == "improved" and out[0].p_family == pytest.approx(3 * strong.p_t)
    # the second smallest of three is multiplied by 2: 0.06 is not below 0.05
    assert out[1].verdict == "inconclusive" and out[1].p_family == pytest.approx(0.06)
    assert out[1].warnings == (
        "not significant once the 3 metrics judged together are accounted for "
        "(Holm-adjusted p=0.06): probably improved -> inconclusive",
    )
    assert out[2].verdict == "inconclusive" and out[2].p_family == 0.5
    assert out[3] == none
    # with one strong metric and one weak, Holm's second step is at 0.05 itself
    pair = judge_family([strong, weak])
    assert pair[1].verdict == "probably improved" and pair[1].p_family == pytest.approx(0.03)
    alone = judge_family([weak])
    assert alone[0].verdict == "probably improved" and alone[0].p_family == 0.03


def test_mde_and_pairs_needed_are_for_the_family_level() -> None:
    a, b = _noisy(random.Random(3), 6, 1.0, 0.03)
    one = judge_paired("qps", a, b, better="higher", threshold=0.02)
    three = judge_paired("qps", a, b, better="higher", threshold=0.02, family=3)
    assert (three.ci_low, three.ci_high, three.verdict) == (one.ci_low, one.ci_high, one.verdict)
    sd = stats.sample_sd(stats.log_ratios(a, b))
    want = math.expm1(stats.mde(sd / math.sqrt(6), 5, alpha=0.05 / 3))
    assert three.mde == pytest.approx(want) and one.mde is not None and three.mde > one.mde
    assert three.pairs_needed == stats.units_needed(sd * sd, math.log(1.02), alpha=0.05 / 3)
    assert one.pairs_needed is not None and three.pairs_needed > one.pairs_needed


def test_unpaired_is_widened_and_says_so() -> None:
    rng = random.Random(6)
    before = [1000 * rng.lognormvariate(0, 0.005) for _ in range(5)]
    after = [x * rng.lognormvariate(0, 0.005) for x in before]
    j = judge_unpaired("qps", before, after, better="higher", threshold=0.02)
    assert j.method == "unpaired" and j.verdict == "inconclusive"  # never 'no change' at 2 %
    assert j.warnings[0].startswith(
        "unpaired: drift between the before and after runs is not controlled"
    )
    assert j.ci_low is not None and j.ci_low < 1 / 1.05 + 0.01
    big = judge_unpaired("qps", before, [x * 1.5 for x in after], better="higher", threshold=0.02)
    assert big.verdict == "improved" and big.p_wilcoxon is not None
    one = judge_unpaired("qps", [100.0], [120.0], better="higher", threshold=0.02)
    assert one.verdict == "inconclusive" and "single run per side" in one.warnings


def test_thresholds_and_directions() -> None:
    spec = CompareSpec(threshold_throughput=0.03, threshold_median=0.02, threshold_tail=0.05)
    assert threshold_for("qps@c64", spec) == 0.03
    assert threshold_for("tps", spec) == 0.03
    assert threshold_for("p50_ms@c4", spec) == 0.02
    assert threshold_for("p99_ms@r500", spec) == 0.05
    assert threshold_for("p999_ms", spec) == 0.05
    assert threshold_for("max_ms@c1", spec) == 0.05
    assert threshold_for("mz_peek_seconds{method=p99}.mean_us@c64", spec) == 0.02
    assert threshold_for("mz_peek_seconds{method=x}.p99_us@c64", spec) == 0.05
    assert infer_better("qps@c4") == "higher"
    assert infer_better("p99_ms@c4") == "lower"
    assert infer_better("widgets") is None


def test_judgement_round_trips_and_describes() -> None:
    a, b = _noisy(random.Random(7), 6, 1.2, 0.01)
    j = judge_paired("qps@c4", a, b, better="higher", threshold=0.02)
    assert Judgement.from_dict(j.to_dict()) == j
    line = j.describe()
    assert line.startswith("qps@c4: improved +") and "95% CI" in line and "n=6 pairs" in line


def _m(
    source: str, phase: str | None, values: list[Value], details: dict | None = None
) -> Measurement:
    return Measurement(
        source=source, name="lookup", phase=phase, values=tuple(values), details=details or {}
    )


def test_summarize_prefers_a_paired_comparison() -> None:
    a, b = _noisy(random.Random(8), 6, 1.2, 0.01)
    j = judge_paired("qps@c4", a, b, better="higher", threshold=0.02)
    ms = [
        _m("builtin", "baseline", [Value("qps@c4", 100, better="higher", samples=(100, 101, 99))]),
        _m(
            "builtin", "remeasure", [Value("qps@c4", 120, better="higher", samples=(120, 121, 119))]
        ),
        _m("compare", "remeasure", [], {"judgements": [j.to_dict()]}),
    ]
    assert summarize_session(ms, compare=CompareSpec()) == [j]


def test_summarize_falls_back_to_unpaired_and_single_runs() -> None:
    ms = [
        _m(
            "builtin",
            "baseline",
            [
                Value("qps@c4", 100, better="higher", samples=(100, 101, 99)),
                Value("p99_ms@c4", 5.0, better="lower"),
                Value("only_before", 1.0),
            ],
        ),
        _m(
            "builtin",
            "remeasure",
            [
                Value("qps@c4", 150, better="higher", samples=(150, 151, 149)),
                Value("p99_ms@c4", 4.0, better="lower"),
            ],
        ),
    ]
    out = summarize_session(ms, compare=CompareSpec())
    assert [j.metric for j in out] == ["qps@c4", "p99_ms@c4"]
    assert out[0].method == "unpaired" and out[0].verdict == "improved"
    assert out[1].verdict == "inconclusive" and out[1].warnings == ("single run per side",)
    assert out[1].ratio == pytest.approx(0.8) and out[1].threshold == 0.05
    assert summarize_session([], compare=CompareSpec()) == []


def test_summarize_merges_paired_and_unpaired_per_metric() -> None:
    a, b = _noisy(random.Random(9), 6, 1.2, 0.01)
    j = judge_paired("qps@c4", a, b, better="higher", threshold=0.02)
    other = Measurement(
        source="builtin",
        name="scan",
        phase="baseline",
        values=(Value("qps@c4", 10, better="higher", samples=(10, 11)),),
    )
    ms = [
        _m("builtin", "baseline", [Value("qps@c4", 100, samples=(100, 101)),
                                   Value("p99_ms@c4", 5.0, better="lower", samples=(5.0, 5.1))]),
        _m("builtin", "remeasure", [Value("qps@c4", 120, samples=(120, 121)),
                                    Value("p99_ms@c4", 4.0, better="lower", samples=(4.0, 4.1))]),
        _m("compare", None, [], {"judgements": [j.to_dict()]}),
    ]  # fmt: skip
    out = summarize_session(ms, compare=CompareSpec())
    assert [(x.metric, x.method) for x in out] == [("qps@c4", "paired"), ("p99_ms@c4", "unpaired")]
    later = replace(other, phase="remeasure", values=(Value("qps@c4", 12, samples=(12, 12.5)),))
    two = summarize_session([*ms, other, later], compare=CompareSpec())
    assert [x.metric for x in two] == ["lookup:qps@c4", "lookup:p99_ms@c4", "scan:qps@c4"]


def test_few_runs_raise_no_spurious_warnings() -> None:
    # 4 pairs on a machine that speeds up every pair: rho = 1, but with 4 points its exact
    # p is 2/4! = 0.083 (the t approximation said 0 and warned of drift).
    a = [100.0, 104.0, 108.0, 112.0]
    b = [x * 1.2 * (1.001 if i % 2 else 0.999) for i, x in enumerate(a)]
    j = judge_paired("qps", a, b, better="higher", threshold=0.02, first=["A", "B", "B", "A"])
    noisy = ("Spearman", "order effect", "outlier")
    assert not [w for w in j.warnings if any(word in w for word in noisy)]
    # Six pairs whose ratios take just two values split by order: t is infinite, the exact p
    # of the split is 2 / C(6, 3) = 0.1, so no order effect is claimed.
    first = ["A", "B", "B", "A", "A", "B"]
    b6 = [100.0 * (1.10 if f == "A" else 1.05) for f in first]
    j6 = judge_paired("qps", [100.0] * 6, b6, better="higher", threshold=0.02, first=first)
    assert not any("order effect" in w for w in j6.warnings)
    # Three runs per side that happen to rise: no drift claim either.
    u = judge_unpaired("qps", [100.0, 101.0, 102.0], [120.0, 121.0, 122.0], better="higher",
                       threshold=0.02)  # fmt: skip
    assert not any("Spearman" in w for w in u.warnings)
    # A constant ratio: the interval has zero width, and the judgement says so.
    flat = judge_paired("p99_ms", [4.0, 4.0, 4.0], [2.0, 2.0, 2.0], better="lower", threshold=0.05)
    assert any("all 3 pairs have the same ratio" in w for w in flat.warnings)
