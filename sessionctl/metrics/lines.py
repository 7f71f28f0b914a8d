"""Tokenising one line of the Prometheus text exposition format: the patterns, the careful slow
path for unusual sample lines, and HELP/TYPE comments.

Shared by :mod:`sessionctl.metrics.exposition` (the whole-text parser) and
:mod:`sessionctl.metrics.prefilter` (the one-family scan); the underscore names are internal to
the ``metrics`` package. Every error names ``<source>:<line>`` and what is wrong.
"""

from __future__ import annotations

import math
import re
from mmap import mmap

from sessionctl.errors import ParseError

Labels = tuple[tuple[str, str], ...]
# Undecoded exposition text: bytes, or a file's mmap.
Buffer = bytes | mmap
# (sample name, raw label text without braces, value, timestamp in ms or None)
Sample = tuple[str, str, float, int | None]

TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
OM_TYPES = ("gaugehistogram", "info", "stateset", "unknown")

# Possessive quantifiers and the unrolled quoted-string loop keep the regex engine from
# backtracking per character; this alone halves the parse time.
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*+"
_LNAME = r"[a-zA-Z_][a-zA-Z0-9_]*+"
_LVALUE = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
_LABEL = _LNAME + "=" + _LVALUE
_FLOAT = (
    r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
    r"|(?i:inf(?:inity)?))|(?i:nan))"
)
# The shape every exporter writes: one blank between tokens, legacy names, comma-separated labels.
_SAMPLE = rf"({_NAME})(?:\{{((?:{_LABEL}(?:,{_LABEL})*+,?)?)\}})? ({_FLOAT})(?: (-?[0-9]+))?"
_FAST = re.compile(_SAMPLE)
# Every line, as (name, labels, value, timestamp, other): a fast-shape sample fills the first
# four groups, any other line (comment, blank, unusual or broken sample) lands in ``other``.
_LINES = re.compile(rf"(?m)^(?:{_SAMPLE}|(.*))$")
_FLOAT_RE = re.compile(_FLOAT)
_INT_TS_RE = re.compile(r"[+-]?[0-9]+")
_NAME_RE = re.compile(_NAME)
_LNAME_RE = re.compile(_LNAME)
_TOKEN_RE = re.compile(r"[^ \t]+")
# "#", blanks, a keyword, then (for HELP/TYPE) at least one blank and a name.
_META_RE = re.compile(r"#[ \t]*(HELP|TYPE|EOF)(?:[ \t]+(.*))?$", re.S)
_QSTR = r'"([^"\\]*+(?:\\.[^"\\]*+)*+)"'
_LABEL_ITER = re.compile(rf"[ \t]*(?:({_LNAME})|{_QSTR})[ \t]*=[ \t]*{_QSTR}[ \t]*,?")
_ESCAPE_RE = re.compile(r"\\(.)", re.S)
_LABEL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_HELP_ESCAPES = {"\\": "\\", "n": "\n"}
_INF = math.inf
_INFS = frozenset((math.inf, -math.inf))


def _comment(
    line: str,
    lineno: int,
    source: str,
    types: dict[str, str],
    helps: dict[str, str],
    om: bool,
    eof_line: int,
) -> None:
    """Record HELP/TYPE metadata; plain comments and ``# UNIT`` are ignored."""
    m = _META_RE.match(line)
    if m is None:
        return  # a plain comment, or "# HELP"/"# TYPE" without a name (expfmt ignores those too)
    keyword, rest = m.groups()
    rest = (rest or "").rstrip("\r")
    if keyword == "EOF":
        if rest.strip(" \t"):
            return
        if om and lineno != eof_line:
            raise ParseError(f"{source}:{lineno}: '# EOF' before the end; nothing may follow it")
        return
    if not rest:
        return  # "# HELP" / "# TYPE" without a name: a plain comment, as expfmt treats it
    if rest[0] == '"':
        name, end = _read_quoted(rest, 0, lineno, source)
        tail = rest[end:]
        if tail and tail[0] not in " \t":
            raise ParseError(
                f"{source}:{lineno}: expected a blank after the quoted name in # {keyword}"
            )
    else:
        tm = _TOKEN_RE.match(rest)
        name = tm.group() if tm else ""
        tail = rest[len(name) :]
        if not _NAME_RE.fullmatch(name):
            raise ParseError(f"{source}:{lineno}: invalid metric name {name!r} in # {keyword}")
    tail = tail.lstrip(" \t")
    if keyword == "HELP":
        if name not in helps:
            helps[name] = _unescape(tail, _HELP_ESCAPES) if "\\" in tail else tail
        return
    kind = tail.rstrip(" \t\r").lower()
    if not kind:
        raise ParseError(
            f"{source}:{lineno}: # TYPE {name} has no type; add counter, gauge, histogram, ..."
        )
    if kind == "gauge_histogram":
        kind = "gaugehistogram"
    if kind not in TYPES and kind not in OM_TYPES:
        raise ParseError(
            f"{source}:{lineno}: unknown metric type {kind!r} for {name}; "
            "expected counter, gauge, histogram, summary or untyped"
        )
    old = types.get(name)
    if old is not None and old != kind:
        raise ParseError(
            f"{source}:{lineno}: second # TYPE for {name} says {kind}, an earlier one said {old}"
        )
    types[name] = kind


def _slow_sample(line: str, lineno: int, source: str, om: bool) -> Sample:
    """Tokenise an unusual sample line by hand; the message says what is wrong and where."""
    where = f"{source}:{lineno}"
    s = line[:-1] if line.endswith("\r") else line
    n = len(s)
    i = _skip(s, 0)
    name: str | None = None
    labels: list[tuple[str, str]] = []
    if i < n and s[i] != "{":
        m = _NAME_RE.match(s, i)
        if m is None:
            raise ParseError(f"{where}: expected a metric name, got {s[i : i + 20]!r}")
        name = m.group()
        i = m.end()
        if i < n and s[i] not in " \t{":
            raise ParseError(f"{where}: invalid character {s[i]!r} in metric name {name + s[i]!r}")
        i = _skip(s, i)
    if i < n and s[i] == "{":
        i += 1
        while True:
            i = _skip(s, i)
            if i >= n:
                raise ParseError(f"{where}: unterminated label set; add the closing '}}'")
            if s[i] == "}":
                i += 1
                break
            if s[i] == '"':
                text, i = _read_quoted(s, i, lineno, source)
                i = _skip(s, i)
                if i < n and s[i] in ",}":  # a quoted metric name inside the braces
                    if name is not None:
                        raise ParseError(
                            f"{where}: metric name given twice ({name!r} and {text!r})"
                        )
                    name = text
                    if s[i] == ",":
                        i += 1
                    continue
                lname = text
            else:
                m = _LNAME_RE.match(s, i)
                if m is None:
                    raise ParseError(f"{where}: expected a label name, got {s[i : i + 20]!r}")
                lname = m.group()
                i = _skip(s, m.end())
            if i >= n or s[i] != "=":
                raise ParseError(f"{where}: expected '=' after label name {lname!r}")
            i = _skip(s, i + 1)
            if i >= n or s[i] != '"':
                raise ParseError(f"{where}: expected '\"' to start the value of label {lname!r}")
            value, i = _read_quoted(s, i, lineno, source)
            if any(k == lname for k, _ in labels):
                raise ParseError(f"{where}: duplicate label name {lname!r}")
            labels.append((lname, value))
            i = _skip(s, i)
            if i < n and s[i] == ",":
                i += 1
            # A missing comma between labels is accepted, as the Prometheus server does.
    if name is None:
        raise ParseError(f"{where}: sample has no metric name")
    i = _skip(s, i)
    m = _TOKEN_RE.match(s, i)
    if m is None:
        raise ParseError(f"{where}: {name} has no value")
    val = m.group()
    if om and val == "#":
        raise ParseError(f"{where}: {name} has no value")
    if not _FLOAT_RE.fullmatch(val):
        raise ParseError(
            f"{where}: invalid value {val!r} for {name}; expected a float, NaN, +Inf or -Inf"
        )
    value_f = float(val)
    if math.isinf(value_f) and val[-1] not in "fFyY":
        raise ParseError(f"{where}: value {val!r} is out of range")
    i = _skip(s, m.end())
    ts: int | None = None
    m = _TOKEN_RE.match(s, i)
    if m is not None and not (om and m.group() == "#"):
        tok = m.group()
        if _INT_TS_RE.fullmatch(tok):
            ts = int(tok) * 1000 if om else int(tok)
        elif om and _FLOAT_RE.fullmatch(tok) and math.isfinite(float(tok)):
            ts = round(float(tok) * 1000)
        else:
            raise ParseError(f"{where}: invalid timestamp {tok!r}; expected integer milliseconds")
        i = _skip(s, m.end())
    if i < n:
        if om and s[i] == "#":
            _check_exemplar(s, i, where, lineno, source)
        else:
            raise ParseError(f"{where}: unexpected text {s[i : i + 20]!r} after the value")
    raw = ",".join(f'{_quote_name(k)}="{_escape(v)}"' for k, v in labels)
    return (name, raw, value_f, ts)


def _check_exemplar(s: str, i: int, where: str, lineno: int, source: str) -> None:
    """Validate an OpenMetrics exemplar ``# {labels} value [timestamp]`` (then drop it)."""
    i = _skip(s, i + 1)
    if i >= len(s) or s[i] != "{":
        raise ParseError(f"{where}: expected '{{' to start an exemplar")
    end = i + 1
    while end < len(s) and s[end] != "}":
        if s[end] == '"':
            _, end = _read_quoted(s, end, lineno, source)
        else:
            end += 1
    if end >= len(s):
        raise ParseError(f"{where}: unterminated exemplar label set")
    rest = s[end + 1 :].split()
    if not rest or len(rest) > 2 or not all(_FLOAT_RE.fullmatch(t) for t in rest):
        raise ParseError(f"{where}: exemplar needs a value and an optional timestamp")


def _skip(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in " \t":
        i += 1
    return i


def _read_quoted(s: str, i: int, lineno: int, source: str) -> tuple[str, int]:
    """Read a double-quoted string at ``s[i]``; return it unescaped and the index after it."""
    j = i + 1
    n = len(s)
    chunks: list[str] = []
    start = j
    while j < n:
        ch = s[j]
        if ch == '"':
            chunks.append(s[start:j])
            return "".join(chunks), j + 1
        if ch == "\\":
            if j + 1 >= n:
                break
            chunks.append(s[start:j])
            nxt = s[j + 1]
            chunks.append(_LABEL_ESCAPES.get(nxt, "\\" + nxt))
            j += 2
            start = j
            continue
        j += 1
    raise ParseError(f"{source}:{lineno}: unterminated quoted string; close it with '\"'")


def _unescape(text: str, table: dict[str, str]) -> str:
    return _ESCAPE_RE.sub(lambda m: table.get(m.group(1), m.group(0)), text)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _quote_name(name: str) -> str:
    return name if _LNAME_RE.fullmatch(name) else f'"{_escape(name)}"'
