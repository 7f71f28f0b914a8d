"""Where a campaign's files live: the workspace root, its prompts, logs and scratch folder.

A workspace is the folder holding ``prompts/`` (usually the root of the repository being
optimized). sessionctl's own scratch state lives in ``<root>/.sessionctl/``, which ignores itself
(it holds a ``.gitignore`` of ``*``) so neither git nor jj ever sweeps it into a change.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sessionctl.errors import CampaignNotFound, CampaignNotNamed, UsageError
from sessionctl.files import atomic_write, locked

SCRATCH = ".sessionctl"
ENV_ROOT = "SESSIONCTL_ROOT"
ENV_CAMPAIGN = "SESSIONCTL_CAMPAIGN"


def default_log(name: str) -> str:
    """Where a campaign's perf log goes without a ``log:`` key, relative to the workspace."""
    return f"logs/{name}-perf-log.md"


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace; creating it touches nothing on disk."""

    root: Path

    @property
    def prompts_dir(self) -> Path:
        return self.root / "prompts"

    @property
    def templates_dir(self) -> Path:
        """The user's template override folder (templates here win over the packaged ones)."""
        return self.root / "templates"

    @property
    def scratch(self) -> Path:
        return self.root / SCRATCH

    def campaign_path(self, name: str) -> Path:
        return self.prompts_dir / f"{name}.yaml"

    def rendered_path(self, name: str) -> Path:
        return self.prompts_dir / f"{name}.md"

    def log_path(self, name: str) -> Path:
        """The campaign's perf log: its ``log:`` key, else ``logs/<name>-perf-log.md``."""
        configured = configured_log(self.campaign_path(name))
        if configured:
            return self.root / configured
        return self.default_log_path(name)

    def default_log_path(self, name: str) -> Path:
        return self.root / default_log(name)

    def session_dir(self, name: str) -> Path:
        """Per-campaign session state (open session record, close journal)."""
        return self.scratch / "sessions" / name

    def runs_dir(self, name: str) -> Path:
        """Raw benchmark data (driver output, metric snapshots, profiles) per campaign."""
        return self.scratch / "runs" / name

    def ensure_scratch(self) -> Path:
        """Create the scratch folder, ignored by git/jj via its own ``.gitignore``."""
        ignore = self.scratch / ".gitignore"
        if not ignore.exists():
            atomic_write(ignore, "# sessionctl scratch: never committed\n*\n")
        return self.scratch

    @contextlib.contextmanager
    def lock(self, name: str, *, timeout: float = 60.0) -> Iterator[None]:
        """Hold the campaign's lock (guards every read-modify-write of its files)."""
        self.ensure_scratch()
        with locked(self.scratch / "locks" / f"{name}.lock", timeout=timeout):
            yield

    def campaign_names(self) -> list[str]:
        if not self.prompts_dir.is_dir():
            return []
        return sorted(p.stem for p in self.prompts_dir.glob("*.yaml"))


def configured_log(campaign_file: Path) -> str | None:
    """The ``log:`` value of a campaign file, or None (no file, no key, or unreadable YAML).

    Read on its own, without validating the campaign, so every reader and writer of the log
    (close, the audit, the run loop) agrees on the file; ``sessionctl.campaign.schema`` checks
    that the value is a path inside the workspace.
    """
    try:
        text = campaign_file.read_text(encoding="utf-8")
    except OSError:
        return None
    if not re.search(r"^log\s*:", text, flags=re.MULTILINE):
        return None  # no top-level `log:` key (most campaigns): no YAML parse needed
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="safe").load(text)
    except YAMLError:
        return None
    value = data.get("log") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    rel = Path(value)
    return None if rel.is_absolute() or ".." in rel.parts else rel.as_posix()


def find_workspace(start: Path | None = None) -> Workspace:
    """Find the workspace: ``$SESSIONCTL_ROOT``, else the nearest folder up with ``prompts/``."""
    env = os.environ.get(ENV_ROOT)
    if env:
        root = Path(env).expanduser().resolve()
        if not root.is_dir():
            raise UsageError(
                f"{ENV_ROOT}={env}: no such folder; unset it or point it at a workspace"
            )
        return Workspace(root)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "prompts").is_dir() or (folder / SCRATCH).is_dir():
            return Workspace(folder)
    raise CampaignNotFound(
        f"{here}: no prompts/ folder here or above; run `sessionctl prompt import PROMPT.md "
        "--campaign NAME` to create one, or set SESSIONCTL_ROOT"
    )


def resolve_campaign(ws: Workspace, name: str | None) -> str:
    """Pick the campaign: the argument, ``$SESSIONCTL_CAMPAIGN``, or the only one there is."""
    chosen = name or os.environ.get(ENV_CAMPAIGN)
    names = ws.campaign_names()
    if chosen:
        if chosen.endswith((".yaml", ".yml")):
            chosen = Path(chosen).stem
        if chosen not in names:
            have = ", ".join(names) or "none"
            raise CampaignNotFound(
                f"{ws.prompts_dir}/{chosen}.yaml: no such campaign (have: {have})"
            )
        return chosen
    if len(names) == 1:
        return names[0]
    if not names:
        raise CampaignNotFound(
            f"{ws.prompts_dir}: no campaigns; create one with `sessionctl prompt import PROMPT.md "
            "--campaign NAME`"
        )
    raise CampaignNotNamed(
        f"several campaigns ({', '.join(names)}); name one, or set {ENV_CAMPAIGN}"
    )
