"""`sessionctl profile report|diff|sweep` on profile folders built from the captured perf data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from sessionctl.cli import app
from sessionctl.profiling.folded import collapse_file
from sessionctl.profiling.report import Profile

DATA = Path(__file__).parent / "data" / "perf"


def folder(tmp: Path, name: str) -> Path:
    m = json.loads((DATA / f"{name}.json").read_text())
    c = collapse_file(DATA / f"{name}.perf.txt.gz", window=tuple(m["window"]))
    p = Profile(
        stacks=c.stacks,
        queries=m["queries"],
        event=c.event,
        period_ns=c.mean_period,
        concurrency=m["concurrency"],
        label=name,
        meta={"focus": ["exec_simple_query"], "groups": {"parser": "base_yyparse|raw_parser"}},
    )
    return p.save(tmp / name)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("profiles")
    names = (
        "pg15-pgserver-dwarf-simple-c4",
        "pg15-pgserver-dwarf-prepared-c4",
        "pg15-pgserver-dwarf-simple-c1",
    )
    return {n.rsplit("-", 2)[1] + n[-2:]: folder(tmp, n) for n in names}


def test_every_profile_command_and_option_has_help() -> None:
    group = typer.main.get_command(app).commands["profile"]  # type: ignore[attr-defined]
    assert group.help
    for name in ("run", "report", "diff", "sweep"):
        sub = group.commands[name]
        assert sub.help, name
        for p in sub.params:
            if p.param_type_name == "option":
                assert p.help, f"profile {name} {p.opts}"


def test_report_uses_the_focus_and_groups_recorded_with_the_profile(
    folders: dict[str, Path],
) -> None:
    res = CliRunner().invoke(
        app, ["profile", "report", str(folders["simplec4"]), "--top", "5", "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["queries"] == 37149 and len(doc["top_self"]) == 5
    assert doc["focus"][0]["name"] == "exec_simple_query" and doc["focus"][0]["incl_per_query"] > 0
    assert doc["groups"][0]["name"] == "parser"
    human = CliRunner().invoke(
        app,
        [
            "profile",
            "report",
            str(folders["simplec4"]),
            "--group",
            "alloc=AllocSet",
            "--focus",
            "PortalRun",
        ],
    )
    assert human.exit_code == 0, human.output
    for text in ("samples/query", "Top by self samples", "exec_simple_query", "PortalRun", "alloc"):
        assert text in human.output


def test_report_rejects_a_malformed_group(folders: dict[str, Path]) -> None:
    res = CliRunner().invoke(
        app, ["profile", "report", str(folders["simplec4"]), "--group", "nope"]
    )
    assert res.exit_code == 2 and "NAME=REGEX" in res.output


def test_diff_between_two_saved_profiles(folders: dict[str, Path]) -> None:
    res = CliRunner().invoke(
        app, ["profile", "diff", str(folders["simplec4"]), str(folders["preparedc4"]), "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["unit"] == "query" and doc["b_samples_per_unit"] < doc["a_samples_per_unit"]
    rows = {r["name"]: r for r in doc["rows"]}
    assert rows["base_yyparse"]["b_self"] == 0 and rows["base_yyparse"]["d_self"] < 0
    assert doc["focus"][0]["name"] == "exec_simple_query" and doc["focus"][0]["b_incl"] == 0
    human = CliRunner().invoke(
        app,
        ["profile", "diff", str(folders["simplec4"]), str(folders["preparedc4"]), "--by", "incl"],
    )
    assert human.exit_code == 0 and "Largest changes by incl" in human.output


def test_sweep_across_saved_profiles(folders: dict[str, Path]) -> None:
    res = CliRunner().invoke(
        app, ["profile", "sweep", str(folders["simplec4"]), str(folders["simplec1"]), "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["concurrency"] == [1, 4]
    growth = [r["growth"] for r in doc["rows"]]
    assert growth == sorted(growth, reverse=True)


def test_missing_folder_and_bad_levels_are_one_line_errors(
    tmp_path: Path, folders: dict[str, Path]
) -> None:
    res = CliRunner().invoke(app, ["profile", "report", str(tmp_path)])
    assert res.exit_code == 2 and "not a profile folder" in res.output
    (tmp_path / "prompts").mkdir()
    bad = CliRunner().invoke(app, ["--root", str(tmp_path), "profile", "--concurrency", "x"])
    assert bad.exit_code == 2 and "--concurrency 'x'" in bad.output


def test_sweep_refuses_two_profiles_at_one_concurrency(
    tmp_path: Path, folders: dict[str, Path]
) -> None:
    res = CliRunner().invoke(
        app, ["profile", "sweep", str(folders["simplec4"]), str(folders["preparedc4"]), "--json"]
    )
    assert res.exit_code == 2 and "growth" not in res.output
    assert "both at c4" in res.output and "profile diff" in res.output
    assert len(res.output.strip().splitlines()) == 1
    bare = tmp_path / "bare.folded"
    bare.write_text("main;work 3\n")
    res = CliRunner().invoke(app, ["profile", "sweep", str(folders["simplec1"]), str(bare)])
    assert res.exit_code == 2 and "no concurrency recorded" in res.output


def test_report_accepts_raw_perf_script_text(tmp_path: Path) -> None:
    raw = DATA / "pg15-debian-fp-simple-c4.perf.txt.gz"
    m = json.loads((DATA / "pg15-debian-fp-simple-c4.json").read_text())
    res = CliRunner().invoke(
        app, ["profile", "report", str(raw), "--queries", str(m["queries"]), "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    whole = collapse_file(raw)  # every sample of the file: no measured window to cut to
    assert doc["samples"] == whole.samples > m["samples_in_window"]
    assert doc["samples_per_query"] == pytest.approx(whole.samples / m["queries"])
    assert any(r["name"] == "PostgresMain" for r in doc["top_incl"])
    # Uncompressed, and gzip content under a plain name, read the same way.
    import gzip

    plain = tmp_path / "perf.txt"
    plain.write_bytes(gzip.decompress(raw.read_bytes()))
    for path in (plain, tmp_path / "perf-script-output"):
        if not path.exists():
            path.write_bytes(raw.read_bytes())
        again = CliRunner().invoke(app, ["profile", "report", str(path), "--json"])
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["samples"] == whole.samples
    # Raw perf text works wherever a profile is read, e.g. on both sides of a diff.
    diff = CliRunner().invoke(app, ["profile", "diff", str(raw), str(plain), "--json"])
    assert diff.exit_code == 0 and json.loads(diff.stdout)["unit"] == "sample"


def test_report_names_what_a_wrong_file_is(tmp_path: Path) -> None:
    data = tmp_path / "perf.data"
    data.write_bytes(b"PERFILE2" + b"\0" * 64)
    cases = {
        data: ("binary perf.data", "perf script -F"),
        DATA / "capture.py": ("neither folded stacks nor `perf script` text", "profile folder"),
        DATA / "pg15-debian-fp-simple-c4.json": ("a JSON file", "profile folder"),
    }
    for path, words in cases.items():
        res = CliRunner().invoke(app, ["profile", "report", str(path)])
        assert res.exit_code == 2 and all(w in res.output for w in words), res.output
        assert len(res.output.strip().splitlines()) == 1


def test_profile_refuses_a_level_given_twice_before_starting_anything(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "c.yaml").write_text(
        "schema: 1\nrevision: 1\ntitle: t\ntarget:\n  sql_url: postgresql://127.0.0.1:1/x\n"
        "benchmarks:\n  - name: q\n    driver: builtin\n    query: select 1\n"
    )
    res = CliRunner().invoke(app, ["--root", str(tmp_path), "profile", "-c", "4,16,4"])
    assert res.exit_code == 2 and "a level is given twice" in res.output, res.output
