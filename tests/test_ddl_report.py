"""Statistics, the growth fit and the report tables of the ddl driver (no server needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sessionctl.bench.ddl import ProbeRun, TxnRun
from sessionctl.bench.ddl_population import Growth
from sessionctl.bench.ddl_report import (
    DdlResult,
    fit_growth,
    level_label,
    stats,
    summary_md,
    to_measurement,
)


def test_stats_match_numpy() -> None:
    xs = [3.1, 0.4, 9.7, 2.2, 5.5, 1.0, 7.3, 4.4, 6.6]
    s = stats(xs)
    assert s.median == pytest.approx(float(np.percentile(xs, 50)))
    assert s.p90 == pytest.approx(float(np.percentile(xs, 90)))
    assert s.max == 9.7
    assert s.n == 9
    assert math.isnan(stats([]).median)


def test_fit_slope_matches_scipy_and_linear_growth_is_linear() -> None:
    # A 2 ms floor plus 0.5 ms per 1k objects: linear, although ln(y)/ln(x) would say ~0.8.
    pts = [(1000, 2.5), (10_000, 7.0), (50_000, 27.0), (100_000, 52.0)]
    f = fit_growth(pts)
    ref = sps.linregress([x for x, _ in pts], [y for _, y in pts])
    assert f.slope_ms_per_1k == pytest.approx(ref.slope * 1000)
    assert f.intercept_ms == pytest.approx(ref.intercept)
    steps = sps.linregress(
        [math.log(x - 1000) for x, _ in pts[1:]], [math.log(y - 2.5) for _, y in pts[1:]]
    )
    assert f.exponent == pytest.approx(steps.slope)
    assert f.exponent == pytest.approx(1.0)
    assert f.verdict == "linear"


def test_quadratic_growth_is_flagged_super_linear() -> None:
    f = fit_growth([(n, 1e-8 * n * n + 0.1) for n in (1000, 10_000, 50_000, 100_000)])
    assert f.exponent is not None and f.exponent == pytest.approx(2.0, abs=0.1)
    assert f.verdict == "super-linear"


def test_sub_linear_flat_and_too_few_levels() -> None:
    assert (
        fit_growth([(n, 1.0 + math.sqrt(n) / 10) for n in (0, 1000, 10_000, 100_000)]).verdict
        == "sub-linear"
    )
    assert fit_growth([(1000, 1.0), (10_000, 1.01), (100_000, 1.02)]).verdict == "flat"
    # Fewer than two increments above the first level, or increments spanning less than 4x.
    assert fit_growth([(1000, 1.0), (100_000, 100.0)]).verdict == "too few levels"
    assert fit_growth([(0, 1.0), (2000, 4.0), (5000, 9.0)]).verdict == "too few levels"
    assert fit_growth([(1000, 1.0)]).verdict == "too few levels"
    # Level 0 (an empty schema) is the base the increments are measured from.
    f = fit_growth([(0, 1.0), (1000, 2.0), (4000, 5.0), (16_000, 17.0)])
    assert f.slope_ms_per_1k == pytest.approx(1.0)
    assert f.exponent == pytest.approx(1.0)
    assert f.verdict == "linear"


def test_level_labels() -> None:
    assert [level_label(n) for n in (0, 500, 1000, 2500, 100_000)] == [
        "n0",
        "n500",
        "n1k",
        "n2500",
        "n100k",
    ]


def _result() -> DdlResult:
    metric = {"series": "mz_catalog_transact_seconds{method=catalog_transact}", "kind": "histogram",
              "ms_per_stmt": 3.0, "obs_per_stmt": 1.0, "mean_ms": 3.0}  # fmt: skip
    return DdlResult(
        dialect="materialize",
        count_sql="SELECT count(*) FROM mz_objects",
        initial_count=900,
        final_count=10_000,
        levels=(0, 10_000),
        growths=(Growth(0, 900, 900, 0, 0.0, 1, 0), Growth(10_000, 900, 10_000, 9100, 91.0, 1, 91)),
        probes=(
            ProbeRun(0, 900, "table", (4.0, 5.0, 6.0), 9.0, (1.0,)),
            ProbeRun(10_000, 10_000, "table", (8.0, 10.0, 12.0), 20.0, (), (metric,)),
        ),
        txns=(TxnRun(10_000, 10_000, "table", 4, 40.0, (5.0, 8.0, 11.0, 14.0), 2.0, (metric,)),),
    )


def test_values_and_summary() -> None:
    m = to_measurement(_result(), name="ddl", phase="baseline", raw_dir=".sessionctl/runs/x")
    v = {x.name: x for x in m.values}
    assert v["table.median_ms@n10k"].value == 10.0
    # One block of probes is one unit, not three runs: no per-run samples, the exact count kept.
    assert v["table.median_ms@n10k"].samples == ()
    assert v["table.median_ms@n10k"].objects == 10_000
    assert v["table.median_ms@n900"].value == 5.0
    assert v["table.p90_ms@n900"].value == pytest.approx(5.8)
    assert v["table.max_ms@n10k"].value == 12.0
    assert v["objects@n10k"].value == 10_000
    assert v["table.slope_ms_per_1k"].value == pytest.approx(5.0 / 9.1)
    assert v["table.txn_ms_per_stmt@b4"].value == 10.0
    assert v["mz_catalog_transact_seconds{method=catalog_transact}.ms_per_table@n10k"].value == 3.0
    assert v["mz_catalog_transact_seconds{method=catalog_transact}.ms_per_table@b4"].value == 3.0
    assert v["growth.s_per_1k"].value == pytest.approx(10.0)
    assert m.source == "ddl" and m.phase == "baseline"
    md = m.summary_md
    assert "| 10,000 | table | 10.0 | 11.6 | 12.0 | 3 | n/a |" in md
    assert "| table | 4 | 10.0 | 5.000 | 14.0 | 2.000 |" in md
    # The breakdown: 3 ms of the 10 ms mean statement go into catalog_transact.
    series = "`mz_catalog_transact_seconds{method=catalog_transact}`"
    assert f"| 10,000 | table | {series} | 3.000 | 1.00 | 3.000 | 30% |" in md
    assert "created 9,100 fillers in 91.0 s (10.00 s per 1k)" in md
    assert m.details["fits"]["table"]["verdict"] == "too few levels"


def test_summary_lists_failed_cleanup() -> None:
    r = _result()
    from dataclasses import replace

    md = summary_md(replace(r, leftovers=("DROP TABLE probe_7",), kept_probes=True))
    assert "drop these by hand: `DROP TABLE probe_7`" in md
    assert "Probe objects were kept" in md
