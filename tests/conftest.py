"""Shared fixtures: a real PostgreSQL server, real git repositories, a workspace, frozen time."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionctl.target.embedded_postgres import EmbeddedPostgres
from sessionctl.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep every test away from $HOME, the user's git config and ambient sessionctl settings."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test User")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test User")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")
    monkeypatch.setenv("JJ_USER", "Test User")
    monkeypatch.setenv("JJ_EMAIL", "test@example.com")
    monkeypatch.setenv("JJ_EDITOR", "false")
    for var in (
        "SESSIONCTL_ROOT",
        "SESSIONCTL_CAMPAIGN",
        "SESSIONCTL_SESSION",
        "SESSIONCTL_NOW",
        "SESSIONCTL_RUN",  # set inside `sessionctl run`: close/abort would only record requests
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One real PostgreSQL server for the whole test session (loopback, free port, temp data)."""
    pg = EmbeddedPostgres()
    pg.start()
    try:
        pg.wait_ready()
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture
def pg_url(postgres: EmbeddedPostgres) -> str:
    return postgres.url


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return stdout (tests only)."""
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A real git repository with one commit, as a workspace root (has prompts/ and logs/)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "prompts").mkdir()
    (repo / "logs").mkdir()
    (repo / "README.md").write_text("demo app\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture
def ws(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The git_repo as a Workspace, with the current directory inside it."""
    monkeypatch.chdir(git_repo)
    return Workspace(git_repo)


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> str:
    """Freeze sessionctl's clock (timestamps in records, log entries, messages)."""
    stamp = "2026-11-22T10:00:00Z"
    monkeypatch.setenv("SESSIONCTL_NOW", stamp)
    return stamp


def has_tool(name: str) -> bool:
    from shutil import which

    return which(name) is not None


jj_required = pytest.mark.skipif(not has_tool("jj"), reason="jj is not installed on this machine")
running_as_root = os.geteuid() == 0
