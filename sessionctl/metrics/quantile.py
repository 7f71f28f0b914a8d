"""PromQL's ``histogram_quantile`` for classic histograms, to the last bit.

This follows ``BucketQuantile`` in Prometheus ``promql/quantile.go`` as of v3.14.0 (numerically
unchanged since v2.49.0): sort by upper bound, require a ``+Inf`` bucket, coalesce equal bounds by
summing, silently flatten relative deltas below 1e-12 (``util/almost.Equal``), force the counts
monotonic, then interpolate linearly inside the bucket the rank falls into. The operation order is
kept exactly, so Python's IEEE doubles give the same bits as Go.
"""

from __future__ import annotations

import math
import re
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass

SMALL_DELTA_TOLERANCE = 1e-12
_MIN_NORMAL = sys.float_info.min  # smallest positive normal double, as almost.minNormal
_MAX_FLOAT = sys.float_info.max
_STALE_NAN_BITS = 0x7FF0000000000002  # Prometheus' staleness marker (value.StaleNaN)
_NAN = math.nan
_INF = math.inf


@dataclass(frozen=True)
class QuantileResult:
    """A quantile plus the fix-ups PromQL would annotate."""

    value: float
    forced_monotonic: bool = False
    fixed_precision: bool = False


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Return the q-quantile of cumulative ``(upper_bound, count)`` buckets, as PromQL does."""
    return bucket_quantile(q, buckets).value


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> QuantileResult:
    """Compute ``histogram_quantile`` and report whether monotonicity/precision were fixed up."""
    q = float(q)
    if math.isnan(q):
        return QuantileResult(_NAN)
    if q < 0:
        return QuantileResult(-_INF)
    if q > 1:
        return QuantileResult(_INF)
    # Go's slices.SortFunc is not stable, but buckets with equal bounds are summed right after,
    # so their relative order only matters for float rounding of fractional counts.
    bs = sorted(((float(ub), float(c)) for ub, c in buckets), key=lambda b: b[0])
    if not bs:  # Go's caller never passes an empty list; NaN is the only sensible answer
        return QuantileResult(_NAN)
    if bs[-1][0] != _INF:
        return QuantileResult(_NAN)
    ubs, counts = _coalesce(bs)
    forced, fixed = _ensure_monotonic_and_ignore_small_deltas(counts, SMALL_DELTA_TOLERANCE)
    n = len(ubs)
    if n < 2:
        return QuantileResult(_NAN, forced, fixed)
    observations = counts[-1]
    if observations == 0:
        return QuantileResult(_NAN, forced, fixed)
    rank = q * observations
    b = _search(n - 1, counts, rank)
    if b == n - 1:
        return QuantileResult(ubs[n - 2], forced, fixed)
    if b == 0 and ubs[0] <= 0:
        return QuantileResult(ubs[0], forced, fixed)
    bucket_start = 0.0
    bucket_end = ubs[b]
    count = counts[b]
    if b > 0:
        bucket_start = ubs[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return QuantileResult(
        bucket_start + (bucket_end - bucket_start) * _div(rank, count), forced, fixed
    )


def _coalesce(bs: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Merge runs of equal upper bounds, adding their counts (input sorted)."""
    ubs = [bs[0][0]]
    counts = [bs[0][1]]
    for ub, c in bs[1:]:
        if ub == ubs[-1]:
            counts[-1] += c
        else:
            ubs.append(ub)
            counts.append(c)
    return ubs, counts


def _ensure_monotonic_and_ignore_small_deltas(
    counts: list[float], tolerance: float
) -> tuple[bool, bool]:
    """Flatten float noise and decreases in place; ``prev`` only advances on real increases."""
    forced = fixed = False
    prev = counts[0]
    for i in range(1, len(counts)):
        curr = counts[i]
        if curr == prev:
            continue
        if almost_equal(prev, curr, tolerance):
            counts[i] = prev
            fixed = True
            continue
        if curr < prev:
            counts[i] = prev
            forced = True
            continue
        prev = curr
    return forced, fixed


def almost_equal(a: float, b: float, epsilon: float) -> bool:
    """Port of Prometheus ``util/almost.Equal``: relative to ``|a|+|b|``, NaN equals NaN."""
    a_stale, b_stale = _is_stale_nan(a), _is_stale_nan(b)
    if a_stale or b_stale:
        return a_stale and b_stale
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return _div(diff, min(abs_sum, _MAX_FLOAT)) < epsilon


def _is_stale_nan(x: float) -> bool:
    return x != x and struct.unpack("<Q", struct.pack("<d", x))[0] == _STALE_NAN_BITS


def _search(n: int, counts: list[float], rank: float) -> int:
    """Go ``sort.Search(n, counts[i] >= rank)``, literally (matters only for NaN counts)."""
    lo, hi = 0, n
    while lo < hi:
        h = (lo + hi) >> 1
        if not counts[h] >= rank:
            lo = h + 1
        else:
            hi = h
    return lo


def _div(a: float, b: float) -> float:
    """IEEE division: x/0 is ±Inf and 0/0 is NaN (Go does not panic; Python would raise)."""
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a) or math.isnan(b):
        return _NAN
    negative = (a < 0) != (math.copysign(1.0, b) < 0)
    return -_INF if negative else _INF


# --- Go strconv.ParseFloat for `le` label values ------------------------------------------

_DEC_RE = re.compile(r"[+-]?(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9_]+)?")
_HEX_RE = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+)[pP][+-]?[0-9_]+")
_SPECIAL = {"inf": _INF, "+inf": _INF, "-inf": -_INF, "infinity": _INF, "+infinity": _INF}
_SPECIAL["-infinity"] = -_INF
_SPECIAL["nan"] = _NAN


def parse_go_float(text: str) -> float | None:
    """Parse like Go ``strconv.ParseFloat(s, 64)``; None where Go returns an error.

    Differences from ``float()``: no surrounding blanks, no ``+NaN``, no Unicode digits, hex floats
    need a ``p`` exponent, ``_`` only between digits, and out-of-range values are errors.
    """
    special = _SPECIAL.get(text.lower())
    if special is not None:
        return special
    if _DEC_RE.fullmatch(text):
        if "_" in text and not _underscore_ok(text):
            return None
        value = float(text.replace("_", ""))
    elif _HEX_RE.fullmatch(text):
        if "_" in text and not _underscore_ok(text):
            return None
        body = text.replace("_", "")
        sign = -1.0 if body[0] == "-" else 1.0
        try:
            value = sign * float.fromhex(body.lstrip("+-"))
        except OverflowError:
            return None
    else:
        return None
    if math.isinf(value):  # syntactically fine but out of range: Go's ErrRange
        return None
    return value


def _underscore_ok(s: str) -> bool:
    """Go ``underscoreOK``: ``_`` only between digits, or between a base prefix and a digit."""
    saw = "^"
    i = 0
    if s and s[0] in "+-":
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        hexa = s[1].lower() == "x"
        i = 2
        saw = "0"
    while i < len(s):
        ch = s[i]
        if (ch.isdigit() and ch.isascii()) or (hexa and ch.lower() in "abcdef"):
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"
