"""Find and parse the lines of a few metric families without reading the rest of the text.

One regular expression (run in C) finds every line that can matter for the wanted families by
its first characters: their samples, their ``# HELP``/``# TYPE``, ``# EOF``, and the rare lines
starting with a blank or ``{``. No other line is split, copied, decoded or validated, so a
one-family diff of two 10 MB expositions costs two scans. The text may be a ``str`` or
undecoded UTF-8 (bytes, or a file's mmap: see :func:`sessionctl.metrics.scrape.scrape`); then
only the lines found are decoded. Line numbers cost a count over the text, so they are worked
out only when a line is wrong.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from sessionctl.errors import ParseError
from sessionctl.metrics.lines import (
    _FAST,
    _INFS,
    Buffer,
    Sample,
    _comment,
    _slow_sample,
)


def scan(
    text: str | Buffer,
    source: str,
    om: bool,
    types: dict[str, str],
    helps: dict[str, str],
    prefixes: tuple[str, ...],
) -> list[Sample]:
    """The samples of every line that can belong to a family named by ``prefixes``; HELP and
    TYPE lines of those families are recorded in ``helps``/``types``."""
    binary = not isinstance(text, str)
    finder = _finder(prefixes, binary)
    nl: Any = b"\n" if binary else "\n"
    starts = [m.start() + 1 for m in finder.finditer(text)]  # type: ignore[arg-type]
    if finder.match(nl + text[: 64 + max(map(len, prefixes))]):  # the first line has no "\n"
        starts.insert(0, 0)
    out: list[Sample] = []
    end_of_data = -1
    size = len(text)
    for start in starts:
        end = text.find(nl, start)
        if end < 0:
            end = size
        chunk = text[start:end]
        line = chunk if isinstance(chunk, str) else _decode(chunk, source, text, start)
        is_last = False
        if "EOF" in line:
            if end_of_data < 0:
                end_of_data = _end_of_data(text)
            is_last = end >= end_of_data
        try:
            _line(line, 0, source, om, types, helps, prefixes, is_last, out)
        except ParseError:
            _line(line, _lineno(text, start), source, om, types, helps, prefixes, is_last, out)
            raise
    return out


@lru_cache(maxsize=32)
def _finder(prefixes: tuple[str, ...], binary: bool) -> re.Pattern[Any]:
    """A newline followed by a line that may matter for these prefixes."""
    alt = "|".join(re.escape(p) for p in prefixes)
    pattern = rf'\n[ \t]*(?:#[ \t]*(?:(?:TYPE|HELP)[ \t]+"?(?:{alt})|EOF)|\{{|(?:{alt}))'
    return re.compile(pattern.encode() if binary else pattern)


def _line(
    line: str,
    lineno: int,
    source: str,
    om: bool,
    types: dict[str, str],
    helps: dict[str, str],
    prefixes: tuple[str, ...],
    is_last: bool,
    out: list[Sample],
) -> None:
    if line.startswith(prefixes):
        m = _FAST.fullmatch(line)
        if m is None:
            out.append(_slow_sample(line, lineno, source, om))
            return
        name, raw, val, ts = m.groups()
        value = float(val)
        if value in _INFS and val[-1] not in "fFyY":
            raise ParseError(f"{source}:{lineno}: value {val!r} is out of range")
        out.append((name, raw or "", value, int(ts) if ts else None))
        return
    stripped = line.lstrip(" \t")
    if stripped.startswith("#"):
        _comment(stripped, lineno, source, types, helps, om, lineno if is_last else -1)
    elif stripped.startswith(prefixes) or stripped[:1] == "{":
        out.append(_slow_sample(line, lineno, source, om))


def _decode(raw: bytes, source: str, text: str | Buffer, start: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"{source}:{_lineno(text, start)}"
        raise ParseError(f"{where}: not valid utf-8 (byte 0x{raw[exc.start]:02x})") from None


def _lineno(text: str | Buffer, start: int) -> int:
    if isinstance(text, str):
        return text.count("\n", 0, start) + 1
    return bytes(text[:start]).count(b"\n") + 1


def _end_of_data(text: str | Buffer) -> int:
    """Where the last non-blank line ends (an OpenMetrics ``# EOF`` must be that line)."""
    if isinstance(text, str):
        return len(text.rstrip())
    tail = bytes(text[-65536:])
    return len(text) - (len(tail) - len(tail.rstrip()))
