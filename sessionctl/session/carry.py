"""sessionctl's own files at ``start``: carried into the session, and the start undone.

The campaign's YAML, its rendered prompt and its perf log are sessionctl's business: edits made
by ``next add``/``move``/``edit``, ``prompt render`` or a hand edit of the YAML never block
``start``. ``start`` re-renders the prompt and commits those files as one prompt change,
``prompt(<campaign>): before session N: carry the campaign's edits``, before the session opens;
the session then starts from a clean working copy. Anything else in the working copy still
blocks ``start`` (or joins the session with ``--allow-dirty``).

``start`` also leaves what :func:`undo` needs to put everything back: the checkpoint before it
(the HEAD sha, or the jj operation), the prompt text it replaced, and a hash of every file left
dirty. ``sessionctl abort --undo`` right after ``start`` (nothing recorded, nothing changed)
restores the repository to that checkpoint (the carried commit goes; its edits are back in the
working copy), the prompt text, and forgets the session: ``git log``, the YAML and the log are
exactly as before ``start``.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessionctl.errors import CommandError, SessionStateError, VcsError
from sessionctl.files import atomic_write
from sessionctl.session import record as store_
from sessionctl.session.record import OpenSession
from sessionctl.vcs import relpath
from sessionctl.vcs.base import Commit, FileChange, Vcs
from sessionctl.workspace import Workspace

# In the session folder, when start re-rendered the prompt: the text it replaced, or a marker
# saying there was no prompt file before.
SAVED_PROMPT = "prompt-before-start.md"
NO_PROMPT = "prompt-before-start.absent"


def own_paths(ws: Workspace, vcs: Vcs, campaign: str) -> list[str]:
    """The campaign's own files, relative to the repository: YAML, rendered prompt, perf log."""
    paths = (ws.campaign_path(campaign), ws.rendered_path(campaign), ws.log_path(campaign))
    return [relpath(vcs, p) for p in paths]


def split(changes: Sequence[FileChange], own: Sequence[str]) -> tuple[list[str], list[FileChange]]:
    """(own paths that changed, every other change)."""
    mine = [c.path for c in changes if c.path in own]
    return mine, [c for c in changes if c.path not in own]


def carry(
    ws: Workspace, vcs: Vcs, campaign: str, number: int, paths: Sequence[str], revision: int
) -> Commit:
    """Commit the campaign's own edited files as one prompt change before session ``number``."""
    title = f"prompt({campaign}): before session {number}: carry the campaign's edits"
    listed = "".join(f"- {p}\n" for p in paths)
    message = (
        f"{title}\n\nEdited outside a session (next steps, prompt render, the YAML) and carried "
        f"into session {number} by `sessionctl start`:\n\n{listed}\n"
        f"Session: {number}\nPrompt-Revision: {revision}\n"
    )
    scratch = ws.ensure_scratch()
    vcs.preflight()  # a git lock or a merge in progress: stop before any change
    index_copy = scratch / f"index.before-carry-{number}"
    saved = vcs.save_index(index_copy)
    try:
        return vcs.commit_paths(title=title, message=message, paths=paths, scratch=scratch)
    except (VcsError, CommandError) as exc:
        if saved:  # a refused commit (a hook, say) leaves the index as the user had it
            vcs.restore_index(index_copy)
        raise VcsError(
            f"start: committing the campaign's own edits ({', '.join(paths)}) first failed, so "
            f"no session was opened: {exc}; fix that (a pre-commit hook?) or commit them "
            f"yourself, then rerun `sessionctl start {campaign}`"
        ) from None
    finally:
        index_copy.unlink(missing_ok=True)


def file_hash(path: Path) -> str:
    """A content hash (``-`` for a missing file or a folder)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return "-"


def hashes(root: Path, paths: Sequence[str]) -> dict[str, str]:
    """Each path (relative to ``root``) with a hash of its content."""
    return {p: file_hash(root / p) for p in sorted(paths)}


def dirty_hashes(vcs: Vcs) -> dict[str, str]:
    """Every changed path in the working copy, with a hash of its content."""
    return hashes(vcs.root, [c.path for c in vcs.working_changes()])


def undo_record(
    checkpoint: str | None, carried: Commit | None, paths: Sequence[str], dirty: dict[str, str]
) -> dict[str, Any]:
    """What ``start`` keeps in the session record for :func:`undo` (``checkpoint``: where the
    repository was before the carried commit; None when nothing was committed)."""
    return {
        "checkpoint": checkpoint,
        "carried": carried.to_dict() if carried else None,
        "carried_paths": list(paths),
        "dirty": dirty,
    }


def save_prompt(ws: Workspace, session: OpenSession, previous: str | None) -> None:
    """Keep the prompt text ``start`` replaced (None: there was no file), for :func:`undo`."""
    folder = store_.session_path(ws, session.campaign, session.number)
    if previous is None:
        atomic_write(folder / NO_PROMPT, "")
    else:
        atomic_write(folder / SAVED_PROMPT, previous)


@dataclass(frozen=True)
class UndoResult:
    """What ``abort --undo`` put back."""

    campaign: str
    session: int
    restored_to: str  # the checkpoint (HEAD sha or jj operation)
    uncommitted: tuple[str, ...]  # the carried files, back in the working copy
    prompt_restored: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "session": self.session,
            "restored_to": self.restored_to,
            "uncommitted": list(self.uncommitted),
            "prompt_restored": self.prompt_restored,
        }


def undo(ws: Workspace, campaign: str, *, vcs: Vcs) -> UndoResult:
    """Put everything back as if ``start`` never ran (nothing recorded, nothing changed)."""
    with ws.lock(campaign):
        session = store_.require_open(ws, campaign)
        n = session.number
        info = session.extra.get("undo")
        fix = f"end it with `sessionctl abort {campaign} --reason TEXT`"
        if not isinstance(info, dict):
            raise SessionStateError(
                f"{campaign}: session {n} was opened without undo information; {fix}"
            )
        recorded = store_.entries(ws, campaign, n)
        if recorded:
            raise SessionStateError(
                f"{campaign}: session {n} has {len(recorded)} recorded entr"
                f"{'y' if len(recorded) == 1 else 'ies'}; undo is only for a start with "
                f"nothing recorded: {fix}"
            )
        _require_unchanged(vcs, session, info, fix)
        checkpoint = info.get("checkpoint")
        if checkpoint is not None:
            vcs.restore(str(checkpoint))
        prompt_restored = _restore_prompt(ws, session)
        # A `compare` (even --no-record) made a worktree of the start: git keeps it registered,
        # and the next session with this number could then not make its own.
        from sessionctl.verdict.sides import remove_baseline_worktree

        remove_baseline_worktree(ws, campaign, session)
        folder = store_.session_path(ws, campaign, n)
        store_.clear_current(ws, campaign)
        shutil.rmtree(folder, ignore_errors=True)
    return UndoResult(
        campaign=campaign,
        session=n,
        restored_to=(
            session.start_revision.get("commit", "")
            if checkpoint is None
            else str(checkpoint) or "(no commits)"
        ),
        uncommitted=tuple(info.get("carried_paths") or ()) if info.get("carried") else (),
        prompt_restored=prompt_restored,
    )


def _require_unchanged(vcs: Vcs, session: OpenSession, info: dict[str, Any], fix: str) -> None:
    """Refuse unless the repository and the working copy are as ``start`` left them."""
    where = f"{session.campaign}: session {session.number}"
    now = vcs.revision()
    then = session.start_revision
    moved = now.commit != then.get("commit") or (now.change or None) != then.get("change")
    if moved:
        raise SessionStateError(
            f"{where}: the repository moved since start ({then.get('commit', '')[:12]} → "
            f"{now.commit[:12]}); {fix}"
        )
    dirty = dirty_hashes(vcs)
    before = dict(info.get("dirty") or {})
    changed = sorted(p for p in set(dirty) | set(before) if dirty.get(p) != before.get(p))
    if changed:
        listed = ", ".join(changed[:10]) + (f" (+{len(changed) - 10} more)" if changed[10:] else "")
        raise SessionStateError(f"{where}: files changed since start: {listed}; {fix}")


def _restore_prompt(ws: Workspace, session: OpenSession) -> bool:
    folder = store_.session_path(ws, session.campaign, session.number)
    md = ws.rendered_path(session.campaign)
    if (folder / NO_PROMPT).exists():
        md.unlink(missing_ok=True)
        return True
    try:
        text = (folder / SAVED_PROMPT).read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    atomic_write(md, text)
    return True
