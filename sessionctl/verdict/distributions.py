"""Probability distributions for the statistics, in pure Python: normal and Student's t.

- Normal: CDF and upper tail from ``math.erfc``; quantile by Wichura's AS 241 (PPND16, about
  16 significant digits).
- t: CDF from the regularized incomplete beta function (Lentz's continued fraction); quantiles
  by safeguarded Newton iteration on the tail probability (closed forms for df 1 and 2).

Checked against scipy in ``tests/test_stats_scipy.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def norm_cdf(z: float) -> float:
    """Standard normal CDF."""
    return 0.5 * math.erfc(-z / math.sqrt(2))


def norm_sf(z: float) -> float:
    """Standard normal upper tail."""
    return 0.5 * math.erfc(z / math.sqrt(2))


# Wichura's AS 241 (PPND16): numerator and denominator coefficients, highest power first.
_AS241 = (
    (
        (2509.0809287301226727, 33430.575583588128105, 67265.770927008700853,
         45921.953931549871457, 13731.693765509461125, 1971.5909503065514427,
         133.14166789178437745, 3.387132872796366608),
        (5226.495278852545925, 28729.085735721942674, 39307.89580009271061,
         21213.794301586595867, 5394.1960214247511077, 687.1870074920579083,
         42.313330701600911252, 1.0),
    ),
    (
        (7.7454501427834140764e-4, 0.0227238449892691845833, 0.24178072517745061177,
         1.27045825245236838258, 3.64784832476320460504, 5.7694972214606914055,
         4.6303378461565452959, 1.42343711074968357734),
        (1.05075007164441684324e-9, 5.475938084995344946e-4, 0.0151986665636164571966,
         0.14810397642748007459, 0.68976733498510000455, 1.6763848301838038494,
         2.05319162663775882187, 1.0),
    ),
    (
        (2.01033439929228813265e-7, 2.71155556874348757815e-5, 0.0012426609473880784386,
         0.026532189526576123093, 0.29656057182850489123, 1.7848265399172913358,
         5.4637849111641143699, 6.6579046435011037772),
        (2.04426310338993978564e-15, 1.4215117583164458887e-7, 1.8463183175100546818e-5,
         7.868691311456132591e-4, 0.0148753612908506148525, 0.13692988092273580531,
         0.59983220655588793769, 1.0),
    ),
)  # fmt: skip


def _horner(coefs: Sequence[float], x: float) -> float:
    acc = 0.0
    for c in coefs:
        acc = acc * x + c
    return acc


def norm_ppf(p: float) -> float:
    """Standard normal quantile (Wichura's AS 241, about 16 significant digits)."""
    if p <= 0:
        return -math.inf
    if p >= 1:
        return math.inf
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        num, den = _AS241[0]
        return q * _horner(num, r) / _horner(den, r)
    r = math.sqrt(-math.log(p if q < 0 else 1 - p))
    (num, den), r = (_AS241[1], r - 1.6) if r <= 5 else (_AS241[2], r - 5)
    x = _horner(num, r) / _horner(den, r)
    return -x if q < 0 else x


def _nz(v: float) -> float:
    return v if abs(v) > 1e-300 else 1e-300


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    c, d = 1.0, 1.0 / _nz(1.0 - (a + b) * x / (a + 1.0))
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        even = m * (b - m) * x / ((a - 1.0 + m2) * (a + m2))
        odd = -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2))
        for aa in (even, odd):
            d = 1.0 / _nz(1.0 + aa * d)
            c = _nz(1.0 + aa / c)
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            break
    return h


def betainc(a: float, b: float, x: float, y: float | None = None) -> float:
    """Regularized incomplete beta I_x(a, b); pass ``y = 1 - x`` when it is known more precisely."""
    if y is None:
        y = 1.0 - x
    if x <= 0:
        return 0.0
    if y <= 0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def t_sf(t: float, df: float) -> float:
    """Upper tail P(T > t) of Student's t with ``df`` degrees of freedom."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    if df > 1e7:
        return norm_sf(t)
    tt = t * t
    two_tail = betainc(df / 2, 0.5, df / (df + tt), tt / (df + tt))
    return two_tail / 2 if t > 0 else 1.0 - two_tail / 2


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t."""
    return t_sf(-t, df)


def t_pdf(t: float, df: float) -> float:
    """Density of Student's t."""
    return math.exp(
        math.lgamma((df + 1) / 2)
        - math.lgamma(df / 2)
        - 0.5 * math.log(df * math.pi)
        - (df + 1) / 2 * math.log1p(t * t / df)
    )


def t_ppf(p: float, df: float) -> float:
    """Quantile of Student's t (inverse CDF)."""
    if p <= 0:
        return -math.inf
    if p >= 1:
        return math.inf
    if p == 0.5:
        return 0.0
    q = min(p, 1 - p)  # solve the upper tail sf(x) = q for x > 0, then restore the sign
    sign = 1.0 if p > 0.5 else -1.0
    if df > 1e7:
        return sign * -norm_ppf(q)
    if df == 1:
        return sign / math.tan(math.pi * q)
    if df == 2:
        return sign * (1 - 2 * q) / math.sqrt(2 * q * (1 - q))
    z = -norm_ppf(q)
    x = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    lo, hi = 0.0, math.inf
    for _ in range(200):
        if not 0 < x < math.inf or not lo < x < hi:
            x = (lo + hi) / 2 if hi < math.inf else max(2 * lo, 1.0)
        f = t_sf(x, df) - q
        if f > 0:
            lo = x
        else:
            hi = x
        step = f / t_pdf(x, df)
        nxt = x + step
        if abs(step) <= 1e-14 * max(1.0, abs(x)):
            return sign * nxt
        x = nxt
        if hi < math.inf and hi - lo <= 1e-15 * hi:
            break
    return sign * x
