"""What a session must record before it may close, and the next steps a close may add.

Shared by the close plan (:mod:`sessionctl.session.plan`), ``status`` and the close requests
an agent makes under ``sessionctl run`` (:mod:`sessionctl.session.request`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from sessionctl.errors import SessionStateError, UsageError
from sessionctl.session.record import OpenSession

OPTIMIZATION_PHASES = ("baseline", "profile", "change", "remeasure")


@dataclass(frozen=True)
class NewStep:
    """A next step to add while closing (``--add-step 'id: title'``)."""

    id: str
    title: str
    body: str | None = None
    effect: str | None = None
    paths: tuple[str, ...] = ()
    group: str | None = None
    rank: int | None = None

    @classmethod
    def parse(cls, text: str) -> NewStep:
        """Parse ``'id: title'`` (the CLI form)."""
        key, sep, title = text.partition(":")
        if not sep or not key.strip() or not title.strip():
            raise UsageError(
                f"--add-step {text!r}: expected 'id: title', "
                "e.g. 'batch-observe: Batch histogram observes'"
            )
        return cls(id=key.strip(), title=title.strip())


class CloseArgs(TypedDict, total=False):
    """What ``sessionctl close`` is asked to do besides closing: the keywords ``close`` and
    the request an agent makes under ``sessionctl run`` both take (and validate alike)."""

    resolve: str | None
    add_steps: Sequence[NewStep]
    status_text: str | None
    summary: str | None
    force_reason: str | None
    include: Sequence[str | Path]
    metric: str | None  # judge the session on this value instead of the campaign's headline


# --- what the session has recorded ----------------------------------------------------------


def phase_counts(entries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many entries each phase has (entries without a phase count as ``note``)."""
    counts: dict[str, int] = {}
    for e in entries:
        ph = e.get("phase") or "note"
        counts[ph] = counts.get(ph, 0) + 1
    return counts


def findings(entries: Sequence[Mapping[str, Any]], *phases: str | None) -> list[str]:
    """The texts of finding entries in ``phases`` (all phases when none given)."""
    return [
        str(e["text"])
        for e in entries
        if e.get("type") == "finding" and (not phases or e.get("phase") in phases)
    ]


def missing_requirements(session: OpenSession, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the workflow still needs before ``close`` (empty when it may close)."""
    if session.diagnostic:
        if not findings(entries):
            return ["a finding (`sessionctl record --finding TEXT`)"]
        return []
    phases = {e.get("phase") for e in entries if e.get("type") == "measurement"}
    missing = []
    for ph in ("baseline", "remeasure"):
        if ph not in phases:
            missing.append(
                f"a {ph} measurement (`sessionctl bench --phase {ph}` or "
                f"`sessionctl record --phase {ph} --metric qps=...`)"
            )
    return missing


def check_requirements(
    campaign: str, n: int, missing: Sequence[str], *, force_reason: str | None
) -> None:
    """Refuse to close while the workflow's requirements are missing (unless forced)."""
    if force_reason is not None and not force_reason.strip():
        raise UsageError("--force needs a reason: pass --force REASON (it is logged)")
    if missing and not force_reason:
        raise SessionStateError(
            f"{campaign}: session {n} cannot close yet: it needs {'; and '.join(missing)}; "
            "or pass --force REASON (the reason is logged)"
        )


def require_reason(reason: str) -> str:
    """The reason an abort is logged with (stripped); refuse a blank one."""
    if not reason.strip():
        raise SessionStateError("abort needs a reason: pass --reason TEXT (it goes into the log)")
    return reason.strip()
