"""The one error family: every failure a user can see is a SessionctlError with an exit code.

Messages are one line and name the fix, e.g.
``prompts/ddl.yaml:41:7: next_steps[2].id: duplicate id 'purify'``.
The CLI catches SessionctlError in exactly one place (``sessionctl.cli.main``).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USER = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE: stdout's reader went away (see sessionctl.cli)


class SessionctlError(Exception):
    """A failure the user can act on; ``str(err)`` is the one line we print."""

    exit_code: int = EXIT_USER


class UsageError(SessionctlError):
    """Bad arguments, or nothing to do."""

    exit_code = EXIT_USAGE


class NothingToDo(UsageError):
    """The command had nothing to act on (no open session, no next steps...)."""


class ConfigError(SessionctlError):
    """A campaign or config file is malformed; the message carries file:line:col: field."""


class CampaignNotFound(SessionctlError):
    """No campaign by that name, or no way to choose one."""


class CampaignNotNamed(UsageError, CampaignNotFound):
    """Several campaigns and none named: the command line must say which (a usage error, exit
    2; still a CampaignNotFound for callers that fall back when no campaign can be chosen)."""

    exit_code = EXIT_USAGE


class SessionStateError(SessionctlError):
    """The session is not in a state that allows this command (none open, already open...)."""


class NoOpenSession(NothingToDo, SessionStateError):
    """The command needs an open session and there is none (nothing to act on: exit 2)."""

    exit_code = EXIT_USAGE


class VcsError(SessionctlError):
    """git or jj refused, or the working copy is not in the expected state."""


class CommandError(SessionctlError):
    """An external command failed; the message shows argv, return code and output tails."""

    def __init__(
        self,
        message: str,
        *,
        argv: list[str] | tuple[str, ...] = (),
        returncode: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class ToolNotFound(SessionctlError):
    """A required external program is not installed; the message says what to install."""


class TargetError(SessionctlError):
    """The server under test could not be started, reached, prepared or stopped."""


class MeasurementError(SessionctlError):
    """A benchmark or metric scrape produced no trustworthy result."""


class ParseError(SessionctlError):
    """Input text (metrics exposition, tool output) is malformed; the message names the line."""


class InternalError(SessionctlError):
    """A bug in sessionctl itself."""

    exit_code = EXIT_INTERNAL


class Interrupted(SessionctlError):
    """The user pressed Ctrl-C; whatever was started has been cleaned up or journaled."""

    exit_code = EXIT_INTERRUPTED
