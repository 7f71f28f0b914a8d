"""How core code reports progress without importing rich.

Core operations take a ``reporter: Reporter`` keyword argument. The CLI passes the rich
implementation from :mod:`sessionctl.console`; tests and library callers get :data:`NULL`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol


class Task(Protocol):
    """A unit of long-running work shown as a progress bar."""

    def advance(self, amount: float = 1.0) -> None:
        """Move the bar forward."""

    def update(
        self, *, completed: float | None = None, total: float | None = None, **fields: Any
    ) -> None:
        """Set position/total or live fields (e.g. ``qps=1234.0``) shown beside the bar."""


class Reporter(Protocol):
    """Where core code sends what the user should see while it works."""

    def phase(self, title: str) -> None:
        """Announce a new phase (a heading line)."""

    def info(self, message: str) -> None:
        """Say something worth a line."""

    def warn(self, message: str) -> None:
        """Say something the user should look at."""

    def task(
        self, description: str, *, total: float | None = None
    ) -> contextlib.AbstractContextManager[Task]:
        """Show a progress bar for the duration of a ``with`` block."""


class NullTask:
    """A task that shows nothing."""

    def advance(self, amount: float = 1.0) -> None:
        pass

    def update(
        self, *, completed: float | None = None, total: float | None = None, **fields: Any
    ) -> None:
        pass


class NullReporter:
    """A reporter that shows nothing (library use, tests, ``--json``)."""

    def phase(self, title: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    @contextlib.contextmanager
    def task(self, description: str, *, total: float | None = None) -> Iterator[Task]:
        yield NullTask()


NULL: Reporter = NullReporter()
