"""`sessionctl demo` end to end: a real PostgreSQL, a real git repository, one real session."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionctl.cli import app

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A folder the server's unprivileged user can reach when the tests run as root (pytest's
    own temp folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="sessionctl-test-demo-"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_demo_runs_one_real_session_and_commits_it(reachable_tmp: Path) -> None:
    root = reachable_tmp / "demo"
    leftovers = set(Path(tempfile.gettempdir()).glob("sessionctl-demo-pg-*"))
    result = CliRunner().invoke(
        app, ["demo", "--dir", str(root), "--duration", "0.5s", "--pairs", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["kept"] is True and Path(out["root"]) == root.resolve()
    assert out["rows"] == 300_000
    # Everything under --dir, the server's data folder too; nothing in the system temp folder.
    assert Path(out["datadir"]) == root.resolve() / ".sessionctl" / "pgdata"
    assert (Path(out["datadir"]) / "PG_VERSION").is_file()
    assert set(Path(tempfile.gettempdir()).glob("sessionctl-demo-pg-*")) == leftovers

    # Three commits: the app, then the code change with its log entry, then the prompt update.
    subjects = _git(root, "log", "--format=%s").splitlines()
    assert len(subjects) == 3
    assert subjects[1].startswith("perf(demo): session 1:")
    assert subjects[0].startswith("prompt(demo): after session 1")
    code_files = set(_git(root, "show", "--name-only", "--format=", "HEAD~1").split())
    assert code_files == {"logs/demo-perf-log.md", "migrations/001_orders_customer_idx.sql"}
    prompt_files = set(_git(root, "show", "--name-only", "--format=", "HEAD").split())
    assert prompt_files == {"prompts/demo.yaml", "prompts/demo.md"}
    body = _git(root, "log", "-1", "--format=%B", "HEAD~1")
    assert "Session: 1" in body and "Verdict:" in body
    assert _git(root, "status", "--porcelain", "--untracked-files=no") == ""

    # An index turns a scan into a probe: a real, large effect the paired comparison must see.
    qps = [v for v in out["verdicts"] if v["metric"].startswith("qps@c4")]
    assert qps and qps[0]["verdict"] in ("improved", "probably improved")
    assert qps[0]["ratio"] > 5

    # The log entry and the rotated next steps.
    log = (root / "logs" / "demo-perf-log.md").read_text()
    assert log.count("Session 1") >= 1 and "index-customer-lookup" in log
    assert [s.split(":")[0] for s in out["next_steps"]] == ["covering-index", "check-plan-cache"]
    rendered = (root / "prompts" / "demo.md").read_text()
    assert "Index orders.customer_id" not in rendered.split("ompleted")[0]

    # The server is stopped, and the kept workspace continues: status works without it.
    yaml_text = (root / "prompts" / "demo.yaml").read_text()
    port = int(yaml_text.split("127.0.0.1:")[1].split("/")[0])
    assert not _port_open(port)
    status = subprocess.run(
        ["sessionctl", "status", "--json"], cwd=root, capture_output=True, text=True, check=False
    )
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["open"] is False and state["next_step"] == "covering-index"


def test_demo_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("mine")
    result = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "not empty" in result.output
    assert (tmp_path / "x.txt").read_text() == "mine"


def test_the_data_folder_is_inside_the_demo_folder(tmp_path: Path) -> None:
    from sessionctl.demo import data_folder

    assert data_folder(tmp_path / "d") == tmp_path / "d" / ".sessionctl" / "pgdata"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_as_root_a_dir_the_server_user_cannot_reach_is_one_error(reachable_tmp: Path) -> None:
    private = reachable_tmp / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    result = CliRunner().invoke(app, ["demo", "--dir", str(private / "demo")])
    assert result.exit_code == 2
    assert f"{private}: the " in result.stderr and f"chmod o+x {private}" in result.stderr
    assert [ln for ln in result.stderr.splitlines() if ln.startswith("error:")] == [
        result.stderr.strip().splitlines()[-1]
    ]
    assert not (private / "demo" / ".sessionctl" / "pgdata" / "PG_VERSION").exists()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run root without its capabilities",
)
def test_root_without_its_privileges_cannot_serve_and_says_why_in_one_line(
    reachable_tmp: Path,
) -> None:
    # What Codex's workspace-write sandbox does to root: every capability dropped, so the
    # data folder of the server's user is unreadable (it was a PermissionError traceback).
    from sessionctl.target.embedded_postgres import unprivileged_user

    user = unprivileged_user()
    assert user is not None
    datadir = reachable_tmp / "pgdata"
    datadir.mkdir()
    (datadir / "PG_VERSION").write_text("16\n")
    shutil.chown(datadir, user, user)
    os.chmod(datadir, 0o700)
    argv = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", sys.executable]
    argv += ["-m", "sessionctl.target.embedded_postgres", "serve", "--datadir", str(datadir)]
    proc = subprocess.run(
        [*argv, "--port", "9"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout == (
        f"error: {datadir}: Permission denied: running as root without root's privileges "
        f"(inside an agent's sandbox?), so the server cannot be started as {user}; run as a "
        "normal user, or let the agent run unsandboxed "
        "(agent.codex_args: [--sandbox, danger-full-access])\n"
    )


def test_two_pairs_are_refused_before_anything_runs(tmp_path: Path) -> None:
    # Two pairs can never name a direction (see sessionctl.verdict.judgement): a usage error.
    result = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path / "d"), "--pairs", "2"])
    assert (
        result.exit_code == 2
        and "--pairs" in result.stderr
        and "2 is not in the range x>=3" in result.stderr
    )
    assert not (tmp_path / "d").exists()
