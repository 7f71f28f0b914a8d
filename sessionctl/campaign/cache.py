"""What a read-only command needs of a campaign, kept in ``.sessionctl/cache/`` beside the exact
text it came from and a fingerprint of the validating code.

Parsing the round-trip YAML (ruamel) and validating it is most of what ``status``, ``next list``
or ``prompt render`` would spend on a long campaign. An entry is used only for the very same
text and code; any other text (edited, broken) misses, and the caller loads the YAML as before,
so errors are reported exactly as they would be without a cache. This module stays light (no
ruamel, no campaign model): ``status`` imports it on every run.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sessionctl.files import atomic_write
from sessionctl.workspace import Workspace

T = TypeVar("T")


def lookup(ws: Workspace, name: str, kind: str, key: Any, build: Callable[[Any], T]) -> T | None:
    """``build`` of the data saved as ``kind`` for exactly the current text of the campaign and
    ``key``; None when there is no such entry, or the campaign cannot be read, or ``build``
    refuses the data."""
    try:
        # As store.load reads it (CRLF kept), or a CRLF campaign would never match its entry.
        with open(ws.campaign_path(name), encoding="utf-8", newline="") as fh:
            text = fh.read()
        saved = json.loads(_path(ws, name, kind).read_text(encoding="utf-8"))
        if saved["key"] == key and saved["text"] == text:
            return build(saved["data"])
    except (OSError, ValueError, LookupError, TypeError):
        pass  # no usable entry (or no readable campaign: the caller's load says why)
    return None


def save(ws: Workspace, name: str, kind: str, key: Any, text: str, data: Any) -> None:
    """Keep ``data`` as ``kind`` for the campaign text ``text`` and ``key``."""
    entry = {"key": key, "text": text, "data": data}
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
        atomic_write(_path(ws, name, kind), json.dumps(entry))


def fingerprint(*extra: str) -> list[Any]:
    """The version and the state of every module that validates a campaign (and of ``extra``,
    the files of a reader whose cached data is its own)."""
    import sessionctl

    folder = Path(__file__).parent
    files = [*sorted(e.path for e in os.scandir(folder) if e.name.endswith(".py")), *extra]
    return [sessionctl.__version__, *([st.st_mtime_ns, st.st_size] for st in map(os.stat, files))]


def _path(ws: Workspace, name: str, kind: str) -> Path:
    return ws.scratch / "cache" / f"{name}.{kind}.json"
