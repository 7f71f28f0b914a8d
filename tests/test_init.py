"""`sessionctl init`: a campaign from scratch that `prompt check` accepts and `start` opens.

Real git repositories, the real typer app in-process, and one real terminal (a pty) for the
questions init asks only when a person is there.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, git
from typer.testing import CliRunner

from sessionctl.campaign import scaffold, store
from sessionctl.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def empty_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`git init` and nothing else: no commits, no prompts/."""
    root = tmp_path / "shop-app"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    monkeypatch.chdir(root)
    return root


def test_init_on_an_empty_repo_gives_a_campaign_check_accepts_and_start_opens(
    empty_repo: Path,
) -> None:
    code, out, err = invoke(
        "init",
        "shop",
        "--target-url",
        "postgres://app@localhost:5432/shop",
        "--driver",
        "builtin",
        "--query",
        "select count(*) from orders where note = 'a: #1'",
        "--headline",
        "Faster order lookups",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out) == {
        "campaign": "shop",
        "yaml": "prompts/shop.yaml",
        "markdown": "prompts/shop.md",
        "log": "logs/shop-perf-log.md",
    }
    text = (empty_repo / "prompts" / "shop.yaml").read_text()
    assert text.startswith("# The shop campaign:") and "\n# The ranked work list" in text
    camp = store.loads(text, name="shop", source="prompts/shop.yaml").campaign
    assert camp.title == "Faster order lookups"
    assert camp.target.sql_url == "postgres://app@localhost:5432/shop"
    assert camp.benchmarks[0].query == "select count(*) from orders where note = 'a: #1'"
    assert (
        (empty_repo / "logs" / "shop-perf-log.md")
        .read_text()
        .startswith("# Faster order lookups: performance log")
    )
    code, out, err = invoke("prompt", "check")
    assert code == 0, err
    assert "is valid" in out and "up to date" in out
    code, out, err = invoke("start", "--json")
    assert code == 0, err
    assert json.loads(out)["number"] == 1 and json.loads(out)["step_id"] == "first-look"
    # The campaign's files became the repository's first commit; the session starts clean.
    assert git(empty_repo, "log", "--format=%s") == (
        "prompt(shop): before session 1: carry the campaign's edits\n"
    )
    assert git(empty_repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("driver", scaffold.DRIVERS)
def test_every_driver_scaffolds_a_valid_campaign(driver: str) -> None:
    answers = scaffold.Answers(name="x", driver=driver, query='select "a" -- it\'s: # fine')
    camp = store.loads(scaffold.campaign_yaml(answers), name="x", source="x.yaml").campaign
    bench = camp.benchmarks[0]
    assert bench.driver == driver
    if driver == "ddl":
        assert bench.ddl is not None and bench.ddl.probes["table"] == answers.query
    else:
        assert bench.query == answers.query


def test_without_a_terminal_missing_values_take_defaults_and_nothing_is_asked(
    empty_repo: Path,
) -> None:
    res = runner.invoke(app, ["init"], input="")  # stdin is not a TTY: no question may block
    assert res.exit_code == 0, res.stderr
    camp = store.loads(
        (empty_repo / "prompts" / "shop-app.yaml").read_text(), name="shop-app", source="y"
    ).campaign
    assert camp.name == "shop-app"  # the folder's name
    assert camp.target.sql_url == scaffold.DEFAULT_URL
    assert camp.benchmarks[0].driver == "builtin"
    assert camp.benchmarks[0].query == scaffold.DEFAULT_QUERY
    assert "?" not in res.stderr


def test_init_refuses_to_overwrite_and_bad_input_is_one_line(empty_repo: Path) -> None:
    assert invoke("init", "shop")[0] == 0
    code, _, err = invoke("init", "shop")
    assert code == 2 and "prompts/shop.yaml: already exists; pass --force" in err
    assert invoke("init", "shop", "--force", "--headline", "Again")[0] == 0
    assert "Again" in (empty_repo / "prompts" / "shop.yaml").read_text()
    code, _, err = invoke("init", "Bad Name")
    assert code == 2 and "campaign name 'Bad Name'" in err and len(err.strip().splitlines()) == 1
    code, _, err = invoke("init", "other", "--driver", "jmeter")
    assert code == 2 and "--driver 'jmeter': use one of builtin, pgbench, dbbench, ddl" in err


def test_on_a_terminal_init_asks_for_what_is_missing(empty_repo: Path) -> None:
    primary, secondary = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100", "TERM": "dumb"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sessionctl", "init", "--target-url", "postgres://h/db"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        cwd=empty_repo,
        env=env,
    )
    os.close(secondary)
    # Name, driver, query, headline: the URL was given, so it is not asked for.
    answers = iter(["tty-shop\n", "pgbench\n", "select 2\n", "Asked on a terminal\n"])
    seen = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 30)
        assert ready, f"init hung; it printed: {seen.decode(errors='replace')}"
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if chunk.rstrip().endswith((b":", b")")) or b"): " in chunk[-4:]:
            os.write(primary, next(answers, "\n").encode())
    os.close(primary)
    assert proc.wait(timeout=30) == 0, seen.decode(errors="replace")
    text = seen.decode(errors="replace")
    assert "Campaign name" in text and "Benchmark driver" in text and "SQL URL" not in text
    camp = store.loads(
        (empty_repo / "prompts" / "tty-shop.yaml").read_text(), name="tty-shop", source="y"
    ).campaign
    assert camp.target.sql_url == "postgres://h/db"
    assert (camp.benchmarks[0].driver, camp.benchmarks[0].query) == ("pgbench", "select 2")
    assert camp.title == "Asked on a terminal"


def test_the_next_commands_init_prints_work_beside_another_campaign(empty_repo: Path) -> None:
    assert invoke("init", "first")[0] == 0
    git(empty_repo, "add", "-A")
    git(empty_repo, "commit", "-qm", "the first campaign")
    code, out, err = invoke("init", "second")
    assert code == 0, err
    hint = out.split("then `", 1)[1].split("`", 1)[0].split()
    assert hint == ["sessionctl", "start", "second"]  # a bare `start` asks which campaign
    code, out, err = invoke(*hint[1:])
    assert code == 0 and "Session 1 of second is open" in out, err


def test_title_is_the_option_for_the_campaigns_title(empty_repo: Path) -> None:
    """`headline:` in a campaign is the metric it is judged on; the title has its own option
    (`--headline` still works for scripts written before)."""
    assert invoke("init", "shop", "--title", "Faster order lookups")[0] == 0
    text = (empty_repo / "prompts" / "shop.yaml").read_text()
    assert 'title: "Faster order lookups"' in text and "\nheadline:" not in text
    res = runner.invoke(app, ["init", "--help"], env={"COLUMNS": "100"})
    assert "--title" in res.stdout and "not the headline: metric" in " ".join(res.stdout.split())
