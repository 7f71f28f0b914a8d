"""sessionctl.verdict.stats on small cases computed by hand (and by brute-force enumeration)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from sessionctl.verdict import distributions as dist
from sessionctl.verdict import stats as st


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
    assert dist.norm_ppf(0.975) == pytest.approx(1.959963984540054, rel=1e-14)
    assert dist.t_ppf(0.975, 1) == pytest.approx(12.706204736174698, rel=1e-12)
    assert dist.t_ppf(0.975, 2) == pytest.approx(4.302652729749462, rel=1e-12)
    assert dist.t_ppf(0.975, 10) == pytest.approx(2.228138851986274, rel=1e-10)
    assert dist.t_ppf(0.025, 5) == pytest.approx(-2.570581835636315, rel=1e-10)
    assert dist.t_ppf(0.5, 7) == 0.0
    # df = 2 has a closed form: sf(t) = (1 - t / sqrt(t^2 + 2)) / 2
    assert dist.t_sf(1.5, 2) == pytest.approx((1 - 1.5 / math.sqrt(1.5**2 + 2)) / 2, rel=1e-13)


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


def _rho(x: list[float], y: list[float]) -> float:
    """Pearson correlation of mid-ranks, written out (independent of st.spearman)."""
    rx, ry = st.ranks(x), st.ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    return sxy / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))


def _brute_spearman_p(x: list[float], y: list[float]) -> float:
    """Two-sided permutation p of rho over all n! orderings of y (2 * the smaller tail)."""
    obs = _rho(x, y)
    vals = [_rho(x, list(perm)) for perm in itertools.permutations(y)]
    low = sum(1 for r in vals if r <= obs + 1e-12) / len(vals)
    high = sum(1 for r in vals if r >= obs - 1e-12) / len(vals)
    return min(1.0, 2 * min(low, high))


def test_spearman_by_hand() -> None:
    # rho = 1 with 4 points: 1 of the 4! orderings, two-sided 2/24 (the t approximation said 0)
    c = st.spearman([1, 2, 3, 4], [10, 20, 30, 40])
    assert c is not None and c.rho == 1 and c.p == pytest.approx(2 / 24) and c.method == "exact"
    c = st.spearman([1, 2, 3, 4], [40, 30, 20, 10])
    assert c is not None and c.rho == -1 and c.p == pytest.approx(2 / 24)
    c = st.spearman([1, 2, 3], [1, 2, 3])
    assert c is not None and c.p == pytest.approx(2 / 6)
    c = st.spearman([1, 2, 3, 4], [1, 3, 2, 4])  # d^2 = 2: rho = 1 - 6*2/(4*15) = 0.8
    # rho >= 0.8: the identity and the 3 adjacent swaps, 4 of 24 each side
    assert c is not None and c.rho == pytest.approx(0.8) and c.p == pytest.approx(8 / 24)
    c = st.spearman(list(range(5)), [1.0, 2.0, 3.0, 4.0, 5.0])
    assert c is not None and c.p == pytest.approx(2 / 120)  # five points can reach p < 0.05
    assert st.spearman([1, 2, 3], [5, 5, 5]) is None


def test_spearman_exact_equals_enumeration_with_ties() -> None:
    rng = random.Random(3)
    for _ in range(40):
        n = rng.randint(3, 7)
        x = (
            [float(i) for i in range(n)]
            if rng.random() < 0.5
            else [rng.choice([1, 2, 3]) for _ in range(n)]
        )
        y = [rng.choice([1.0, 2.0, 2.0, 3.0, rng.random()]) for _ in range(n)]
        got = st.spearman(x, y)
        if got is None:
            continue
        assert got.method == "exact" and got.p == pytest.approx(_brute_spearman_p(x, y), abs=1e-12)


def test_spearman_perfect_rank_beyond_the_exact_range() -> None:
    n = st.EXACT_SPEARMAN_MAX + 2
    c = st.spearman(list(range(n)), [2.0 * i for i in range(n)])
    assert c is not None and c.p == pytest.approx(2 / math.factorial(n)) and c.p > 0
    c = st.spearman([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    assert (
        c is not None and c.rho == pytest.approx(1) and c.p == pytest.approx(4 / math.factorial(12))
    )


def test_order_effect_recovers_second_run_gain() -> None:
    b_second = [True, False, False, True, True, False]
    lr = [0.10 + (0.06 if s else -0.06) for s in b_second]  # effect 10 %, second run +6 %
    oe = st.order_effect(lr, b_second)
    # No residual spread: t is infinite, the exact p of a perfect 3/3 split is 2 / C(6, 3)
    assert oe is not None and oe.log_effect == pytest.approx(0.06) and oe.balanced
    assert oe.p == pytest.approx(2 / 20)
    eight = [*b_second, True, False]
    oe8 = st.order_effect([0.10 + (0.06 if s else -0.06) for s in eight], eight)
    assert oe8 is not None and oe8.p == pytest.approx(2 / 70)
    assert st.order_effect(lr, [True] * 6) is None
    unbalanced = st.order_effect([0.1, 0.2, 0.1, 0.11], [True, True, True, False])
    assert unbalanced is not None and not unbalanced.balanced
    flat = st.order_effect([0.1] * 4, [True, False, True, False])
    assert flat is not None and flat.p == 1.0


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


# Rosner (1983), also the NIST/SEMATECH e-Handbook's generalized ESD example: with up to 10
# outliers at alpha 0.05 per step, R_1 = 3.118 < 3.159 and R_2 = 2.942 < 3.155, but
# R_3 = 3.179 > 3.150: three outliers (6.01, 5.42, 5.34), the first two masked by the third.
ROSNER = [
    -0.25, 0.68, 0.94, 1.15, 1.20, 1.26, 1.26, 1.34, 1.38, 1.43, 1.49, 1.49, 1.55, 1.56, 1.58,
    1.65, 1.69, 1.70, 1.76, 1.77, 1.81, 1.91, 1.94, 1.96, 1.99, 2.06, 2.09, 2.10, 2.14, 2.15,
    2.23, 2.24, 2.26, 2.35, 2.37, 2.40, 2.47, 2.54, 2.62, 2.64, 2.90, 2.92, 2.92, 2.93, 3.21,
    3.26, 3.30, 3.59, 3.68, 4.30, 4.64, 5.34, 5.42, 6.01,
]  # fmt: skip


def test_generalized_esd_reproduces_rosner() -> None:
    found = st.outliers(ROSNER, max_outliers=10, step_alpha=0.05)
    assert [ROSNER[i] for i in found] == [6.01, 5.42, 5.34]


def test_outliers_are_counted() -> None:
    assert st.outliers([1.0, 1.1, 0.9, 1.05, 10.0]) == [4]
    assert st.outliers([1.0, 1.0, 1.0, 1.0, 5.0]) == [4]
    assert st.outliers([1.0, 1.0, 1.0]) == []
    assert st.outliers([1.0, 2.0]) == []
    planted = [1.0, 1.02, 0.99, 1.01, 0.98, 1.0, 1.03, 0.97, 5.0, -3.0]
    assert sorted(st.outliers(planted)) == [8, 9]  # n // 4 = 2 candidates, both found


def test_outliers_rarely_flag_clean_small_samples() -> None:
    # The old modified z-score rule flagged 12-28 % of clean normal samples of 3-12 runs.
    rng = random.Random(4)
    for n in (3, 4, 6, 9):
        flagged = sum(bool(st.outliers([rng.gauss(0, 1) for _ in range(n)])) for _ in range(800))
        assert flagged <= 0.08 * 800, (n, flagged)


def _closed_testing(ps: list[float], alpha: float) -> set[int]:
    """Holm by its definition as a closed test: reject H_i when every intersection hypothesis
    containing i is rejected by Bonferroni (min p in S <= alpha / |S|)."""
    m = len(ps)
    out = set()
    for i in range(m):
        subsets = (
            s for k in range(1, m + 1) for s in itertools.combinations(range(m), k) if i in s
        )
        if all(min(ps[j] for j in s) <= alpha / len(s) for s in subsets):
            out.add(i)
    return out


def test_holm_by_hand() -> None:
    adjusted = st.holm([0.01, 0.04, None, 0.03, 0.2])
    # sorted 0.01, 0.03, 0.04, 0.2 (m = 4): 4 * 0.01, 3 * 0.03, max(0.09, 2 * 0.04), 0.2
    assert adjusted == pytest.approx([0.04, 0.09, None, 0.09, 0.2])  # type: ignore[arg-type]
    assert adjusted[2] is None
    assert st.holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert st.holm([0.02]) == [0.02]
    assert st.holm([]) == []


def test_holm_rejects_exactly_what_closed_testing_rejects() -> None:
    rng = random.Random(11)
    for _ in range(300):
        m = rng.randint(1, 6)
        ps = [rng.random() ** 3 for _ in range(m)]  # many small p-values
        adjusted = st.holm(ps)
        for alpha in (0.01, 0.05, 0.1):
            by_holm = {i for i, p in enumerate(adjusted) if p is not None and p <= alpha}
            assert by_holm == _closed_testing(ps, alpha), (ps, alpha)
