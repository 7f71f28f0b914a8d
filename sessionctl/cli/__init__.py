"""The command line: typer declarations only; every command calls into the core.

Each area has its own module here (``prompt``, ``next_steps``, ``session``, ``bench``...), and
each module exposes ``register(app)``. The root group is lazy: :data:`COMMANDS` names every
top-level command, the module that registers it and the first paragraph of its help, so
``sessionctl --help`` lists them without importing a single area module, and ``sessionctl X``
imports and builds only X (typer evaluates every annotation of a command when it builds it,
which for ~45 commands costs more than importing typer itself); shell completion of the
command names (typer's ``--install-completion``) reads the same table. Core modules are imported
inside the commands. SessionctlError is caught in exactly one place: ``_Group.invoke``.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from gettext import gettext
from typing import Annotated, Any, NoReturn

import click
import typer
import typer.main
from typer.core import TyperGroup

from sessionctl import __version__, console
from sessionctl.cli import click_compat
from sessionctl.errors import (
    EXIT_CLOSED_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USER,
    SessionctlError,
)

click_compat.install()

# Every top-level command: name -> (module in sessionctl.cli whose register() adds it, the first
# paragraph of its help). The order is the order of `sessionctl --help`. Keep it in step with the
# modules: tests/test_cli_startup.py compares it (and the help it produces) with what register()
# really builds, and prints the rows to paste when they drift.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "init",
        "Begin a campaign: a commented prompts/NAME.yaml that validates, its prompt, an empty log.",
    ),
    "start": ("session", "Open the next session on a next step, on a clean working copy."),
    "status": (
        "session",
        "Show the open session: phases, measurements, findings and what close will do.",
    ),
    "record": ("session", "Record work into the open session as it happens."),
    "close": (
        "session",
        "Close the session: log entry, YAML update, the code change, then the prompt change.",
    ),
    "abort": (
        "session",
        "End the session without a code change: log why, keep the findings.",
    ),
    "history": (
        "history",
        "One row per session: outcome, headline before → after, effect, verdict, change, cost.",
    ),
    "report": (
        "history",
        "Write one self-contained HTML report: the headline over sessions, the table, the gain.",
    ),
    "bench": (
        "bench",
        "Run a benchmark across concurrency levels; print the sweep table and record it.",
    ),
    "compare": (
        "compare",
        "Compare a baseline (A) and the candidate (B) in interleaved pairs and judge every metric.",
    ),
    "run": (
        "run",
        "Run the agent for up to N sessions: start, launch, bound, audit, close or fail, repeat.",
    ),
    "demo": (
        "demo",
        "Run one complete measured session on a tiny app against an embedded PostgreSQL.",
    ),
    "prompt": (
        "prompt",
        "The campaign's handoff prompt: YAML source of truth, rendered markdown, import.",
    ),
    "template": (
        "prompt",
        "The jinja2 templates prompts are rendered with (packaged defaults, overrides).",
    ),
    "next": (
        "next_steps",
        "The campaign's ranked next steps (rank = position; every change re-renders the prompt).",
    ),
    "metrics": (
        "metrics",
        "Scrape Prometheus metrics, diff two scrapes, compute PromQL-exact quantiles.",
    ),
    "profile": (
        "profile",
        "Sample the target while a benchmark runs; report samples per query per function.",
    ),
    "target": (
        "target",
        "The long-lived target (target.restart: never): start, status, stop, restart.",
    ),
}


def build_command(name: str, *, root: typer.Typer | None = None) -> click.Command:
    """Import the module that registers ``name`` and build that one command (or group)."""
    root = root or app
    module = importlib.import_module(f"sessionctl.cli.{COMMANDS[name][0]}")
    scratch = typer.Typer(rich_markup_mode=root.rich_markup_mode, add_completion=False)
    module.register(scratch)
    for info in scratch.registered_commands:
        callback_name = info.callback.__name__ if info.callback else ""
        if (info.name or typer.main.get_command_name(callback_name)) == name:
            return typer.main.get_command_from_info(
                info,
                pretty_exceptions_short=root.pretty_exceptions_short,
                rich_markup_mode=root.rich_markup_mode,
            )
    for group in scratch.registered_groups:
        if group.name == name:
            return typer.main.get_group_from_info(
                group,
                pretty_exceptions_short=root.pretty_exceptions_short,
                rich_markup_mode=root.rich_markup_mode,
                suggest_commands=root.suggest_commands,
            )
    raise RuntimeError(f"sessionctl.cli.{COMMANDS[name][0]}.register() adds no {name!r} command")


class LazyCommands(MutableMapping[str, click.Command]):
    """The root's sub-commands: every name is known up front, each is built on first access."""

    def __init__(
        self, built: Mapping[str, click.Command], build: Callable[[str], click.Command]
    ) -> None:
        self._built = dict(built)
        self._build = build
        self._names = [*COMMANDS, *(n for n in built if n not in COMMANDS)]

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            if name not in self._names:
                raise KeyError(name)
            self._built[name] = self._build(name)
        return self._built[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        if name not in self._names:
            self._names.append(name)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self._names:
            raise KeyError(name)
        self._names.remove(name)
        self._built.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def summary(self, name: str) -> click.Command:
        """The built command, or a stand-in carrying its help from :data:`COMMANDS`."""
        if name in self._built:
            return self._built[name]
        return click.Command(name, help=COMMANDS[name][1])


class _Group(TyperGroup):
    """Root group: builds sub-commands on demand; turns SessionctlError into one error line."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands: LazyCommands = LazyCommands(self.commands, build_command)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with each command's help taken from the table unless it is built."""
        rows = [(name, self.commands.summary(name)) for name in self.list_commands(ctx)]
        rows = [(name, cmd) for name, cmd in rows if not cmd.hidden]
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section(gettext("Commands")):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        """Shell completion of command names from the table (building none), then options."""
        from click.shell_completion import CompletionItem

        rows = [(n, self.commands.summary(n)) for n in self.list_commands(ctx)]
        results = [
            CompletionItem(name, help=cmd.get_short_help_str())
            for name, cmd in rows
            if name.startswith(incomplete) and not cmd.hidden
        ]
        results.extend(click.Command.shell_complete(self, ctx, incomplete))
        return results

    def invoke(self, ctx: click.Context) -> Any:
        # Each invocation starts chatty; only its own --json silences it (in-process callers
        # such as tests run many commands in one process).
        console.set_quiet(False)
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
        except BrokenPipeError as exc:
            closed_pipe(exc)
        except OSError as exc:
            # The disk is full, a folder read-only, a file gone: the machine's fault, not ours.
            console.error(os_error_line(exc))
            raise typer.Exit(EXIT_USER) from None
        except Exception as exc:
            if os.environ.get("SESSIONCTL_DEBUG"):
                import traceback

                traceback.print_exc()
            console.error(
                f"internal error: {type(exc).__name__}: {exc} "
                "(a sessionctl bug; rerun with SESSIONCTL_DEBUG=1 for the traceback)"
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # --help and --version write while the arguments are parsed, before invoke.
        try:
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError as exc:
            closed_pipe(exc)


def closed_pipe(exc: BrokenPipeError) -> NoReturn:
    """End quietly when whoever read stdout has gone (``sessionctl history | head -1``).

    We exit 141 (128 + SIGPIPE), what a shell reports for ``git log | head -1`` or
    ``ls | head -1``, which the default SIGPIPE action kills: without ``set -o pipefail`` the
    pipeline still succeeds (it has head's status), with it a script learns the output was cut
    short rather than read in full, which exit 0 would hide. No message: the reader chose to
    stop. stdout is pointed at the null device first (Python's advice for BrokenPipeError) so the
    interpreter's final flush cannot fail a second time. A broken pipe that is not stdout (an
    agent's stdin) stays an ordinary OS error (exit 1, one line).
    """
    if not console.stdout_closed():
        console.error(os_error_line(exc))
        raise typer.Exit(EXIT_USER) from None
    console.silence_stdout()
    raise typer.Exit(EXIT_CLOSED_PIPE) from None


_OS_FIXES = {
    errno.ENOSPC: "free some disk space, then rerun the command",
    errno.EDQUOT: "free some space in your disk quota, then rerun the command",
    errno.EROFS: "the file system is read-only; remount it writable or use another --root",
    errno.EACCES: "check the file's permissions",
    errno.EPERM: "check the file's permissions",
    errno.ENOENT: "check the path",
    errno.EIO: "check the disk",
}


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: the file, what the OS said, the fix."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    what = exc.strerror or str(exc) or type(exc).__name__
    fix = _OS_FIXES.get(exc.errno or 0, "fix that, then rerun the command")
    return f"{where + ': ' if where else ''}{what}; {fix}"


app = typer.Typer(
    cls=_Group,
    name="sessionctl",
    help="Run measured, logged, reproducible optimization sessions (for you or an AI agent).",
    no_args_is_help=True,
    add_completion=True,
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
        typer.Option(
            "--root",
            help="Workspace folder (holds prompts/). Default: nearest one up, or $SESSIONCTL_ROOT.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Run measured, logged, reproducible optimization sessions (for you or an AI agent)."""


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="sessionctl")
    except KeyboardInterrupt:
        console.error("interrupted")
        sys.exit(EXIT_INTERRUPTED)
