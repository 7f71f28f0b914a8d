"""Version control behind one small interface: git (gitpython) or jj (its CLI).

:func:`detect` picks the backend for a workspace: the campaign's ``vcs:`` setting when it is
``git`` or ``jj``, otherwise the nearest repository above the workspace, where ``.jj`` wins in a
colocated repository (jj then owns the working copy; git commits would confuse it).
"""

from __future__ import annotations

from pathlib import Path

from sessionctl.errors import VcsError
from sessionctl.vcs.base import Commit, FileChange, NumStat, Revision, Vcs

__all__ = ["Commit", "FileChange", "NumStat", "Revision", "Vcs", "detect", "relpath"]


def detect(root: Path, *, prefer: str = "auto") -> Vcs:
    """Return the backend for the repository holding ``root`` (``prefer``: auto, git or jj)."""
    from sessionctl.vcs import git as git_backend
    from sessionctl.vcs import jj as jj_backend

    root = Path(root).resolve()
    jj_root = jj_backend.find_root(root)
    git_root = git_backend.find_root(root)
    if prefer == "jj":
        if jj_root is None:
            raise VcsError(
                f"{root}: campaign says vcs: jj but there is no .jj folder here or above; "
                "run `jj git init`"
            )
        return jj_backend.JjVcs(jj_root)
    if prefer == "git":
        if git_root is None:
            raise VcsError(
                f"{root}: campaign says vcs: git but there is no git repository here or above; "
                "run `git init`"
            )
        return git_backend.GitVcs(git_root)
    if prefer != "auto":
        raise VcsError(f"vcs: {prefer!r}: unknown; use auto, git or jj")
    # The nearer repository wins; at the same level (colocated) jj wins.
    if jj_root is not None and (git_root is None or len(jj_root.parts) >= len(git_root.parts)):
        return jj_backend.JjVcs(jj_root)
    if git_root is not None:
        return git_backend.GitVcs(git_root)
    raise VcsError(
        f"{root}: no git or jj repository here or above; "
        "run `git init` (or `jj git init`) and commit once"
    )


def relpath(vcs: Vcs, path: Path) -> str:
    """``path`` relative to the repository root, with forward slashes."""
    try:
        return Path(path).resolve().relative_to(vcs.root.resolve()).as_posix()
    except ValueError:
        raise VcsError(f"{path}: outside the repository at {vcs.root}") from None
