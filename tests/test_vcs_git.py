"""The git backend against real repositories, and backend detection."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import git

from sessionctl.errors import VcsError
from sessionctl.vcs import detect, relpath
from sessionctl.vcs.git import GitVcs
from sessionctl.vcs.jj import JjVcs


def test_working_changes_statuses_and_ignored(git_repo: Path) -> None:
    (git_repo / ".gitignore").write_text("perf.data\n")
    git(git_repo, "add", ".gitignore")
    git(git_repo, "commit", "-qm", "ignore")
    (git_repo / "README.md").write_text("changed\n")
    (git_repo / "new.py").write_text("x\n")
    (git_repo / "staged.py").write_text("y\n")
    git(git_repo, "add", "staged.py")
    (git_repo / "perf.data").write_text("ignored\n")
    (git_repo / "sub").mkdir()
    (git_repo / "sub" / "deep.txt").write_text("z\n")
    v = GitVcs(git_repo)
    got = {c.path: c.status for c in v.working_changes()}
    assert got == {"README.md": "M", "new.py": "?", "staged.py": "A", "sub/deep.txt": "?"}
    (git_repo / "README.md").unlink()
    assert {c.path: c.status for c in v.working_changes()}["README.md"] == "D"


def test_commit_paths_commits_exactly_those_paths(git_repo: Path, tmp_path: Path) -> None:
    v = GitVcs(git_repo)
    (git_repo / "README.md").write_text("changed\n")
    (git_repo / "other.txt").write_text("staged but not ours\n")
    git(git_repo, "add", "other.txt")
    (git_repo / "logs" / "x.md").write_text("log\n")
    (git_repo / "stray.txt").write_text("stray\n")
    message = "perf(x): title\n\nbody with `quotes` and $HOME and 'single'\n\nSession: 1\n"
    made = v.commit_paths(
        title="perf(x): title", message=message, paths=["README.md", "logs/x.md"], scratch=tmp_path
    )
    assert made.commit == git(git_repo, "rev-parse", "HEAD").strip()
    assert v.files_in("HEAD") == ["README.md", "logs/x.md"]
    assert v.message("HEAD") == message
    status = git(git_repo, "status", "--porcelain").splitlines()
    assert "A  other.txt" in status  # still staged, not swept in
    assert "?? stray.txt" in status


def test_commit_paths_includes_deletions(git_repo: Path, tmp_path: Path) -> None:
    v = GitVcs(git_repo)
    (git_repo / "README.md").unlink()
    v.commit_paths(title="t", message="t\n", paths=["README.md"], scratch=tmp_path)
    assert "README.md" not in git(git_repo, "ls-files")


def test_checkpoint_restore_keeps_working_tree(git_repo: Path, tmp_path: Path) -> None:
    v = GitVcs(git_repo)
    cp = v.checkpoint()
    (git_repo / "README.md").write_text("edited\n")
    v.commit_paths(title="t", message="t\n", paths=["README.md"], scratch=tmp_path)
    assert v.checkpoint() != cp
    v.restore(cp)
    assert v.checkpoint() == cp
    assert (git_repo / "README.md").read_text() == "edited\n"
    assert [c.path for c in v.working_changes()] == ["README.md"]


def test_numstat_tracked_and_new(git_repo: Path) -> None:
    v = GitVcs(git_repo)
    (git_repo / "README.md").write_text("one\ntwo\n")
    (git_repo / "new.py").write_text("a\nb\nc\n")
    (git_repo / "blob.bin").write_bytes(b"\0\1\2")
    stats = {s.path: (s.added, s.removed) for s in v.numstat(["README.md", "new.py", "blob.bin"])}
    assert stats == {"README.md": (2, 1), "new.py": (3, 0), "blob.bin": (None, None)}


def test_discard_restores_tracked_files_only(git_repo: Path) -> None:
    v = GitVcs(git_repo)
    (git_repo / "README.md").write_text("edited\n")
    (git_repo / "keep.txt").write_text("new\n")
    v.discard(["README.md"])
    assert (git_repo / "README.md").read_text() == "demo app\n"
    assert (git_repo / "keep.txt").exists()


def test_revision_and_unborn_head(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    with pytest.raises(VcsError, match="no commits yet"):
        GitVcs(repo).revision()
    (repo / "a").write_text("a\n")
    git(repo, "add", "a")
    git(repo, "commit", "-qm", "a")
    rev = GitVcs(repo).revision()
    assert rev.vcs == "git" and rev.branch == "main" and rev.empty is True and len(rev.commit) == 40


def test_detect_prefers_jj_in_colocated_repo_and_honours_override(
    git_repo: Path, tmp_path: Path
) -> None:
    sub = git_repo / "prompts"
    assert isinstance(detect(sub), GitVcs)
    assert detect(sub).root == git_repo
    (git_repo / ".jj").mkdir()
    assert isinstance(detect(sub), JjVcs)
    assert isinstance(detect(sub, prefer="git"), GitVcs)
    lone = tmp_path / "lone"
    lone.mkdir()
    with pytest.raises(VcsError, match="no git or jj repository"):
        detect(lone)
    with pytest.raises(VcsError, match="vcs: jj"):
        detect(lone, prefer="jj")
    with pytest.raises(VcsError, match="unknown"):
        detect(git_repo, prefer="hg")


def test_relpath_outside_repo(git_repo: Path, tmp_path: Path) -> None:
    v = GitVcs(git_repo)
    assert relpath(v, git_repo / "logs" / "a.md") == "logs/a.md"
    with pytest.raises(VcsError, match="outside the repository"):
        relpath(v, tmp_path / "elsewhere")
