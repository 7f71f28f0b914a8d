"""Start-up stays light: the lazy command tree, what gets imported, the status fast paths.

Functional checks only (no timings: `python benchmarks/startup.py` measures those).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
import typer.main
from click.testing import CliRunner as ClickRunner
from conftest import git
from typer.testing import CliRunner

from sessionctl import cli
from sessionctl.cli import COMMANDS, LazyCommands, app
from sessionctl.session import status as session_status
from sessionctl.vcs.git import GitVcs
from sessionctl.workspace import Workspace

HEAVY = ("psycopg", "git", "gitdb", "jinja2", "ruamel", "numpy", "scipy", "pydantic")
CAMPAIGN = """\
schema: 1
revision: 1
title: Demo
vcs: git
last_session: 4
next_steps:
  - id: first
    title: The first step
  - id: second
    title: The second step
"""

# Run sessionctl's entry point in a fresh interpreter, then report which modules it loaded.
PROBE = """\
import json, sys
sys.argv = ["sessionctl", *json.loads(sys.argv[1])]
from sessionctl.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stderr.write("\\nPROBE " + json.dumps({"code": code, "modules": sorted(sys.modules)}) + "\\n")
"""


def probe(*args: str, cwd: Path | None = None) -> tuple[int, str, set[str]]:
    """Run ``sessionctl ARGS`` in a subprocess: exit code, stdout, top-level modules loaded."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stderr.rsplit("\nPROBE ", 1)[1])
    return report["code"], done.stdout, set(report["modules"])


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def eager_app() -> typer.Typer:
    """The tree as typer builds it from every register() at once: what the lazy root must equal."""
    eager = typer.Typer(
        name="sessionctl",
        help=app.info.help,
        no_args_is_help=True,
        add_completion=True,  # as the real root: typer's --install-completion/--show-completion
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
    )
    eager.callback()(cli._root)
    for module in dict.fromkeys(module for module, _ in COMMANDS.values()):
        __import__(f"sessionctl.cli.{module}", fromlist=["register"]).register(eager)
    return eager


def command_paths(group: click.Group) -> list[list[str]]:
    paths: list[list[str]] = [[]]
    for name, cmd in group.commands.items():
        paths.append([name])
        if isinstance(cmd, click.Group):
            paths.extend([name, sub] for sub in cmd.commands)
    return paths


def test_command_table_matches_what_the_modules_register() -> None:
    eager = typer.main.get_command(eager_app())
    assert isinstance(eager, click.Group)
    real = {name: (cmd.help or "").split("\n\n")[0] for name, cmd in eager.commands.items()}
    table = {name: help_text for name, (_, help_text) in COMMANDS.items()}
    rows = "\n".join(f"    {name!r}: (MODULE, {text!r})," for name, text in real.items())
    assert list(table.items()) == list(real.items()), f"update COMMANDS to:\n{rows}"
    for name in COMMANDS:
        assert cli.build_command(name).name == name


def test_every_help_text_is_the_same_as_the_eager_tree() -> None:
    runner = CliRunner()
    # Built once (typer rebuilds it per invoke); get_command, as typer does for the real root,
    # adds --install-completion and --show-completion.
    eager = typer.main.get_command(eager_app())
    paths = command_paths(eager)
    assert len(paths) > len(COMMANDS)
    extra = [[], ["statu"], ["next"], ["--version"]]
    for path in [*[[*p, "--help"] for p in paths], *extra]:
        want = ClickRunner().invoke(eager, path, prog_name="sessionctl", terminal_width=100)
        got = runner.invoke(app, path, prog_name="sessionctl", terminal_width=100)
        assert (got.exit_code, got.output) == (want.exit_code, want.output), path


def test_root_help_builds_no_command_and_lists_every_one() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group) and isinstance(group.commands, LazyCommands)
    text = group.get_help(click.Context(group, info_name="sessionctl"))
    for name in COMMANDS:
        assert f"\n  {name} " in text
    assert all(group.commands.summary(n).callback is None for n in COMMANDS)  # all stand-ins
    assert "stauts" not in group.commands and "status" in group.commands
    assert group.commands["status"].params  # built on first access
    with pytest.raises(KeyError):
        group.commands["nope"]


def test_importing_the_cli_loads_nothing_heavy() -> None:
    code = "import json, sys, sessionctl.cli; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = top_level(set(json.loads(out.stdout)))
    assert not loaded & {*HEAVY, "rich"}, loaded & {*HEAVY, "rich"}


def test_help_in_a_fresh_process_imports_no_command_module() -> None:
    code, out, modules = probe("--help")
    assert code == 0 and "Commands:" in out
    assert all(f"\n  {name} " in out for name in COMMANDS)
    # The click 8.5 shim is part of the root group, not a command.
    command_modules = [
        m for m in modules if m.startswith("sessionctl.cli.") and m != "sessionctl.cli.click_compat"
    ]
    assert not command_modules, modules
    assert not top_level(modules) & {*HEAVY, "rich"}


@pytest.fixture
def demo(ws: Workspace) -> Workspace:
    (ws.root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    (ws.root / "app.py").write_text("x = 1\n")
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    return ws


def test_status_of_an_open_session_needs_neither_gitpython_nor_a_yaml_parse(
    demo: Workspace,
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["start"]).exit_code == 0
    assert (
        runner.invoke(app, ["record", "--phase", "baseline", "--metric", "qps=10"]).exit_code == 0
    )
    (demo.root / "app.py").write_text("x = 2\n")
    code, first, modules = probe("status", "--json", cwd=demo.root)
    assert code == 0
    assert not top_level(modules) & {"git", "gitdb", "jinja2", "psycopg"}
    st = json.loads(first)
    assert st["session"] == 5 and st["next_step"] == "first" and st["last_session"] == 4
    assert st["close_plan"]["code"]["paths"] == ["app.py", "logs/demo-perf-log.md"]
    # The second time the validated facts come from the cache: no ruamel, no campaign model.
    code, second, modules = probe("status", "--json", cwd=demo.root)
    assert code == 0 and json.loads(second) == st
    assert not top_level(modules) & set(HEAVY)
    assert "sessionctl.campaign.model" not in modules


def test_status_revalidates_an_edited_campaign_and_reports_a_broken_one(
    demo: Workspace,
) -> None:
    path = demo.campaign_path("demo")
    first = session_status.campaign_facts(demo, "demo")
    assert (first.vcs, first.last_session, first.top) == ("git", 4, "first")
    cached = session_status.campaign_facts(demo, "demo")
    assert (cached.vcs, cached.last_session, cached.top) == ("git", 4, "first")

    path.write_text(
        CAMPAIGN.replace("last_session: 4", "last_session: 7").replace("first", "zeroth")
    )
    edited = session_status.campaign_facts(demo, "demo")
    assert (edited.last_session, edited.top) == (7, "zeroth")

    path.write_text(CAMPAIGN.replace("  - id: second\n", "  - id: [second\n"))
    res = CliRunner().invoke(app, ["status"])
    assert res.exit_code == 1
    assert res.stderr.startswith("error: prompts/demo.yaml:") and len(res.stderr.splitlines()) == 1

    path.write_text(CAMPAIGN.replace("title: Demo", "title: Demo\nbogus: 1"))
    res = CliRunner().invoke(app, ["status"])
    assert res.exit_code == 1 and "prompts/demo.yaml:" in res.stderr and "bogus" in res.stderr


def test_git_read_only_queries_do_not_load_gitpython(git_repo: Path, tmp_path: Path) -> None:
    (git_repo / "README.md").write_text("one\ntwo\n")
    (git_repo / "new.py").write_text("a\n")
    code = (
        "import json, sys; from pathlib import Path; from sessionctl.vcs.git import GitVcs\n"
        "v = GitVcs(Path(sys.argv[1])); r = v.revision()\n"
        "out = [r.branch, r.empty, [c.path for c in v.working_changes()],\n"
        "       [(s.path, s.added, s.removed) for s in v.numstat(['README.md', 'new.py'])],\n"
        "       v.commits_since(r.commit), v.files_in(), v.message(), 'git' in sys.modules]\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(git_repo)], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == [
        "main",
        False,
        ["README.md", "new.py"],
        [["README.md", 2, 1], ["new.py", 1, 0]],
        [],
        ["README.md"],
        "initial\n",
        False,
    ]
    git(git_repo, "checkout", "-q", "--detach")
    assert GitVcs(git_repo).revision().branch is None


def test_json_quiet_does_not_leak_into_the_next_command(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A --json call silences chatter for itself only, not for the next command in-process."""
    from typer.testing import CliRunner

    from sessionctl import console
    from sessionctl.cli import app

    (tmp_path / "prompts").mkdir()
    monkeypatch.chdir(tmp_path)
    console.set_quiet(True)  # what an earlier --json command in this process left behind
    result = CliRunner().invoke(app, ["template", "list"])
    assert result.exit_code == 0, result.output
    assert console._quiet is False
