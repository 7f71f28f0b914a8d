"""sessionctl.verdict.stats against scipy (a test-only dependency) on many random inputs."""

from __future__ import annotations

import math
import random
import warnings

import pytest

from sessionctl.verdict import distributions as dist
from sessionctl.verdict import stats as st

scipy_stats = pytest.importorskip("scipy.stats")
np = pytest.importorskip("numpy")


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter(
        "ignore"
    )  # scipy warns about small samples; the numbers are what we check


def test_t_quantiles_and_tails_match_scipy() -> None:
    rng = random.Random(1)
    for _ in range(1500):
        df = rng.choice([1, 2, 3, 4, 5, 7, 10, 30, 100, 1000, 1e5, rng.uniform(0.5, 60)])
        p = rng.choice([rng.random(), 0.975, 0.8, 0.995, 1e-6, 1 - 1e-7, 0.5 + 1e-4])
        want = float(scipy_stats.t.ppf(p, df))
        assert dist.t_ppf(p, df) == pytest.approx(want, rel=1e-8, abs=1e-10), (p, df)
        t = rng.gauss(0, 6)
        assert dist.t_sf(t, df) == pytest.approx(
            float(scipy_stats.t.sf(t, df)), rel=1e-8, abs=1e-300
        )
        assert dist.t_cdf(t, df) == pytest.approx(
            float(scipy_stats.t.cdf(t, df)), rel=1e-8, abs=1e-300
        )
        assert dist.t_pdf(t, df) == pytest.approx(float(scipy_stats.t.pdf(t, df)), rel=1e-9)


def test_normal_quantile_and_betainc_match_scipy() -> None:
    from scipy import special

    rng = random.Random(2)
    for _ in range(1000):
        p = rng.random() ** rng.choice([1, 4, 16])
        assert dist.norm_ppf(p) == pytest.approx(
            float(scipy_stats.norm.ppf(p)), rel=1e-13, abs=1e-13
        )
        a, b, x = rng.uniform(0.1, 50), rng.uniform(0.1, 50), rng.random()
        assert dist.betainc(a, b, x) == pytest.approx(
            float(special.betainc(a, b, x)), rel=1e-9, abs=1e-14
        )


def test_paired_t_on_log_ratios_matches_ttest_rel() -> None:
    rng = random.Random(3)
    for _ in range(300):
        n = rng.randint(2, 30)
        a = [1000 * rng.lognormvariate(0, 0.1) for _ in range(n)]
        b = [x * rng.lognormvariate(rng.choice([0, 0.03]), 0.05) for x in a]
        lr = st.log_ratios(a, b)
        got = st.one_sample_t(lr)
        assert got is not None
        ref = scipy_stats.ttest_rel(np.log(b), np.log(a))
        ci = ref.confidence_interval(0.95)
        assert got.p == pytest.approx(float(ref.pvalue), rel=1e-8, abs=1e-15)
        assert got.statistic == pytest.approx(float(ref.statistic), rel=1e-10)
        assert got.low == pytest.approx(float(ci.low), rel=1e-9, abs=1e-12)
        assert got.high == pytest.approx(float(ci.high), rel=1e-9, abs=1e-12)


def test_welch_t_matches_scipy() -> None:
    rng = random.Random(4)
    for _ in range(300):
        x = [rng.gauss(0, rng.uniform(0.1, 3)) for _ in range(rng.randint(2, 9))]
        y = [rng.gauss(0.5, rng.uniform(0.1, 3)) for _ in range(rng.randint(2, 9))]
        got = st.welch_t(x, y)
        assert got is not None
        ref = scipy_stats.ttest_ind(y, x, equal_var=False)
        ci = ref.confidence_interval(0.95)
        assert got.p == pytest.approx(float(ref.pvalue), rel=1e-8, abs=1e-15)
        assert (got.low, got.high) == pytest.approx((float(ci.low), float(ci.high)), rel=1e-8)


def test_wilcoxon_exact_matches_scipy_without_ties() -> None:
    rng = random.Random(5)
    for _ in range(300):
        d = [rng.gauss(0.3, 1) for _ in range(rng.randint(1, 25))]
        got = st.wilcoxon_signed_rank(d)
        ref = scipy_stats.wilcoxon(d, zero_method="pratt", method="exact")
        assert got is not None and got.method == "exact"
        assert got.statistic == float(ref.statistic)
        assert got.p == pytest.approx(float(ref.pvalue), abs=1e-14)


def test_wilcoxon_exact_with_ties_and_zeros_matches_exhaustive_permutation() -> None:
    rng = random.Random(6)
    for _ in range(25):
        d = [
            rng.choice([0, 0, 1, -1, 2, 2, -3, 0.5, rng.gauss(0, 2)])
            for _ in range(rng.randint(2, 9))
        ]
        got = st.wilcoxon_signed_rank(d)
        ref = scipy_stats.wilcoxon(
            d, zero_method="pratt", method=scipy_stats.PermutationMethod(n_resamples=np.inf)
        )
        assert got is not None
        assert got.p == pytest.approx(float(ref.pvalue), abs=1e-12), d


def test_wilcoxon_normal_approximation_matches_scipy_asymptotic() -> None:
    rng = random.Random(7)
    for _ in range(200):
        d = [
            rng.choice([0, 1, -1, 2, 3, -2.5, rng.gauss(0.2, 1)])
            for _ in range(rng.randint(26, 90))
        ]
        got = st.wilcoxon_signed_rank(d)
        ref = scipy_stats.wilcoxon(d, zero_method="pratt", method="asymptotic", correction=True)
        assert got is not None and got.method == "normal"
        assert got.statistic == float(ref.statistic)
        assert got.p == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-14)


def test_rank_sum_matches_mannwhitneyu() -> None:
    rng = random.Random(8)
    for _ in range(150):
        x = [rng.gauss(0, 1) for _ in range(rng.randint(1, 7))]
        y = [rng.gauss(0.7, 1) for _ in range(rng.randint(1, 7))]
        got = st.mann_whitney(x, y)
        assert got is not None
        assert got.p == pytest.approx(
            float(scipy_stats.mannwhitneyu(x, y, method="exact").pvalue), abs=1e-13
        )
    for _ in range(
        80
    ):  # ties: our exact conditional distribution vs scipy's exhaustive permutation
        x = [rng.choice([1, 2, 3, 3, 4]) for _ in range(rng.randint(2, 6))]
        y = [rng.choice([2, 3, 4, 5]) for _ in range(rng.randint(2, 6))]
        got = st.mann_whitney(x, y)
        ref = scipy_stats.mannwhitneyu(
            x, y, method=scipy_stats.PermutationMethod(n_resamples=np.inf)
        )
        assert got is not None and got.p == pytest.approx(float(ref.pvalue), abs=1e-12)
    for _ in range(80):  # large samples: normal approximation with tie and continuity correction
        x = [rng.choice([1, 2, 3, rng.random()]) for _ in range(rng.randint(16, 40))]
        y = [rng.choice([2, 3, 4, rng.random()]) for _ in range(rng.randint(16, 40))]
        got = st.mann_whitney(x, y)
        ref = scipy_stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=True)
        assert got is not None and got.method == "normal"
        assert got.p == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-14)


def test_spearman_t_approximation_matches_scipy_beyond_the_exact_range() -> None:
    rng = random.Random(9)
    for _ in range(150):
        n = rng.randint(st.EXACT_SPEARMAN_MAX + 1, 25)
        x = list(range(n))
        y = [rng.choice([rng.gauss(0, 1), 1.0]) + rng.uniform(0, 0.3) * i for i in range(n)]
        got = st.spearman(x, y)
        if got is None:
            continue
        ref = scipy_stats.spearmanr(x, y)
        assert got.rho == pytest.approx(float(ref.statistic), abs=1e-12)
        if abs(got.rho) < 1 - 1e-9:
            assert got.method == "t"
            assert got.p == pytest.approx(float(ref.pvalue), rel=1e-8, abs=1e-13)


def test_spearman_exact_matches_scipy_permutation_test() -> None:
    rng = random.Random(13)
    for _ in range(10):
        n = rng.randint(3, 6)  # scipy calls the statistic once per ordering: keep n! small
        x = [float(i) for i in range(n)]
        y = [rng.choice([rng.gauss(0, 1), 0.5, 1.0]) for _ in range(n)]
        got = st.spearman(x, y)
        if got is None:
            continue
        ref = scipy_stats.permutation_test(  # one sample: only y is reordered (n! pairings)
            (y,),
            lambda b, x=x: scipy_stats.spearmanr(x, b).statistic,
            permutation_type="pairings",
            n_resamples=np.inf,
            vectorized=False,
        )
        assert got.method == "exact" and got.rho == pytest.approx(float(ref.statistic))
        assert got.p == pytest.approx(float(ref.pvalue), abs=1e-9), (x, y)


def test_bca_bootstrap_agrees_with_scipy_within_resampling_noise() -> None:
    rng = random.Random(10)
    for _ in range(5):
        d = [rng.lognormvariate(0, 0.5) - 1 for _ in range(rng.randint(8, 15))]
        lo, hi = st.bootstrap_ci([d], st.mean, n_resamples=20000, seed=rng.randint(0, 10**6)) or (
            0,
            0,
        )
        ref = scipy_stats.bootstrap(
            (np.array(d),), np.mean, method="BCa", n_resamples=20000, rng=np.random.default_rng(0)
        ).confidence_interval
        tol = 0.05 * st.sample_sd(d)  # two independent resamplings differ by a little
        assert lo == pytest.approx(float(ref.low), abs=tol)
        assert hi == pytest.approx(float(ref.high), abs=tol)


def test_two_sample_bca_agrees_with_scipy() -> None:
    rng = random.Random(11)
    x = [rng.gauss(0, 1) for _ in range(10)]
    y = [rng.gauss(1, 2) for _ in range(12)]
    got = st.bootstrap_ci([x, y], lambda a, b: st.mean(b) - st.mean(a), n_resamples=20000, seed=3)
    ref = scipy_stats.bootstrap(
        (np.array(x), np.array(y)),
        lambda a, b, axis=-1: np.mean(b, axis=axis) - np.mean(a, axis=axis),
        method="BCa",
        n_resamples=20000,
        rng=np.random.default_rng(1),
    ).confidence_interval
    assert got is not None
    assert got[0] == pytest.approx(float(ref.low), abs=0.08)
    assert got[1] == pytest.approx(float(ref.high), abs=0.08)


def test_mde_uses_t_quantiles_like_scipy() -> None:
    for n in (2, 3, 6, 10, 40):
        se = 0.05 / math.sqrt(n)
        want = (scipy_stats.t.ppf(0.975, n - 1) + scipy_stats.t.ppf(0.8, n - 1)) * se
        assert st.mde(se, n - 1) == pytest.approx(float(want), rel=1e-9)


def test_order_effect_matches_ols_regression() -> None:
    rng = random.Random(12)
    for _ in range(50):
        n = rng.randint(4, 20)
        s = [rng.random() < 0.5 for _ in range(n)]  # noisy: the t test, never the exact fallback
        s[0], s[1] = True, False
        lr = [0.02 + (0.04 if b else -0.04) + rng.gauss(0, 0.02) for b in s]
        got = st.order_effect(lr, s)
        ref = scipy_stats.linregress([1.0 if b else -1.0 for b in s], lr)
        assert got is not None
        assert got.log_effect == pytest.approx(float(ref.slope), rel=1e-9)
        assert got.p == pytest.approx(float(ref.pvalue), rel=1e-7, abs=1e-15)


def test_generalized_esd_matches_a_numpy_implementation() -> None:
    def esd(x: list[float], r: int, alpha: float) -> list[int]:
        idx, out, k = np.arange(len(x)), [], 0
        arr = np.asarray(x)
        for i in range(1, r + 1):
            sub = arr[idx]
            dev = np.abs(sub - sub.mean())
            j = int(np.argmax(dev))
            n = len(x)
            t = scipy_stats.t.ppf(1 - alpha / (2 * (n - i + 1)), n - i - 1)
            lam = (n - i) * t / np.sqrt((n - i - 1 + t**2) * (n - i + 1))
            if dev[j] / sub.std(ddof=1) > lam:
                k = i
            out.append(int(idx[j]))
            idx = np.delete(idx, j)
        return out[:k]

    rng = random.Random(14)
    hits = 0
    for _ in range(200):
        n = rng.randint(3, 30)
        x = [rng.gauss(0, 1) * (1 if rng.random() > 0.15 else 5) for _ in range(n)]
        r = max(1, n // 4)
        got = st.outliers(x)
        assert got == esd(x, r, 0.05 / r), x
        hits += bool(got)
    assert hits > 20  # the comparison saw flagged samples, not only empty lists


@pytest.mark.parametrize(("k", "n"), [(0, 40), (1, 40), (2, 80), (39, 40), (40, 40), (7, 13)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    ref = scipy_stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert st.wilson(k, n) == pytest.approx((ref.low, ref.high), abs=1e-12)
