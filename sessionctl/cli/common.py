"""Shared pieces of the CLI layer: option types, the workspace lookup, output mode."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer

from sessionctl import console
from sessionctl.reporting import NULL, Reporter

if TYPE_CHECKING:
    from sessionctl.workspace import Workspace

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")
]
CampaignOpt = Annotated[
    str | None,
    typer.Option(
        "--campaign",
        "-C",
        help="Campaign name (prompts/NAME.yaml). Default: $SESSIONCTL_CAMPAIGN, or the only one.",
        show_default=False,
    ),
]
CampaignArg = Annotated[
    str | None,
    typer.Argument(
        help="Campaign name (prompts/NAME.yaml). Default: $SESSIONCTL_CAMPAIGN, or the only one.",
        show_default=False,
    ),
]


def option(*decls: str, help: str, **kwargs: Any) -> Any:
    """A typer option with no default shown (its default, None or empty, means "not given")."""
    return typer.Option(*decls, help=help, show_default=False, **kwargs)


def current_context() -> click.Context:
    """The running command's context."""
    return click.get_current_context()


def workspace(*, here: bool = False) -> Workspace:
    """The workspace for this invocation (``--root``, ``$SESSIONCTL_ROOT`` or the nearest up).

    ``here``: without ``--root``, the current folder, not a search up (``init`` makes it).
    """
    from sessionctl.workspace import Workspace, find_workspace

    ctx = current_context()
    root = ctx.find_root().params.get("root")
    if root:
        return Workspace(Path(root).expanduser().resolve())
    return Workspace(Path.cwd().resolve()) if here else find_workspace()


def campaign(name: str | None) -> tuple[Workspace, str]:
    """Resolve the workspace and the campaign name in one step."""
    from sessionctl.workspace import resolve_campaign

    ws = workspace()
    return ws, resolve_campaign(ws, name)


def seconds(option: str, text: str | None) -> float | None:
    """Parse a duration given to ``option`` (``20s``, ``1m``, ``500ms``; None when not given)."""
    from sessionctl.errors import UsageError
    from sessionctl.units import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def reporter(json_output: bool = False) -> Reporter:
    """The reporter for core calls: rich progress normally, silent under ``--json``."""
    if json_output:
        console.set_quiet(True)
        return NULL
    return console.reporter()


def emit(json_output: bool, data: Any, human: Any = None) -> None:
    """Print ``data`` as JSON under ``--json``, otherwise call ``human()`` (or print text)."""
    if json_output:
        console.print_json(data)
    elif callable(human):
        human()
    elif human is not None:
        console.print_text(str(human))
