"""Read-only commands validate a campaign they have seen before without parsing its YAML
(``store.read``)."""

from __future__ import annotations

import json
from typing import Any

from conftest import git
from test_cli_startup import probe, top_level

from sessionctl.campaign import store
from sessionctl.workspace import Workspace

CAMPAIGN = """\
schema: 1
revision: 3
title: Demo
last_session: 0
next_steps:
""" + "".join(
    f"  - id: s{i}\n    title: Step {i}\n    body: |\n      Body {i}.\n" for i in range(40)
)


def test_next_list_parses_the_yaml_once_per_text(ws: Workspace) -> None:
    (ws.root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    code, first, modules = probe("next", "list", "--json", cwd=ws.root)
    assert code == 0 and "ruamel" in top_level(modules)
    code, second, modules = probe("next", "list", "--json", cwd=ws.root)
    assert code == 0 and json.loads(second) == json.loads(first)
    assert "ruamel" not in top_level(modules)  # validated from the cached plain data
    assert [s["id"] for s in json.loads(second)["steps"]][:3] == ["s0", "s1", "s2"]

    # An edit is a new text: parsed (and its errors reported) exactly as without the cache.
    (ws.root / "prompts" / "demo.yaml").write_text(CAMPAIGN.replace("revision: 3", "revision: x"))
    code, _, _ = probe("next", "list", cwd=ws.root)
    assert code == 1


def test_read_equals_load_and_skips_a_cache_for_other_text(ws: Workspace) -> None:
    (ws.root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    loaded = store.load(ws, "demo").campaign
    assert store.read(ws, "demo") == loaded  # first: parsed, then cached
    assert store.read(ws, "demo") == loaded  # second: from the cache
    entry = json.loads((ws.scratch / "cache" / "demo.campaign.json").read_text())
    assert entry["text"] == CAMPAIGN and entry["key"] == store.fingerprint()
    (ws.root / "prompts" / "demo.yaml").write_text(CAMPAIGN.replace("Step 1\n", "Step one\n"))
    assert store.read(ws, "demo").next_steps[1].title == "Step one"


def test_a_crlf_campaign_is_read_from_the_cache_too(ws: Workspace, monkeypatch: Any) -> None:
    path = ws.root / "prompts" / "demo.yaml"
    path.write_bytes(CAMPAIGN.replace("\n", "\r\n").encode())
    loaded = store.read(ws, "demo")  # parsed, then cached with its CRLF text

    def no_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed the YAML again")

    monkeypatch.setattr(store, "load", no_parse)
    assert store.read(ws, "demo") == loaded
