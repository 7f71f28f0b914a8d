"""The jj backend: the jj CLI through :func:`sessionctl.process.run`.

Every call is ``jj --no-pager --color=never ...`` run at the repository root, and only stdout is
parsed (jj reports status on stderr). Descriptions go through ``--stdin``. Paths are passed as
literal filesets (``root-file:"path"``) because bare paths are globs since jj 0.36.

Committing exactly some paths: ``jj commit -m TITLE FILESETS`` keeps the selected paths in @
(which becomes @-) and moves the rest into a new @ on top; ``jj describe @- --stdin`` then sets
the full message. So after the two commits of a close, @ is a fresh change holding only what was
left out (nothing, usually). A checkpoint is an operation id; ``jj op restore`` returns to it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from sessionctl import process
from sessionctl.errors import CommandError, VcsError
from sessionctl.vcs.base import (
    DELETED,
    MODIFIED,
    UNTRACKED,
    Commit,
    FileChange,
    NumStat,
    Revision,
)

Runner = Callable[..., process.Result]

GLOBAL_ARGS = ("--no-pager", "--color=never")
AT_TEMPLATE = (
    'change_id ++ " " ++ commit_id ++ " " ++ if(empty,"empty","nonempty") ++ " " '
    '++ if(conflict,"conflict","ok") ++ "\\n"'
)
OP_TEMPLATE = 'id ++ "\\n"'
DESCRIPTION_TEMPLATE = 'description.escape_json() ++ "\\n"'
DESCRIBED_TEMPLATE = 'commit_id ++ " " ++ description.escape_json() ++ "\\n"'
_RENAME = re.compile(r"^(.*)\{(.*) => (.*)\}(.*)$")


def fileset(path: str) -> str:
    """A literal fileset naming exactly one file relative to the workspace root."""
    escaped = path.replace("\\", "\\\\").replace('"', '\\"')
    return f'root-file:"{escaped}"'


class JjVcs:
    """jj through its CLI; ``runner`` is injectable so tests can record the exact argv."""

    kind = "jj"

    def __init__(self, root: Path, *, runner: Runner | None = None, binary: str = "jj") -> None:
        self.root = Path(root)
        self.binary = binary
        self._runner: Runner = runner or process.run

    def _env(self) -> dict[str, str]:
        # A forgotten -m must fail fast instead of waiting on an editor nobody sees.
        env = dict(os.environ)
        env.setdefault("JJ_EDITOR", "false")
        return env

    def jj(self, *args: str, input: str | None = None) -> str:
        """Run one jj command and return its stdout; failures become VcsError."""
        argv = [self.binary, *GLOBAL_ARGS, *args]
        try:
            result = self._runner(argv, cwd=self.root, env=self._env(), input=input)
        except CommandError as exc:
            raise VcsError(str(exc)) from None
        return str(result.stdout)

    # --- reading ---------------------------------------------------------------------------

    def revision(self) -> Revision:
        out = self.jj("log", "-r", "@", "--no-graph", "-T", AT_TEMPLATE).strip()
        parts = out.split()
        if len(parts) != 4:
            raise VcsError(f"jj log -r @: unexpected output {out!r}; is this a jj workspace?")
        change, commit, empty, _conflict = parts
        return Revision(
            vcs="jj", commit=commit, change=change, op=self.checkpoint(), empty=empty == "empty"
        )

    def working_changes(self) -> list[FileChange]:
        out = self.jj("diff", "-r", "@", "--summary")
        return parse_summary(out)

    def description(self, rev: str) -> str:
        out = self.jj("log", "-r", rev, "--no-graph", "-T", DESCRIPTION_TEMPLATE).strip()
        return str(json.loads(out)) if out else ""

    def numstat(
        self, paths: Sequence[str], *, untracked: Collection[str] | None = None
    ) -> list[NumStat]:
        if not paths:
            return []
        out = self.jj("diff", "-r", "@", "--git", *(fileset(p) for p in paths))
        stats = parse_git_diff(out)
        return [stats.get(p, NumStat(p, 0, 0)) for p in paths]

    # --- checkpoints -----------------------------------------------------------------------

    def checkpoint(self) -> str:
        op = self.jj("op", "log", "-n1", "--no-graph", "-T", OP_TEMPLATE).strip()
        if not op:
            raise VcsError("jj op log: no operation id printed; check `jj op log` by hand")
        return op.splitlines()[0]

    def restore(self, checkpoint: str, *, keep_index: bool = False) -> None:
        self.jj("op", "restore", checkpoint)  # no index to keep: the operation is everything

    def preflight(self) -> list[str]:
        return []  # jj has no lock files or half-done merges to trip a commit

    def save_index(self, dest: Path) -> bool:
        return False  # no staging area: `jj op restore` returns the whole repository

    def restore_index(self, src: Path) -> None:
        return None

    # --- writing ---------------------------------------------------------------------------

    def commit_paths(
        self, *, title: str, message: str, paths: Sequence[str], scratch: Path
    ) -> Commit:
        if not paths:
            raise VcsError("nothing to commit: no paths given")
        self.jj("commit", "-m", title, *(fileset(p) for p in paths))
        self.jj(
            "describe", "@-", "--stdin", input=message if message.endswith("\n") else message + "\n"
        )
        out = self.jj(
            "log", "-r", "@-", "--no-graph", "-T", 'change_id ++ " " ++ commit_id ++ "\\n"'
        )
        parts = out.split()
        if len(parts) != 2:
            raise VcsError(f"jj log -r @-: unexpected output {out!r}")
        return Commit(commit=parts[1], change=parts[0])

    def diff(self, paths: Sequence[str]) -> str:
        return self.jj("diff", "--git", *(fileset(p) for p in paths)) if paths else ""

    def discard(self, paths: Sequence[str]) -> None:
        if paths:
            self.jj("restore", *(fileset(p) for p in paths))

    def described(self, text: str) -> list[tuple[str, str]]:
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        revset = f'::@ & description(substring:"{escaped}")'
        out = self.jj("log", "-r", revset, "--no-graph", "-T", DESCRIBED_TEMPLATE)
        found = []
        for line in out.splitlines():
            commit, _, desc = line.partition(" ")
            if commit and desc:
                found.append((commit, str(json.loads(desc))))
        return found

    def files_in(self, rev: str) -> list[str]:
        """Paths touched by ``rev``."""
        out = self.jj("diff", "-r", rev, "--name-only")
        return sorted(line.strip() for line in out.splitlines() if line.strip())


def parse_summary(text: str) -> list[FileChange]:
    """Parse ``jj diff --summary`` (``M path``, ``A path``, ``R {a => b}``...).

    jj tracks every new file automatically, so an added file counts as new (``?``): like an
    untracked file in git it stays out of a session's change unless the user includes it.
    """
    changes: dict[str, FileChange] = {}
    for line in text.splitlines():
        if len(line) < 3 or line[1] != " ":
            continue
        letter, rest = line[0], line[2:]
        if letter in "RC":
            m = _RENAME.match(rest)
            if not m:
                continue
            pre, old, new, post = m.groups()
            src = re.sub("/+", "/", f"{pre}{old}{post}").strip("/")
            dst = re.sub("/+", "/", f"{pre}{new}{post}").strip("/")
            if letter == "R":
                changes[src] = FileChange(src, DELETED)
            changes[dst] = FileChange(dst, UNTRACKED)
        elif letter == "A":
            changes[rest] = FileChange(rest, UNTRACKED)
        elif letter == "D":
            changes[rest] = FileChange(rest, DELETED)
        else:
            changes[rest] = FileChange(rest, MODIFIED)
    return sorted(changes.values(), key=lambda c: c.path)


def parse_git_diff(text: str) -> dict[str, NumStat]:
    """Count added/removed lines per file in a ``--git`` format diff."""
    stats: dict[str, list[Any]] = {}
    current: str | None = None
    in_hunk = False
    for line in text.splitlines():
        if line.startswith("diff --git "):
            m = re.match(r"diff --git a/(.*) b/(.*)$", line)
            current = m.group(2) if m else None
            in_hunk = False
            if current is not None:
                stats[current] = [0, 0]
        elif current is None:
            continue
        elif line.startswith("Binary files"):
            stats[current] = [None, None]
        elif line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line.startswith("+") and stats[current][0] is not None:
            stats[current][0] += 1
        elif in_hunk and line.startswith("-") and stats[current][1] is not None:
            stats[current][1] += 1
    return {p: NumStat(p, a, r) for p, (a, r) in stats.items()}


def find_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding ``.jj``."""
    for folder in (start, *start.parents):
        if (folder / ".jj").is_dir():
            return folder
    return None
