"""A latency histogram: HDR-style log-linear buckets, mergeable, with bounded relative error.

Values are integer nanoseconds. With ``SUB_BITS = 7`` every power-of-two range above 256 ns is
split into 128 equal buckets, so a bucket is at most 1/128 of its lower bound wide; reporting the
bucket midpoint keeps every percentile within 0.4 % of the true value (values below 256 ns are
exact). Counts live in a plain list indexed by :func:`bucket_index`, so recording is a handful of
integer operations (workers inline the same arithmetic in their hot loops) and merging histograms
from worker processes is element-wise addition. ``count``, ``sum``, ``min`` and ``max`` are exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SUB_BITS = 7
SUB_COUNT = 1 << SUB_BITS  # buckets per power of two
MAX_SHIFT = 40  # 2**(40+8) ns ≈ 3.2 days: anything above is clamped into the last bucket
N_BUCKETS = (MAX_SHIFT + 2) * SUB_COUNT
RELATIVE_ERROR = 1.0 / (2 * SUB_COUNT)  # of a reported percentile (bucket midpoint)


def bucket_index(ns: int) -> int:
    """Return the bucket of a value in nanoseconds (negative values count as 0)."""
    if ns < 0:
        return 0
    shift = ns.bit_length() - SUB_BITS - 1
    if shift <= 0:
        return ns
    if shift > MAX_SHIFT:
        return N_BUCKETS - 1
    return (shift << SUB_BITS) + (ns >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """Return ``[low, high)`` in nanoseconds of a bucket."""
    if index < 2 * SUB_COUNT:
        return index, index + 1
    shift = (index >> SUB_BITS) - 1
    mantissa = index - (shift << SUB_BITS)
    return mantissa << shift, (mantissa + 1) << shift


@dataclass
class LatencyHistogram:
    """Counts of latencies in log-linear buckets, plus exact count, sum, min and max (ns)."""

    counts: list[int] = field(default_factory=lambda: [0] * N_BUCKETS)
    count: int = 0
    total_ns: int = 0
    min_ns: int | None = None
    max_ns: int | None = None

    def record(self, ns: int, n: int = 1) -> None:
        """Add ``n`` observations of ``ns`` nanoseconds."""
        ns = max(int(ns), 0)
        self.counts[bucket_index(ns)] += n
        self.count += n
        self.total_ns += ns * n
        if self.min_ns is None or ns < self.min_ns:
            self.min_ns = ns
        if self.max_ns is None or ns > self.max_ns:
            self.max_ns = ns

    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        """Add ``other``'s observations into this histogram (returns self)."""
        mine = self.counts
        for i, c in enumerate(other.counts):
            if c:
                mine[i] += c
        self.count += other.count
        self.total_ns += other.total_ns
        if other.min_ns is not None and (self.min_ns is None or other.min_ns < self.min_ns):
            self.min_ns = other.min_ns
        if other.max_ns is not None and (self.max_ns is None or other.max_ns > self.max_ns):
            self.max_ns = other.max_ns
        return self

    @classmethod
    def merged(cls, parts: Iterable[LatencyHistogram]) -> LatencyHistogram:
        """Return one histogram holding every observation of ``parts``."""
        out = cls()
        for p in parts:
            out.merge(p)
        return out

    @property
    def mean_ns(self) -> float:
        return self.total_ns / self.count if self.count else math.nan

    def percentile_ns(self, q: float) -> float:
        """Return the ``q``-th percentile (0..100) in ns; NaN when empty.

        The value is the midpoint of the bucket holding the observation of rank ``ceil(q% * n)``,
        clamped to the exact min and max, so it is within :data:`RELATIVE_ERROR` of the truth.
        """
        if not self.count:
            return math.nan
        if not 0 <= q <= 100:
            raise ValueError(f"percentile must be within 0..100, got {q}")
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for i, c in enumerate(self.counts):
            if not c:
                continue
            seen += c
            if seen >= rank:
                low, high = bucket_bounds(i)
                mid = low if high - low == 1 else (low + high) / 2
                lo = self.min_ns if self.min_ns is not None else mid
                hi = self.max_ns if self.max_ns is not None else mid
                return float(min(max(mid, lo), hi))
        return float(self.max_ns or 0)

    def summary_ms(self, percentiles: Iterable[float] = (50, 90, 99, 99.9)) -> dict[str, float]:
        """Return mean/min/max and percentiles in milliseconds (``p50``, ``p99``, ``p99.9``...)."""
        out = {
            "mean": self.mean_ns / 1e6,
            "min": (self.min_ns or 0) / 1e6 if self.count else math.nan,
            "max": (self.max_ns or 0) / 1e6 if self.count else math.nan,
        }
        for q in percentiles:
            out[f"p{q:g}"] = self.percentile_ns(q) / 1e6
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a compact JSON-able form (only non-empty buckets)."""
        return {
            "unit": "ns",
            "sub_bits": SUB_BITS,
            "count": self.count,
            "sum": self.total_ns,
            "min": self.min_ns,
            "max": self.max_ns,
            "buckets": {str(i): c for i, c in enumerate(self.counts) if c},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LatencyHistogram:
        """Rebuild a histogram written by :meth:`to_dict` (or sent by a worker)."""
        if int(d.get("sub_bits", SUB_BITS)) != SUB_BITS:
            raise ValueError(f"histogram has sub_bits={d.get('sub_bits')}, expected {SUB_BITS}")
        h = cls()
        for k, c in (d.get("buckets") or {}).items():
            h.counts[int(k)] += int(c)
        h.count = int(d.get("count", sum(h.counts)))
        h.total_ns = int(d.get("sum", 0))
        h.min_ns = None if d.get("min") is None else int(d["min"])
        h.max_ns = None if d.get("max") is None else int(d["max"])
        return h

    @classmethod
    def from_counts(
        cls, counts: list[int], *, total_ns: int, min_ns: int | None, max_ns: int | None
    ) -> LatencyHistogram:
        """Wrap a raw bucket list filled by a worker's inlined recording loop."""
        if len(counts) != N_BUCKETS:
            raise ValueError(f"expected {N_BUCKETS} buckets, got {len(counts)}")
        return cls(list(counts), sum(counts), total_ns, min_ns, max_ns)
