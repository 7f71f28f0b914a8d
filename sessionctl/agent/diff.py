"""The session's change: everything that differs from its starting revision, file by file.

Read from ``git diff`` (plus untracked files) or ``jj diff --git``; sessionctl's own files and
files that were already dirty before the session (and are still byte-identical) are left out.
The audit (:mod:`sessionctl.agent.audit`) judges it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sessionctl import process
from sessionctl.errors import SessionctlError
from sessionctl.workspace import SCRATCH, Workspace, default_log


@dataclass(frozen=True)
class Snapshot:
    """What the loop notes before the agent starts, to compare with afterwards."""

    log_text: str | None
    start_commit: str | None
    backups: tuple[str, ...] = ()  # hand-edited .md copies kept by re-rendering, before the session
    dirty: dict[str, str] = field(default_factory=dict)  # changed before the session: path -> hash
    yaml_text: str | None = None  # the campaign file, to restore if the agent breaks it
    md_hash: str | None = None  # the rendered prompt as the agent got it

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_text": self.log_text,
            "start_commit": self.start_commit,
            "backups": list(self.backups),
            "dirty": dict(self.dirty),
            "yaml_text": self.yaml_text,
            "md_hash": self.md_hash,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Snapshot:
        return cls(
            d.get("log_text"),
            d.get("start_commit"),
            tuple(d.get("backups") or ()),
            dict(d.get("dirty") or {}),
            d.get("yaml_text"),
            d.get("md_hash"),
        )


_MAX_LINES_KEPT = 2000  # added lines scanned per file for forbidden patterns
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class FileDiff:
    """What changed in one file."""

    path: str
    added: int = 0
    removed: int = 0
    hunks: int = 0
    binary: bool = False
    new: bool = False
    added_lines: tuple[tuple[int, str], ...] = ()  # (line number in the new file, text)

    @property
    def area(self) -> str:
        return self.path.split("/", 1)[0] if "/" in self.path else "."


@dataclass(frozen=True)
class DiffSummary:
    """The session's change, file by file."""

    files: tuple[FileDiff, ...] = ()

    @property
    def hunks(self) -> int:
        return sum(f.hunks for f in self.files)

    def text(self) -> str:
        """``2 files, 3 hunks, +12 -1: app/q.py (+10 -1, 2 hunks); lib/c.py (+2, 1 hunk)``."""
        if not self.files:
            return "no changes"
        added = sum(f.added for f in self.files)
        removed = sum(f.removed for f in self.files)
        parts = []
        for f in self.files:
            if f.binary:
                parts.append(f"{f.path} (binary)")
                continue
            counts = f"+{f.added}" + (f" -{f.removed}" if f.removed else "")
            parts.append(f"{f.path} ({counts}, {_n(f.hunks, 'hunk')})")
        n = len(self.files)
        return f"{_n(n, 'file')}, {_n(self.hunks, 'hunk')}, +{added} -{removed}: " + "; ".join(
            parts
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [
                {
                    "path": f.path,
                    "added": f.added,
                    "removed": f.removed,
                    "hunks": f.hunks,
                    "binary": f.binary,
                }
                for f in self.files
            ],
            "hunks": self.hunks,
            "text": self.text(),
        }


def file_hash(path: Path) -> str:
    """A content hash (``-`` for a missing file) to tell untouched dirty files apart."""
    import hashlib

    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except (FileNotFoundError, IsADirectoryError):
        return "-"


def managed_paths(campaign: str, log: str | None = None) -> frozenset[str]:
    """Files only sessionctl writes; they are judged by the log and drift checks, not the diff."""
    log = log or default_log(campaign)
    return frozenset({f"prompts/{campaign}.yaml", f"prompts/{campaign}.md", log})


def session_diff(
    ws: Workspace,
    campaign: str,
    *,
    start_commit: str | None,
    snap: Snapshot | None = None,
    prefer: str = "auto",
) -> DiffSummary:
    """Everything that differs from the session's starting revision (commits and working copy).

    Paths are relative to the workspace root; sessionctl's own files, and files that were
    already dirty before the session and are still byte-identical, are left out.
    """
    from sessionctl.vcs import detect

    try:
        vcs = detect(ws.root, prefer=prefer)
    except SessionctlError:
        return DiffSummary()
    if vcs.kind == "git":
        files = _git_diff(vcs.root, start_commit or "HEAD")
    else:
        files = _jj_diff(vcs.root, start_commit or "@-")
    prefix = ws.root.resolve().relative_to(vcs.root.resolve()).as_posix()
    skip = managed_paths(campaign, ws.log_path(campaign).relative_to(ws.root).as_posix())
    keep = []
    for f in files:
        if prefix != ".":
            if not f.path.startswith(prefix + "/"):
                continue
            f = replace(f, path=f.path[len(prefix) + 1 :])
        if f.path in skip or f.path == SCRATCH or f.path.startswith(f"{SCRATCH}/"):
            continue
        if (
            snap is not None
            and f.path in snap.dirty
            and snap.dirty[f.path] == file_hash(ws.root / f.path)
        ):
            continue
        keep.append(f)
    return DiffSummary(tuple(sorted(keep, key=lambda f: f.path)))


def _git_diff(root: Path, base: str) -> list[FileDiff]:
    git = ["git", "-c", "core.quotepath=off", "-C", str(root)]
    out = process.run(
        [*git, "diff", "--no-color", "--no-ext-diff", "--no-renames", "-U0", base, "--"]
    ).stdout
    files = parse_unified_diff(out)
    untracked = process.run([*git, "ls-files", "--others", "--exclude-standard", "-z"]).stdout
    for rel in (p for p in untracked.split("\0") if p):
        files.append(_new_file(root, rel))
    return files


def _jj_diff(root: Path, base: str) -> list[FileDiff]:
    out = process.run(
        ["jj", "--no-pager", "--color=never", "-R", str(root), "diff", "--git", "--from", base]
    ).stdout
    return parse_unified_diff(out)


def _new_file(root: Path, rel: str) -> FileDiff:
    try:
        data = (root / rel).read_bytes()
    except OSError:
        return FileDiff(rel, new=True)
    if b"\0" in data[:8192]:
        return FileDiff(rel, binary=True, new=True)
    lines = data.decode("utf-8", "replace").splitlines()
    kept = tuple((i + 1, text) for i, text in enumerate(lines[:_MAX_LINES_KEPT]))
    return FileDiff(rel, added=len(lines), hunks=1 if lines else 0, new=True, added_lines=kept)


def parse_unified_diff(text: str) -> list[FileDiff]:
    """Parse ``git diff`` output into per-file counts, hunks and added lines."""
    files: list[FileDiff] = []
    cur: dict[str, Any] | None = None
    new_line = 0

    def flush() -> None:
        if cur is not None and cur["path"]:
            files.append(
                FileDiff(
                    cur["path"],
                    cur["added"],
                    cur["removed"],
                    cur["hunks"],
                    cur["binary"],
                    cur["new"],
                    tuple(cur["lines"]),
                )
            )

    for line in text.splitlines():
        if line.startswith("diff --git "):
            flush()
            m = re.match(r"diff --git a/(.*) b/(.*)$", line)
            cur = {
                "path": m.group(2) if m else "",
                "added": 0,
                "removed": 0,
                "hunks": 0,
                "binary": False,
                "new": False,
                "lines": [],
            }
            continue
        if cur is None:
            continue
        if line.startswith("new file mode"):
            cur["new"] = True
        elif line.startswith("+++ "):
            target = line[4:]
            if target != "/dev/null":
                cur["path"] = target[2:] if target.startswith("b/") else target
        elif line.startswith("--- "):
            continue
        elif line.startswith("Binary files "):
            cur["binary"] = True
        elif (hm := _HUNK.match(line)) is not None:
            cur["hunks"] += 1
            new_line = int(hm.group(1))
        elif line.startswith("+"):
            cur["added"] += 1
            if len(cur["lines"]) < _MAX_LINES_KEPT:
                cur["lines"].append((new_line, line[1:]))
            new_line += 1
        elif line.startswith("-"):
            cur["removed"] += 1
        elif line.startswith(" "):
            new_line += 1
    flush()
    return files


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"
