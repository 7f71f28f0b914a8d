"""The command line: typer declarations only; every command calls into the core.

Each area has its own module here (``prompt``, ``next_steps``, ``session``, ``bench``...), and
each module exposes ``register(app)``. Core modules are imported inside the commands so that
``sessionctl --help`` stays fast. SessionctlError is caught in exactly one place: ``_Group.invoke``.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from sessionctl import __version__, console
from sessionctl.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, SessionctlError


class _Group(TyperGroup):
    """Root group: turns SessionctlError into one error line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SessionctlError as exc:
            console.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("SESSIONCTL_DEBUG"):
                traceback.print_exc()
            console.error(
                f"internal error: {type(exc).__name__}: {exc} "
                "(a sessionctl bug; rerun with SESSIONCTL_DEBUG=1 for the traceback)"
            )
            raise typer.Exit(EXIT_INTERNAL) from None


app = typer.Typer(
    cls=_Group,
    name="sessionctl",
    help="Run measured, logged, reproducible optimization sessions (for you or an AI agent).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        console.print_text(f"sessionctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    root: Annotated[
        str | None,
        typer.Option("--root", help="Workspace folder (holds prompts/). Default: nearest one up, or $SESSIONCTL_ROOT."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Run measured, logged, reproducible optimization sessions (for you or an AI agent)."""


def _register() -> None:
    from sessionctl.cli import (
        bench,
        compare,
        demo,
        metrics,
        next_steps,
        profile,
        prompt,
        run,
        session,
    )

    for module in (prompt, next_steps, session, bench, metrics, compare, profile, run, demo):
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="sessionctl")
    except KeyboardInterrupt:
        console.error("interrupted")
        sys.exit(EXIT_INTERRUPTED)
