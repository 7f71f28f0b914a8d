"""The built-in driver against the real PostgreSQL fixture: closed/open loop, mixes, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest

from sessionctl.bench.builtin import BuiltinSpec, run_builtin
from sessionctl.errors import MeasurementError, TargetError
from sessionctl.target.embedded_postgres import EmbeddedPostgres, free_port


@pytest.fixture(scope="module")
def table_url(postgres: EmbeddedPostgres) -> str:
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("create table if not exists bench_t (id int primary key, v text)")
        conn.execute(
            "insert into bench_t select g, 'v' || g from generate_series(1, 5) g "
            "on conflict do nothing"
        )
    return postgres.url


def with_password(url: str, password: str) -> str:
    """The fixture trusts loopback, so any password is accepted (and must never leak)."""
    return url.replace("://", "://", 1).replace("@", f":{password}@", 1)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_closed_loop_sweep_levels(table_url: str, concurrency: int, tmp_path: Path) -> None:
    url = with_password(table_url, "hunter2pw")
    seen: list[float] = []
    spec = BuiltinSpec(
        url=url, queries=(("select * from bench_t", 1.0),), concurrency=concurrency, duration=0.5
    )
    res = run_builtin(spec, raw_dir=tmp_path, progress=lambda elapsed, qps, done: seen.append(qps))
    assert res.driver == "builtin" and res.concurrency == concurrency
    assert res.errors == 0 and res.queries > 0
    assert res.qps == pytest.approx(res.queries / res.duration)
    assert res.duration == pytest.approx(0.5)
    lat = res.latency_ms
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    hist = res.details["histogram"]
    assert hist["count"] == res.queries
    assert res.details["workers"] == min(concurrency, os.cpu_count() or 1)
    assert sum(res.details["connections"]) == concurrency
    assert res.details["prepared"] is True
    assert res.details["rows"] >= 5 * res.queries  # every answer had the table's 5 rows
    raw = (tmp_path / "builtin.json").read_text()
    assert "hunter2pw" not in raw and json.loads(raw)["spec"]["url"].count("***") == 1


def test_count_mode_runs_exactly_that_many(table_url: str) -> None:
    spec = BuiltinSpec(
        url=table_url, queries=(("select 1", 1.0),), concurrency=3, duration=None, count=250
    )
    res = run_builtin(spec)
    assert res.queries == 250 and res.errors == 0
    assert res.details["histogram"]["count"] == 250


def test_weighted_mix_counts_errors_and_falls_back_to_simple_protocol(table_url: str) -> None:
    spec = BuiltinSpec(
        url=table_url,
        queries=(
            ("select v from bench_t where id = 1", 3.0),
            ("select 1/0", 1.0),
            ("select 1; select 2", 1.0),
        ),
        concurrency=2,
        duration=None,
        count=400,
    )
    res = run_builtin(spec)
    assert res.queries == 400
    assert 0 < res.errors < 400  # about a fifth divide by zero
    assert any("division by zero" in e for e in res.details["error_samples"])
    assert res.details["prepared"] is False  # the two-statement string cannot be prepared


def test_open_loop_never_exceeds_the_arrival_schedule(table_url: str) -> None:
    spec = BuiltinSpec(
        url=table_url, queries=(("select 1", 1.0),), concurrency=2, duration=0.5, rate=200
    )
    res = run_builtin(spec)
    assert res.details["mode"] == "open" and res.details["rate"] == 200
    assert 0 < res.queries <= 100 + 2  # 200/s for 0.5 s, at most one extra per worker
    assert res.errors == 0 and res.latency_ms["p50"] > 0


def test_warmup_is_not_counted(table_url: str) -> None:
    spec = BuiltinSpec(
        url=table_url,
        queries=(("select 1", 1.0),),
        concurrency=1,
        duration=None,
        count=50,
        warmup=0.3,
    )
    res = run_builtin(spec)
    assert res.queries == 50  # the warm-up's queries are not in the count
    assert res.details["executed"] > 50  # ... but they were sent (metric deltas see them)


def test_every_query_failing_is_a_failed_measurement(table_url: str) -> None:
    spec = BuiltinSpec(
        url=table_url, queries=(("select * from no_such_table", 1.0),), concurrency=1, duration=0.3
    )
    with pytest.raises(MeasurementError, match="no_such_table"):
        run_builtin(spec)


def test_unreachable_server_names_the_redacted_url() -> None:
    url = f"postgresql://bob:topsecret@127.0.0.1:{free_port()}/db"
    spec = BuiltinSpec(url=url, queries=(("select 1", 1.0),), concurrency=2, duration=0.5)
    with pytest.raises(TargetError) as info:
        run_builtin(spec)
    assert "postgresql://bob:***@127.0.0.1" in str(info.value)
    assert "topsecret" not in str(info.value)
