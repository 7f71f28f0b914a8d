"""All terminal output goes through here: rich for people, JSON for scripts and agents.

Core modules never import this (or rich); they return data or report through
:class:`sessionctl.reporting.Reporter`, and the CLI hands them :func:`reporter`.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sessionctl.reporting import NullTask

if TYPE_CHECKING:
    from rich.console import Console

    # Created on first use (see __getattr__): `sessionctl --help` never needs rich.
    out: Console
    err: Console

_consoles: dict[str, Console] = {}
_quiet = False


def _console(name: str) -> Console:
    """The stdout (``out``) or stderr (``err``) console, created on first use."""
    found = _consoles.get(name)
    if found is None:
        from rich.console import Console

        found = _consoles[name] = Console(stderr=name == "err", highlight=False, soft_wrap=True)
        # rich answers a closed pipe with its own SystemExit(1); raise it instead, so the CLI's
        # one handler (sessionctl.cli) decides, as it does for every other write.
        found.on_broken_pipe = _broken_pipe  # type: ignore[method-assign]
    return found


def _broken_pipe() -> None:
    import errno
    import os

    raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (``sessionctl status | head -1``), as
    opposed to some other pipe (an agent's stdin, a server's socket) breaking."""
    import select

    poll = getattr(select, "poll", None)
    if poll is None:
        return False
    try:
        poller = poll()
        poller.register(sys.__stdout__.fileno() if sys.__stdout__ else 1, select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError):
        return False
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in events)


def silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's last flush does not fail again."""
    import os

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
        os.close(devnull)


def __getattr__(name: str) -> Any:
    """Hand out ``console.out`` / ``console.err`` lazily (PEP 562)."""
    if name in ("out", "err"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def escape(text: str) -> str:
    """Escape rich markup in ``text``."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def set_quiet(quiet: bool) -> None:
    """Silence progress and info chatter (``--json`` sets this so stdout stays parseable)."""
    global _quiet
    _quiet = quiet


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout (one document, nothing else on stdout)."""
    sys.stdout.write(_dumps(data) + "\n")
    sys.stdout.flush()


def _dumps(data: Any) -> str:
    """``data`` as indented strict JSON (see :func:`_finite`), non-JSON values as strings."""
    import json

    return json.dumps(_finite(data), indent=2, default=str, ensure_ascii=False, allow_nan=False)


def _finite(data: Any) -> Any:
    """``data`` with NaN and ±infinity as ``null``: strict JSON parsers refuse the bare words."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def stream_json(data: Mapping[str, Any], *, chunk: int = 2000) -> None:
    """Write ``data`` as one JSON object to stdout, streaming values that are iterators (not
    lists or dicts) an item per line, so a 50 MB document is never built as one string."""
    import json

    encoder = json.JSONEncoder(default=str, ensure_ascii=False, allow_nan=False)

    def encode(item: Any) -> str:
        return encoder.encode(_finite(item))

    write = sys.stdout.write
    write("{")
    for n, (key, value) in enumerate(data.items()):
        write(("," if n else "") + "\n" + json.dumps(key) + ": ")
        if isinstance(value, Iterator):
            write("[")
            buf: list[str] = []
            first = True
            for item in value:
                buf.append(encode(item))
                if len(buf) >= chunk:
                    write(("\n" if first else ",\n") + ",\n".join(buf))
                    first, buf = False, []
            if buf:
                write(("\n" if first else ",\n") + ",\n".join(buf))
            write("]")
        else:
            write(_dumps(value))
    write("\n}\n")
    sys.stdout.flush()


def columns(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: int = 1) -> None:
    """Print rows as plain aligned text: thousands of rows at the speed of the terminal, where
    a rich table would lay out every cell. Columns from index ``right`` on are right-aligned."""
    if not rows:
        return
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
    fmt = "  ".join(
        f"{{{i}:{'>' if i >= right else '<'}{w}}}" for i, w in enumerate(widths)
    ).rstrip()
    write = sys.stdout.write
    write(fmt.format(*headers).rstrip() + "\n")
    for start in range(0, len(rows), 5000):
        write("\n".join(fmt.format(*r).rstrip() for r in rows[start : start + 5000]) + "\n")
    sys.stdout.flush()


def print_text(text: str) -> None:
    """Write plain text to stdout without markup interpretation."""
    _console("out").print(escape(text) if text else "", markup=True)


def print_markup(text: str) -> None:
    """Write rich markup to stdout."""
    _console("out").print(text)


def interactive() -> bool:
    """A person at a terminal: stdin and stderr are both TTYs (questions go to stderr)."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def ask(question: str, default: str, choices: Sequence[str] | None = None) -> str:
    """Ask one question on stderr (only when :func:`interactive`); Enter takes the default."""
    from rich.prompt import Prompt

    answer = Prompt.ask(
        escape(question),
        console=_console("err"),
        default=default,
        choices=list(choices) if choices else None,
        show_default=True,
    )
    return str(answer)


def error(message: str) -> None:
    """Print the one error line to stderr."""
    _console("err").print(f"[bold red]error:[/] {escape(message)}")


def warn(message: str) -> None:
    _console("err").print(f"[yellow]warning:[/] {escape(message)}")


def info(message: str) -> None:
    if not _quiet:
        _console("err").print(escape(message))


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    justify_numbers: bool = True,
) -> None:
    """Print a table of plain values."""
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_lines=False)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*("" if v is None else escape(str(v)) for v in row))
    _console("out").print(t)


def bullets(title: str, items: Sequence[str]) -> None:
    """Print a titled list, each item wrapped to the terminal's width under its bullet."""
    import textwrap

    out = _console("out")
    out.print(escape(title), markup=True)
    width = max(out.width, 40)
    for item in items:
        out.print(
            escape(textwrap.fill(item, width, initial_indent="  - ", subsequent_indent="    ")),
            markup=True,
        )


def fitted_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    drop_order: Sequence[str] = (),
    shrink: Sequence[str] = (),
) -> list[str]:
    """Print a table one line per row within the terminal's width; return the columns left out.

    Columns empty in every row are left out; then those in ``drop_order``, first first, while
    the table is wider than the terminal; a ``shrink`` column is then cut with an ellipsis.
    """
    from rich.table import Table

    def build(keep: Sequence[int]) -> Table:
        t = Table(title=title, title_justify="left", show_lines=False)
        for i in keep:
            name = columns[i]
            t.add_column(name, no_wrap=name not in shrink, overflow="ellipsis")
        for row in rows:
            t.add_row(*("" if row[i] is None else escape(str(row[i])) for i in keep))
        return t

    con = _console("out")
    unbounded = con.options.update_width(10_000)  # a table's measure is capped at the width

    def fits(keep: Sequence[int]) -> bool:
        return con.measure(build(keep), options=unbounded).maximum <= con.width

    keep = [i for i in range(len(columns)) if any(str(r[i] or "") for r in rows)]
    dropped: list[str] = []
    for name in drop_order:
        if fits(keep):
            break
        if name in columns and columns.index(name) in keep:
            keep.remove(columns.index(name))
            dropped.append(name)
    con.print(build(keep))
    return dropped


def kv(title: str | None, items: Mapping[str, Any]) -> None:
    """Print key/value pairs as a two-column table."""
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0))
    t.add_column(style="bold")
    t.add_column()
    for k, v in items.items():
        t.add_row(escape(str(k)), escape("" if v is None else str(v)))
    _console("out").print(t)


class _RichTask:
    def __init__(self, progress: Any, task_id: Any) -> None:
        self._progress = progress
        self._id = task_id

    def advance(self, amount: float = 1.0) -> None:
        self._progress.advance(self._id, amount)

    def update(
        self, *, completed: float | None = None, total: float | None = None, **fields: Any
    ) -> None:
        live = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        kwargs: dict[str, Any] = {}
        if completed is not None:
            kwargs["completed"] = completed
        if total is not None:
            kwargs["total"] = total
        if fields:
            kwargs["live"] = live
        self._progress.update(self._id, **kwargs)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(v)


class RichReporter:
    """The CLI's reporter: phases and warnings on stderr, progress bars while work runs."""

    def phase(self, title: str) -> None:
        if not _quiet:
            _console("err").rule(f"[bold]{escape(title)}")

    def info(self, message: str) -> None:
        info(message)

    def warn(self, message: str) -> None:
        warn(message)

    @contextlib.contextmanager
    def task(self, description: str, *, total: float | None = None) -> Iterator[Any]:
        if _quiet or (not _console("err").is_terminal and not _force_progress()):
            yield NullTask()
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn() if total and float(total).is_integer() else TextColumn(""),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[live]}"),
            console=_console("err"),
            transient=False,
        )
        with progress:
            task_id = progress.add_task(escape(description), total=total, live="")
            yield _RichTask(progress, task_id)


def _force_progress() -> bool:
    import os

    return os.environ.get("SESSIONCTL_PROGRESS") == "1"


def reporter() -> RichReporter:
    """Return the reporter the CLI hands to core operations."""
    return RichReporter()
