"""The git backend: read-only queries through the git CLI, writes through gitpython.

Queries (HEAD, the working-copy status, diff stats, logs) run ``git`` directly through
:func:`sessionctl.process.run`: importing gitpython costs more than the query, and ``status``
runs often (gitpython is imported lazily, only by the commands that change the repository).
Commits take exactly the paths they are given (``git commit --only -- PATHS``), so whatever else
is staged or lying around stays out; messages go through a file (``-F``), never argv or a shell.
A checkpoint is the HEAD sha (empty before the first commit); restoring it is
``git reset --mixed`` (the working tree is kept), or ``--soft`` for a close, which then puts
back the index from the copy :meth:`GitVcs.save_index` made.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionctl import process
from sessionctl.errors import VcsError
from sessionctl.files import atomic_write
from sessionctl.process import Result
from sessionctl.vcs.base import (
    ADDED,
    DELETED,
    MODIFIED,
    UNTRACKED,
    Commit,
    FileChange,
    NumStat,
    Revision,
    count_lines,
)

if TYPE_CHECKING:
    import git

UNBORN = ""  # the checkpoint of a repository without commits


class GitVcs:
    """git: queries through its CLI, writes through gitpython; ``root`` is the top-level folder."""

    kind = "git"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._repo: git.Repo | None = None

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            import git

            try:
                self._repo = git.Repo(self.root)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
                raise VcsError(
                    f"{self.root}: not a git repository ({exc}); run `git init`"
                ) from None
        return self._repo

    def _read(self, *args: str, ok: tuple[int, ...] = (0,)) -> Result:
        """Run a read-only git query (argv list, no shell); VcsError unless it exits in ``ok``."""
        # The C locale, as gitpython sets it, so messages read the same whichever runs git.
        env = {**os.environ, "LC_ALL": "C", "LANGUAGE": "C"}
        # Looked up on the module at each call (never bound at import), so no caller's patch of
        # process.run can outlive it in this module.
        result = process.run(["git", *args], cwd=self.root, env=env, check=False)
        if result.returncode not in ok:
            text = _clean(result.stderr) or _clean(result.stdout) or "(no output)"
            raise VcsError(f"`git {' '.join(args)}` failed ({result.returncode}): {text}")
        return result

    def _git(self, *args: str) -> str:
        """Run a git subcommand through gitpython (argv list, no shell); raise VcsError."""
        import git

        try:
            out: Any = self.repo.git.execute(["git", *args], strip_newline_in_stdout=False)
        except git.GitCommandError as exc:
            text = _clean(exc.stderr) or _clean(exc.stdout) or "(no output)"
            raise VcsError(f"`git {' '.join(args)}` failed ({exc.status}): {text}") from None
        return str(out)

    def head(self) -> str:
        """The HEAD commit sha (a VcsError on a repository without commits)."""
        found = self._read("rev-parse", "--verify", "--quiet", "HEAD^{commit}", ok=(0, 1))
        sha = found.stdout.strip()
        if found.returncode != 0 or not sha:
            raise VcsError(
                f"{self.root}: the repository has no commits yet; make an initial commit first"
            )
        return sha

    def revision(self) -> Revision:
        sha = self.head()
        ref = self._read("symbolic-ref", "--quiet", "HEAD", ok=(0, 1))
        branch = ref.stdout.strip().removeprefix("refs/heads/") if ref.returncode == 0 else None
        return Revision(vcs="git", commit=sha, branch=branch, empty=not self.working_changes())

    def working_changes(self) -> list[FileChange]:
        out = self._read(
            "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"
        ).stdout
        # Sorted as (path, xy) strings before any object is made: a build folder outside
        # .gitignore gives 100k records, and a key function per record costs more than git.
        records = sorted((rec[3:], rec[:2]) for rec in out.split("\0") if len(rec) >= 4)
        return [FileChange(path, _status(xy)) for path, xy in records]

    def checkpoint(self) -> str:
        """The HEAD sha, or ``""`` in a repository without commits yet (see :meth:`restore`)."""
        found = self._read("rev-parse", "--verify", "--quiet", "HEAD^{commit}", ok=(0, 1))
        return found.stdout.strip() if found.returncode == 0 else UNBORN

    def restore(self, checkpoint: str, *, keep_index: bool = False) -> None:
        # keep_index: only the branch moves (`--soft`); the caller restores the index from the
        # copy :meth:`save_index` kept, so a reset that fails on a ref lock has changed nothing.
        if checkpoint == UNBORN:
            # Back to "no commits yet": the branch goes, the files stay (untracked again).
            if self.checkpoint() != UNBORN:
                self._git("update-ref", "-d", "HEAD")
                if not keep_index:
                    self._git("read-tree", "--empty")
            return
        if self.head() != checkpoint:
            self._git("reset", "-q", "--soft" if keep_index else "--mixed", checkpoint)

    def git_path(self, name: str) -> Path:
        """Where git keeps ``name`` (``index``, ``MERGE_HEAD``...) for this worktree."""
        return self.git_paths([name])[0]

    def git_paths(self, names: Sequence[str]) -> list[Path]:
        """:meth:`git_path` of each name, from one ``git rev-parse`` (not one per name)."""
        args = [arg for name in names for arg in ("--git-path", name)]
        lines = self._read("rev-parse", *args).stdout.splitlines()
        paths = [Path(line.strip()) for line in lines]
        return [path if path.is_absolute() else self.root / path for path in paths]

    def preflight(self) -> list[str]:
        """Refuse (VcsError, nothing changed) when git cannot commit now; return warnings.

        A lock file left by a crashed git, or a merge, rebase, cherry-pick or revert in
        progress, would make a commit fail half-way (or conclude the merge); a detached HEAD
        only deserves a word.
        """
        ref = self._read("symbolic-ref", "--quiet", "HEAD", ok=(0, 1))
        branch = ref.stdout.strip() if ref.returncode == 0 else None
        locks = ["index.lock", "HEAD.lock"] + ([f"{branch}.lock"] if branch else [])
        found = self.git_paths([*locks, *(name for name, _, _ in _IN_PROGRESS)])
        for lock in found[: len(locks)]:
            if lock.exists():
                raise VcsError(
                    f"{lock}: a git lock file exists (another git is running, or one crashed); "
                    "if no git is running, remove it, then rerun the command"
                )
        for marker, (_, what, fix) in zip(found[len(locks) :], _IN_PROGRESS, strict=True):
            if marker.exists():
                raise VcsError(
                    f"{self.root}: {what} is in progress ({marker} exists); {fix}, then rerun "
                    "the command"
                )
        if branch is None:
            return [
                f"{self.root}: HEAD is detached at {self.head()[:12]}: the session's commits "
                "will be on no branch; keep them with `git switch -c NAME` afterwards"
            ]
        return []

    def save_index(self, dest: Path) -> bool:
        """Copy the index (the staging area) to ``dest``; False when there is none yet."""
        try:
            data = self.git_path("index").read_bytes()
        except FileNotFoundError:
            return False
        atomic_write(dest, data)
        return True

    def restore_index(self, src: Path) -> None:
        """Put back the index :meth:`save_index` copied, under git's own ``index.lock``."""
        index = self.git_path("index")
        lock = index.with_name(index.name + ".lock")
        data = Path(src).read_bytes()
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise VcsError(
                f"{lock}: a git lock file exists; if no git is running, remove it, then rerun "
                "the command"
            ) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(lock, index)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            raise

    def numstat(
        self, paths: Sequence[str], *, untracked: Collection[str] | None = None
    ) -> list[NumStat]:
        if not paths:
            return []
        if untracked is None:
            untracked = {c.path for c in self.working_changes() if c.status == UNTRACKED}
        tracked = [p for p in paths if p not in untracked]
        stats: dict[str, NumStat] = {}
        if tracked:
            out = self._read(
                "diff", "--numstat", "-z", "--no-renames", "HEAD", "--", *tracked
            ).stdout
            for rec in out.split("\0"):
                parts = rec.split("\t", 2)
                if len(parts) != 3:
                    continue
                a, r, p = parts
                stats[p] = NumStat(p, None if a == "-" else int(a), None if r == "-" else int(r))
        for p in paths:
            if p in untracked:
                n = count_lines(self.root / p)
                stats[p] = NumStat(p, n, None if n is None else 0)
        return [stats[p] for p in paths if p in stats]

    def commit_paths(
        self, *, title: str, message: str, paths: Sequence[str], scratch: Path
    ) -> Commit:
        if not paths:
            raise VcsError("nothing to commit: no paths given")
        msg_file = scratch / "commit-message.txt"
        atomic_write(msg_file, message if message.endswith("\n") else message + "\n")
        # `add -A -- PATHS` stages new files and deletions of exactly these paths; `--only`
        # then commits them alone, whatever else the user has staged.
        self._git("add", "-A", "--", *paths)
        self._git(
            "commit", "-q", "--cleanup=whitespace", "-F", str(msg_file), "--only", "--", *paths
        )
        return Commit(commit=self.head())

    def diff(self, paths: Sequence[str]) -> str:
        if not paths:
            return ""
        return self._read("diff", "--binary", "HEAD", "--", *paths).stdout

    def discard(self, paths: Sequence[str]) -> None:
        if not paths:
            return
        head_paths = [p for p in paths if self._in_head(p)]
        self._git("reset", "-q", "HEAD", "--", *paths)
        if head_paths:
            self._git("checkout", "HEAD", "--", *head_paths)

    def described(self, text: str) -> list[tuple[str, str]]:
        out = self._read(
            "log", "-z", "--format=%H%n%B", "--fixed-strings", f"--grep={text}", "HEAD", ok=(0, 128)
        )
        if out.returncode != 0:  # no commits yet
            return []
        found = []
        for record in out.stdout.split("\0"):
            sha, _, message = record.lstrip("\n").partition("\n")
            if sha.strip():
                found.append((sha.strip(), message))
        return found

    def _in_head(self, path: str) -> bool:
        try:
            self.repo.head.commit.tree[path]
        except KeyError:
            return False
        return True

    def commits_since(self, checkpoint: str) -> list[str]:
        out = self._read("log", "--format=%s", f"{checkpoint}..HEAD").stdout
        return [line for line in out.splitlines() if line]

    def message(self, rev: str = "HEAD") -> str:
        """The full message of ``rev`` (the raw commit object after its headers)."""
        raw = self._read("cat-file", "commit", rev).stdout
        return raw.split("\n\n", 1)[1] if "\n\n" in raw else ""

    def files_in(self, rev: str = "HEAD") -> list[str]:
        """Paths touched by ``rev`` relative to its first parent."""
        out = self._read("show", "--name-only", "--format=", "--no-renames", "-z", rev).stdout
        return sorted(p for p in out.split("\0") if p.strip())


_IN_PROGRESS = (
    ("MERGE_HEAD", "a merge", "finish it with `git commit` or stop it with `git merge --abort`"),
    ("rebase-merge", "a rebase", "finish it or stop it with `git rebase --abort`"),
    ("rebase-apply", "a rebase or `git am`", "finish it or stop it (`git rebase --abort`)"),
    ("CHERRY_PICK_HEAD", "a cherry-pick", "finish it or stop it with `git cherry-pick --abort`"),
    ("REVERT_HEAD", "a revert", "finish it or stop it with `git revert --abort`"),
)


def _clean(output: object) -> str:
    """gitpython's captured output as one line (it wraps it in ``stderr: '...'``)."""
    text = str(output or "").strip()
    for prefix in ("stderr: ", "stdout: "):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip().strip("'").strip()
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def find_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding ``.git`` (a folder or a worktree file)."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


__all__ = ["DELETED", "GitVcs", "find_root"]


def _status(xy: str) -> str:
    """The one-letter status of a ``git status --porcelain`` XY pair."""
    if xy == "??":
        return UNTRACKED
    if "D" in xy:
        return DELETED
    if xy[0] == "A":
        return ADDED
    return MODIFIED
