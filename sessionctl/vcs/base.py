"""The small VCS interface the session engine needs, and the records it returns.

Paths handed to and returned by a backend are relative to the repository root (``Vcs.root``),
with forward slashes. A *checkpoint* is an opaque string (git: the HEAD sha; jj: an operation
id) that :meth:`Vcs.restore` can return the repository to.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

# FileChange.status values: modified, added (and known to the VCS), deleted, new and unknown.
MODIFIED = "M"
ADDED = "A"
DELETED = "D"
UNTRACKED = "?"


@dataclass(frozen=True)
class Revision:
    """Where the repository stood: a commit id, and for jj the change and operation ids too."""

    vcs: str
    commit: str
    change: str | None = None
    op: str | None = None
    branch: str | None = None
    empty: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Revision:
        return cls(
            vcs=str(d.get("vcs", "")),
            commit=str(d.get("commit", "")),
            change=d.get("change"),
            op=d.get("op"),
            branch=d.get("branch"),
            empty=d.get("empty"),
        )


class FileChange(NamedTuple):
    """One path that differs in the working copy, with its status letter (M, A, D or ?).

    A named tuple (immutable, and built three times faster than a frozen dataclass): a build
    folder missing from .gitignore makes 100k of these."""

    path: str
    status: str

    @property
    def is_new(self) -> bool:
        """True for files the last commit did not have: left out of a change unless included.

        A file that is merely staged (``git add``) counts as new too: an agent's ``git add -A``
        must not sweep its transcripts into the session's change.
        """
        return self.status in (UNTRACKED, ADDED)


@dataclass(frozen=True)
class NumStat:
    """Lines added and removed in one file (None for binary files)."""

    path: str
    added: int | None
    removed: int | None


@dataclass(frozen=True)
class Commit:
    """A commit (change) made by a backend: its id and, for jj, its change id."""

    commit: str
    change: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Vcs(Protocol):
    """What the session engine asks of git or jj."""

    kind: str
    root: Path

    def revision(self) -> Revision:
        """Describe the current state (HEAD, or @ with its change, commit and operation ids)."""

    def working_changes(self) -> list[FileChange]:
        """The paths that differ from the last commit (git) or in the working-copy change (jj)."""

    def checkpoint(self) -> str:
        """Return a token :meth:`restore` can roll the repository back to."""

    def restore(self, checkpoint: str, *, keep_index: bool = False) -> None:
        """Return to ``checkpoint``, keeping the working-tree files (git) / as recorded (jj).

        ``keep_index`` (git): move only the branch, leave the index for the caller to restore.
        """

    def preflight(self) -> list[str]:
        """Raise VcsError, changing nothing, when a commit cannot be made now; return warnings."""

    def save_index(self, dest: Path) -> bool:
        """Copy the staging area (git's index) to ``dest``; False when there is none (jj)."""

    def restore_index(self, src: Path) -> None:
        """Put back the staging area :meth:`save_index` copied."""

    def numstat(
        self, paths: Sequence[str], *, untracked: Collection[str] | None = None
    ) -> list[NumStat]:
        """Lines added/removed per path in the working-copy change, for the log's diff stat.

        ``untracked``: the untracked paths, when the caller has just listed the working copy
        (saves listing it again: a second ``git status`` costs seconds at 100k files)."""

    def commit_paths(
        self, *, title: str, message: str, paths: Sequence[str], scratch: Path
    ) -> Commit:
        """Commit exactly ``paths`` (nothing else) with ``message``; jj leaves a new @ on top."""

    def diff(self, paths: Sequence[str]) -> str:
        """The working-copy edits of ``paths`` as a git-style patch (``git apply`` restores)."""

    def discard(self, paths: Sequence[str]) -> None:
        """Throw away the working-copy edits of ``paths`` (tracked files only)."""

    def described(self, text: str) -> list[tuple[str, str]]:
        """(commit id, full description) of the history's changes whose description contains
        ``text``, newest first (``history`` reads session trailers with it)."""


def count_lines(path: Path) -> int | None:
    """Count lines in a new file for the diff stat (None when it looks binary or is unreadable)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
