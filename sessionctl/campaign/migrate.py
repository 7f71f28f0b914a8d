"""Upgrade campaign documents written for an older ``schema`` version, in place.

Each entry of :data:`MIGRATIONS` turns a version-N document into version N+1 by editing the
round-trip document (so comments and key order survive). :func:`upgrade` runs them in order on
load; the upgraded document reaches disk the next time sessionctl saves the file. A document
newer than :data:`~sessionctl.campaign.model.SCHEMA_VERSION` is refused by the schema builder.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from sessionctl.campaign.model import SCHEMA_VERSION

Migration = Callable[[MutableMapping[str, Any]], None]


def _rename_key(doc: MutableMapping[str, Any], old: str, new: str) -> None:
    """Rename a top-level key keeping its position (and, on ruamel maps, its comments)."""
    if old not in doc or new in doc:
        return
    keys = list(doc.keys())
    pos = keys.index(old)
    value = doc[old]
    insert = getattr(doc, "insert", None)
    if insert is None:
        doc[new] = value
        del doc[old]
        return
    comment = None
    ca = getattr(doc, "ca", None)
    if ca is not None and old in ca.items:
        comment = ca.items.pop(old)
    del doc[old]
    insert(pos, new, value)
    if comment is not None and ca is not None:
        ca.items[new] = comment


def _set_after(doc: MutableMapping[str, Any], anchor: str, key: str, value: Any) -> None:
    """Add ``key`` right after ``anchor`` (or at the end) unless it exists."""
    if key in doc:
        return
    insert = getattr(doc, "insert", None)
    keys = list(doc.keys())
    if insert is not None and anchor in keys:
        insert(keys.index(anchor) + 1, key, value)
    else:
        doc[key] = value


def _v0_to_v1(doc: MutableMapping[str, Any]) -> None:
    """Version 0 (pre-release drafts): ``steps`` and ``session`` keys, no ``revision``."""
    _rename_key(doc, "steps", "next_steps")
    _rename_key(doc, "session", "last_session")
    doc["schema"] = 1
    _set_after(doc, "schema", "revision", 0)


MIGRATIONS: dict[int, Migration] = {0: _v0_to_v1}


def upgrade(doc: Any, *, target: int = SCHEMA_VERSION) -> int | None:
    """Upgrade ``doc`` in place to ``target``; return the version it had, or None if current.

    Documents whose ``schema`` is missing, not an integer, or newer than ``target`` are left
    alone: the schema builder reports those with their file position.
    """
    if not isinstance(doc, MutableMapping):
        return None
    version = doc.get("schema")
    if isinstance(version, bool) or not isinstance(version, int) or version >= target:
        return None
    original = version
    while version < target:
        step = MIGRATIONS.get(version)
        if step is None:
            # No path forward: leave it for the builder, which names the version.
            return None
        step(doc)
        version = doc["schema"]
    return original
