"""Edit the ranked next-step list (and status, last session) inside a round-trip document.

Every function edits ``cf.doc`` in place so the user's comments and formatting survive, and
checks its arguments first (unknown ids, duplicate ids, ranks out of range, unknown groups)
so a bad request never leaves the document half-changed. A step's rank is its 1-based
position in ``next_steps``; ranks therefore stay dense by construction.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping, Sequence
from typing import Any, Literal

from sessionctl.campaign.comments import keep_tail
from sessionctl.errors import UsageError

Doc = MutableMapping[str, Any]
STEP_KEYS = ("id", "title", "body", "effect", "paths", "added_in", "group")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Keys whose values go after these when they must be created (keeps the file in reading order).
_AFTER = {
    "status": ("metrics", "benchmarks", "target", "rules", "goal", "context", "title"),
    "completed": ("status", "metrics", "benchmarks", "target", "rules", "goal", "context", "title"),
    "next_steps": ("profiling_notes", "completed", "status", "metrics", "benchmarks", "title"),
    "last_session": ("revision", "schema"),
    "log": ("last_session", "revision", "schema"),
    "retired": ("next_step_groups", "next_steps", "profiling_notes", "completed", "status"),
}
RETIRED_KEYS = ("id", "title", "why", "sessions", "body", "effect", "paths", "added_in", "group")


def _text(value: str) -> Any:
    """Multi-line text as a ``|`` block scalar, single lines as plain strings."""
    if "\n" in value:
        from ruamel.yaml.scalarstring import LiteralScalarString

        return LiteralScalarString(value.rstrip("\n") + "\n")
    return value


def _map() -> Any:
    from ruamel.yaml.comments import CommentedMap

    return CommentedMap()


def _seq(items: Sequence[Any] = (), *, flow: bool = False) -> Any:
    from ruamel.yaml.comments import CommentedSeq

    seq = CommentedSeq(items)
    if flow:
        seq.fa.set_flow_style()
    return seq


def _ensure_key(doc: Doc, key: str, factory: Any) -> Any:
    """Return ``doc[key]``, creating it at a sensible position when missing or null."""
    if doc.get(key) is not None:
        return doc[key]
    value = factory()
    if key in doc:
        doc[key] = value
        return value
    keys = list(doc.keys())
    insert = getattr(doc, "insert", None)
    for anchor in _AFTER.get(key, ()):
        if anchor in keys and insert is not None:
            insert(keys.index(anchor) + 1, key, value)
            return doc[key]
    doc[key] = value
    return doc[key]


def _put(doc: Doc, key: str, value: Any) -> None:
    """Set ``doc[key]``, in place when present, else where :func:`_ensure_key` puts it."""
    if key in doc:
        doc[key] = value
    else:
        _ensure_key(doc, key, lambda: value)


def _steps(doc: Doc) -> Any:
    steps = doc.get("next_steps")
    if steps is None:
        return []
    if not isinstance(steps, list):
        raise UsageError("next_steps: expected a list; fix the campaign file first")
    return steps


def _ids(doc: Doc) -> list[str]:
    return [str(s.get("id")) for s in _steps(doc) if isinstance(s, MutableMapping)]


def _index(doc: Doc, step_id: str) -> int:
    ids = _ids(doc)
    if step_id not in ids:
        have = ", ".join(ids) or "none"
        raise UsageError(
            f"next_steps: no step {step_id!r} (have: {have}); see `sessionctl next list`"
        )
    return ids.index(step_id)


def _check_id(doc: Doc, step_id: str, *, allow: str | None = None) -> None:
    if not _ID.match(step_id):
        raise UsageError(
            f"next_steps: id {step_id!r} must be one word of letters, digits, '-', '_' or '.'"
        )
    if step_id != allow and step_id in _ids(doc):
        raise UsageError(f"next_steps: duplicate id {step_id!r}; choose another --id")


def _group_ids(doc: Doc) -> list[str]:
    groups = doc.get("next_step_groups") or []
    return [str(g.get("id")) for g in groups if isinstance(g, MutableMapping)]


def _check_group(doc: Doc, group: str) -> None:
    have = _group_ids(doc)
    if group not in have:
        raise UsageError(
            f"next_step_groups: no group {group!r} (have: {', '.join(have) or 'none'}); "
            "add it to next_step_groups in the YAML first"
        )


def _check_rank(rank: int, size: int) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= size:
        raise UsageError(f"rank {rank!r}: must be between 1 and {size}")


def _set(step: Any, key: str, value: Any) -> None:
    """Set or clear (None) one field of a step, keeping the canonical key order for new keys."""
    if value is None:
        if key in step:
            del step[key]
        return
    if key == "paths":
        value = _seq([str(p) for p in value])
    elif isinstance(value, str):
        value = _text(value)
    if key in step:
        step[key] = value
        return
    present = list(step.keys())
    later = [k for k in STEP_KEYS[STEP_KEYS.index(key) + 1 :] if k in present]
    insert = getattr(step, "insert", None)
    if later and insert is not None:
        insert(present.index(later[0]), key, value)
    else:
        step[key] = value


def add_step(
    doc: Doc,
    *,
    id: str,
    title: str,
    body: str | None = None,
    effect: str | None = None,
    paths: Sequence[str] = (),
    added_in: int | None = None,
    group: str | None = None,
    rank: int | None = None,
) -> None:
    """Insert a new step at ``rank`` (1-based; default: last, after the rest of its group).

    Without ``group``, the step joins the group of the step it lands after (or before, at
    rank 1), so grouped lists stay in contiguous runs.
    """
    _check_id(doc, id)
    if not title.strip():
        raise UsageError("next_steps: a step needs a non-empty --title")
    if group is not None:
        _check_group(doc, group)
    steps = _steps(doc)
    size = len(steps)
    if rank is not None:
        _check_rank(rank, size + 1)
        pos = rank - 1
    elif group is not None:
        members = [i for i, s in enumerate(steps) if s.get("group") == group]
        pos = members[-1] + 1 if members else size
    else:
        pos = size
    if group is None and size:
        neighbour = steps[pos - 1] if pos > 0 else steps[0]
        group = neighbour.get("group")
    step = _map()
    step["id"] = id
    step["title"] = " ".join(title.split())
    for key, value in (
        ("body", body),
        ("effect", effect),
        ("added_in", added_in),
        ("group", group),
    ):
        _set(step, key, value)
    if paths:
        _set(step, "paths", list(paths))
    with keep_tail(doc, "next_steps"):
        seq = _ensure_key(doc, "next_steps", _seq)
        seq.insert(pos, step)


def edit_step(doc: Doc, step_id: str, **fields: Any) -> None:
    """Change fields of a step (``None`` clears an optional one; ``id=`` renames it)."""
    idx = _index(doc, step_id)
    unknown = sorted(set(fields) - set(STEP_KEYS))
    if unknown:
        raise UsageError(
            f"next_steps: unknown field(s) {', '.join(unknown)} (known: {', '.join(STEP_KEYS)})"
        )
    if "id" in fields:
        if fields["id"] is None:
            raise UsageError("next_steps: a step's id cannot be cleared")
        _check_id(doc, fields["id"], allow=step_id)
    if "title" in fields and not (fields["title"] or "").strip():
        raise UsageError("next_steps: a step's title cannot be empty")
    if fields.get("group") is not None:
        _check_group(doc, fields["group"])
    if fields.get("added_in") is not None and (
        isinstance(fields["added_in"], bool) or not isinstance(fields["added_in"], int)
    ):
        raise UsageError("next_steps: added_in must be a session number")
    step = _steps(doc)[idx]
    with keep_tail(doc, "next_steps"):
        for key in STEP_KEYS:
            if key not in fields:
                continue
            value = fields[key]
            if key == "title":
                value = " ".join(value.split())
            if key == "paths" and value is not None and not value:
                value = None
            _set(step, key, value)


def move_step(doc: Doc, step_id: str, rank: int) -> None:
    """Move a step to ``rank`` (1-based); the others shift to keep ranks dense."""
    idx = _index(doc, step_id)
    steps = _steps(doc)
    _check_rank(rank, len(steps))
    with keep_tail(doc, "next_steps"):
        step = steps.pop(idx)
        steps.insert(rank - 1, step)


def drop_step(doc: Doc, step_id: str) -> None:
    """Remove a step without recording it as done."""
    idx = _index(doc, step_id)
    with keep_tail(doc, "next_steps"):
        del _steps(doc)[idx]


def resolve_step(
    doc: Doc,
    step_id: str,
    *,
    session: int,
    kind: Literal["optimization", "diagnostic"],
    summary: str | None,
) -> None:
    """Move a step into ``completed.optimizations``/``diagnostics`` with ``sessions: [N]``."""
    if kind not in ("optimization", "diagnostic"):
        raise UsageError(f"kind {kind!r}: use optimization or diagnostic")
    if isinstance(session, bool) or not isinstance(session, int) or session < 1:
        raise UsageError(f"session {session!r}: must be a session number >= 1")
    idx = _index(doc, step_id)
    completed = doc.get("completed")
    if completed is not None and not isinstance(completed, MutableMapping):
        raise UsageError("completed: expected a mapping; fix the campaign file first")
    step = _steps(doc)[idx]
    with keep_tail(doc, "next_steps"):
        del _steps(doc)[idx]
    completed = _ensure_key(doc, "completed", _map)
    key = f"{kind}s"
    with keep_tail(completed, key):
        done = _ensure_key(completed, key, _seq)
        for entry in done:
            if isinstance(entry, MutableMapping) and entry.get("id") == step_id:
                sessions = entry.get("sessions")
                if sessions is None:
                    entry["sessions"] = _seq([session], flow=True)
                elif session not in sessions:
                    sessions.append(session)
                if summary:
                    entry["summary"] = _text(summary)
                return
        entry = _map()
        entry["id"] = step_id
        entry["title"] = str(step.get("title", step_id))
        entry["sessions"] = _seq([session], flow=True)
        if summary:
            entry["summary"] = _text(summary)
        done.append(entry)


def _retired(doc: Doc) -> Any:
    seq = doc.get("retired")
    if seq is None:
        return []
    if not isinstance(seq, list):
        raise UsageError("retired: expected a list; fix the campaign file first")
    return seq


def retire_step(doc: Doc, step_id: str, *, why: str, session: int | None = None) -> None:
    """Move a step to ``retired`` (tried, did not help): agents see it, ``start`` never picks it.

    Retiring a step again (another session tried it) adds the session and the new reason.
    """
    why = " ".join(why.split())
    if not why:
        raise UsageError("retire needs a reason: pass --why TEXT (agents read it in the prompt)")
    if session is not None and (isinstance(session, bool) or session < 1):
        raise UsageError(f"--session {session!r}: must be a session number >= 1")
    idx = _index(doc, step_id)
    step = _steps(doc)[idx]
    with keep_tail(doc, "next_steps"):
        del _steps(doc)[idx]
    entry = _map()
    for key in RETIRED_KEYS:
        if key == "why":
            entry["why"] = _text(why)
        elif key == "sessions":
            if session is not None:
                entry["sessions"] = _seq([session], flow=True)
        elif step.get(key) is not None:
            entry[key] = step[key]
    with keep_tail(doc, "retired"):
        _ensure_key(doc, "retired", _seq).append(entry)


def unretire_step(doc: Doc, step_id: str, *, rank: int | None = None) -> None:
    """Bring a retired step back into ``next_steps`` (at ``rank``, default: last)."""
    seq = _retired(doc)
    ids = [str(r.get("id")) for r in seq if isinstance(r, MutableMapping)]
    if step_id not in ids:
        raise UsageError(
            f"retired: no step {step_id!r} (have: {', '.join(ids) or 'none'}); "
            "see `sessionctl next list --retired`"
        )
    if step_id in _ids(doc):
        raise UsageError(f"next_steps: duplicate id {step_id!r}; drop one of them first")
    size = len(_steps(doc))
    if rank is not None:
        _check_rank(rank, size + 1)
    entry = seq[ids.index(step_id)]
    step = _map()
    groups = _group_ids(doc)
    for key in STEP_KEYS:
        value = entry.get(key)
        if value is None or (key == "group" and value not in groups):
            continue
        step[key] = value
    with keep_tail(doc, "retired"):
        del seq[ids.index(step_id)]  # an emptied list stays (`retired: []`) with its comments
    with keep_tail(doc, "next_steps"):
        _ensure_key(doc, "next_steps", _seq).insert(size if rank is None else rank - 1, step)


def set_status(doc: Doc, text: str) -> None:
    """Replace the current-status prose (and a heading that names the old status's session)."""
    _put(doc, "status", _text(text))
    headings = doc.get("headings")
    if isinstance(headings, dict) and re.search(
        r"(?i)\bsessions?\s+\d", str(headings.get("status", ""))
    ):
        del headings["status"]  # "## Current Status (Session 50 - ...)" would now be stale


def set_last_session(doc: Doc, number: int) -> None:
    """Record the number of the last finished session."""
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise UsageError(f"last_session {number!r}: must be a session number >= 0")
    _put(doc, "last_session", number)


def set_log(doc: Doc, path: str) -> None:
    """Name the campaign's perf log (``log:``, relative to the workspace)."""
    _put(doc, "log", path)
