"""Read a profile the way the users do: samples per query, per function, focus and groups.

A :class:`Profile` is folded stacks plus the number of queries the driver completed while the
profiler was sampling (so every count can be divided into "samples per query") and a few facts
about how it was taken. :func:`analyze` turns it into a :class:`ProfileReport`: total samples,
samples per query, the top functions by self and by inclusive samples (per query and as a share
of all samples), the campaign's focus functions and pattern groups, as tables and as
:class:`~sessionctl.measurement.Value` s for the session record.

Matching rules (documented for campaign authors):

- a **focus** entry is a function name matched against ``::``-separated segments, so
  ``try_frontend_peek_cached`` matches ``mz_adapter::peek::try_frontend_peek_cached`` and its
  ``{{closure}}`` frames, and ``Histogram::observe`` matches ``prometheus::Histogram::observe``;
  prefix it with ``re:`` for a regular expression;
- a **group** is a regular expression searched in each frame name (``malloc|sdallocx|free``);
  anchor it (``^free$``) to be strict. A sample counts once per group, whichever frames match.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sessionctl.errors import UsageError
from sessionctl.files import atomic_write, atomic_write_json
from sessionctl.measurement import Value
from sessionctl.profiling.folded import Stack, format_folded, read_folded

PROFILE_JSON = "profile.json"
FOLDED = "stacks.folded"


@dataclass(frozen=True)
class Profile:
    """Folded stacks and the facts needed to read them per query."""

    stacks: dict[Stack, int]
    queries: int | None = None  # queries completed while sampling (None: unknown)
    tool: str = "perf"
    event: str | None = None
    frequency: int | None = None
    period_ns: float | None = None  # mean sample period (CPU ns per sample for clock events)
    duration: float | None = None  # seconds of the profiled window
    concurrency: int | None = None
    label: str = ""
    root_is_comm: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return sum(self.stacks.values())

    def per_query(self, samples: float) -> float | None:
        """``samples`` divided by the queries of the profiled window (None when unknown)."""
        return samples / self.queries if self.queries else None

    def frames(self, stack: Stack) -> Stack:
        """The function frames of a stack (without the process-name root, when there is one)."""
        return stack[1:] if self.root_is_comm else stack

    def header(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "tool": self.tool,
            "event": self.event,
            "frequency": self.frequency,
            "period_ns": self.period_ns,
            "duration": self.duration,
            "concurrency": self.concurrency,
            "queries": self.queries,
            "samples": self.samples,
            "root_is_comm": self.root_is_comm,
            "meta": self.meta,
        }

    def save(self, folder: Path) -> Path:
        """Write ``profile.json`` and ``stacks.folded`` into ``folder`` (atomically)."""
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / FOLDED, format_folded(self.stacks))
        atomic_write_json(folder / PROFILE_JSON, self.header())
        return folder

    @classmethod
    def load(cls, path: Path) -> Profile:
        """Load a profile folder, or a bare file (no per-query facts): folded stacks or saved
        ``perf script`` text (collapsed here; ``.gz`` is fine)."""
        path = Path(path)
        if path.is_file():
            return cls._load_file(path)
        meta_path = path / PROFILE_JSON
        if not meta_path.is_file():
            raise UsageError(
                f"{path}: not a profile folder (no {PROFILE_JSON}); "
                "pass the folder `sessionctl profile` printed"
            )
        try:
            head = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{meta_path}: unreadable ({exc}); re-run `sessionctl profile`"
            ) from None
        return cls(
            stacks=read_folded(path / FOLDED),
            queries=head.get("queries"),
            tool=head.get("tool", "perf"),
            event=head.get("event"),
            frequency=head.get("frequency"),
            period_ns=head.get("period_ns"),
            duration=head.get("duration"),
            concurrency=head.get("concurrency"),
            label=head.get("label") or path.name,
            root_is_comm=bool(head.get("root_is_comm", False)),
            meta=dict(head.get("meta") or {}),
        )

    @classmethod
    def _load_file(cls, path: Path) -> Profile:
        from sessionctl.profiling.folded import collapse_file, sniff

        label = path.name
        for ext in (".gz", ".txt", ".folded", ".perf", ".script"):
            label = label.removesuffix(ext)
        kind = sniff(path)
        if kind == "perf-script":
            c = collapse_file(path)
            if not c.stacks:
                raise UsageError(f"{path}: `perf script` text without samples; record some first")
            span = (c.last_time - c.first_time) if c.first_time and c.last_time else None
            return cls(
                stacks=c.stacks,
                tool="perf",
                event=c.event,
                period_ns=c.mean_period,
                duration=span or None,
                label=label,
                meta={"source": str(path), "format": "perf script", "warnings": list(c.warnings)},
            )
        if kind == "perf-data":
            from sessionctl.profiling.perf import SCRIPT_FIELDS

            raise UsageError(
                f"{path}: a binary perf.data file; pass its text instead: "
                f"`perf script -F {SCRIPT_FIELDS} -i {path} > perf.txt`"
            )
        if kind in ("json", "unknown", "empty"):
            what = {"json": "a JSON file, not stacks", "empty": "empty"}.get(
                kind, "neither folded stacks nor `perf script` text"
            )
            raise UsageError(
                f"{path}: {what}; pass a profile folder (with profile.json), a folded-stacks file "
                "('frame;frame;... COUNT' lines) or saved `perf script` output"
            )
        return cls(stacks=read_folded(path), label=label, tool="folded")

    def with_label(self, label: str) -> Profile:
        return replace(self, label=label)


# --- per-function totals ----------------------------------------------------------------------


def function_totals(profile: Profile) -> tuple[Counter[str], Counter[str]]:
    """Self (leaf frame) and inclusive (anywhere on the stack, once) samples per function."""
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    for stack, n in profile.stacks.items():
        frames = profile.frames(stack)
        if not frames:
            continue
        self_c[frames[-1]] += n
        for f in set(frames):
            incl_c[f] += n
    return self_c, incl_c


def focus_matcher(entry: str) -> re.Pattern[str]:
    """Compile a focus entry: a name matched by ``::`` segments, or ``re:<regex>``."""
    if entry.startswith("re:"):
        return re.compile(entry[3:])
    return re.compile(r"(?:^|::|[\s<])" + re.escape(entry) + r"(?:$|::|[\s>])")


def matched_samples(profile: Profile, pattern: re.Pattern[str]) -> tuple[int, int]:
    """(inclusive, self) samples of stacks where a frame matches ``pattern``."""
    incl = own = 0
    cache: dict[str, bool] = {}
    for stack, n in profile.stacks.items():
        frames = profile.frames(stack)
        hit = False
        for f in frames:
            m = cache.get(f)
            if m is None:
                m = cache[f] = pattern.search(f) is not None
            if m:
                hit = True
                break
        if hit:
            incl += n
            leaf = frames[-1]
            if leaf not in cache:
                cache[leaf] = pattern.search(leaf) is not None
            if cache[leaf]:
                own += n
    return incl, own


# --- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionRow:
    """One function's samples: self and inclusive, per query and as a share of all samples."""

    name: str
    self_samples: int
    incl_samples: int
    self_per_query: float | None
    incl_per_query: float | None
    self_share: float
    incl_share: float

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class MatchRow:
    """A focus function or a pattern group: samples of stacks where it appears."""

    name: str
    pattern: str
    incl_samples: int
    self_samples: int
    incl_per_query: float | None
    self_per_query: float | None
    incl_share: float

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class ProfileReport:
    """What a profile says: totals, top functions, focus functions and groups."""

    label: str
    samples: int
    queries: int | None
    samples_per_query: float | None
    cpu_us_per_query: float | None
    top_self: tuple[FunctionRow, ...]
    top_incl: tuple[FunctionRow, ...]
    focus: tuple[MatchRow, ...]
    groups: tuple[MatchRow, ...]
    concurrency: int | None = None
    period_ns: float | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "samples": self.samples,
            "queries": self.queries,
            "samples_per_query": self.samples_per_query,
            "cpu_us_per_query": self.cpu_us_per_query,
            "concurrency": self.concurrency,
            "top_self": [r.to_dict() for r in self.top_self],
            "top_incl": [r.to_dict() for r in self.top_incl],
            "focus": [r.to_dict() for r in self.focus],
            "groups": [r.to_dict() for r in self.groups],
            "warnings": list(self.warnings),
        }

    def values(self, suffix: str = "") -> tuple[Value, ...]:
        """The report as named values (``samples_per_query@c64``, ``<f>.incl_per_query@c64``)."""
        out: list[Value] = [Value(f"profile_samples{suffix}", float(self.samples), "samples")]
        if self.samples_per_query is not None:
            out.append(
                Value(
                    f"samples_per_query{suffix}", self.samples_per_query, "samples/query", "lower"
                )
            )
        if self.cpu_us_per_query is not None:
            out.append(Value(f"cpu_us_per_query{suffix}", self.cpu_us_per_query, "us", "lower"))
        for r in self.focus:
            if r.incl_per_query is not None:
                out.append(
                    Value(
                        f"{r.name}.incl_per_query{suffix}",
                        r.incl_per_query,
                        "samples/query",
                        "lower",
                    )
                )
        for r in self.groups:
            if r.incl_per_query is not None:
                out.append(
                    Value(f"{r.name}.per_query{suffix}", r.incl_per_query, "samples/query", "lower")
                )
        return tuple(out)

    def to_markdown(self, *, top: int = 15) -> str:
        """The summary tables for the session record and the perf log."""
        spq = fmt(self.samples_per_query)
        us = (
            f", ≈{fmt(self.cpu_us_per_query)} µs CPU/query"
            if self.cpu_us_per_query is not None
            else ""
        )
        conc = f" at c{self.concurrency}" if self.concurrency else ""
        q = f"{self.queries:,}" if self.queries is not None else "unknown"
        lines = [
            f"Profile {self.label}{conc}: {self.samples:,} samples, {q} queries, "
            f"{spq} samples/query{us}.",
            "",
        ]
        lines += _function_table("Top functions by self samples", self.top_self[:top])
        lines += _function_table("Top functions by inclusive samples", self.top_incl[:top])
        for title, rows in (("Focus functions", self.focus), ("Groups", self.groups)):
            if not rows:
                continue
            lines += [
                f"**{title}**",
                "",
                "| name | incl/query | self/query | incl share |",
                "|---|---:|---:|---:|",
            ]
            lines += [
                f"| `{_md(r.name)}` | {fmt(r.incl_per_query)} | {fmt(r.self_per_query)} "
                f"| {r.incl_share:.1%} |"
                for r in rows
            ]
            lines.append("")
        for w in self.warnings:
            lines.append(f"> note: {w}")
        return "\n".join(lines).rstrip() + "\n"


def _function_table(title: str, rows: Sequence[FunctionRow]) -> list[str]:
    out = [
        f"**{title}**",
        "",
        "| function | self/query | self % | incl/query | incl % |",
        "|---|---:|---:|---:|---:|",
    ]
    out += [
        f"| `{_md(r.name)}` | {fmt(r.self_per_query)} | {r.self_share:.1%} "
        f"| {fmt(r.incl_per_query)} | {r.incl_share:.1%} |"
        for r in rows
    ]
    out.append("")
    return out


def _md(name: str) -> str:
    short = name if len(name) <= 90 else name[:87] + "…"
    return short.replace("|", "\\|").replace("`", "'")


def fmt(x: float | None) -> str:
    """Four significant digits, or n/a (samples per query range from 1e-4 to 1e4)."""
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    # Fixed notation with four significant digits: 0.00003218 reads better than 3.218e-05.
    decimals = min(12, max(0, 3 - math.floor(math.log10(abs(x)))))
    return f"{x:.{decimals}f}"


def analyze(
    profile: Profile,
    *,
    focus: Iterable[str] = (),
    groups: Mapping[str, str] | None = None,
    top: int = 20,
) -> ProfileReport:
    """Summarize ``profile``: totals, top-``top`` functions, focus functions and groups."""
    total = profile.samples
    self_c, incl_c = function_totals(profile)

    def row(name: str) -> FunctionRow:
        s, i = self_c.get(name, 0), incl_c.get(name, 0)
        return FunctionRow(
            name=name,
            self_samples=s,
            incl_samples=i,
            self_per_query=profile.per_query(s),
            incl_per_query=profile.per_query(i),
            self_share=s / total if total else 0.0,
            incl_share=i / total if total else 0.0,
        )

    top_self = tuple(
        row(n) for n, _ in sorted(self_c.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    )
    top_incl = tuple(
        row(n) for n, _ in sorted(incl_c.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    )

    def match_row(name: str, pattern: re.Pattern[str], shown: str) -> MatchRow:
        i, s = matched_samples(profile, pattern)
        return MatchRow(
            name,
            shown,
            i,
            s,
            profile.per_query(i),
            profile.per_query(s),
            i / total if total else 0.0,
        )

    focus_rows = tuple(match_row(_value_name(f), focus_matcher(f), f) for f in focus)
    group_rows: list[MatchRow] = []
    for name, pat in (groups or {}).items():
        try:
            compiled = re.compile(pat)
        except re.error as exc:
            raise UsageError(
                f"profile.groups.{name}: bad regular expression {pat!r} ({exc}); fix the pattern"
            ) from None
        group_rows.append(match_row(name, compiled, pat))
    warnings = list(profile.meta.get("warnings", ()))
    if profile.queries is None:
        warnings.append(
            "queries unknown: per-query figures are n/a (shares are still valid; "
            "`profile report --queries N` supplies the count)"
        )
    spq = profile.per_query(total)
    cpu_us = (
        spq * profile.period_ns / 1000
        if spq is not None and profile.period_ns and _is_clock(profile.event)
        else None
    )
    return ProfileReport(
        label=profile.label,
        samples=total,
        queries=profile.queries,
        samples_per_query=spq,
        cpu_us_per_query=cpu_us,
        top_self=top_self,
        top_incl=top_incl,
        focus=focus_rows,
        groups=tuple(group_rows),
        concurrency=profile.concurrency,
        period_ns=profile.period_ns,
        warnings=tuple(warnings),
    )


def _is_clock(event: str | None) -> bool:
    return event is not None and event.split(":")[0] in ("cpu-clock", "task-clock")


def _value_name(entry: str) -> str:
    """A focus entry as it appears in value names (``re:`` patterns keep their text)."""
    return entry[3:] if entry.startswith("re:") else entry
