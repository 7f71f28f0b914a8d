"""What dbbench prints, read back: its stats lines, final summaries and histograms (stderr).

Everything dbbench says goes to stderr, one ``log`` line each (``YYYY/MM/DD HH:MM:SS `` prefix),
and a final summary is the only stats line followed by a line that is exactly ``Transactions:``
(then the power-of-two latency histogram, then optionally ``Aborts:`` and its histogram). A run
that exits 0 without a final summary (a missing config file does that), prints an error line, or
is killed is a failed measurement, never a zero. The parser always reads the raw bytes; any
password masking happens afterwards, only on what is shown or saved (:func:`mask_saved`).
See ``shared/reference/dbbench.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sessionctl.errors import MeasurementError
from sessionctl.target.server import MASK

_TS = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} ")
_STATS = re.compile(
    r"^(?P<job>.+): (?P<tx>\d+) transactions \((?P<tps>\S+) TPS\), "
    r"latency (?P<lat>\S+)±(?P<laterr>\S+); "
    r"(?P<rows>\d+) rows \((?P<rps>\S+) RPS\), (?P<q>\d+) queries \((?P<qps>\S+) QPS\); "
    r"(?P<ab>\d+) aborts \((?P<abpct>\S+)%\), latency (?P<alat>\S+)±(?P<alaterr>\S+)$"
)
_ROW = re.compile(r"^\s*(\S+) - \s*(\S+) \[\s*(\d+)\]:")
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|μs|ms|h|m|s)")
_GO_UNIT = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_FATAL = (
    "Unexpected errors while running",
    "Error connecting to the database",
    "parsing config file",
    "Unrecognized Postgres error",
    "Unrecognized MySQL error",
    "Database flavor",
    "No config file to parse",
    "Cannot have more than one config file",
    "error in setup query",
    "error in teardown query",
    "error parsing arg file",
    "invalid query log",
    "starts after test finishes",
    "stops after test finishes",
)


def go_duration(text: str) -> float:
    """Parse a Go ``time.Duration`` string (``998.635µs``, ``1m2.5s``, ``0s``) into seconds."""
    s = text.strip()
    neg = s.startswith("-")
    s = s.lstrip("+-")
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _GO_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _GO_UNIT[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"not a Go duration: {text!r}")
    return -total if neg else total


def format_go_duration(seconds: float) -> str:
    """Write seconds as a Go duration for the ini (``20s``, ``1.5s``, ``500ms``)."""
    if seconds <= 0:
        return "0"
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    ms = seconds * 1000
    if seconds < 1 and abs(ms - round(ms)) < 1e-6:
        return f"{round(ms)}ms"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class DbbenchStats:
    """One stats line (intermediate or final); latencies in seconds."""

    job: str
    transactions: int
    tps: float
    latency: float
    latency_ci: float
    rows: int
    rps: float
    queries: int
    qps: float
    aborts: int
    abort_percent: float
    abort_latency: float
    abort_latency_ci: float

    @property
    def span(self) -> float:
        """dbbench's own time base for this line (first invocation start to last end), seconds.

        Every rate on the line is a count divided by it, so it comes back as queries / QPS.
        """
        if self.queries and self.qps > 0 and math.isfinite(self.qps):
            return self.queries / self.qps
        return 0.0

    @property
    def succeeded(self) -> int:
        """Queries that did not fail (every accepted error is one failed query)."""
        return max(0, self.queries - self.aborts)


@dataclass(frozen=True)
class DbbenchJob:
    """A job's final summary, its histograms ``(low s, high s, count)``, its intermediate lines."""

    final: DbbenchStats
    histogram: tuple[tuple[float, float, int], ...]
    abort_histogram: tuple[tuple[float, float, int], ...] = ()
    intermediate: tuple[DbbenchStats, ...] = ()


@dataclass(frozen=True)
class DbbenchOutput:
    """Everything parsed from one run's stderr."""

    jobs: dict[str, DbbenchJob]
    dsn: str | None = None
    started: tuple[str, ...] = ()
    setup: bool = False
    teardown: bool = False
    notes: tuple[str, ...] = field(default=())


def _float(text: str) -> float:
    return float(text) if text not in ("NaN", "+Inf", "-Inf") else float(text.replace("+", ""))


def parse_stats(body: str) -> DbbenchStats | None:
    """Parse one stats line (without its timestamp); None when it is not one."""
    m = _STATS.match(body)
    if m is None:
        return None
    return DbbenchStats(
        job=m["job"],
        transactions=int(m["tx"]),
        tps=_float(m["tps"]),
        latency=go_duration(m["lat"]),
        latency_ci=go_duration(m["laterr"]),
        rows=int(m["rows"]),
        rps=_float(m["rps"]),
        queries=int(m["q"]),
        qps=_float(m["qps"]),
        aborts=int(m["ab"]),
        abort_percent=_float(m["abpct"]),
        abort_latency=go_duration(m["alat"]),
        abort_latency_ci=go_duration(m["alaterr"]),
    )


def stats_of_line(line: str) -> DbbenchStats | None:
    """The stats of one timestamped stderr line (None for any other line)."""
    ts = _TS.match(line)
    return parse_stats(line[ts.end() :]) if ts else None


def _rows(lines: list[str], i: int) -> tuple[tuple[tuple[float, float, int], ...], int]:
    rows: list[tuple[float, float, int]] = []
    while i < len(lines):
        m = _ROW.match(lines[i])
        if m is None or _TS.match(lines[i]):
            break
        rows.append((go_duration(m.group(1)), go_duration(m.group(2)), int(m.group(3))))
        i += 1
    return tuple(rows), i


def parse_output(stderr: str, *, returncode: int | None = 0) -> DbbenchOutput:
    """Parse dbbench's stderr; raise MeasurementError for an error line, a kill or no summary."""
    lines = stderr.splitlines()
    jobs: dict[str, DbbenchJob] = {}
    inter: dict[str, list[DbbenchStats]] = {}
    started: list[str] = []
    dsn = None
    setup = teardown = False
    i = 0
    while i < len(lines):
        ts = _TS.match(lines[i])
        body = lines[i][ts.end() :] if ts else lines[i]
        if ts is None:
            i += 1
            continue
        stats = parse_stats(body)
        if stats is None and any(marker in body for marker in _FATAL):
            detail = [body.strip()]
            j = i + 1
            while j < len(lines) and not _TS.match(lines[j]) and len(detail) < 8:
                extra = lines[j].strip()
                if extra and extra != "Errors (with frequency count)":
                    detail.append(extra)
                j += 1
            raise MeasurementError(f"dbbench failed: {' '.join(detail)}")
        if stats is not None:
            if i + 1 < len(lines) and lines[i + 1] == "Transactions:":
                hist, i = _rows(lines, i + 2)
                aborts: tuple[tuple[float, float, int], ...] = ()
                if i < len(lines) and lines[i] == "Aborts:":
                    aborts, i = _rows(lines, i + 1)
                if sum(c for _, _, c in hist) != stats.transactions:
                    raise MeasurementError(
                        f"dbbench output is truncated: job {stats.job!r} reports "
                        f"{stats.transactions} "
                        f"transactions but its histogram holds {sum(c for _, _, c in hist)}"
                    )
                jobs[stats.job] = DbbenchJob(stats, hist, aborts, tuple(inter.get(stats.job, ())))
                continue
            inter.setdefault(stats.job, []).append(stats)
        elif body.startswith("Connecting to "):
            dsn = body[len("Connecting to ") :].strip()
        elif body.startswith("starting "):
            started.append(body[len("starting ") :])
        elif body.strip() == "Performing setup":
            setup = True
        elif body.strip() == "Performing teardown":
            teardown = True
        i += 1
    if returncode is not None and returncode < 0:
        raise MeasurementError(
            f"dbbench was killed by signal {-returncode}; no trustworthy summary"
        )
    if returncode not in (0, None):
        tail = " | ".join(ln.strip() for ln in lines[-3:] if ln.strip())
        raise MeasurementError(f"dbbench exited with {returncode}: {tail or '(no output)'}")
    missing = [job for job in inter if job not in jobs]
    if missing:
        raise MeasurementError(
            f"dbbench output is truncated: no final summary for job {missing[0]!r}"
        )
    if not jobs:
        why = (
            "it ran no job (is the config file there?)" if not started else "no final summary line"
        )
        raise MeasurementError(f"dbbench exited without a final summary: {why}")
    return DbbenchOutput(jobs=jobs, dsn=dsn, started=tuple(started), setup=setup, teardown=teardown)


def histogram_percentile(rows: Sequence[tuple[float, float, int]], q: float) -> float:
    """Estimate the q-quantile (0..1) from power-of-two rows, interpolating linearly in a bucket."""
    total = sum(c for _, _, c in rows)
    if total == 0:
        return math.nan
    rank = q * total
    seen = 0
    for low, high, c in rows:
        if c and seen + c >= rank:
            return low + (high - low) * ((rank - seen) / c)
        seen += c
    return rows[-1][1]


def mask_saved(raw: bytes, secrets: Iterable[str]) -> bytes:
    """The bytes to keep on disk: ``raw`` itself unless a password occurs in it.

    dbbench masks the password in its ``Connecting to`` line itself (``XXX``), so normally the
    output holds none and is kept byte for byte. If one does occur, it is masked only in message
    lines: stats lines and histogram rows are numbers and job names, where a short password
    (``0``) would otherwise eat digits.
    """
    found = [s.encode() for s in secrets if s and s.encode() in raw]
    if not found:
        return raw
    out = []
    for line in raw.splitlines(keepends=True):
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        ts = _TS.match(text)
        numeric = (
            (ts is not None and parse_stats(text[ts.end() :]) is not None)
            or (ts is None and _ROW.match(text) is not None)
            or text in ("Transactions:", "Aborts:")
        )
        if numeric:
            out.append(line)
            continue
        head = ts.end() if ts else 0
        body = line[head:]
        for s in sorted(found, key=len, reverse=True):
            body = body.replace(s, MASK.encode())
        out.append(line[:head] + body)
    return b"".join(out)
