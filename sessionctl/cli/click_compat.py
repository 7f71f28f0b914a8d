"""Keep typer's argument help on click 8.5+.

click 8.5 gave ``click.Argument`` a ``help`` parameter of its own and sets ``self.help`` from it
in ``Parameter.__init__``. typer <= 0.25 (the newest typer that neither vendors click nor imports
pydantic, see pyproject.toml) stores the argument's help on the instance *before* calling
click's ``__init__`` and passes no ``help`` on, so click overwrites it with ``None`` and every
positional argument loses its description in ``--help``. :func:`install` re-applies the help
after click's constructor has run, and, since click 8.5 also lists documented arguments itself
(``Command.format_arguments``, "Positional arguments") while typer's ``format_options`` already
lists them under "Arguments", it turns click's copy off for typer's command classes so each
argument is shown once. Both are no-ops where not needed (click < 8.5, or a typer that handles
it).
"""

from __future__ import annotations

from typing import Any

import click
from typer.core import TyperArgument, TyperCommand, TyperGroup

_PATCHED = "_sessionctl_keeps_help"


def _help_survives() -> bool:
    probe = TyperArgument(param_decls=["probe"], help="probe")
    return probe.help == "probe"


def _no_second_listing(self: click.Command, ctx: click.Context, formatter: Any) -> None:
    """typer's ``format_options`` already lists the arguments."""


def install() -> None:
    """Make ``TyperArgument`` keep the help it was given; list arguments once (idempotent)."""
    if getattr(TyperArgument, _PATCHED, False):
        return
    setattr(TyperArgument, _PATCHED, True)
    if hasattr(click.Command, "format_arguments"):
        for cls in (TyperCommand, TyperGroup):
            if "format_arguments" not in vars(cls):
                cls.format_arguments = _no_second_listing  # type: ignore[method-assign,attr-defined,unused-ignore]
    if _help_survives():
        return
    original = TyperArgument.__init__

    def __init__(self: TyperArgument, *args: Any, help: str | None = None, **kwargs: Any) -> None:
        original(self, *args, help=help, **kwargs)
        self.help = help

    TyperArgument.__init__ = __init__  # type: ignore[method-assign]
