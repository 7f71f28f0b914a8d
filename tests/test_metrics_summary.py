"""Per-operation statistics for campaign MetricSpecs, on Materialize-shaped scrapes.

``tests/data/metrics/mz_{before,after}.prom`` hold two scrapes 20 s apart. Between them
``try_frontend_peek_cached`` saw 200 + 300 + 100 observations in its three lowest buckets
(Δsum 0.15 s), ``try_frontend_peek_inner`` appeared with 4 observations in (0.512 ms, 1 ms]
(Δsum 4 ms), ``try_frontend_peek`` did not move, and the counter
``mz_ts_oracle_seconds{op=read_ts}`` grew by 0.5 s. The rendered markdown is compared with
``summary_expected.md``; regenerate it with
``SESSIONCTL_UPDATE_SNAPSHOTS=1 pytest tests/test_metrics_summary.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sessionctl.campaign.model import MetricSpec
from sessionctl.metrics import diff, scrape, summarize
from sessionctl.metrics.summary import quantile_of

DATA = Path(__file__).parent / "data" / "metrics"
PEEK = "mz_frontend_peek_seconds"
SPECS = [
    MetricSpec(
        PEEK,
        labels={"method": "try_frontend_peek_cached"},
        stats=("count", "rate", "mean", "p50", "p90", "p99"),
        per_query=True,
    ),
    MetricSpec(PEEK, by=("method",), stats=("mean", "p99")),
    MetricSpec(
        "mz_ts_oracle_seconds",
        kind="counter",
        labels={"op": "read_ts"},
        stats=("rate",),
        per_query=True,
    ),
    MetricSpec("mz_pending_peeks", kind="gauge"),
    MetricSpec("mz_storage_create_collections_seconds", by=("step",)),  # branch-only: absent here
]


@pytest.fixture(scope="module")
def summary() -> tuple[dict[str, object], str]:
    delta = diff(scrape(str(DATA / "mz_before.prom")), scrape(str(DATA / "mz_after.prom")))
    values, md = summarize(delta, SPECS, queries=300, suffix="@c64")
    return {v.name: v for v in values}, md


def test_values_named_with_stable_units(summary: tuple[dict[str, object], str]) -> None:
    values, _md = summary
    cached = f"{PEEK}{{method=try_frontend_peek_cached}}"
    expect = {
        f"{cached}.count@c64": (600, "", None),
        f"{cached}.rate@c64": (30.0, "/s", None),  # 600 in 20 s, from the snapshot headers
        f"{cached}.mean_us@c64": (250.0, "µs", "lower"),  # 0.15 s / 600
        f"{cached}.p50_us@c64": (128 + 128 * 100 / 300, "µs", "lower"),  # rank 300 in (128, 256]
        f"{cached}.p90_us@c64": (256 + 256 * 40 / 100, "µs", "lower"),  # rank 540 in (256, 512]
        f"{cached}.p99_us@c64": (256 + 256 * 94 / 100, "µs", "lower"),
        f"{cached}.per_query_us@c64": (500.0, "µs", "lower"),  # 0.15 s / 300 queries
        f"{cached}.calls_per_query@c64": (2.0, "", None),
        f"{PEEK}{{method=try_frontend_peek_inner}}.mean_us@c64": (1000.0, "µs", "lower"),
        f"{PEEK}{{method=try_frontend_peek_inner}}.p99_us@c64": (
            512 + 488 * 3.96 / 4,
            "µs",
            "lower",
        ),
        "mz_ts_oracle_seconds{op=read_ts}.delta@c64": (0.5, "s", "lower"),
        "mz_ts_oracle_seconds{op=read_ts}.rate@c64": (0.025, "s/s", "lower"),
        "mz_ts_oracle_seconds{op=read_ts}.per_query_us@c64": (0.5 / 300 * 1e6, "µs", "lower"),
        "mz_pending_peeks.value@c64": (1.0, "", None),
        "mz_pending_peeks.delta@c64": (-2.0, "", None),
    }
    for name, (value, unit, better) in expect.items():
        v = values[name]
        assert v.value == pytest.approx(value, rel=1e-12), name  # type: ignore[attr-defined]
        assert (v.unit, v.better) == (unit, better), name  # type: ignore[attr-defined]
    # a method without observations in the window yields no NaN values, only a note
    assert not any("method=try_frontend_peek}" in n for n in values)


def test_markdown_snapshot(summary: tuple[dict[str, object], str]) -> None:
    _values, md = summary
    expected = DATA / "summary_expected.md"
    if os.environ.get("SESSIONCTL_UPDATE_SNAPSHOTS"):
        expected.write_text(md)
    assert md == expected.read_text()
    assert "mz_storage_create_collections_seconds: not exposed by the target" in md


@pytest.mark.parametrize(
    ("stat", "q"),
    [("p50", 0.5), ("p99", 0.99), ("p999", 0.999), ("p99.9", 0.999), ("p5", 0.05), ("mean", None)],
)
def test_quantile_names(stat: str, q: float | None) -> None:
    assert quantile_of(stat) == (pytest.approx(q) if q is not None else None)


def test_unit_follows_bucket_layout_not_value() -> None:
    from sessionctl.metrics import parse

    def text(before: bool) -> str:
        n = 0 if before else 10
        return (
            "# TYPE mz_catalog_transact_seconds histogram\n"
            f'mz_catalog_transact_seconds_bucket{{le="0.001"}} {n}\n'
            f'mz_catalog_transact_seconds_bucket{{le="32"}} {n}\n'
            f'mz_catalog_transact_seconds_bucket{{le="+Inf"}} {n}\n'
            f"mz_catalog_transact_seconds_sum {n * 0.0002}\nmz_catalog_transact_seconds_count {n}\n"
        )

    delta = diff(parse(text(True)), parse(text(False)))
    values, _ = summarize(delta, [MetricSpec("mz_catalog_transact_seconds", stats=("mean",))])
    # buckets start at 1 ms, so milliseconds, even though this mean is sub-millisecond
    assert [(v.name, v.unit) for v in values] == [("mz_catalog_transact_seconds.mean_ms", "ms")]
    assert values[0].value == pytest.approx(0.2)
