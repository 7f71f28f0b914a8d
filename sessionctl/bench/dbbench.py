"""The dbbench driver (memsql/dbbench): render the ini, run it, parse what it prints on stderr.

Everything dbbench says goes to stderr, one ``log`` line each (``YYYY/MM/DD HH:MM:SS `` prefix),
and a final summary is the only stats line followed by a line that is exactly ``Transactions:``
(then the power-of-two latency histogram, then optionally ``Aborts:`` and its histogram). A run
that exits 0 without a final summary (a missing config file does that), prints an error line, or
is killed is a failed measurement, never a zero. See ``shared/reference/dbbench.md``.
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sessionctl.bench.external import configured_binary, run_watched
from sessionctl.bench.results import RunResult
from sessionctl.errors import MeasurementError, ToolNotFound
from sessionctl.files import atomic_write, atomic_write_json
from sessionctl.process import describe_argv
from sessionctl.target.server import MASK, redact, scrub, secrets_of

INSTALL = (
    "build it from github.com/memsql/dbbench (`go install github.com/memsql/dbbench@latest`) "
    "and set the benchmark's `binary:` (e.g. ~/dbbench/dbbench)"
)
ProgressFn = Callable[[float, float, int], None]

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


# --- parsing --------------------------------------------------------------------------------


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


# --- rendering and running ------------------------------------------------------------------


def _clean_query(sql: str) -> str:
    one = " ".join(sql.split()).rstrip(";").strip()
    if not one:
        raise MeasurementError("dbbench: empty query")
    if ";" in one:
        raise MeasurementError(
            f"dbbench queries cannot contain ';' (dbbench refuses them): {one[:60]!r}"
        )
    return one


def render_ini(
    *, duration: float, concurrency: int, queries: Sequence[str], rate: float | None = None
) -> str:
    """An ini with the global duration and one job ``[cN]`` at ``concurrency=N``.

    With ``rate`` the job is open loop instead: ``rate=R`` (one invocation per tick, R ticks a
    second, each timed from its tick, with no cap on how many are in flight).
    """
    qs = [_clean_query(q) for q in queries]
    lines = [f"duration={format_go_duration(duration)}", "", f"[c{concurrency}]"]
    if len(qs) > 1:
        lines.append("multi-query-mode=multi-connection")
    lines += [f"query={q}" for q in qs]
    lines.append(f"rate={_rate(rate)}" if rate is not None else f"concurrency={concurrency}")
    return "\n".join(lines) + "\n"


def _rate(rate: float) -> str:
    return f"{rate:.6g}"


def config_jobs(config: str) -> dict[str, int | None]:
    """Job sections of a user's ini and their ``concurrency``/``queue-depth`` (None if unset)."""
    jobs: dict[str, int | None] = {}
    current: str | None = None
    for raw in config.splitlines():
        if raw[:1] in (";", "#"):
            continue
        line = raw.strip()
        if line.startswith("["):
            name = line[1 : line.index("]")] if "]" in line else line[1:]
            current = name if name not in ("setup", "teardown", "global") else None
            if current is not None:
                jobs[current] = None
            continue
        if current is not None and "=" in line:
            key, _, value = line.partition("=")
            if key.strip() in ("concurrency", "queue-depth"):
                with contextlib.suppress(ValueError):
                    jobs[current] = int(value.strip())
    return jobs


def override_config(
    config: str, *, duration: float, concurrency: int | None = None, rate: float | None = None
) -> str:
    """The user's ini verbatim, except the global ``duration`` (and, for a single-job config,
    its ``concurrency`` when a different level is asked for, or ``rate=R`` in place of its
    ``concurrency``/``queue-depth`` for an open-loop run)."""
    lines = config.splitlines()
    first = next(
        (
            i
            for i, ln in enumerate(lines)
            if ln.strip().startswith("[") and ln[:1] not in (";", "#")
        ),
        len(lines),
    )
    head = [
        ln
        for ln in lines[:first]
        if ln[:1] in (";", "#") or ln.partition("=")[0].strip() != "duration"
    ]
    out = [f"duration={format_go_duration(duration)}", *head, *lines[first:]]
    jobs = config_jobs(config)
    if rate is not None:
        if len(jobs) != 1:
            raise MeasurementError(
                f"dbbench: an open-loop run needs a config with one job, this one has {len(jobs)} "
                "(set `compare.open_loop_load: 0`, or split the config)"
            )
        loads = ("concurrency", "queue-depth", "rate", "batch-size")
        body = [
            ln for ln in out if ln[:1] in (";", "#") or ln.partition("=")[0].strip() not in loads
        ]
        (job,) = jobs
        header = next(i for i, ln in enumerate(body) if ln.strip().startswith(f"[{job}]"))
        body.insert(header + 1, f"rate={_rate(rate)}")
        return "\n".join(body) + "\n"
    if (
        concurrency is not None
        and len(jobs) == 1
        and next(iter(jobs.values())) not in (None, concurrency)
    ):
        out = [
            f"{ln.partition('=')[0]}={concurrency}"
            if ln[:1] not in (";", "#")
            and ln.partition("=")[0].strip() in ("concurrency", "queue-depth")
            else ln
            for ln in out
        ]
    return "\n".join(out) + "\n"


def find_dbbench(binary: str | None) -> str:
    """Return the dbbench binary to run, or raise naming how to get one."""
    if binary:
        return configured_binary(binary, tool="dbbench", fix=INSTALL)
    found = shutil.which("dbbench")
    if found is None:
        raise ToolNotFound(f"dbbench: not found on PATH; {INSTALL}")
    return found


def build_argv(binary: str, *, url: str, ini: Path, extra: Sequence[str] = ()) -> list[str]:
    """The dbbench command line: postgres driver, connection flags from ``url``, then the ini."""
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(url)
    argv = [binary, "--driver=postgres"]
    if p.get("host"):
        argv.append(f"--host={p['host']}")
    argv.append(f"--port={p.get('port') or 5432}")
    # dbbench's default user is root; name the libpq default (the OS user) explicitly.
    argv.append(f"--username={p.get('user') or _os_user()}")
    if p.get("dbname"):
        argv.append(f"--database={p['dbname']}")
    if p.get("password"):
        argv.append(f"--password={p['password']}")
    params = {
        k: str(v)
        for k, v in p.items()
        if k not in ("host", "port", "user", "dbname", "password") and v is not None
    }
    if params:
        # --params replaces dbbench's default sslmode=disable, and lib/pq then defaults to require.
        params.setdefault("sslmode", "disable")
        argv.append("--params=" + "&".join(f"{k}={v}" for k, v in params.items()))
    argv += list(extra)
    argv.append(str(ini))
    return argv


def redact_argv(argv: Sequence[str]) -> list[str]:
    """argv with ``--password=…`` masked (for logs, records and error messages)."""
    return [
        f"--password={MASK}" if a.startswith(("--password=", "-password=")) else redact(a)
        for a in argv
    ]


def _os_user() -> str:
    import getpass

    return getpass.getuser()


def to_result(
    out: DbbenchOutput,
    *,
    concurrency: int,
    duration: float,
    window: tuple[float, float],
    raw_dir: Path,
) -> RunResult:
    """Fold the parsed jobs into one RunResult (several jobs: rates add up, histograms merge)."""
    finals = [j.final for j in out.jobs.values()]
    rows: dict[tuple[float, float], int] = {}
    for j in out.jobs.values():
        for low, high, c in j.histogram:
            rows[(low, high)] = rows.get((low, high), 0) + c
    merged = sorted((lo, hi, c) for (lo, hi), c in rows.items())
    tx = sum(f.transactions for f in finals)
    mean = sum(f.latency * f.transactions for f in finals) / tx if tx else math.nan
    latency = {"mean": mean * 1000}
    for q in (50, 90, 99):
        latency[f"p{q}"] = histogram_percentile(merged, q / 100) * 1000
    return RunResult(
        driver="dbbench",
        concurrency=concurrency,
        duration=duration,
        qps=sum(f.qps for f in finals),
        tps=sum(f.tps for f in finals),
        queries=sum(f.queries for f in finals),
        errors=sum(f.aborts for f in finals),
        latency_ms=latency,
        window=window,
        raw_path=str(raw_dir),
        details={
            "percentiles": "from dbbench's power-of-two histogram, interpolated within a bucket",
            "jobs": {
                name: {
                    **{k: v for k, v in j.final.__dict__.items()},
                    "histogram": [list(r) for r in j.histogram],
                    "abort_histogram": [list(r) for r in j.abort_histogram],
                }
                for name, j in out.jobs.items()
            },
        },
    )


def run_dbbench(
    *,
    url: str,
    concurrency: int,
    duration: float,
    raw_dir: Path,
    query: str | None = None,
    config: str | None = None,
    binary: str | None = None,
    extra_args: Sequence[str] = (),
    progress: ProgressFn | None = None,
    rate: float | None = None,
) -> RunResult:
    """Render the ini, run dbbench once, parse it; raise MeasurementError if untrustworthy.

    ``rate``: open loop at that many queries a second (see :func:`render_ini`).
    """
    exe = find_dbbench(binary)
    raw_dir.mkdir(parents=True, exist_ok=True)
    if config is not None:
        ini_text = override_config(config, duration=duration, concurrency=concurrency, rate=rate)
    elif query is not None:
        ini_text = render_ini(
            duration=duration, concurrency=concurrency, queries=[query], rate=rate
        )
    else:
        raise MeasurementError("dbbench needs `config` (the ini text) or `query`")
    ini = raw_dir / "run.ini"
    atomic_write(ini, ini_text)
    argv = build_argv(exe, url=url, ini=ini, extra=extra_args)
    shown = describe_argv(redact_argv(argv))
    atomic_write(raw_dir / "command.txt", shown + "\n")
    secrets = secrets_of(url)
    start = time.monotonic()
    rc, stderr = _execute(
        argv,
        raw_dir=raw_dir,
        timeout=duration + 120,
        secrets=secrets,
        progress=progress,
        started=start,
    )
    end = time.monotonic()
    out = parse_output(stderr, returncode=rc)
    result = to_result(
        out, concurrency=concurrency, duration=duration, window=(start, end), raw_dir=raw_dir
    )
    atomic_write_json(raw_dir / "result.json", result.to_dict())
    return result


def _execute(
    argv: list[str],
    *,
    raw_dir: Path,
    timeout: float,
    secrets: list[str],
    progress: ProgressFn | None,
    started: float,
) -> tuple[int, str]:
    """Run dbbench; stderr is read as it comes (live QPS from the intermediate lines)."""
    done = 0

    def on_line(line: str) -> None:
        nonlocal done
        ts = _TS.match(line)
        stats = parse_stats(line[ts.end() :]) if ts else None
        if stats is not None and progress is not None:
            done += stats.queries
            progress(time.monotonic() - started, stats.qps, done)

    run = run_watched(
        argv,
        cwd=raw_dir,
        timeout=timeout,
        grace=10,
        stdout=False,
        on_line=on_line if progress else None,
    )
    text = scrub(run.stderr.decode("utf-8", "replace"), secrets)
    atomic_write(raw_dir / "dbbench.stderr", text)
    if run.killed:
        raise MeasurementError(
            f"dbbench ran past its {timeout:g}s limit and was stopped; output in {raw_dir}"
        )
    return run.returncode, text
