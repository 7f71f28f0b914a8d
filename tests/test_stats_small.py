"""sessionctl.stats on small cases computed by hand (and by brute-force enumeration)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from sessionctl import stats as st


def test_descriptive_basics() -> None:
    assert st.geometric_mean([1, 4]) == pytest.approx(2.0)
    assert st.geometric_mean([2, 8, 4]) == pytest.approx(4.0)
    assert st.median([3, 1, 2]) == 2
    assert st.median([4, 1, 3, 2]) == 2.5
    assert st.sample_sd([1, 2, 3]) == pytest.approx(1.0)
    assert st.cv([9, 10, 11]) == pytest.approx(0.1)
    assert st.cv([5]) is None
    assert st.quantile([1, 2, 3, 4], 0.5) == 2.5
    assert st.ranks([10, 20, 10, 30]) == [1.5, 3.0, 1.5, 4.0]
    assert st.log_ratios([100, 200], [110, 100]) == pytest.approx([math.log(1.1), math.log(0.5)])
    with pytest.raises(ValueError):
        st.geometric_mean([1, 0])
    with pytest.raises(ValueError):
        st.log_ratios([1, 2], [1])


def test_known_quantiles() -> None:
    assert st.norm_ppf(0.975) == pytest.approx(1.959963984540054, rel=1e-14)
    assert st.t_ppf(0.975, 1) == pytest.approx(12.706204736174698, rel=1e-12)
    assert st.t_ppf(0.975, 2) == pytest.approx(4.302652729749462, rel=1e-12)
    assert st.t_ppf(0.975, 10) == pytest.approx(2.228138851986274, rel=1e-10)
    assert st.t_ppf(0.025, 5) == pytest.approx(-2.570581835636315, rel=1e-10)
    assert st.t_ppf(0.5, 7) == 0.0
    # df = 2 has a closed form: sf(t) = (1 - t / sqrt(t^2 + 2)) / 2
    assert st.t_sf(1.5, 2) == pytest.approx((1 - 1.5 / math.sqrt(1.5**2 + 2)) / 2, rel=1e-13)


def test_one_sample_t_by_hand() -> None:
    # d = 1, 2, 3: mean 2, sd 1, se 1/sqrt(3), t = 2 sqrt(3), df 2
    r = st.one_sample_t([1.0, 2.0, 3.0])
    assert r is not None
    t = 2 * math.sqrt(3)
    assert r.statistic == pytest.approx(t)
    assert r.p == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-12)
    half = 4.302652729749462 / math.sqrt(3)
    assert (r.low, r.high) == pytest.approx((2 - half, 2 + half))
    assert st.one_sample_t([1.0]) is None
    flat = st.one_sample_t([0.1, 0.1, 0.1])
    assert flat is not None and (flat.low, flat.high, flat.p) == (0.1, 0.1, 0.0)


def _brute_signed_rank_p(d: list[float]) -> float:
    r = st.ranks([abs(x) for x in d])
    obs = sum(ri for ri, x in zip(r, d, strict=True) if x > 0)
    nz = [ri for ri, x in zip(r, d, strict=True) if x != 0]
    sums = [
        sum(w for w, s in zip(nz, signs, strict=True) if s)
        for signs in itertools.product([0, 1], repeat=len(nz))
    ]
    low = sum(1 for s in sums if s <= obs + 1e-9) / len(sums)
    high = sum(1 for s in sums if s >= obs - 1e-9) / len(sums)
    return min(1.0, 2 * min(low, high))


def test_wilcoxon_small_cases_by_hand() -> None:
    w = st.wilcoxon_signed_rank([1, 2, 3, 4, 5])
    assert w is not None and w.p == pytest.approx(2 / 32) and w.statistic == 0
    w = st.wilcoxon_signed_rank([1, -2, 3, 4, 5])  # r- = 2; P(T <= 2) = 3/32
    assert w is not None and w.p == pytest.approx(6 / 32) and w.statistic == 2
    # Pratt: the zero takes rank 1, the others ranks 2, 3, 4; all positive -> P = 1/8 each side
    w = st.wilcoxon_signed_rank([0, 1, 2, 3])
    assert w is not None and w.p == pytest.approx(0.25)
    w = st.wilcoxon_signed_rank([0, -1, 2, 3])  # r+ = 7 of sums {0,2,3,4,5,6,7,9}
    assert w is not None and w.p == pytest.approx(0.5)
    w = st.wilcoxon_signed_rank([1, 1, -1, 2])  # ties: mid-rank 2 for the 1s; r+ = 8 of 10
    assert w is not None and w.p == pytest.approx(0.5)
    w = st.wilcoxon_signed_rank([0, 0, 0])
    assert w is not None and w.p == 1.0
    assert st.wilcoxon_signed_rank([]) is None


def test_wilcoxon_exact_equals_enumeration_with_ties() -> None:
    rng = random.Random(0)
    for _ in range(60):
        d = [rng.choice([0, 1, -1, 2, -2, 3, 0.5]) for _ in range(rng.randint(1, 11))]
        w = st.wilcoxon_signed_rank(d)
        assert w is not None and w.p == pytest.approx(_brute_signed_rank_p(d), abs=1e-12), d


def test_wilcoxon_min_p() -> None:
    assert st.wilcoxon_min_p(5) == pytest.approx(0.0625)
    assert st.wilcoxon_min_p(6) == pytest.approx(0.03125)
    assert st.wilcoxon_min_p(0) == 1.0


def test_rank_sum_by_hand() -> None:
    r = st.mann_whitney([1, 2], [3, 4])  # U = 0 is 1 of C(4,2) = 6 arrangements, two-sided 2/6
    assert r is not None and r.p == pytest.approx(1 / 3) and r.statistic == 4
    r = st.mann_whitney([1, 3], [2, 4])  # rank sum 4: P(<= 4) = 2/6, P(>= 4) = 5/6
    assert r is not None and r.p == pytest.approx(2 / 3)
    assert st.mann_whitney([], [1]) is None


def test_spearman_by_hand() -> None:
    c = st.spearman([1, 2, 3, 4], [10, 20, 30, 40])
    assert c is not None and c.rho == 1 and c.p == 0
    c = st.spearman([1, 2, 3, 4], [1, 3, 2, 4])  # d^2 = 2: rho = 1 - 6*2/(4*15) = 0.8
    assert c is not None and c.rho == pytest.approx(0.8)
    assert st.spearman([1, 2, 3], [5, 5, 5]) is None


def test_order_effect_recovers_second_run_gain() -> None:
    b_second = [True, False, False, True, True, False]
    lr = [0.10 + (0.06 if s else -0.06) for s in b_second]  # effect 10 %, second run +6 %
    oe = st.order_effect(lr, b_second)
    assert oe is not None and oe.log_effect == pytest.approx(0.06) and oe.p == 0.0 and oe.balanced
    assert st.order_effect(lr, [True] * 6) is None
    unbalanced = st.order_effect([0.1, 0.2, 0.1, 0.11], [True, True, True, False])
    assert unbalanced is not None and not unbalanced.balanced


def test_bootstrap_is_seeded_and_sensible() -> None:
    d = [0.05, 0.07, 0.02, 0.04, 0.06, 0.03]
    one = st.bootstrap_ci([d], st.mean, seed=7)
    assert one == st.bootstrap_ci([d], st.mean, seed=7)
    assert one != st.bootstrap_ci([d], st.mean, seed=8)
    assert one is not None and one[0] < st.mean(d) < one[1]
    assert min(d) <= one[0] and one[1] <= max(d)
    assert st.bootstrap_ci([[0.1, 0.1, 0.1]], st.mean) == (0.1, 0.1)
    assert st.bootstrap_ci([[0.1]], st.mean) is None


def test_mde_and_units_needed() -> None:
    # sd 0.1 over 10 pairs: (t_.975,9 + t_.8,9) * 0.1 / sqrt(10)
    assert st.mde(0.1 / math.sqrt(10), 9) == pytest.approx(
        (2.2621571627409915 + 0.8834038596544662) * 0.1 / math.sqrt(10)
    )
    n = st.units_needed(0.05**2, math.log(1.02))
    assert n is not None
    assert (
        st.mde(0.05 / math.sqrt(n), n - 1)
        <= math.log(1.02)
        < st.mde(0.05 / math.sqrt(n - 1), n - 2)
    )
    assert st.units_needed(0.0, 0.02) == 2
    assert st.units_needed(1.0, 1e-6, limit=1000) is None
    per_side = st.units_needed(2 * 0.05**2, math.log(1.02), groups=2)
    assert per_side is not None and per_side > n


def test_mad_outliers_are_counted() -> None:
    assert st.mad_outliers([1.0, 1.1, 0.9, 1.05, 10.0]) == [4]
    assert st.mad_outliers([1.0, 1.0, 1.0, 1.0, 5.0]) == [
        4
    ]  # MAD 0: mean absolute deviation stands in
    assert st.mad_outliers([1.0, 1.0, 1.0]) == []
    assert st.mad_outliers([1.0, 2.0]) == []
