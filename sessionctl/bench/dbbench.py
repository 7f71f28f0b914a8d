"""The dbbench driver (memsql/dbbench): write the ini, run it, judge and fold what it printed.

The ini is built in :mod:`.dbbench_config` (query files, levels, rates, warm-up jobs) and the
output read by :mod:`.dbbench_output`. This module holds the command line (credentials
percent-encoded into dbbench's URL, a socket folder through ``--params=host=``, relative paths
against the workspace through ``--base-dir``) and the rules a run must pass to count: a final
summary for every job, at least one successful query, the full duration (a run dbbench ended
early, e.g. on SIGINT, exits 0 with a normal summary), and for an open-loop run, the rate it
actually reached (recorded; ``bench`` warns and ``compare`` refuses latency from a run that fell
short). See ``docs/dbbench.md``.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

from sessionctl.bench.dbbench_config import (
    JobPlan,
    check_query,
    config_jobs,
    config_level,
    job_plans,
    override_config,
    render_ini,
)
from sessionctl.bench.dbbench_output import (
    DbbenchJob,
    DbbenchOutput,
    format_go_duration,
    go_duration,
    histogram_percentile,
    mask_saved,
    parse_output,
    stats_of_line,
)
from sessionctl.bench.external import configured_binary, run_watched
from sessionctl.bench.results import RunResult
from sessionctl.errors import MeasurementError, ToolNotFound
from sessionctl.files import atomic_write, atomic_write_json
from sessionctl.process import describe_argv
from sessionctl.target.server import MASK, redact, scrub, secrets_of

__all__ = [
    "DbbenchJob",
    "DbbenchOutput",
    "build_argv",
    "config_jobs",
    "config_level",
    "find_dbbench",
    "format_go_duration",
    "go_duration",
    "histogram_percentile",
    "override_config",
    "parse_output",
    "redact_argv",
    "render_ini",
    "run_dbbench",
    "to_result",
]

INSTALL = (
    "build it from github.com/memsql/dbbench (`go install github.com/memsql/dbbench@latest`) "
    "and set the benchmark's `binary:` (e.g. ~/dbbench/dbbench)"
)
# A run whose jobs ran shorter than the duration by more than this share (or 0.25 s) ended early.
DURATION_TOLERANCE = 0.10
ProgressFn = Callable[[float, float, int], None]


def find_dbbench(binary: str | None) -> str:
    """Return the dbbench binary to run, or raise naming how to get one."""
    if binary:
        return configured_binary(binary, tool="dbbench", fix=INSTALL)
    found = shutil.which("dbbench")
    if found is None:
        raise ToolNotFound(f"dbbench: not found on PATH; {INSTALL}")
    return found


def _enc(value: str) -> str:
    """Percent-encode for dbbench's DSN, which pastes user, password and database into a URL."""
    return quote(value, safe="")


def build_argv(
    binary: str,
    *,
    url: str,
    ini: Path,
    extra: Sequence[str] = (),
    base_dir: Path | None = None,
) -> list[str]:
    """The dbbench command line: postgres driver, connection flags from ``url``, then the ini.

    dbbench builds ``postgres://user:password@host:port/database?params`` by pasting the flags in
    unescaped, so user, password and database go in percent-encoded (lib/pq decodes them). A
    socket folder (``host=/dir``) cannot be a URL host: it goes in ``--params=host=/dir``, which
    lib/pq reads after (so over) the URL's host. ``--params`` replaces dbbench's default
    ``sslmode=disable`` (and lib/pq would default to require), so it is always restated.
    """
    from psycopg.conninfo import conninfo_to_dict

    p = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    host = p.get("host", "")
    socket = host.startswith("/")
    argv = [binary, "--driver=postgres"]
    if host and not socket:
        argv.append(f"--host={host}")
    argv.append(f"--port={p.get('port') or 5432}")
    # dbbench's default user is root; name the libpq default (the OS user) explicitly.
    argv.append(f"--username={_enc(p.get('user') or _os_user())}")
    if p.get("dbname"):
        argv.append(f"--database={_enc(p['dbname'])}")
    if p.get("password"):
        argv.append(f"--password={_enc(p['password'])}")
    params = {k: v for k, v in p.items() if k not in ("host", "port", "user", "dbname", "password")}
    if socket:
        params = {"host": host, **params}
    if params:
        params.setdefault("sslmode", "disable")
        argv.append(
            "--params=" + "&".join(f"{_enc(k)}={quote(v, safe='/:,')}" for k, v in params.items())
        )
    if base_dir is not None:
        argv.append(f"--base-dir={base_dir}")
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


# --- judging and folding the output ---------------------------------------------------------


def _slack(plan: JobPlan, total: float) -> float:
    """How much shorter than the run a full-length job may look (an open-loop job's first tick
    comes one period in, its last up to one period before the end)."""
    slack = max(DURATION_TOLERANCE * (total - plan.start), 0.25)
    return slack + (2 / plan.rate if plan.rate else 0.0)


def check_full_length(
    measured: dict[str, DbbenchJob], plans: dict[str, JobPlan], total: float
) -> float:
    """Raise when the run ended early; return its span (seconds, longest job).

    dbbench ends a run on SIGINT like at the end of its duration: normal summary, exit 0. The
    final stats line gives each job's span (its counts over its rates); a run is full when some
    job that should last to the end (no ``count=``/``stop=``/log/args file) did, within
    :data:`DURATION_TOLERANCE`.
    """
    span = max((j.final.span for j in measured.values()), default=0.0)
    judged = {n: j for n, j in measured.items() if n in plans and not plans[n].self_limited}
    if not judged or any(
        j.final.span + _slack(plans[n], total) >= total - plans[n].start for n, j in judged.items()
    ):
        return span
    name, job = max(judged.items(), key=lambda kv: kv[1].final.span)
    expected = total - plans[name].start
    raise MeasurementError(
        f"dbbench ended early: job {name!r} ran {job.final.span:.2f}s of its {expected:g}s "
        "(was it interrupted?); a short run is not recorded"
    )


def to_result(
    out: DbbenchOutput,
    *,
    concurrency: int,
    duration: float,
    window: tuple[float, float],
    raw_dir: Path,
    plans: dict[str, JobPlan] | None = None,
    warmup: float = 0.0,
    rate: float | None = None,
) -> RunResult:
    """Fold the measured jobs into one RunResult; raise when the run cannot count.

    Warm-up jobs are left out. QPS counts successful queries only (each job's successes over its
    own span; several jobs add up), and a run with no successful query is failed. ``plans``
    (from the ini that ran) turns on the full-length check.
    """
    plans = plans or {}
    stranger = next((n for n in out.jobs if plans and n not in plans), None)
    if stranger is not None:  # dbbench names each job by its section, verbatim
        raise MeasurementError(
            f"dbbench reported a job {stranger!r} that the ini it ran does not have "
            f"({', '.join(map(repr, plans))}); is `binary:` really memsql/dbbench?"
        )
    measured = {n: j for n, j in out.jobs.items() if not (n in plans and plans[n].warmup)}
    if not measured:
        raise MeasurementError("dbbench: no measured job printed a final summary")
    finals = [j.final for j in measured.values()]
    tx = sum(f.transactions for f in finals)
    if tx == 0:
        failed = sum(f.aborts for f in finals)
        raise MeasurementError(
            f"dbbench: every query failed ({failed} of {sum(f.queries for f in finals)} "
            "accepted by the config's `error=`); a run without a successful query is not recorded"
        )
    span = check_full_length(measured, plans, warmup + duration) if plans else None
    rows: dict[tuple[float, float], int] = {}
    for j in measured.values():
        for low, high, c in j.histogram:
            rows[(low, high)] = rows.get((low, high), 0) + c
    merged = sorted((lo, hi, c) for (lo, hi), c in rows.items())
    latency = {"mean": sum(f.latency * f.transactions for f in finals) / tx * 1000}
    for q in (50, 90, 99):
        latency[f"p{q}"] = histogram_percentile(merged, q / 100) * 1000
    qps = sum(f.succeeded / f.span for f in finals if f.span > 0)
    executed = sum(j.final.queries for j in out.jobs.values())
    details: dict[str, object] = {
        "percentiles": "from dbbench's power-of-two histogram, interpolated within a bucket",
        "qps": "successful queries a second (dbbench's own QPS counts failed ones too)",
        "executed": executed,
        "span_s": span,
        "mode": "open" if rate is not None else "closed",
        "warmup": warmup,
        "warmup_jobs": sorted(set(out.jobs) - set(measured)),
        "jobs": {
            name: {
                **dict(j.final.__dict__),
                "histogram": [list(r) for r in j.histogram],
                "abort_histogram": [list(r) for r in j.abort_histogram],
            }
            for name, j in measured.items()
        },
    }
    if rate is not None:
        # dbbench times each query from its actual start and drops the starts it misses, so an
        # open-loop run is only at its rate if it reached it: record what it reached.
        details |= {"rate": rate, "achieved_rate": sum(f.qps for f in finals if f.span > 0)}
    return RunResult(
        driver="dbbench",
        concurrency=concurrency,
        duration=duration,
        qps=qps,
        tps=sum(f.tps for f in finals if math.isfinite(f.tps)),
        queries=sum(f.succeeded for f in finals),
        errors=sum(f.aborts for f in finals),
        latency_ms=latency,
        window=window,
        raw_path=str(raw_dir),
        details=details,
    )


# --- running --------------------------------------------------------------------------------


def _ini_text(
    raw_dir: Path,
    *,
    query: str | None,
    config: str | None,
    concurrency: int,
    duration: float,
    rate: float | None,
    warmup: float,
) -> str:
    if config is not None:
        return override_config(
            config, duration=duration, concurrency=concurrency, rate=rate, warmup=warmup
        )
    if query is None:
        raise MeasurementError("dbbench needs `config` (the ini text) or `query`")
    # The query goes in a file, verbatim: an ini value is one line, and dbbench reads a file's
    # query with its newlines and comments as written.
    qfile = raw_dir / "query.sql"
    atomic_write(qfile, check_query(query))
    return render_ini(
        duration=duration, concurrency=concurrency, query_files=[qfile], rate=rate, warmup=warmup
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
    warmup: float = 0.0,
    base_dir: Path | None = None,
) -> RunResult:
    """Write the ini, run dbbench once, judge and fold its output; raise if it cannot count.

    ``rate``: open loop at that many queries a second. ``warmup``: seconds of uncounted warm-up
    jobs first. ``base_dir``: where the config's relative paths point (the workspace).
    """
    exe = find_dbbench(binary)
    raw_dir = raw_dir.resolve()
    raw_dir.mkdir(parents=True, exist_ok=True)
    ini_text = _ini_text(
        raw_dir,
        query=query,
        config=config,
        concurrency=concurrency,
        duration=duration,
        rate=rate,
        warmup=warmup,
    )
    ini = raw_dir / "run.ini"
    atomic_write(ini, ini_text)
    argv = build_argv(exe, url=url, ini=ini, extra=extra_args, base_dir=base_dir)
    atomic_write(raw_dir / "command.txt", describe_argv(redact_argv(argv)) + "\n")
    secrets = secrets_of(url)
    secrets += [_enc(s) for s in secrets if _enc(s) not in secrets]
    start = time.monotonic()
    rc, stderr = _execute(
        argv,
        raw_dir=raw_dir,
        timeout=warmup + duration + 120,
        secrets=secrets,
        progress=progress,
        started=start + warmup,
    )
    end = time.monotonic()
    try:
        out = parse_output(stderr, returncode=rc)
        result = to_result(
            out,
            concurrency=concurrency,
            duration=duration,
            window=(start + warmup, end),
            raw_dir=raw_dir,
            plans=job_plans(ini_text),
            warmup=warmup,
            rate=rate,
        )
    except MeasurementError as exc:  # shown to the user: mask the password, now that it's parsed
        raise MeasurementError(scrub(str(exc), secrets)) from None
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
    """Run dbbench; stderr is read as it comes (live QPS from the intermediate lines).

    Returns the exit code and stderr as dbbench wrote it (the parser must see the real text);
    the copy kept on disk is masked only if a password occurs in it (:func:`mask_saved`).
    """
    done = 0

    def on_line(line: str) -> None:
        nonlocal done
        stats = stats_of_line(line)
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
    atomic_write(raw_dir / "dbbench.stderr", mask_saved(run.stderr, secrets))
    if run.killed:
        raise MeasurementError(
            f"dbbench ran past its {timeout:g}s limit and was stopped; output in {raw_dir}"
        )
    return run.returncode, run.stderr.decode("utf-8", "replace")
