"""The target's SQL side against the real PostgreSQL fixture: setup SQL, preflight checks, and
password redaction."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from sessionctl.campaign.model import Campaign, Preflight, Target
from sessionctl.errors import TargetError
from sessionctl.target.embedded_postgres import EmbeddedPostgres
from sessionctl.target.server import TargetHandle, check_expectation, redact, scrub, secrets_of
from sessionctl.workspace import Workspace


def campaign(target: Target) -> Campaign:
    return Campaign(schema=1, revision=0, title="t", name="demo", target=target)


def pw_url(url: str, password: str = "Sup3rSecret") -> str:
    return url.replace("@", f":{password}@", 1)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgres://u:secret@h/db", "postgres://u:***@h/db"),
        (
            "postgresql://mz_system:p%40ss@localhost:6877/materialize",
            "postgresql://mz_system:***@localhost:6877/materialize",
        ),
        ("postgres://u@h:5432/db", "postgres://u@h:5432/db"),
        ("host=h user=u password=secret dbname=d", "host=h user=u password=*** dbname=d"),
        ("host=h password='se cret' dbname=d", "host=h password=*** dbname=d"),
        (
            "postgres://h/db?user=u&password=secret&sslmode=disable",
            "postgres://h/db?user=u&password=***&sslmode=disable",
        ),
        ("http://admin:pw@localhost:6878/metrics", "http://admin:***@localhost:6878/metrics"),
        ("", ""),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_scrub_removes_raw_and_decoded_passwords() -> None:
    url = "postgresql://u:p%40ss@h/db"
    assert secrets_of(url) == ["p%40ss", "p@ss"]
    assert scrub("auth failed for p@ss at postgresql://u:p%40ss@h/db", secrets_of(url)) == (
        "auth failed for *** at postgresql://u:***@h/db"
    )


@pytest.mark.parametrize(
    ("expect", "value", "ok"),
    [
        (">= 100000", 100000, True),
        (">= 100000", 99999, False),
        ("> 5", 6, True),
        ("<= 5", 6, False),
        ("== 1", 1, True),
        ("== on", "on", True),
        ("== on", "off", False),
        ("!= 0", 0, False),
        ("true", True, True),
        ("true", "on", True),
        ("true", 0, False),
        ("false", False, True),
        ("~ ^v1[5-9]", "v16.1", True),
        ("~ ^v1[5-9]", "v14", False),
        (">= 3", None, False),
    ],
)
def test_expectations(expect: str, value: object, ok: bool) -> None:
    assert check_expectation(expect, value) is ok


def test_bad_expectation_is_a_clear_error() -> None:
    with pytest.raises(TargetError, match="use '>= N'"):
        check_expectation("at least 5", 6)


def test_setup_sql_runs_as_system_user_then_benchmark_setup(
    tmp_path: Path, postgres: EmbeddedPostgres
) -> None:
    t = Target(
        sql_url=pw_url(postgres.url),
        system_sql_url=postgres.url,
        setup_sql=(
            "create table if not exists target_setup_probe (a int)",
            "truncate target_setup_probe",
        ),
    )
    handle = TargetHandle(Workspace(tmp_path), campaign(t))
    handle.run_setup(["insert into target_setup_probe values (42)"])
    with psycopg.connect(postgres.url) as conn:
        assert conn.execute("select a from target_setup_probe").fetchall() == [(42,)]
    handle.run_setup(
        ["insert into target_setup_probe values (43)"]
    )  # runs before every measurement
    with psycopg.connect(postgres.url) as conn:
        assert conn.execute("select a from target_setup_probe").fetchall() == [(43,)]


def test_setup_sql_failure_names_statement_and_redacted_url(
    tmp_path: Path, postgres: EmbeddedPostgres
) -> None:
    t = Target(
        sql_url=postgres.url,
        system_sql_url=pw_url(postgres.url),
        setup_sql=("alter system set no_such_knob = 1",),
    )
    with pytest.raises(TargetError) as info:
        TargetHandle(Workspace(tmp_path), campaign(t)).run_setup()
    msg = str(info.value)
    assert msg.startswith(
        "prompts/demo.yaml: target.setup_sql[0]: `alter system set no_such_knob = 1` failed on"
    )
    assert ":***@" in msg and "Sup3rSecret" not in msg and "no_such_knob" in msg


def test_preflight_passes_and_reports_values(tmp_path: Path, postgres: EmbeddedPostgres) -> None:
    t = Target(
        sql_url=postgres.url,
        preflight=(
            Preflight(name="catalog", sql="select count(*) from pg_class", expect=">= 10"),
            Preflight(name="version", sql="show server_version", expect="~ ^1[0-9]", system=True),
            Preflight(
                name="superuser", sql="select rolsuper from pg_roles where rolname = current_user"
            ),
        ),
    )
    results = TargetHandle(Workspace(tmp_path), campaign(t)).preflight()
    assert [r.name for r in results] == ["catalog", "version", "superuser"]
    assert all(r.ok for r in results) and results[0].value >= 10


def test_preflight_failure_names_check_value_and_fix(
    tmp_path: Path, postgres: EmbeddedPostgres
) -> None:
    t = Target(
        sql_url=postgres.url,
        preflight=(
            Preflight(name="catalog", sql="select count(*) from pg_class", expect=">= 1"),
            Preflight(
                name="objects",
                sql="select 3",
                expect=">= 100000",
                fix="create the 100k objects first (see the DDL prompt's setup)",
            ),
        ),
    )
    with pytest.raises(TargetError) as info:
        TargetHandle(Workspace(tmp_path), campaign(t)).preflight()
    assert str(info.value) == (
        "preflight 'objects' failed: expected >= 100000, got 3; "
        "create the 100k objects first (see the DDL prompt's setup)"
    )


def test_preflight_sql_error_is_one_line(tmp_path: Path, postgres: EmbeddedPostgres) -> None:
    t = Target(
        sql_url=postgres.url,
        preflight=(Preflight(name="mz", sql="select count(*) from mz_objects"),),
    )
    with pytest.raises(
        TargetError,
        match=r"preflight 'mz': `select count\(\*\) from mz_objects` failed: .*mz_objects",
    ):
        TargetHandle(Workspace(tmp_path), campaign(t)).preflight()


def test_missing_sql_url_says_which_field(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"prompts/demo\.yaml: target\.sql_url: not set"):
        _ = TargetHandle(Workspace(tmp_path), campaign(Target())).sql_url


def test_urls_expand_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MZ_PW", "from-env")
    t = Target(sql_url="postgresql://u:${MZ_PW}@h:6875/db")
    h = TargetHandle(Workspace(tmp_path), campaign(t))
    assert h.sql_url == "postgresql://u:from-env@h:6875/db"
    assert h.describe()["sql_url"] == "postgresql://u:***@h:6875/db"
