"""A fast parser for the Prometheus text exposition format (0.0.4, plus OpenMetrics input).

Materialize's ``/metrics`` runs to megabytes, and ``prometheus_client.parser`` walks it one
character at a time in Python. Here one precompiled regex runs over the whole text in a single
``findall`` (in C): it recognises the common line shape ``name{labels} value [timestamp]`` and
validates its label syntax, and hands every other line over as-is. Those (comments, blanks around
tokens, quoted UTF-8 names, missing commas, OpenMetrics timestamps and exemplars, garbage) go
through a careful slow path that names the line on error. Samples are plain tuples
``(name, raw_labels, value, timestamp_ms)``; the label text is parsed only when someone asks
(:func:`label_key`), and cached, because most consumers look at a handful of families. With
``families=`` the lines of other families are never looked at: one regex finds the wanted
ones by their first characters (:mod:`sessionctl.metrics.prefilter`), also in undecoded bytes.
A snapshot's families are its index: :meth:`Snapshot.samples` looks in the one or two families
a sample name can belong to.

Accepted like the Prometheus server: missing final newline, trailing blanks, TYPE/HELP anywhere,
interleaved families, no comma between labels, unknown escapes kept verbatim. Accepted like
``expfmt``/the docs: negative timestamps. Accepted like prometheus_client: CRLF line ends.
Rejected with ``<source>:<line>: <what>``: anything else. Duplicate label names inside one
sample are reported when its labels are first read (:func:`label_key`), not while parsing.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import groupby
from operator import itemgetter
from typing import Any

from sessionctl.errors import ParseError
from sessionctl.metrics.lines import (
    _INFS,
    _LABEL_ESCAPES,
    _LABEL_ITER,
    _LINES,
    Buffer,
    Labels,
    Sample,
    _comment,
    _escape,
    _slow_sample,
    _unescape,
)

# Sample-name suffixes that belong to a family of that type (besides the bare name).
SUFFIXES: dict[str, tuple[str, ...]] = {
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "counter": ("_total", "_created"),
    "info": ("_info",),
}
# Families that diff() needs to see restarts even when the caller filters families.
RESTART_FAMILY = "process_start_time_seconds"


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family: its type, help text and samples (tuples, see :data:`Sample`)."""

    name: str
    type: str
    help: str | None
    samples: tuple[Sample, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "help": self.help,
            "samples": [
                {
                    "name": n,
                    "labels": dict(label_key(raw)),
                    "value": _json_float(v),
                    "timestamp_ms": ts,
                }
                for n, raw, v, ts in self.samples
            ],
        }


@dataclass(frozen=True)
class Snapshot:
    """A parsed exposition: families by name, when it was taken and from where."""

    families: Mapping[str, Family]
    taken_at: float
    source: str
    text: str = field(default="", repr=False, compare=False)

    def samples(self, name: str) -> Iterator[Sample]:
        """Yield every sample with this exact sample name, whichever family holds it.

        A sample belongs to the family of its own name or of its name less one suffix (see
        :func:`family_of`), so looking in those families is exact: no scan of the others."""
        families = self.families
        for fam_name in _family_candidates(name):
            fam = families.get(fam_name)
            if fam is not None:
                for s in fam.samples:
                    if s[0] == name:
                        yield s

    def sample_count(self) -> int:
        return sum(len(f.samples) for f in self.families.values())

    def to_dict(self, *, samples: bool = True) -> dict[str, Any]:
        fams: list[dict[str, Any]] = []
        for f in self.families.values():
            if samples:
                fams.append(f.to_dict())
            else:
                fams.append(
                    {"name": f.name, "type": f.type, "help": f.help, "samples": len(f.samples)}
                )
        return {"source": self.source, "taken_at": self.taken_at, "families": fams}


def parse(
    text: str | Buffer,
    *,
    source: str = "<text>",
    families: Collection[str] | None = None,
    taken_at: float = 0.0,
) -> Snapshot:
    """Parse exposition text; with ``families`` keep only those (plus their ``_created`` companions
    and ``process_start_time_seconds``) and skip every other line unvalidated.

    ``text`` may also be undecoded UTF-8 (bytes, or a file's mmap): with ``families`` only the
    lines found for them are decoded (see :mod:`sessionctl.metrics.prefilter`); the snapshot's
    ``text`` is then empty."""
    with gc_paused():
        return _parse(text, source=source, families=families, taken_at=taken_at)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: parsing and diffing make 100k acyclic tuples that it
    would otherwise walk again and again (about 15% of a full diff)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _parse(
    text: str | Buffer, *, source: str, families: Collection[str] | None, taken_at: float
) -> Snapshot:
    from sessionctl.metrics import prefilter

    if not isinstance(text, str) and families is None:
        text = bytes(text).decode("utf-8")
    tail = text[-64:] if isinstance(text, str) else bytes(text[-64:]).decode("utf-8", "replace")
    om = _is_openmetrics(tail)
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    if families is None:
        assert isinstance(text, str)
        out = _parse_all(text, source, om, types, helps)
        wanted = None
    else:
        wanted = set(families)
        # prometheus_client exposes counter x_total's start time as a separate gauge x_created
        wanted |= {f.removesuffix("_total") + "_created" for f in families}
        wanted |= {f + "_created" for f in families}
        wanted.add(RESTART_FAMILY)
        out = prefilter.scan(text, source, om, types, helps, tuple(sorted(wanted)))
    kept = text if isinstance(text, str) else ""
    return Snapshot(_group(out, types, helps, wanted), taken_at, source, kept)


def _parse_all(
    text: str, source: str, om: bool, types: dict[str, str], helps: dict[str, str]
) -> list[Sample]:
    """Parse every line: one C-level ``findall`` classifies all lines, Python sees tuples only."""
    lines = _LINES.findall(text)  # exactly one tuple per line; the last group is "anything else"
    eof_line = _last_nonblank(text) if om else 0
    out: list[Sample] = []
    append = out.append
    infs = _INFS
    for idx, (name, raw, val, ts, other) in enumerate(lines):
        if name:
            value = float(val)
            if value in infs and val[-1] not in "fFyY":
                raise ParseError(f"{source}:{idx + 1}: value {val!r} is out of range")
            append((name, raw, value, int(ts) if ts else None))
            continue
        stripped = other.lstrip(" \t")
        if not stripped or stripped == "\r":
            continue
        if stripped[0] == "#":
            _comment(stripped, idx + 1, source, types, helps, om, eof_line)
        else:
            append(_slow_sample(other, idx + 1, source, om))
    return out


_ALL_SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_total", "_gsum", "_gcount", "_info")


def _family_candidates(name: str) -> tuple[str, ...]:
    """The families a sample name can belong to: its own, or its name less a known suffix."""
    return (name, *(name[: -len(s)] for s in _ALL_SUFFIXES if name.endswith(s)))


def family_of(name: str, types: Mapping[str, str]) -> str:
    """The family a sample name belongs to, given the declared TYPEs (expfmt's rules)."""
    if name in types:
        return name
    for suffix in _ALL_SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            kind = types.get(base)
            if kind is not None and suffix in SUFFIXES.get(kind, ()):
                return base
    return name


@lru_cache(maxsize=1 << 17)
def label_key(raw: str) -> Labels:
    """Parse raw label text (as stored in a sample) into sorted ``(name, value)`` pairs."""
    if not raw:
        return ()
    pairs = []
    for name, qname, value in _LABEL_ITER.findall(raw):
        if not name:
            name = _unescape(qname, _LABEL_ESCAPES)
        if "\\" in value:
            value = _unescape(value, _LABEL_ESCAPES)
        pairs.append((name, value))
    if len({k for k, _ in pairs}) != len(pairs):
        dup = next(k for k, _ in pairs if sum(1 for k2, _ in pairs if k2 == k) > 1)
        raise ParseError(f"{{{raw}}}: duplicate label name {dup!r}; each label may appear once")
    pairs.sort()
    return tuple(pairs)


@lru_cache(maxsize=1 << 17)
def bucket_labels(raw: str) -> tuple[Labels, str | None, Labels]:
    """Split a ``_bucket`` sample's raw label text into (labels without ``le``, ``le``, all labels).

    Exporters write ``le`` last, so the text before it is the series' own label text, shared
    with its ``_sum`` and ``_count``: it is parsed once per series, not once per bucket."""
    # Raw label text is valid (the parser checked or rebuilt it), so an unescaped quote after
    # ``le=`` starts le's value: no regex needed. Escapes or quotes in the value: the slow way.
    core = raw[:-1] if raw.endswith(",") else raw
    i = core.rfind(',le="')
    start = i + 5 if i >= 0 else (4 if core.startswith('le="') else -1)
    if start > 0 and core.endswith('"') and len(core) > start:
        le = core[start:-1]
        if '"' not in le and "\\" not in le:
            key = label_key(core[:i] if i >= 0 else "")
            if not key or key[-1][0] < "le":
                return key, le, (*key, ("le", le))
            if all(k != "le" for k, _ in key):
                return key, le, tuple(sorted((*key, ("le", le))))
    full = label_key(raw)
    key, le_value = split_label(full, "le")
    return key, le_value, full


@lru_cache(maxsize=1 << 17)
def split_label(labels: Labels, name: str) -> tuple[Labels, str | None]:
    """``labels`` without ``name`` (``le`` or ``quantile``), and its value; cached because the
    before and after scrapes share nearly every label set."""
    value = next((val for k, val in labels if k == name), None)
    return tuple(p for p in labels if p[0] != name), value


def format_labels(labels: Labels | Mapping[str, str]) -> str:
    """Render labels the exposition way: ``{a="1",b="x\\"y"}`` (empty string for none)."""
    items = labels.items() if isinstance(labels, Mapping) else labels
    parts = [f'{k}="{_escape(v)}"' for k, v in items]
    return "{" + ",".join(parts) + "}" if parts else ""


# --- internals ------------------------------------------------------------------------------


def _last_nonblank(text: str) -> int:
    """Line number of the last non-blank line (where an OpenMetrics ``# EOF`` must be)."""
    return text.rstrip().count("\n") + 1


def _is_openmetrics(text: str) -> bool:
    tail = text[-64:].rstrip()
    return tail.endswith("# EOF") and (len(tail) == 5 or tail[-6] == "\n")


def _group(
    out: list[Sample], types: dict[str, str], helps: dict[str, str], wanted: set[str] | None
) -> dict[str, Family]:
    grouped: dict[str, list[Sample]] = {}
    resolved: dict[str, str | None] = {}
    # Exporters write a family's lines together, so walk runs of equal names, not samples.
    for name, run in groupby(out, key=itemgetter(0)):
        fam = resolved.get(name, "")
        if fam == "":
            fam = family_of(name, types)
            if wanted is not None and fam not in wanted:
                fam = None
            resolved[name] = fam
        if fam is None:
            continue
        lst = grouped.get(fam)
        if lst is None:
            lst = grouped[fam] = []
        lst.extend(run)
    result = {
        name: Family(name, types.get(name, "untyped"), helps.get(name), tuple(samples))
        for name, samples in grouped.items()
    }
    # A TYPE line without samples still declares a family (e.g. a *Vec nobody observed yet).
    for name, kind in types.items():
        if name not in result and (wanted is None or name in wanted):
            result[name] = Family(name, kind, helps.get(name), ())
    return result


def _json_float(v: float) -> float | str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return v
