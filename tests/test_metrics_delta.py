"""Before/after deltas against a real prometheus_client exporter, and reset detection."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, Summary, start_http_server

from sessionctl.campaign.model import MetricSpec
from sessionctl.metrics import diff, histogram_quantile, parse, scrape, summarize

BUCKETS = (0.000128, 0.000256, 0.000512, 0.001, 0.002, 0.004, 0.008, 0.016)
PEEK = "mz_frontend_peek_seconds"


class Exporter:
    """prometheus_client's real HTTP exporter, one per registry, on 127.0.0.1."""

    def __init__(self) -> None:
        self.servers: dict[str, Any] = {}

    def start(self, registry: CollectorRegistry, port: int = 0) -> str:
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        self.servers[url] = server
        return url

    def stop(self, url: str, *, wait: bool = True) -> None:
        server = self.servers.pop(url)
        if wait:  # up to serve_forever's 0.5 s poll; afterwards the port is free again
            server.shutdown()
        else:  # teardown: let the poll run out in the background
            threading.Thread(target=server.shutdown, daemon=True).start()
        server.server_close()

    def port(self, url: str) -> int:
        return int(self.servers[url].server_port)


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    exp = Exporter()
    yield exp
    for url in list(exp.servers):
        exp.stop(url, wait=False)


def make_registry() -> tuple[CollectorRegistry, Histogram, Counter]:
    reg = CollectorRegistry()
    hist = Histogram(
        PEEK,
        "Wall-clock duration of frontend peek methods.",
        ["method"],
        buckets=BUCKETS,
        registry=reg,
    )
    ctr = Counter("mz_ts_oracle_seconds", "Seconds in the timestamp oracle.", ["op"], registry=reg)
    return reg, hist, ctr


def cumulative(values: list[float]) -> list[float]:
    """Bucket counts by the bucket definition (value <= le), +Inf last."""
    return [float(sum(1 for v in values if v <= le)) for le in BUCKETS] + [float(len(values))]


def expected_quantile(q: float, values: list[float]) -> float:
    """Linear interpolation inside the bucket holding rank q*n, computed from the observations."""
    n = len(values)
    cum = cumulative(values)
    rank = q * n
    for i, le in enumerate(BUCKETS):
        if cum[i] >= rank:
            lo = BUCKETS[i - 1] if i else 0.0
            below = cum[i - 1] if i else 0.0
            return lo + (le - lo) * (rank - below) / (cum[i] - below)
    return BUCKETS[-1]


def test_deltas_and_quantiles_match_the_observations(exporter: Exporter) -> None:
    reg, hist, ctr = make_registry()
    url = exporter.start(reg)
    rnd = random.Random(7)
    for _ in range(50):  # before the first scrape: must not count
        hist.labels("try_frontend_peek_cached").observe(rnd.uniform(0, 0.01))
    ctr.labels("read_ts").inc(1.25)
    before = scrape(url)
    observed = {
        "try_frontend_peek_cached": [rnd.lognormvariate(-8.5, 0.6) for _ in range(400)]
        + [0.000256, 0.02],
        "try_frontend_peek_inner": [
            rnd.uniform(0.0001, 0.003) for _ in range(37)
        ],  # first seen now
    }
    for method, values in observed.items():
        for v in values:
            hist.labels(method).observe(v)
    ctr.labels("read_ts").inc(0.5)
    after = scrape(url)

    delta = diff(before, after)
    assert not delta.warnings and not delta.restarted
    assert delta.window_s is not None and delta.window_s > 0
    for method, values in observed.items():
        (g,) = delta.select(PEEK, {"method": method})
        assert [c for _, c in g.buckets] == cumulative(values)
        assert [le for le, _ in g.buckets][-1] == "+Inf"
        assert g.count == len(values)
        assert g.sum == pytest.approx(sum(values), rel=1e-9)
        assert g.new is (method == "try_frontend_peek_inner") and not g.reset
        for q in (0.5, 0.9, 0.99):
            assert g.quantile(q).value == pytest.approx(expected_quantile(q, values), rel=1e-12)
            assert histogram_quantile(q, g.bounds()) == g.quantile(q).value
    (read_ts,) = delta.select_series("mz_ts_oracle_seconds_total", {"op": "read_ts"})
    assert read_ts.delta == pytest.approx(0.5) and not read_ts.reset

    cached = observed["try_frontend_peek_cached"]
    spec = MetricSpec(
        PEEK,
        labels={"method": "try_frontend_peek_cached"},
        stats=("count", "mean", "p50", "p99"),
        per_query=True,
    )
    stats, md = summarize(delta, [spec], queries=200, suffix="@c8")
    got = {v.name: v for v in stats}
    base = f"{PEEK}{{method=try_frontend_peek_cached}}"
    assert got[f"{base}.count@c8"].value == len(cached)
    assert got[f"{base}.mean_us@c8"].value == pytest.approx(
        sum(cached) / len(cached) * 1e6, rel=1e-9
    )
    assert got[f"{base}.mean_us@c8"].unit == "µs" and got[f"{base}.mean_us@c8"].better == "lower"
    assert got[f"{base}.p99_us@c8"].value == pytest.approx(
        expected_quantile(0.99, cached) * 1e6, rel=1e-12
    )
    assert got[f"{base}.per_query_us@c8"].value == pytest.approx(sum(cached) / 200 * 1e6, rel=1e-9)
    assert f"`{base}`" in md


@pytest.mark.parametrize("after_observations", [3, 80])
def test_new_registry_on_same_port_is_a_reset(exporter: Exporter, after_observations: int) -> None:
    """3 observations: the counts drop. 80: every count grew past the old value, and only the
    changed ``_created`` series reveals the restart."""
    reg, hist, ctr = make_registry()
    url = exporter.start(reg)
    for i in range(40):
        hist.labels("try_frontend_peek").observe(0.0003 + i * 1e-5)
    ctr.labels("read_ts").inc(10)
    before = scrape(url)
    port = exporter.port(url)
    exporter.stop(url)  # the "restart": the old process goes, a fresh registry takes the port
    reg2, hist2, ctr2 = make_registry()
    values = [0.0001 * (1 + i % 7) for i in range(after_observations)]
    for v in values:
        hist2.labels("try_frontend_peek").observe(v)
    ctr2.labels("read_ts").inc(after_observations)
    assert exporter.start(reg2, port) == url
    after = scrape(url)

    delta = diff(before, after)
    (g,) = delta.select(PEEK, {"method": "try_frontend_peek"})
    assert g.reset and not g.new
    assert [c for _, c in g.buckets] == cumulative(values)  # the after values, wholesale
    assert g.count == after_observations and g.sum == pytest.approx(sum(values))
    (ctr_delta,) = delta.select_series("mz_ts_oracle_seconds_total", {"op": "read_ts"})
    assert ctr_delta.reset and ctr_delta.delta == after_observations
    assert any("counter reset" in w for w in delta.warnings)
    assert all(s.delta >= 0 for s in delta.series if s.kind in ("histogram", "counter"))


def test_missing_after_is_reported(exporter: Exporter) -> None:
    reg, hist, _ctr = make_registry()
    url = exporter.start(reg)
    hist.labels("try_frontend_peek").observe(0.001)
    hist.labels("catalog").observe(0.002)
    before = scrape(url)
    hist.remove("catalog")
    hist.labels("try_frontend_peek").observe(0.001)
    delta = diff(before, scrape(url))
    gone = {
        (name, dict(lb).get("le"))
        for name, lb in delta.missing
        if dict(lb).get("method") == "catalog"
    }
    assert (f"{PEEK}_count", None) in gone and (f"{PEEK}_bucket", "+Inf") in gone
    assert not any(dict(g.labels).get("method") == "catalog" for g in delta.groups)


def test_summary_mean_from_sum_and_count(exporter: Exporter) -> None:
    reg = CollectorRegistry()
    summ = Summary("mz_catalog_allocate_id_seconds", "Allocation time.", registry=reg)
    url = exporter.start(reg)
    summ.observe(5.0)
    before = scrape(url)
    for v in (0.002, 0.004, 0.009):
        summ.observe(v)
    delta = diff(before, scrape(url))
    (g,) = delta.select("mz_catalog_allocate_id_seconds")
    assert g.kind == "summary" and g.count == 3 and g.sum == pytest.approx(0.015)
    values, _md = summarize(
        delta, [MetricSpec("mz_catalog_allocate_id_seconds", kind="summary", stats=("mean",))]
    )
    assert values[0].name == "mz_catalog_allocate_id_seconds.mean_us"
    assert values[0].value == pytest.approx(5000.0)


# --- reset signals on hand-written expositions -----------------------------------------------

BEFORE = """# TYPE process_start_time_seconds gauge
process_start_time_seconds 1000
# TYPE h histogram
h_bucket{le="1"} 5
h_bucket{le="2"} 8
h_bucket{le="+Inf"} 9
h_sum 10
h_count 9
# TYPE c counter
c{op="a"} 100
"""


def test_changed_process_start_time_restarts_everything() -> None:
    after = (
        BEFORE.replace("1000", "2000")
        .replace("} 5", "} 50")
        .replace("} 8", "} 80")
        .replace("} 9", "} 90")
    )
    after = after.replace("h_count 9", "h_count 90").replace('c{op="a"} 100', 'c{op="a"} 150')
    delta = diff(parse(BEFORE, taken_at=1.0), parse(after, taken_at=2.0))
    assert delta.restarted
    (g,) = delta.select("h")
    assert g.reset and [c for _, c in g.buckets] == [50, 80, 90] and g.count == 90
    (c,) = delta.select_series("c")
    assert c.reset and c.delta == 150
    assert "process restarted" in delta.warnings[0]


def test_counter_decrease_is_a_reset_and_sum_is_not_used() -> None:
    after = (
        BEFORE.replace("h_sum 10", "h_sum 4")
        .replace("} 9", "} 12")
        .replace("h_count 9", "h_count 12")
    )
    after = after.replace('c{op="a"} 100', 'c{op="a"} 7')
    delta = diff(parse(BEFORE), parse(after))
    (g,) = delta.select("h")
    assert not g.reset and g.sum == -6 and g.count == 3  # negative observations may lower _sum
    (c,) = delta.select_series("c")
    assert c.reset and c.delta == 7 and c.before == 100


def test_unseen_reset_from_upstream_example_warns() -> None:
    # histograms.test "Test custom buckets with counter reset": two scrapes (t=0, t=10m) see no
    # decrease, but the naive bucket deltas 8, 6, 4, 8 are not cumulative.
    def text(counts: list[int]) -> str:
        les = ["1", "2", "4", "8", "+Inf"]
        return "# TYPE r histogram\n" + "".join(
            f'r_bucket{{le="{le}"}} {c}\n' for le, c in zip(les, [*counts, counts[-1]], strict=True)
        )

    delta = diff(parse(text([1, 3, 8, 10])), parse(text([9, 9, 12, 18])))
    (g,) = delta.select("r")
    assert [c for _, c in g.buckets] == [8, 6, 4, 8, 8] and not g.reset
    assert any("decrease with le" in w for w in delta.warnings)
    assert g.quantile(0.5).forced_monotonic


def test_nan_and_empty_windows_do_not_crash_statistics() -> None:
    delta = diff(parse(BEFORE), parse(BEFORE))
    values, md = summarize(
        delta, [MetricSpec("h", stats=("mean", "p99", "count")), MetricSpec("absent")]
    )
    assert [v.name for v in values] == ["h.count"] and values[0].value == 0
    assert "no observations" in md and "absent: not exposed" in md
    assert not any(math.isnan(v.value) for v in values)
