"""histogram_quantile against Prometheus' own expectations, and against an independent port.

Expected numbers are hand-transcribed from prometheus/prometheus @ d15adb9ad7e5 (v3.14.0):
``promql/promqltest/testdata/histograms.test`` (classic ``*_bucket`` evaluations; the ``load``
series are evaluated at 50m, i.e. 10 increments, or at 7m for testhistogram2) and
``promql/quantile_test.go`` (TestBucketQuantile_ForcedMonotonicity).
"""

from __future__ import annotations

import math
import random

import pytest

from sessionctl.metrics import bucket_quantile, histogram_quantile
from sessionctl.metrics.quantile import almost_equal, parse_go_float

INF = math.inf
NAN = math.nan


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# --- histograms.test -----------------------------------------------------------------------

# testhistogram{start="positive"} at 50m: le 0.1 / .2 / 1e0 / +Inf = 50 / 70 / 110 / 120
TH_POS = [(0.1, 50), (0.2, 70), (1.0, 110), (INF, 120)]
# testhistogram{start="negative"}: le -.2 / -0.1 / 0.3 / +Inf = 10 / 20 / 20 / 30
TH_NEG = [(-0.2, 10), (-0.1, 20), (0.3, 20), (INF, 30)]
# testhistogram3 (no observations in +Inf)
TH3_POS = [(0.0, 0), (0.1, 50), (0.2, 70), (1.0, 110), (INF, 110)]
TH3_NEG = [(-0.25, 0), (-0.2, 10), (-0.1, 20), (0.3, 20), (INF, 20)]
# testhistogram2 at 7m: le 0 / 2 / 4 / 6 / +Inf = 0 / 1 / 2 / 3 / 3
TH2 = [(0.0, 0), (2.0, 1), (4.0, 2), (6.0, 3), (INF, 3)]
# request_duration_seconds increments per 5m, by (job, instance): le 0.1 / 0.2 / +Inf
RDS = {
    ("job1", "ins1"): (1, 3, 4),
    ("job1", "ins2"): (2, 5, 6),
    ("job2", "ins1"): (3, 4, 6),
    ("job2", "ins2"): (4, 7, 9),
}


def rds(keep: object = lambda job, ins: True) -> list[tuple[float, float]]:
    """sum by (le) of the request_duration_seconds rates (10m window, 5m steps: inc/300)."""
    tot = [0.0, 0.0, 0.0]
    for (job, ins), incs in RDS.items():
        if keep(job, ins):  # type: ignore[operator]
            for i, inc in enumerate(incs):
                tot[i] += inc / 300
    return [(0.1, tot[0]), (0.2, tot[1]), (INF, tot[2])]


UPSTREAM = [
    # "Test histogram_quantile, native and classic" (testhistogram3_bucket)
    (0, TH3_POS, 0.0),
    (0.25, TH3_POS, 0.055),
    (0.5, TH3_POS, 0.125),
    (0.75, TH3_POS, 0.45),
    (1, TH3_POS, 1.0),
    (0, TH3_NEG, -0.25),
    (0.25, TH3_NEG, -0.225),
    (0.5, TH3_NEG, -0.2),
    (0.75, TH3_NEG, -0.15),
    (1, TH3_NEG, -0.1),
    # "Quantile too low / too high / invalid"
    (-0.1, TH_POS, -INF),
    (-0.1, TH_NEG, -INF),
    (1.01, TH_POS, INF),
    (1.01, TH_NEG, INF),
    (NAN, TH_POS, NAN),
    (NAN, TH_NEG, NAN),
    # "Quantile value in lowest bucket" / "in highest bucket"
    (0, TH_POS, 0.0),
    (0, TH_NEG, -0.2),
    (1, TH_POS, 1.0),
    (1, TH_NEG, 0.3),
    # "Finally some useful quantiles"
    (0.2, TH_POS, 0.048),
    (0.2, TH_NEG, -0.2),
    (0.5, TH_POS, 0.15),
    (0.5, TH_NEG, -0.15),
    (0.8, TH_POS, 0.72),
    (0.8, TH_NEG, 0.3),
    # "Want results exactly in the middle of the bucket"
    (1.0 / 6.0, TH2, 1.0),
    (0.5, TH2, 3.0),
    (5.0 / 6.0, TH2, 5.0),
    # "A histogram with nonmonotonic bucket counts" (nonmonotonic_bucket at 50m)
    (0.01, [(0.1, 20), (1, 10), (10, 50), (100, 40), (1000, 90), (INF, 80)], 0.0045),
    (0.5, [(0.1, 20), (1, 10), (10, 50), (100, 40), (1000, 90), (INF, 80)], 8.5),
    (0.99, [(0.1, 20), (1, 10), (10, 50), (100, 40), (1000, 90), (INF, 80)], 979.75),
    # empty_bucket / const_histogram: zero observations
    (0.2, [(0.1, 0), (0.2, 0), (INF, 0)], NAN),
    (1.0, [(0.0, 0), (1.0, 0), (2.0, 0), (INF, 0)], NAN),
]


@pytest.mark.parametrize(("q", "buckets", "expected"), UPSTREAM)
def test_upstream_histograms_test(
    q: float, buckets: list[tuple[float, float]], expected: float
) -> None:
    got = histogram_quantile(q, buckets)
    if math.isnan(expected) or math.isinf(expected):
        assert same(got, expected)
    else:
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("q", "keep", "expected"),
    [
        # "Aggregated histogram: Everything in one" (sum by (le))
        (0.3, lambda j, i: True, 0.075),
        (0.5, lambda j, i: True, 0.1277777777777778),
        # "Aggregated histogram: By instance"
        (0.3, lambda j, i: i == "ins1", 0.075),
        (0.3, lambda j, i: i == "ins2", 0.075),
        (0.5, lambda j, i: i == "ins1", 0.1333333333),
        (0.5, lambda j, i: i == "ins2", 0.125),
        # "Aggregated histogram: By job"
        (0.3, lambda j, i: j == "job1", 0.1),
        (0.3, lambda j, i: j == "job2", 0.0642857142857143),
        (0.5, lambda j, i: j == "job1", 0.14),
        (0.5, lambda j, i: j == "job2", 0.1125),
        # "The unaggregated histogram for comparison"
        (0.3, lambda j, i: (j, i) == ("job1", "ins1"), 0.11),
        (0.3, lambda j, i: (j, i) == ("job1", "ins2"), 0.09),
        (0.3, lambda j, i: (j, i) == ("job2", "ins1"), 0.06),
        (0.3, lambda j, i: (j, i) == ("job2", "ins2"), 0.0675),
        (0.5, lambda j, i: (j, i) == ("job1", "ins1"), 0.15),
        (0.5, lambda j, i: (j, i) == ("job1", "ins2"), 0.13333333333333333),
        (0.5, lambda j, i: (j, i) == ("job2", "ins1"), 0.1),
        (0.5, lambda j, i: (j, i) == ("job2", "ins2"), 0.11666666666666667),
    ],
)
def test_upstream_aggregated_rates(q: float, keep: object, expected: float) -> None:
    # promqltest compares floats with a relative epsilon of 1e-6; some expectations are rounded.
    assert histogram_quantile(q, rds(keep)) == pytest.approx(expected, rel=1e-9)


def test_upstream_mixed_le_spellings_are_summed() -> None:
    # mixed_bucket: le "0.2", "2e-1" and "2.0e-1" are one bucket; "+inf" and "+Inf" too.
    ins1 = [("0.1", 1), ("0.2", 1), ("2e-1", 1), ("2.0e-1", 1), ("+Inf", 4)]
    b = [(float(parse_go_float(le) or 0), c / 300) for le, c in ins1]
    assert histogram_quantile(0.5, b) == pytest.approx(0.15, rel=1e-12)
    assert histogram_quantile(0.75, b) == pytest.approx(0.2, rel=1e-12)
    assert histogram_quantile(1, b) == pytest.approx(0.2, rel=1e-12)
    ins2 = [(float(parse_go_float("+inf") or 0), 0.0), (float(parse_go_float("+Inf") or 0), 0.0)]
    assert math.isnan(histogram_quantile(0.5, ins2))  # one bucket after coalescing


def test_nonmonotonic_is_flagged() -> None:
    r = bucket_quantile(0.5, [(0.1, 20), (1, 10), (10, 50), (100, 40), (1000, 90), (INF, 80)])
    assert r.value == 8.5 and r.forced_monotonic and not r.fixed_precision


# --- quantile_test.go: TestBucketQuantile_ForcedMonotonicity --------------------------------

FORCED: dict[str, tuple[list[tuple[float, float]], bool, dict[float, float]]] = {
    "simple - monotonic": (
        [(10, 10), (15, 15), (20, 15), (30, 15), (INF, 15)],
        False,
        {1: 15.0, 0.99: 14.85, 0.9: 13.5, 0.5: 7.5},
    ),
    "simple - non-monotonic middle": (
        [(10, 10), (15, 15), (20, 15.00000000001), (30, 15), (INF, 15)],
        True,
        {1: 15.0, 0.99: 14.85, 0.9: 13.5, 0.5: 7.5},
    ),
    "real example - monotonic": (
        [
            (1, 6454661.3014166197),
            (5, 8339611.2001912938),
            (10, 14118319.2444762159),
            (25, 14130031.5272856522),
            (50, 46001270.3030008152),
            (64, 46008473.8585563600),
            (80, 46008473.8585563600),
            (100, 46008473.8585563600),
            (250, 46008473.8585563600),
            (1000, 46008473.8585563600),
            (INF, 46008473.8585563600),
        ],
        False,
        {1: 64.0, 0.99: 49.64475715376406, 0.9: 46.39671690938454, 0.5: 31.96098248992002},
    ),
    "real example - non-monotonic": (
        [
            (1, 6454661.3014166225),
            (5, 8339611.2001912957),
            (10, 14118319.2444762159),
            (25, 14130031.5272856504),
            (50, 46001270.3030008227),
            (64, 46008473.8585563824),
            (80, 46008473.8585563898),
            (100, 46008473.8585563824),
            (250, 46008473.8585563824),
            (1000, 46008473.8585563898),
            (INF, 46008473.8585563824),
        ],
        True,
        {1: 64.0, 0.99: 49.64475715376406, 0.9: 46.39671690938454, 0.5: 31.96098248992002},
    ),
    "real example 2 - monotonic": (
        [(0.005, 9.6), (0.01, 9.688888889), (0.025, 9.755555556), (0.05, 9.844444444)]
        + [(ub, 9.888888889) for ub in (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, INF)],
        False,
        {1: 0.1, 0.99: 0.03468750000281261, 0.9: 0.00463541666671875, 0.5: 0.0025752314815104174},
    ),
    "real example 2 - non-monotonic": (
        [(0.005, 9.6), (0.01, 9.688888889), (0.025, 9.755555556), (0.05, 9.844444444)]
        + [(ub, 9.888888889) for ub in (0.1, 0.25, 0.5, 1, 2.5, 5)]
        + [
            (10, 9.888888889001),
            (25, 9.888888889),
            (50, 9.888888888999),
            (100, 9.888888889),
            (INF, 9.888888889),
        ],
        True,
        {1: 0.1, 0.99: 0.03468750000281261, 0.9: 0.00463541666671875, 0.5: 0.0025752314815104174},
    ),
}


@pytest.mark.parametrize("case", sorted(FORCED))
def test_upstream_forced_monotonicity(case: str) -> None:
    buckets, fixed, expected = FORCED[case]
    for q, want in expected.items():
        r = bucket_quantile(q, buckets)
        assert r.forced_monotonic is False
        assert r.fixed_precision is fixed
        assert r.value == pytest.approx(want, rel=1e-12)


# --- the special cases of the reference table ------------------------------------------------


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, [(1.0, 5), (2.0, 10)], NAN),  # no +Inf bucket
        (-1, [(1.0, 5)], -INF),  # q checked before the buckets
        (2, [], INF),
        (0.5, [(INF, 10)], NAN),  # only +Inf
        (0.5, [], NAN),
        (0.0, [(0.1, 0), (1.0, 1), (INF, 1)], NAN),  # q=0 on an empty positive lowest bucket: 0/0
        (0.0, [(0.1, 1), (1.0, 2), (INF, 2)], 0.0),
        (0.1, [(-INF, 5), (0.0, 10), (INF, 10)], -INF),  # lowest bucket ub <= 0: its ub
        (0.7, [(-INF, 5), (0.0, 10), (INF, 10)], NAN),  # -Inf + Inf*f
        (0.5, [(1.0, 5), (2.0, 10), (INF, 10)], 1.0),  # rank equals a count: that ub
        (0.95, [(1.0, 5), (2.0, 10), (INF, 100)], 2.0),  # rank in +Inf: second-highest ub
        (0.5, [(2.0, 10), (INF, 10), (1.0, 5)], 1.0),  # order of the input does not matter
        (0.5, [(1.0, 2), (1.0, 3), (2.0, 10), (INF, 10)], 1.0),  # duplicate le: summed (5)
        (0.25, [(1.0, 0), (2.0, 0), (3.0, 8), (INF, 8)], 2.25),  # runs of empty buckets
    ],
)
def test_special_cases(q: float, buckets: list[tuple[float, float]], expected: float) -> None:
    assert same(histogram_quantile(q, buckets), expected)


def test_small_delta_rule_is_relative_to_the_sum_and_keeps_prev() -> None:
    assert almost_equal(1e12, 1e12 + 1, 1e-12)  # 1/(2e12) < 1e-12
    assert not almost_equal(1e11, 1e11 + 1, 1e-12)
    assert not almost_equal(0.0, 1e-300, 1e-12)
    assert almost_equal(NAN, NAN, 1e-12)
    # a tiny *increase* is flattened too, without an annotation
    r = bucket_quantile(1.0, [(1.0, 1e13), (2.0, 1e13 + 1), (INF, 1e13 + 1)])
    assert r.fixed_precision and not r.forced_monotonic and r.value == 1.0


# --- randomised cross-check against a straightforward, independent implementation ------------


def reference_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Written from the documented semantics, with different data structures and a linear scan."""
    if q != q:
        return NAN
    if q < 0:
        return -INF
    if q > 1:
        return INF
    if not buckets or max(ub for ub, _ in buckets) != INF:
        return NAN
    totals: dict[float, float] = {}
    for ub, c in sorted(buckets, key=lambda b: b[0]):
        totals[ub] = totals.get(ub, 0.0) + c
    bounds = sorted(totals)
    envelope: list[float] = []
    for ub in bounds:  # integer counts: the small-delta rule never applies
        envelope.append(max(totals[ub], envelope[-1]) if envelope else totals[ub])
    if len(bounds) < 2 or envelope[-1] == 0:
        return NAN
    rank = q * envelope[-1]
    for i in range(len(bounds) - 1):
        if envelope[i] >= rank:
            break
    else:
        return bounds[-2]
    if i == 0:
        if bounds[0] <= 0:
            return bounds[0]
        lo, below = 0.0, 0.0
    else:
        lo, below = bounds[i - 1], envelope[i - 1]
    width = envelope[i] - below
    if width == 0:
        return NAN  # only reachable as 0/0 in the lowest bucket
    return lo + (bounds[i] - lo) * ((rank - below) / width)


def test_random_batch_matches_independent_implementation() -> None:
    rnd = random.Random(20240611)
    qs = [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0]
    mismatches = []
    for case in range(3000):
        n = rnd.randint(1, 9)
        pool = [-2.0, -0.5, 0.0, 0.001, 0.01, 0.1, 0.25, 1.0, 2.5, 10.0, 100.0]
        bounds = [rnd.choice(pool) for _ in range(n)]
        if rnd.random() < 0.9:
            bounds.append(INF)
        counts: list[float] = []
        c = 0
        for _ in bounds:
            c += rnd.choice([0, 0, 1, 2, 5, 40])
            if rnd.random() < 0.08:  # a torn / non-monotonic count now and then
                c = max(0, c - rnd.randint(1, 5))
            counts.append(float(c))
        buckets = list(zip(bounds, counts, strict=True))
        rnd.shuffle(buckets)
        for q in [*qs, rnd.random()]:
            got, want = histogram_quantile(q, buckets), reference_quantile(q, buckets)
            if not (same(got, want) or got == pytest.approx(want, rel=1e-12, abs=1e-300)):
                mismatches.append((case, q, buckets, got, want))
    assert not mismatches, mismatches[:3]


# --- Go ParseFloat for le values --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+Inf", INF),
        ("Inf", INF),
        ("inf", INF),
        ("-inf", -INF),
        ("Infinity", INF),
        ("+infinity", INF),
        ("NaN", NAN),
        ("nan", NAN),
        ("+NaN", None),
        ("-NaN", None),
        ("1_000", 1000.0),
        ("0x1p-3", 0.125),
        ("0x10", None),
        ("0b1", None),
        ("infin", None),
        ("1e400", None),
        (" 1", None),
        ("1 ", None),
        ("١", None),
        ("1__0", None),
        ("_1", None),
        ("1", 1.0),
        ("1.0", 1.0),
        ("1e0", 1.0),
        (".2", 0.2),
        ("2e-1", 0.2),
        ("5.", 5.0),
        ("08", 8.0),
        ("0.000128", 0.000128),
        ("-3e3", -3000.0),
    ],
)
def test_parse_go_float(text: str, expected: float | None) -> None:
    got = parse_go_float(text)
    if expected is None:
        assert got is None
    else:
        assert got is not None and same(got, expected)
