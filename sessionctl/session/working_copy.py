"""What of the working copy goes into a close's code change, and what stays out.

:func:`split_changes` sorts the working copy's changes: the campaign's own files (log, YAML,
rendered prompt) go into their own places in the plan; new files stay out of the code change
unless ``--include``d (agent transcripts, ``perf.data``); an abort keeps or discards the edits;
sessionctl's scratch (``.sessionctl/``) is never part of anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sessionctl.vcs import Vcs, relpath
from sessionctl.vcs.base import ADDED, UNTRACKED, FileChange
from sessionctl.workspace import Workspace


def _classify(
    changes: Sequence[FileChange],
    *,
    kind: str,
    skip: set[str],
    include: Sequence[str],
    discard: bool,
) -> tuple[list[str], list[str], list[str], list[str], frozenset[str]]:
    """Split working-copy changes into (code, left_out, discard, kept, untracked code paths).

    One pass with plain comparisons: a build folder outside .gitignore makes this 100k rows.
    """
    code: list[str] = []
    left_out: list[str] = []
    to_discard: list[str] = []
    kept: list[str] = []
    untracked: list[str] = []
    new = (UNTRACKED, ADDED)
    exact = set(include)
    prefixes = tuple(inc.rstrip("/") + "/" for inc in include)
    abort = kind == "abort"
    for path, status in changes:
        if path in skip or path.startswith(".sessionctl/"):
            continue
        if abort:
            if discard and status not in new:
                to_discard.append(path)
            else:
                kept.append(path)
        elif status in new and not (include and (path in exact or path.startswith(prefixes))):
            left_out.append(path)
        else:
            code.append(path)
            if status == UNTRACKED:
                untracked.append(path)
    return code, left_out, to_discard, kept, frozenset(untracked)


@dataclass(frozen=True)
class Split:
    """The working copy sorted for a close: the code change's paths and everything else."""

    log: str
    yaml: str
    md: str
    code: list[str]
    left_out: list[str]
    discard: list[str]
    kept: list[str]
    warnings: list[str]
    untracked: frozenset[str] = frozenset()  # untracked paths in ``code`` (for numstat)


def split_changes(
    ws: Workspace,
    campaign: str,
    vcs: Vcs,
    *,
    kind: str = "close",
    include: Sequence[str | Path] = (),
    discard: bool = False,
) -> Split:
    """Sort the working copy's changes into the code change, left-out, discarded and kept."""
    log_rel = relpath(vcs, ws.log_path(campaign))
    yaml_rel = relpath(vcs, ws.campaign_path(campaign))
    md_rel = relpath(vcs, ws.rendered_path(campaign))
    include_rel = [_include_rel(vcs, ws, p) for p in include]
    code, left_out, to_discard, kept, untracked = _classify(
        vcs.working_changes(),
        kind=kind,
        skip={log_rel, yaml_rel, md_rel},
        include=include_rel,
        discard=discard,
    )
    warnings = [
        f"--include {inc}: matches no changed file"
        for inc in include_rel
        if not any(c == inc or c.startswith(inc.rstrip("/") + "/") for c in code)
    ]
    return Split(log_rel, yaml_rel, md_rel, code, left_out, to_discard, kept, warnings, untracked)


def _include_rel(vcs: Vcs, ws: Workspace, path: str | Path) -> str:
    p = Path(path)
    return relpath(vcs, p if p.is_absolute() else ws.root / p)
