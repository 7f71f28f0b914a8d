"""Statistics for honest verdicts, in pure Python (numpy/scipy are test-only dependencies).

Everything here works on *runs* (or pairs of runs), never on individual requests: a run's QPS or
its p99 is one observation. Effects are analysed on the log scale, where a ratio becomes a
difference and a geometric mean becomes an arithmetic one.

Choices, documented once (the t and normal distributions are in ``verdict.distributions``):

- Wilcoxon signed-rank: zeros handled per **Pratt** (zeros take part in the ranking, then
  contribute to neither signed sum), ties get mid-ranks. For n <= 25 the p-value is *exact*: the
  permutation distribution of the signed-rank sum conditional on the observed ranks (integer
  arithmetic on doubled ranks, so ties and zeros stay exact). Beyond, the normal approximation
  with Pratt's mean/variance adjustment (Cureton 1967), tie correction and continuity correction
  (scipy's ``method='asymptotic', zero_method='pratt', correction=True``).
- Wilcoxon rank-sum (Mann-Whitney) for unpaired data: exact conditional distribution for
  N <= 30, else the normal approximation with tie and continuity correction.
- Spearman's rho: for n <= 10 the p-value is *exact*, from the distribution of the rank
  cross-product over all n! pairings (ties kept as mid-ranks); the t approximation is badly
  anti-conservative there (it gives p = 0 for rho = ±1 with 4 points, where the exact p is
  2/4! = 0.083). Beyond, scipy's t approximation, except that rho = ±1 (infinite t) gets the
  exact probability of the extreme pairings, ``2 * prod(ties!) / n!``.
- Order effect: OLS of the per-pair log ratio on the order (t test on the slope); when the
  residuals are all zero (quantized values) t is infinite, and the exact permutation p of the
  two order groups, ``2 / C(n, k)``, stands in.
- Two-sided exact p-values are ``2 * min(lower tail, upper tail)``, at most 1.
- Bootstrap: resampling whole pairs (or each side's runs) with ``random.Random(seed)``; the
  interval is **BCa** (bias-corrected and accelerated; jackknife acceleration as in scipy; in
  the bias correction, resamples equal to the estimate count half, which matters with few
  pairs); when every resample lands on one side of the estimate BCa is undefined and the
  percentile interval is used instead.
- Minimum detectable effect: ``(t_{1-alpha/2,df} + t_{power,df}) * se`` (the usual
  non-central-t approximation), alpha = 0.05, power = 0.8.
- Several metrics judged together (one comparison's QPS, p50 and p99): **Holm**'s step-down
  adjustment of their p-values, so the chance that *any* of them claims a direction that is not
  there stays at most alpha whatever their correlation (QPS and per-run latency move together).
- Outliers: the generalized ESD test (Rosner 1983) for up to ``max(1, n // 4)`` outliers, each
  of the r steps at alpha / r, so clean normal data of any size get a false flag in at most
  about 5 % of samples (the modified z-score rule used before flagged 12-28 % of clean samples
  of 3-12 runs). Outliers are counted, never dropped.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sessionctl.verdict.distributions import norm_cdf, norm_ppf, norm_sf, t_ppf, t_sf

ALPHA = 0.05
POWER = 0.8
EXACT_WILCOXON_MAX = 25
EXACT_RANKSUM_MAX = 30
EXACT_SPEARMAN_MAX = 10  # the exact distribution takes ~25 ms at n = 10 (cached per rank shape)

# --- descriptive ----------------------------------------------------------------------------


def mean(xs: Sequence[float]) -> float:
    """Arithmetic mean (exactly the value when all values are equal)."""
    first = xs[0]
    if all(x == first for x in xs):
        return float(first)
    return math.fsum(xs) / len(xs)


def fast_mean(xs: Sequence[float]) -> float:
    """Plain mean (no compensated summation): the bootstrap's inner loop."""
    return sum(xs) / len(xs)


def sample_sd(xs: Sequence[float]) -> float:
    """Sample standard deviation (n - 1 denominator); 0 for fewer than two values."""
    n = len(xs)
    if n < 2 or all(x == xs[0] for x in xs):
        return 0.0
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (n - 1))


def median(xs: Sequence[float]) -> float:
    """Median (mean of the middle two for even n)."""
    s = sorted(xs)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def quantile(xs: Sequence[float], q: float) -> float:
    """The q-quantile, linear between order statistics (type 7, numpy's default)."""
    s = sorted(xs)
    h = (len(s) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def cv(xs: Sequence[float]) -> float | None:
    """Coefficient of variation (sample sd / mean); None with fewer than two values."""
    if len(xs) < 2:
        return None
    m = mean(xs)
    return sample_sd(xs) / abs(m) if m else None


def geometric_mean(xs: Sequence[float]) -> float:
    """Geometric mean of positive values."""
    if not xs or any(not x > 0 or math.isinf(x) for x in xs):
        raise ValueError("geometric mean needs finite positive values")
    return math.exp(mean([math.log(x) for x in xs]))


def log_ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """``ln(b_i / a_i)`` per pair; the mean of these is the log of the ratio of geometric means."""
    if len(a) != len(b):
        raise ValueError(f"pairs need equal lengths, got {len(a)} and {len(b)}")
    if any(not x > 0 or math.isinf(x) for x in (*a, *b)):
        raise ValueError("log ratios need finite positive values")
    return [math.log(y) - math.log(x) for x, y in zip(a, b, strict=True)]


def ranks(xs: Sequence[float]) -> list[float]:
    """1-based ranks with ties given their average rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        r = (i + j) / 2 + 1
        for k in range(i, j + 1):
            out[order[k]] = r
        i = j + 1
    return out


def _tie_sizes(xs: Sequence[float]) -> list[int]:
    counts: dict[float, int] = {}
    for x in xs:
        counts[x] = counts.get(x, 0) + 1
    return list(counts.values())


# --- tests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TTest:
    """A t-based estimate (mean, or difference of means), its standard error, test and interval."""

    estimate: float
    se: float
    df: float
    statistic: float
    p: float
    low: float
    high: float


def _t_result(est: float, se: float, df: float, alpha: float) -> TTest:
    if se == 0:
        # No spread at all: the estimate is exact; scipy returns nan here, we decide.
        stat = math.copysign(math.inf, est) if est else math.nan
        return TTest(est, 0.0, df, stat, 0.0 if est else 1.0, est, est)
    stat = est / se
    half = t_ppf(1 - alpha / 2, df) * se
    return TTest(est, se, df, stat, min(1.0, 2 * t_sf(abs(stat), df)), est - half, est + half)


def one_sample_t(d: Sequence[float], *, alpha: float = ALPHA) -> TTest | None:
    """Paired t on differences ``d`` (e.g. log ratios): mean, p for mean == 0, and CI."""
    n = len(d)
    if n < 2:
        return None
    return _t_result(mean(d), sample_sd(d) / math.sqrt(n), n - 1, alpha)


def welch_t(x: Sequence[float], y: Sequence[float], *, alpha: float = ALPHA) -> TTest | None:
    """Welch's t for ``mean(y) - mean(x)`` with Welch-Satterthwaite degrees of freedom."""
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        return None
    v1, v2 = sample_sd(x) ** 2 / n1, sample_sd(y) ** 2 / n2
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1)) if se else float(n1 + n2 - 2)
    return _t_result(mean(y) - mean(x), se, df, alpha)


@dataclass(frozen=True)
class RankTest:
    """A rank test's statistic, two-sided p-value and which distribution gave it."""

    statistic: float
    p: float
    method: str  # 'exact' | 'normal'


def _subset_sum_counts(weights: Sequence[int]) -> list[int]:
    """Number of sign assignments (subsets) reaching each sum of integer weights."""
    counts = [1] + [0] * sum(weights)
    top = 0
    for w in weights:
        top += w
        for s in range(top, w - 1, -1):
            counts[s] += counts[s - w]
    return counts


def _two_sided(counts: Sequence[int], observed: int) -> float:
    total = sum(counts)
    low = sum(counts[: observed + 1])
    high = sum(counts[observed:])
    return min(1.0, 2 * min(low, high) / total)


def wilcoxon_signed_rank(d: Sequence[float]) -> RankTest | None:
    """Two-sided Wilcoxon signed-rank test of ``d`` against 0 (Pratt zeros; exact for n <= 25)."""
    n = len(d)
    if n == 0:
        return None
    r = ranks([abs(x) for x in d])
    r_plus = math.fsum(ri for ri, x in zip(r, d, strict=True) if x > 0)
    r_minus = math.fsum(ri for ri, x in zip(r, d, strict=True) if x < 0)
    nonzero = [ri for ri, x in zip(r, d, strict=True) if x != 0]
    stat = min(r_plus, r_minus)
    if not nonzero:
        return RankTest(stat, 1.0, "exact")
    if n <= EXACT_WILCOXON_MAX:
        counts = _subset_sum_counts([round(2 * ri) for ri in nonzero])
        return RankTest(stat, _two_sided(counts, round(2 * r_plus)), "exact")
    n0 = n - len(nonzero)
    mn = n * (n + 1) / 4 - n0 * (n0 + 1) / 4
    var = float(n * (n + 1) * (2 * n + 1) - n0 * (n0 + 1) * (2 * n0 + 1))
    var -= sum(t**3 - t for t in _tie_sizes([abs(x) for x in d if x != 0])) / 2
    se = math.sqrt(var / 24)
    z = (r_plus - mn) / se
    z -= math.copysign(0.5 / se, z) if z else 0.0
    return RankTest(stat, min(1.0, 2 * norm_sf(abs(z))), "normal")


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> RankTest | None:
    """Two-sided Wilcoxon rank-sum (Mann-Whitney U) test; exact for N <= 30 total runs."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return None
    r = ranks([*x, *y])
    u1 = math.fsum(r[:n1]) - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    if n1 + n2 <= EXACT_RANKSUM_MAX:
        # counts[k][s]: ways to pick k of the runs with doubled-rank sum s (ties stay exact)
        w = [round(2 * ri) for ri in r]
        counts = [[0] * (sum(w) + 1) for _ in range(n1 + 1)]
        counts[0][0] = 1
        for wi in w:
            for k in range(n1, 0, -1):
                row, prev = counts[k], counts[k - 1]
                for s in range(len(row) - 1, wi - 1, -1):
                    if prev[s - wi]:
                        row[s] += prev[s - wi]
        return RankTest(u, _two_sided(counts[n1], round(2 * math.fsum(r[:n1]))), "exact")
    nn = n1 + n2
    ties = sum(t**3 - t for t in _tie_sizes([*x, *y]))
    sd = math.sqrt(n1 * n2 / 12 * ((nn + 1) - ties / (nn * (nn - 1))))
    if sd == 0:
        return RankTest(u, 1.0, "normal")
    z = (u - n1 * n2 / 2 - 0.5) / sd
    return RankTest(u, min(1.0, 2 * norm_sf(z)), "normal")


def wilcoxon_min_p(n: int) -> float:
    """Smallest two-sided p the exact signed-rank test can reach with ``n`` nonzero pairs."""
    return min(1.0, 2 / 2**n) if n else 1.0


@dataclass(frozen=True)
class Correlation:
    """A rank correlation, its two-sided p-value and which distribution gave it."""

    rho: float
    p: float
    method: str = "t"  # 'exact' | 't'


@lru_cache(maxsize=32)
def _pairing_sums(wx: tuple[int, ...], wy: tuple[int, ...]) -> dict[int, int]:
    """How many of the n! pairings of ``wy`` with ``wx`` reach each cross-product sum."""
    n = len(wx)
    layer: dict[int, dict[int, int]] = {0: {0: 1}}  # set of used wy (bit mask) -> sum -> count
    for w in wx:
        nxt: dict[int, dict[int, int]] = {}
        for mask, sums in layer.items():
            for j in range(n):
                if mask >> j & 1:
                    continue
                add, out = w * wy[j], nxt.setdefault(mask | 1 << j, {})
                for total, count in sums.items():
                    out[total + add] = out.get(total + add, 0) + count
        layer = nxt
    return layer[(1 << n) - 1]


def spearman(x: Sequence[float], y: Sequence[float]) -> Correlation | None:
    """Spearman's rho; exact p for n <= 10, the t approximation beyond; None if undefined."""
    n = len(x)
    if n < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = mean(rx), mean(ry)
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = math.fsum((a - mx) ** 2 for a in rx)
    syy = math.fsum((b - my) ** 2 for b in ry)
    rho = max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
    if n <= EXACT_SPEARMAN_MAX:
        # rho is increasing in sum(rx * ry) over the pairings: count on doubled (integer) ranks.
        wx, wy = [round(2 * r) for r in rx], [round(2 * r) for r in ry]
        sums = _pairing_sums(tuple(sorted(wx)), tuple(sorted(wy)))
        obs = sum(a * b for a, b in zip(wx, wy, strict=True))
        low = sum(c for v, c in sums.items() if v <= obs)
        high = sum(c for v, c in sums.items() if v >= obs)
        return Correlation(rho, min(1.0, 2 * min(low, high) / math.factorial(n)), "exact")
    if abs(rho) > 1 - 1e-12:
        extreme = math.prod(math.factorial(t) for t in _tie_sizes(y))
        return Correlation(rho, min(1.0, 2 * extreme / math.factorial(n)), "exact")
    t = rho * math.sqrt((n - 2) / (1 - rho * rho))
    return Correlation(rho, min(1.0, 2 * t_sf(abs(t), n - 2)))


@dataclass(frozen=True)
class OrderEffect:
    """How much faster/larger the second run of a pair is (log scale), and its p-value."""

    log_effect: float
    p: float
    balanced: bool


def order_effect(lr: Sequence[float], b_second: Sequence[bool]) -> OrderEffect | None:
    """Fit ``lr_i = effect + o * s_i`` (s = +1 when B ran second); ``o`` is the second-run gain."""
    n = len(lr)
    s = [1.0 if bs else -1.0 for bs in b_second]
    if n < 3 or len(set(s)) < 2:
        return None
    ms, ml = mean(s), mean(lr)
    sxx = math.fsum((si - ms) ** 2 for si in s)
    o = math.fsum((si - ms) * (li - ml) for si, li in zip(s, lr, strict=True)) / sxx
    c = ml - o * ms
    sse = math.fsum((li - c - o * si) ** 2 for si, li in zip(s, lr, strict=True))
    balanced = abs(sum(s)) < 0.5
    if sse <= 1e-30 * max(1.0, sxx):
        # Two groups of identical values: of the C(n, k) ways to label k pairs "B second", one
        # gives the observed split and one its mirror image.
        k = sum(1 for si in s if si > 0)
        return OrderEffect(o, min(1.0, 2 / math.comb(n, k)) if o else 1.0, balanced)
    se = math.sqrt(sse / (n - 2) / sxx)
    return OrderEffect(o, min(1.0, 2 * t_sf(abs(o / se), n - 2)), balanced)


# --- bootstrap ------------------------------------------------------------------------------


def bootstrap_ci(
    samples: Sequence[Sequence[float]],
    statistic: Callable[..., float],
    *,
    alpha: float = ALPHA,
    n_resamples: int = 4000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """BCa bootstrap interval of ``statistic(*samples)``, resampling each sample independently."""
    if any(len(s) < 2 for s in samples):
        return None
    rng = random.Random(seed)
    theta = statistic(*samples)
    # One draw per sample for all resamples, sliced: several times faster than a draw each.
    draws = [rng.choices(s, k=len(s) * n_resamples) for s in samples]
    sizes = [len(s) for s in samples]
    boots = sorted(
        statistic(*(d[i * n : (i + 1) * n] for d, n in zip(draws, sizes, strict=True)))
        for i in range(n_resamples)
    )
    if boots[0] == boots[-1]:
        return boots[0], boots[0]
    below = sum(1 for b in boots if b < theta) + 0.5 * sum(1 for b in boots if b == theta)
    frac = below / n_resamples
    lo_q, hi_q = alpha / 2, 1 - alpha / 2
    if 0 < frac < 1:
        z0 = norm_ppf(frac)
        num = den = 0.0
        for j, s in enumerate(samples):
            jack = [
                statistic(*(t if k != j else [*t[:i], *t[i + 1 :]] for k, t in enumerate(samples)))
                for i in range(len(s))
            ]
            jm = mean(jack)
            num += math.fsum((len(s) - 1) ** 3 * (jm - v) ** 3 for v in jack)
            den += math.fsum((len(s) - 1) ** 2 * (jm - v) ** 2 for v in jack)
        acc = num / (6 * den**1.5) if den else 0.0

        def adjust(q: float) -> float:
            zq = z0 + norm_ppf(q)
            return norm_cdf(z0 + zq / (1 - acc * zq))

        lo_q, hi_q = adjust(lo_q), adjust(hi_q)
    return quantile(boots, lo_q), quantile(boots, hi_q)


# --- power ----------------------------------------------------------------------------------


def mde(se: float, df: float, *, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true effect (scale of ``se``) detected with ``power`` at two-sided ``alpha``."""
    return (t_ppf(1 - alpha / 2, df) + t_ppf(power, df)) * se


def units_needed(
    unit_var: float,
    delta: float,
    *,
    groups: int = 1,
    alpha: float = ALPHA,
    power: float = POWER,
    limit: int = 100_000,
) -> int | None:
    """Pairs (groups=1) or runs per side (groups=2) so that the MDE is at most ``delta``.

    ``unit_var`` is the variance of one pair's log ratio (paired) or the sum of both sides'
    per-run log variances (unpaired); the standard error with n units is ``sqrt(unit_var / n)``.
    """
    if delta <= 0:
        return None
    if unit_var <= 0:
        return 2
    z = norm_ppf(1 - alpha / 2) + norm_ppf(power)
    n = max(2, math.ceil(unit_var * (z / delta) ** 2))  # the normal answer is a lower bound

    def enough(k: int) -> bool:
        return mde(math.sqrt(unit_var / k), groups * (k - 1), alpha=alpha, power=power) <= delta

    if n > limit:
        return None
    step = 1
    while not enough(n):
        if n > limit:
            return None
        n += step
        step = max(1, n // 50)  # coarse steps for large n, then walk back to the smallest
    while n > 2 and enough(n - 1):
        n -= 1
    return n


def wilson(k: int, n: int, *, alpha: float = ALPHA) -> tuple[float, float]:
    """Wilson score interval for a proportion ``k / n`` (two-sided, level 1 - alpha)."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    z = norm_ppf(1 - alpha / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def holm(ps: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (None stays None and is not counted in the family).

    Sorted ascending, the i-th smallest of m is multiplied by ``m - i + 1``, made monotone
    (never below an earlier adjusted value) and capped at 1; rejecting where the adjusted
    p < alpha is Holm's step-down procedure at family-wise level alpha.
    """
    present = sorted((p, i) for i, p in enumerate(ps) if p is not None)
    out: list[float | None] = [None] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        out[i] = running
    return out


# --- robustness -----------------------------------------------------------------------------


def outliers(
    xs: Sequence[float], *, max_outliers: int | None = None, step_alpha: float | None = None
) -> list[int]:
    """Indices the generalized ESD test flags (most extreme first; counted, never dropped).

    Up to ``max_outliers`` (default ``max(1, n // 4)``) candidates, each step tested at
    ``step_alpha`` (default ``ALPHA / max_outliers``; Rosner's original uses ``ALPHA``).
    """
    n = len(xs)
    r = max(1, n // 4) if max_outliers is None else min(max_outliers, n - 2)
    if n < 3 or r < 1:
        return []
    alpha = ALPHA / r if step_alpha is None else step_alpha
    left, removed, found = list(range(n)), [], 0
    for i in range(1, r + 1):
        vals = [xs[j] for j in left]
        m, sd = mean(vals), sample_sd(vals)
        if sd == 0:
            break  # the rest are identical: nothing further stands out
        worst = max(left, key=lambda j: abs(xs[j] - m))
        t = t_ppf(1 - alpha / (2 * (n - i + 1)), n - i - 1)
        critical = (n - i) * t / math.sqrt((n - i - 1 + t * t) * (n - i + 1))
        if abs(xs[worst] - m) / sd > critical:
            found = i
        left.remove(worst)
        removed.append(worst)
    return removed[:found]
