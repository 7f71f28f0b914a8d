"""A validated campaign without a YAML parse, for commands that only read it.

Parsing the round-trip YAML (ruamel) costs about 0.4 ms per next step: most of what ``next
list`` or ``prompt render`` spend on a long campaign. A successful :func:`read` keeps the
document as plain JSON data in ``.sessionctl/cache/<name>.campaign.json``, beside the exact text
it came from and a fingerprint of the validating code; the next :func:`read` of the same text
validates that data again (the typed model is rebuilt, so every rule still runs) without the
parse. Any other text, a broken one included, goes through :func:`store.load`, so errors are
reported exactly as before. Commands that edit the YAML use ``store.load``/``store.edit``.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from sessionctl.campaign.model import Campaign
from sessionctl.files import atomic_write
from sessionctl.workspace import Workspace


def read(ws: Workspace, name: str) -> Campaign:
    """The validated campaign ``prompts/<name>.yaml`` (read-only), parsed at most once per text."""
    from sessionctl.campaign import schema, store

    cache = ws.scratch / "cache" / f"{name}.campaign.json"
    source = store.display_path(ws, ws.campaign_path(name))
    key = fingerprint()
    try:
        text = ws.campaign_path(name).read_text(encoding="utf-8")
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if saved["key"] == key and saved["text"] == text:
            return schema.build(saved["data"], name=name, source=source)
    except (OSError, ValueError, LookupError, TypeError):
        pass  # no usable entry (or no readable campaign: store.load below says why)
    cf = store.load(ws, name)
    data = _plain(cf.doc)
    # Cache only what validates to the very same campaign from plain data (a YAML timestamp,
    # say, would not survive JSON): otherwise every read parses, as before.
    if data is not None and schema.build(data, name=name, source=source) == cf.campaign:
        entry = {"key": key, "text": cf.text, "data": data}
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
            atomic_write(cache, json.dumps(entry))
    return cf.campaign


def fingerprint() -> list[Any]:
    """The version and the state of every module that validates a campaign."""
    import sessionctl

    folder = Path(__file__).parent
    files = sorted(e.path for e in os.scandir(folder) if e.name.endswith(".py"))
    return [sessionctl.__version__, *([st.st_mtime_ns, st.st_size] for st in map(os.stat, files))]


def _plain(doc: Any) -> Any:
    """The round-trip document as plain JSON data, or None when it does not fit JSON."""
    try:
        return json.loads(json.dumps(doc, allow_nan=False))
    except (TypeError, ValueError):
        return None
