"""The ddl driver's spec validation and defaults (no server needed)."""

from __future__ import annotations

import pytest

from sessionctl.bench.ddl_population import default_cleanup, dialect_of, fill, name_prefix, plan
from sessionctl.campaign.model import DdlSpec
from sessionctl.errors import ConfigError

PG_COUNT = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"


def spec(**kw: object) -> DdlSpec:
    base: dict[str, object] = {
        "count_sql": PG_COUNT,
        "filler": "CREATE TABLE filler_{n} (a int)",
        "probes": {"table": "CREATE TABLE probe_{n} (a int)"},
    }
    base.update(kw)
    return DdlSpec(**base)  # type: ignore[arg-type]


def test_dialect_is_read_from_the_count_query() -> None:
    assert dialect_of("SELECT count(*) FROM mz_objects") == "materialize"
    assert (
        dialect_of("SELECT count(*) FROM mz_catalog.mz_objects WHERE id LIKE 'u%'") == "materialize"
    )
    assert dialect_of(PG_COUNT) == "postgres"


def test_prefix_is_the_identifier_before_n() -> None:
    assert name_prefix("CREATE TABLE filler_{n} (a int)", where="x") == "filler_"
    assert name_prefix("CREATE VIEW bench.probe_v_{n} AS SELECT 1", where="x") == "probe_v_"
    with pytest.raises(ConfigError, match=r"x: put a name prefix before \{n\}"):
        name_prefix("CREATE TABLE {n} (a int)", where="x")
    with pytest.raises(ConfigError, match=r"has no \{n\}"):
        name_prefix("CREATE TABLE t (a int)", where="x")


@pytest.mark.parametrize(
    ("create", "drop"),
    [
        ("CREATE TABLE probe_{n} (a int)", "DROP TABLE probe_{n}"),
        ("create view probe_v_{n} as select 1", "DROP VIEW probe_v_{n}"),
        (
            "CREATE MATERIALIZED  VIEW s.probe_mv_{n} AS SELECT 1",
            "DROP MATERIALIZED VIEW s.probe_mv_{n}",
        ),
        ("CREATE INDEX probe_i_{n} ON t (a)", "DROP INDEX probe_i_{n}"),
        ("CREATE TABLE IF NOT EXISTS probe_{n}(a int)", "DROP TABLE probe_{n}"),
    ],
)
def test_cleanup_is_derived_from_the_create(create: str, drop: str) -> None:
    assert default_cleanup(create, where="x") == drop


def test_underivable_cleanup_names_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"ddl.probes.fn: cannot derive a DROP .* add `cleanup:"):
        plan(
            spec(
                probes={"fn": "CREATE FUNCTION probe_{n}() RETURNS int AS 'select 1' LANGUAGE sql"}
            )
        )


def test_explicit_cleanup_wins() -> None:
    p = plan(spec(cleanup={"table": "DROP TABLE IF EXISTS probe_{n} CASCADE"}))
    assert p.probes[0].drop == "DROP TABLE IF EXISTS probe_{n} CASCADE"


def test_levels_are_sorted_and_overridable() -> None:
    assert plan(spec(levels=(500, 0, 200))).levels == (0, 200, 500)
    assert plan(spec(levels=(5,)), levels=[2000, 0, 2000]).levels == (0, 2000)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"levels": (-1,)}, r"ddl.levels: give object counts >= 0"),
        ({"batch_size": 0}, r"ddl.batch_size: must be >= 1"),
        ({"probes_per_level": 0}, r"ddl.probes_per_level: must be >= 1"),
        ({"txn_batches": (0,)}, r"ddl.txn_batches: sizes must be >= 1"),
        ({"probes": {}}, r"ddl.probes: add at least one"),
        ({"cleanup": {"view": "DROP VIEW v_{n}"}}, r"ddl.cleanup: no probe kind 'view'"),
        ({"cleanup": {"table": "DROP TABLE probe_1"}}, r"ddl.cleanup.table: template has no \{n\}"),
        ({"probes": {"t": "CREATE TABLE filler_x_{n} (a int)"}}, r"overlaps the filler prefix"),
        (
            {"probes": {"a": "CREATE TABLE p_{n} (a int)", "b": "CREATE VIEW p_{n} AS SELECT 1"}},
            r"kinds 'a' and 'b' share the prefix 'p_'",
        ),
        ({"txn_kinds": ("view",)}, r"ddl.txn_kinds: no probe kind 'view'"),
    ],
)
def test_bad_specs_fail_with_the_field(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan(spec(**kw), where="ddl")


def test_defaults() -> None:
    p = plan(
        spec(
            probes={
                "table": "CREATE TABLE probe_{n} (a int)",
                "view": "CREATE VIEW probe_v_{n} AS SELECT 1",
            }
        )
    )
    assert p.filler_prefix == "filler_"
    assert p.txn_kinds == ("table",)
    assert p.dialect == "postgres"
    assert [k.prefix for k in p.probes] == ["probe_", "probe_v_"]
    assert (
        fill("CREATE TABLE t_{n} (j jsonb DEFAULT '{}')", 7)
        == "CREATE TABLE t_7 (j jsonb DEFAULT '{}')"
    )


def test_the_shipped_materialize_campaign() -> None:
    from pathlib import Path

    from sessionctl.campaign import store
    from sessionctl.workspace import Workspace

    repo = Path(__file__).resolve().parent.parent
    ws = Workspace(repo)
    c = store.load(ws, "ddl-latency").campaign
    ddl = c.benchmark("ddl")
    assert ddl.driver == "ddl" and ddl.ddl is not None
    p = plan(ddl.ddl)
    assert p.dialect == "materialize" and p.levels == (1000, 10000, 50000, 100000)
    assert [k.drop for k in p.probes] == ["DROP TABLE probe_{n}", "DROP VIEW probe_v_{n}"]
    assert plan(c.benchmark("ddl-now").ddl).levels == (0,)  # type: ignore[arg-type]
    assert (c.target.sql_url or "").endswith("@localhost:6875/materialize")
    assert "mz_system@localhost:6877" in (c.target.system_sql_url or "")
    assert c.target.metrics_url == "http://localhost:6878/metrics"
    by = {m.name: m.by for m in c.metrics}
    assert by["mz_catalog_transact_seconds"] == ("method",)
    assert by["mz_create_table_collections_seconds"] == ("step",)
    assert "mz_catalog_allocate_id_seconds" in by
    assert any("Never use `--reset`" in r for r in c.rules)
    # The rendered prompt is up to date with the YAML (`sessionctl prompt render ddl-latency`).
    assert store.check_prompt(ws, "ddl-latency") is None
