"""The latency histogram: bucket arithmetic, bounded relative error, merging, serialisation."""

from __future__ import annotations

import json
import math
import random

import pytest

from sessionctl.bench.latency import (
    N_BUCKETS,
    RELATIVE_ERROR,
    LatencyHistogram,
    bucket_bounds,
    bucket_index,
)


def exact_percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile (the definition the histogram approximates)."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def test_every_value_falls_inside_its_bucket() -> None:
    rng = random.Random(1)
    values = list(range(0, 2000)) + [rng.randrange(1, 10**13) for _ in range(5000)]
    for v in values:
        low, high = bucket_bounds(bucket_index(v))
        assert low <= v < high, v
        assert (high - low) <= max(1, low / 128), v  # width bounded by 1/128 of the value


def test_indexes_are_contiguous_and_monotonic() -> None:
    last = -1
    for i in range(N_BUCKETS - 1):
        low, high = bucket_bounds(i)
        nlow, _ = bucket_bounds(i + 1)
        assert high == nlow
        assert bucket_index(low) == i
        assert low > last
        last = low


@pytest.mark.parametrize("q", [1, 50, 90, 99, 99.9, 100])
def test_percentiles_within_bounded_relative_error(q: float) -> None:
    rng = random.Random(7)
    values = sorted(int(rng.lognormvariate(11, 1.2)) + 1 for _ in range(20000))  # ~60µs median
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    truth = exact_percentile(values, q)
    got = h.percentile_ns(q)
    assert abs(got - truth) <= truth * RELATIVE_ERROR + 1, (q, got, truth)


def test_merge_equals_recording_everything_in_one() -> None:
    rng = random.Random(3)
    parts = [LatencyHistogram() for _ in range(4)]
    whole = LatencyHistogram()
    for _ in range(10000):
        v = rng.randrange(1000, 50_000_000)
        parts[rng.randrange(4)].record(v)
        whole.record(v)
    merged = LatencyHistogram.merged(parts)
    assert merged.counts == whole.counts
    assert (merged.count, merged.total_ns, merged.min_ns, merged.max_ns) == (
        whole.count,
        whole.total_ns,
        whole.min_ns,
        whole.max_ns,
    )
    assert merged.percentile_ns(99) == whole.percentile_ns(99)


def test_round_trips_through_json() -> None:
    h = LatencyHistogram()
    for v in (5, 300, 70_000, 70_001, 9_000_000_000):
        h.record(v)
    back = LatencyHistogram.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.counts == h.counts and back.count == 5 and back.max_ns == 9_000_000_000
    assert back.summary_ms() == h.summary_ms()


def test_summary_in_milliseconds_and_empty_histogram() -> None:
    h = LatencyHistogram()
    assert math.isnan(h.percentile_ns(50)) and math.isnan(h.mean_ns)
    for _ in range(99):
        h.record(1_000_000)  # 1 ms
    h.record(100_000_000)  # one 100 ms outlier
    s = h.summary_ms()
    assert s["p50"] == pytest.approx(1.0, rel=RELATIVE_ERROR)
    assert s["p99"] == pytest.approx(1.0, rel=RELATIVE_ERROR)
    assert s["max"] == 100.0 and s["p99.9"] == pytest.approx(100.0, rel=RELATIVE_ERROR)
    assert s["mean"] == pytest.approx((99 + 100) / 100)


def test_percentile_is_clamped_to_exact_extremes() -> None:
    h = LatencyHistogram()
    h.record(1_000_001)
    assert h.percentile_ns(50) == 1_000_001
    with pytest.raises(ValueError):
        h.percentile_ns(101)
