"""The ini sessionctl hands dbbench: a benchmark's ``query`` rendered, or the user's ``config``
kept line for line with only the changes a run needs.

Those changes, each on the parsed sections (goini's rules: a comment is a line whose first
character is ``;`` or ``#``, a value is everything after the first ``=``):

* the global ``duration`` is the run's (plus the warm-up);
* a concurrency level other than the config's own (:func:`config_level`) is applied to every
  job (its ``concurrency``/``queue-depth`` replaced, or ``concurrency=N`` added); a job that
  cannot take one (``rate=``, ``query-log-file=``) is refused by name, and a job name that states
  a level (``[64 connections]``, ``[c64]``) is renamed to the level it runs at;
* an open-loop run replaces the (single) job's load with ``rate=`` (invocations a second: the
  requested queries a second divided by the job's queries per invocation);
* a warm-up is an uncounted copy of every job that stops when the warm-up ends, while the
  measured job starts then (same process, same connection pool, setup and teardown once).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sessionctl.bench.dbbench_output import format_go_duration, go_duration
from sessionctl.errors import MeasurementError, UsageError

RESERVED = ("setup", "teardown", "global")
WARMUP_SUFFIX = " (warm-up)"
_LOADS = ("concurrency", "queue-depth", "rate", "batch-size")
_LEVEL_IN_NAME = re.compile(
    r"\b\d+(?=\s*(?:connections?|conns?|clients?|threads?|workers?|sessions?)\b)|^c\d+$",
    re.IGNORECASE,
)


@dataclass
class Section:
    """One section of the ini: its name (None: the global lines before the first header), its
    header line as written, and its lines (comments and blanks included) in order."""

    name: str | None
    header: str | None
    lines: list[str] = field(default_factory=list)

    @property
    def is_job(self) -> bool:
        return self.name is not None and self.name not in RESERVED

    def spans(self) -> list[tuple[int, int, str, str]]:
        """``(first, last, key, value)`` of each property, a ``\\`` continuation joined in."""
        out: list[tuple[int, int, str, str]] = []
        i = 0
        while i < len(self.lines):
            line, first = self.lines[i], i
            while line.endswith("\\") and i + 1 < len(self.lines):
                i += 1
                line = line[:-1] + self.lines[i]
            if line[:1] not in (";", "#") and "=" in line:
                key, _, value = line.strip().partition("=")
                out.append((first, i, key.strip(), value.strip()))
            i += 1
        return out

    def props(self) -> list[tuple[str, str]]:
        return [(k, v) for _, _, k, v in self.spans()]

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.props() if k == key), None)

    def has(self, *keys: str) -> bool:
        return any(k in keys for k, _ in self.props())

    def drop(self, *keys: str) -> None:
        gone = {i for a, b, k, _ in self.spans() if k in keys for i in range(a, b + 1)}
        self.lines = [ln for i, ln in enumerate(self.lines) if i not in gone]

    def put(self, key: str, value: str, *, also: Sequence[str] = ()) -> None:
        """Set ``key`` (or, where one of ``also`` is written instead, that key) to ``value`` in
        place, every occurrence; add ``key=value`` right after the header when none is there."""
        spans = [(a, b, k) for a, b, k, _ in self.spans() if k == key or k in also]
        for a, b, k in reversed(spans):
            self.lines[a : b + 1] = [f"{k}={value}"]
        if not spans:
            self.lines.insert(0, f"{key}={value}")

    def depth(self) -> int | None:
        """The job's ``concurrency``/``queue-depth`` (None when it has neither)."""
        for key in ("concurrency", "queue-depth"):
            value = self.get(key)
            if value is not None:
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    def open_kind(self) -> str | None:
        """``rate=`` / ``query-log-file=`` when the job is not closed loop (None when it is)."""
        return next((k for k in ("rate", "query-log-file") if self.has(k)), None)

    def queries_per_invocation(self) -> int:
        return max(1, sum(1 for k, _ in self.props() if k in ("query", "query-file")))


def parse_ini(text: str) -> list[Section]:
    """Split an ini into sections, keeping every line as written."""
    sections = [Section(None, None)]
    for raw in text.splitlines():
        if raw[:1] not in (";", "#") and raw.strip().startswith("["):
            stripped = raw.strip()
            name = stripped[1 : stripped.index("]")] if "]" in stripped else stripped[1:]
            sections.append(Section(name, raw))
        else:
            sections[-1].lines.append(raw)
    return sections


def dump_ini(sections: Sequence[Section]) -> str:
    out: list[str] = []
    for s in sections:
        if s.header is not None:
            out.append(s.header)
        out.extend(s.lines)
    return "\n".join(out) + "\n"


def jobs_of(sections: Sequence[Section]) -> list[Section]:
    return [s for s in sections if s.is_job]


def config_jobs(config: str) -> dict[str, int | None]:
    """Job sections of a user's ini and their ``concurrency``/``queue-depth`` (None if unset)."""
    return {s.name: s.depth() for s in jobs_of(parse_ini(config)) if s.name is not None}


def config_level(config: str) -> int:
    """The level a config runs at as written: its closed-loop jobs' common concurrency (a job
    without one runs 1 connection), or, when they differ or some job is open loop, the number of
    connections its closed-loop jobs hold together (at least 1)."""
    jobs = jobs_of(parse_ini(config))
    closed = [j.depth() or 1 for j in jobs if j.open_kind() is None]
    if closed and len(set(closed)) == 1 and len(closed) == len(jobs):
        return closed[0]
    return max(1, sum(closed))


def level_name(name: str, level: int) -> str:
    """A job name that states a level, restated at ``level`` (``64 connections`` → ``16 ...``)."""
    m = _LEVEL_IN_NAME.search(name)
    if m is None:
        return name
    new = f"c{level}" if m.group(0).lower().startswith("c") else str(level)
    return name[: m.start()] + new + name[m.end() :]


def _rename(job: Section, new: str) -> None:
    assert job.header is not None and job.name is not None
    job.header = job.header.replace(f"[{job.name}]", f"[{new}]", 1)
    job.name = new


def apply_level(sections: list[Section], level: int) -> None:
    """Run every job at ``level`` connections; refuse (naming it) a job that cannot take one."""
    jobs = jobs_of(sections)
    for job in jobs:
        kind = job.open_kind()
        if kind is not None:
            raise UsageError(
                f"dbbench config job [{job.name}] uses `{kind}=`, so concurrency {level} cannot "
                "apply to it: run the benchmark without -c (the config as written) or give that "
                "job `concurrency=` instead"
            )
    for job in jobs:
        job.put("concurrency", str(level), also=("queue-depth",))
        assert job.name is not None
        _rename(job, level_name(job.name, level))
    names = [j.name for j in jobs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise UsageError(
            f"dbbench config: at concurrency {level} two jobs would be named [{dup}]; "
            "rename one so its name does not state a level"
        )


def apply_rate(sections: list[Section], rate: float) -> None:
    """Make the config's one job open loop at ``rate`` queries a second."""
    jobs = jobs_of(sections)
    if len(jobs) != 1:
        raise MeasurementError(
            f"dbbench: an open-loop run needs a config with one job, this one has {len(jobs)} "
            "(set `compare.open_loop_load: 0`, or split the config)"
        )
    (job,) = jobs
    if job.has("query-log-file"):
        raise MeasurementError(
            f"dbbench: job [{job.name}] replays a query-log-file, which cannot run at a rate"
        )
    job.drop(*_LOADS)
    job.lines.insert(0, f"rate={rate_value(rate / job.queries_per_invocation())}")


def rate_value(rate: float) -> str:
    return f"{rate:.6g}"


def _shift(value: str | None, by: float) -> str | None:
    if value is None:
        return None
    return format_go_duration(go_duration(value) + by)


def apply_warmup(sections: list[Section], warmup: float) -> None:
    """Precede every job by an uncounted copy of it that stops when the warm-up ends.

    The measured job starts (and stops, if it has a ``stop=``) ``warmup`` seconds later; the
    copy drops ``query-results-file`` so it cannot truncate the measured job's results.
    """
    at = format_go_duration(warmup)
    out: list[Section] = []
    for s in sections:
        if not s.is_job:
            out.append(s)
            continue
        assert s.name is not None and s.header is not None
        start = s.get("start")
        if start is None or go_duration(start) < warmup:  # else it would start after the warm-up
            copy = Section(s.name + WARMUP_SUFFIX, f"[{s.name}{WARMUP_SUFFIX}]", list(s.lines))
            copy.drop("stop", "query-results-file")
            copy.lines.insert(0, f"stop={at}")
            out.append(copy)
        s.put("start", _shift(start, warmup) or at)
        stop = _shift(s.get("stop"), warmup)
        if stop is not None:
            s.put("stop", stop)
        out.append(s)
    sections[:] = out


@dataclass(frozen=True)
class JobPlan:
    """What the ini asks of one job: when it starts, and whether it may end before the run does
    (``count=``, ``stop=``, a query log or an args file run out by themselves)."""

    start: float
    self_limited: bool
    warmup: bool
    rate: float | None = None  # invocations a second of an open-loop job


def job_plans(ini: str) -> dict[str, JobPlan]:
    """Per job of a rendered ini, its :class:`JobPlan`."""
    out: dict[str, JobPlan] = {}
    for job in jobs_of(parse_ini(ini)):
        assert job.name is not None
        start, rate = job.get("start"), job.get("rate")
        out[job.name] = JobPlan(
            start=go_duration(start) if start else 0.0,
            self_limited=job.has("count", "stop", "query-log-file", "query-args-file"),
            warmup=job.name.endswith(WARMUP_SUFFIX),
            rate=float(rate) if rate else None,
        )
    return out


def set_duration(sections: list[Section], seconds: float) -> None:
    """Set the global ``duration`` (the first line of the file)."""
    head = sections[0]
    head.drop("duration")
    head.lines.insert(0, f"duration={format_go_duration(seconds)}")


def override_config(
    config: str,
    *,
    duration: float,
    concurrency: int | None = None,
    rate: float | None = None,
    warmup: float = 0.0,
) -> str:
    """The user's ini with the run's duration, level, rate and warm-up (see the module doc).

    A ``concurrency`` equal to :func:`config_level` leaves the jobs as written.
    """
    sections = parse_ini(config)
    if rate is not None:
        apply_rate(sections, rate)
    elif concurrency is not None and concurrency != config_level(config):
        apply_level(sections, concurrency)
    if warmup > 0:
        apply_warmup(sections, warmup)
    set_duration(sections, warmup + duration)
    return dump_ini(sections)


def check_query(sql: str) -> str:
    """The query as dbbench will run it from a query file: verbatim, refused if it would split.

    dbbench splits a query file at every ``;`` (even in a string or a comment) and drops empty
    pieces, so only a trailing ``;`` is harmless.
    """
    body = sql.rstrip().rstrip(";")
    if not body.strip():
        raise MeasurementError("dbbench: empty query")
    if ";" in body:
        raise MeasurementError(
            "dbbench queries cannot contain ';' (dbbench splits a query there, even inside a "
            f"string or comment): {' '.join(body.split())[:60]!r}"
        )
    return sql


def render_ini(
    *,
    duration: float,
    concurrency: int,
    query_files: Sequence[Path],
    rate: float | None = None,
    warmup: float = 0.0,
) -> str:
    """An ini with the global duration and one job ``[cN]`` running the query files.

    With ``rate`` (queries a second) the job is open loop instead: ``rate=`` invocations a
    second, no cap on how many are in flight; dbbench times each from its actual start.
    """
    lines = ["", f"[c{concurrency}]"]
    if len(query_files) > 1:
        lines.append("multi-query-mode=multi-connection")
    lines += [f"query-file={p}" for p in query_files]
    if rate is not None:
        lines.append(f"rate={rate_value(rate / max(1, len(query_files)))}")
    else:
        lines.append(f"concurrency={concurrency}")
    sections = parse_ini("\n".join(lines))
    if warmup > 0:
        apply_warmup(sections, warmup)
    set_duration(sections, warmup + duration)
    return dump_ini(sections)
