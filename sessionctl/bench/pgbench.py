"""The pgbench driver: a custom script, ``-c/-j/-T``, the summary for tps, the log for percentiles.

The campaign's ``script`` (or ``query``) is written into the run folder and run with
``pgbench -n -f script -c C -j min(C, cores) -T D -P 1 --log --log-prefix=…``. The password never
goes on the command line: the URL is passed as a keyword conninfo without it and the password
travels in ``PGPASSWORD``. tps comes from pgbench's own summary (excluding connection time), QPS
is tps × the SQL commands per transaction, and p50/p90/p99 come from the per-transaction log
(one latency per sampled transaction, 10 % by default) folded into the log-linear histogram.

With a ``rate`` (queries/s) the run is open loop: ``-R`` at rate / commands per transaction.
pgbench then schedules each transaction by a Poisson process and logs its latency from the
*scheduled* start, so the schedule lag (queueing when the server falls behind) is counted.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sessionctl.bench.external import configured_binary, run_watched
from sessionctl.bench.latency import LatencyHistogram
from sessionctl.bench.results import RunResult
from sessionctl.errors import MeasurementError, ToolNotFound
from sessionctl.files import atomic_write, atomic_write_json
from sessionctl.process import describe_argv
from sessionctl.target.server import redact, scrub, secrets_of

INSTALL = "install it (`apt-get install postgresql-client`) or set the benchmark's `binary:`"
ProgressFn = Callable[[float, float, int], None]  # (elapsed s, live qps, completed)
# Writing a log line per transaction costs pgbench ~2 µs of client CPU per transaction, several
# percent of QPS at low concurrency; a random 10 % sample keeps the percentiles unbiased at a
# negligible cost. A benchmark's `args: [--sampling-rate=1]` overrides it (later flags win).
LOG_SAMPLING = 0.1


def find_pgbench(binary: str | None = None) -> str:
    """Return the pgbench to run: the configured ``binary``, PATH, or beside a PostgreSQL server."""
    if binary:
        return configured_binary(binary, tool="pgbench", fix="fix the benchmark's `binary:`")
    on_path = shutil.which("pgbench")
    if on_path:
        return on_path
    from sessionctl.target.embedded_postgres import candidate_bindirs

    for d in candidate_bindirs():
        cand = d / "pgbench"
        if os.access(cand, os.X_OK):
            return str(cand)
    raise ToolNotFound(f"pgbench: not found; {INSTALL}")


def script_text(script: str | None, query: str | None) -> str:
    """The pgbench script for a benchmark (``query`` becomes a one-command script)."""
    text = script if script else (query or "").strip()
    if not text.strip():
        raise MeasurementError("pgbench needs a `script` or a `query`")
    if script is None and not text.rstrip().endswith(";"):
        text = text.rstrip() + ";"
    return text if text.endswith("\n") else text + "\n"


def commands_per_transaction(script: str) -> int:
    """Count the SQL commands in a pgbench script (meta-commands start with a backslash)."""
    sql = [
        ln for ln in script.splitlines() if ln.strip() and not ln.strip().startswith(("\\", "--"))
    ]
    return max(1, sum(1 for piece in "\n".join(sql).split(";") if piece.strip()))


def conninfo_without_password(url: str) -> tuple[str, str | None]:
    """Split a libpq URL/DSN into a keyword conninfo without the password, and the password."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(url)
    except Exception as exc:  # psycopg.ProgrammingError: a malformed URL
        raise MeasurementError(
            f"cannot parse connection URL {redact(url)}: {scrub(str(exc), secrets_of(url))}"
        ) from None
    password = params.pop("password", None)
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None}), (
        None if password is None else str(password)
    )


def build_argv(
    binary: str,
    *,
    script_path: Path,
    concurrency: int,
    duration: int,
    conninfo: str,
    log_prefix: Path | None,
    log_sampling: float = 1.0,
    extra: Sequence[str] = (),
    cores: int | None = None,
    progress: bool = True,
    tps: float | None = None,
) -> list[str]:
    """The pgbench command line (flags first, the conninfo last); ``tps``: open loop (-R)."""
    threads = max(1, min(concurrency, cores or os.cpu_count() or 1))
    argv = [
        binary,
        "-n",
        "-f",
        str(script_path),
        "-c",
        str(concurrency),
        "-j",
        str(threads),
        "-T",
        str(duration),
    ]
    if tps is not None:
        argv += ["-R", f"{tps:.6g}"]
    if progress:
        argv += ["-P", "1"]
    if log_prefix is not None:
        argv += ["--log", f"--log-prefix={log_prefix}"]
        if log_sampling < 1.0:
            argv.append(f"--sampling-rate={log_sampling:g}")
    argv += list(extra)
    argv.append(conninfo)
    return argv


@dataclass(frozen=True)
class PgbenchSummary:
    """The numbers in pgbench's final report."""

    tps: float
    transactions: int
    failed: int
    latency_avg_ms: float | None
    latency_stddev_ms: float | None
    connection_ms: float | None


_TPS = re.compile(
    r"^tps = ([0-9.]+) \((without initial connection time|excluding connections establishing)\)",
    re.M,
)
_TPS_ANY = re.compile(r"^tps = ([0-9.]+)", re.M)
_TXNS = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)
_LAT = re.compile(r"^latency average = ([0-9.]+) ms", re.M)
_STD = re.compile(r"^latency stddev = ([0-9.]+) ms", re.M)
_CONN = re.compile(r"^initial connection time = ([0-9.]+) ms", re.M)
_PROGRESS = re.compile(r"progress: ([0-9.]+) s, ([0-9.]+) tps")


def parse_summary(stdout: str) -> PgbenchSummary:
    """Parse pgbench's report; raise MeasurementError when it has no tps line."""
    m = _TPS.search(stdout) or _TPS_ANY.search(stdout)
    if m is None:
        raise MeasurementError("pgbench printed no `tps = …` summary")

    def num(rx: re.Pattern[str]) -> float | None:
        hit = rx.search(stdout)
        return float(hit.group(1)) if hit else None

    txns = num(_TXNS)
    failed = num(_FAILED)
    return PgbenchSummary(
        tps=float(m.group(1)),
        transactions=int(txns or 0),
        failed=int(failed or 0),
        latency_avg_ms=num(_LAT),
        latency_stddev_ms=num(_STD),
        connection_ms=num(_CONN),
    )


def parse_logs(paths: Sequence[Path]) -> tuple[LatencyHistogram, int]:
    """Fold pgbench per-transaction logs into a histogram; also count failed/skipped lines."""
    hist = LatencyHistogram()
    counts = hist.counts
    failed = 0
    from sessionctl.bench.latency import bucket_index

    total = 0
    n = 0
    mn: int | None = None
    mx = 0
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:  # type: ignore[operator]
            for line in fh:
                parts = line.split(None, 3)
                if len(parts) < 3:
                    continue
                field = parts[2]
                if not field.isdigit():
                    failed += 1  # "failed" or "skipped"
                    continue
                ns = int(field) * 1000
                counts[bucket_index(ns)] += 1
                total += ns
                n += 1
                if ns > mx:
                    mx = ns
                if mn is None or ns < mn:
                    mn = ns
    hist.count, hist.total_ns, hist.min_ns, hist.max_ns = n, total, mn, (mx if n else None)
    return hist, failed


def run_pgbench(
    *,
    url: str,
    script: str,
    concurrency: int,
    duration: float,
    raw_dir: Path,
    binary: str | None = None,
    extra_args: Sequence[str] = (),
    warmup: float = 0.0,
    progress: ProgressFn | None = None,
    log_transactions: bool = True,
    log_sampling: float = LOG_SAMPLING,
    rate: float | None = None,
) -> RunResult:
    """Run pgbench once at one concurrency level (open loop at ``rate`` queries/s if given)."""
    exe = find_pgbench(binary)
    raw_dir.mkdir(parents=True, exist_ok=True)
    script_path = raw_dir / "script.sql"
    atomic_write(script_path, script)
    conninfo, password = conninfo_without_password(url)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    secrets = secrets_of(url)
    seconds = max(1, math.ceil(duration))
    warm_txns = 0
    if warmup > 0:
        warm = build_argv(
            exe,
            script_path=script_path,
            concurrency=concurrency,
            duration=max(1, math.ceil(warmup)),
            conninfo=conninfo,
            log_prefix=None,
            extra=extra_args,
            progress=False,
        )
        warm_out, _ = _execute(
            warm, env=env, raw_dir=raw_dir, name="warmup", timeout=warmup + 120, secrets=secrets
        )
        warm_txns = parse_summary(warm_out).transactions
    prefix = raw_dir / "pgbench_log" if log_transactions else None
    per_txn = commands_per_transaction(script)
    argv = build_argv(
        exe,
        script_path=script_path,
        concurrency=concurrency,
        duration=seconds,
        conninfo=conninfo,
        log_prefix=prefix,
        log_sampling=log_sampling,
        extra=extra_args,
        tps=rate / per_txn if rate is not None else None,
    )
    atomic_write(raw_dir / "command.txt", describe_argv(argv) + "\n")
    start = time.monotonic()
    stdout, _stderr = _execute(
        argv,
        env=env,
        raw_dir=raw_dir,
        name="pgbench",
        timeout=seconds + 120,
        secrets=secrets,
        progress=progress,
    )
    end = time.monotonic()
    summary = parse_summary(stdout)
    hist = LatencyHistogram()
    failed_logged = 0
    logs: list[Path] = []
    if prefix is not None:
        logs = sorted(raw_dir.glob(prefix.name + ".*"))
        hist, failed_logged = parse_logs(logs)
        for path in logs:
            _gzip(path)
    latency = hist.summary_ms() if hist.count else {}
    if summary.latency_avg_ms is not None:
        latency["mean"] = summary.latency_avg_ms
    if summary.latency_stddev_ms is not None:
        latency["stddev"] = summary.latency_stddev_ms
    errors = max(summary.failed, failed_logged)
    result = RunResult(
        driver="pgbench",
        concurrency=concurrency,
        duration=float(seconds),
        qps=summary.tps * per_txn,
        tps=summary.tps,
        queries=summary.transactions * per_txn,
        errors=errors,
        latency_ms=latency,
        window=(start, end),
        raw_path=str(raw_dir),
        details={
            "transactions": summary.transactions,
            "executed": (summary.transactions + warm_txns) * per_txn,  # what metric deltas saw
            "commands_per_transaction": per_txn,
            "connection_ms": summary.connection_ms,
            "logged_transactions": hist.count,
            "log_sampling": log_sampling if prefix is not None else None,
            "histogram": hist.to_dict() if hist.count else None,
            "command": describe_argv(argv),
            "mode": "open" if rate is not None else "closed",
            "rate": rate,
        },
    )
    atomic_write_json(raw_dir / "result.json", result.to_dict())
    return result


def _gzip(path: Path) -> None:
    """Keep the per-transaction log, compressed (it is the raw data behind the percentiles)."""
    with open(path, "rb") as src, gzip.open(f"{path}.gz", "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    path.unlink()


def _execute(
    argv: list[str],
    *,
    env: dict[str, str],
    raw_dir: Path,
    name: str,
    timeout: float,
    secrets: list[str],
    progress: ProgressFn | None = None,
) -> tuple[str, str]:
    """Run pgbench, feeding live tps from its ``-P`` lines to ``progress``; raise on failure."""
    done = 0

    def on_line(line: str) -> None:
        nonlocal done
        m = _PROGRESS.search(line)
        if m is not None and progress is not None:
            tps = float(m.group(2))
            done += int(tps)
            progress(float(m.group(1)), tps, done)

    run = run_watched(
        argv, env=env, cwd=raw_dir, timeout=timeout, grace=5, on_line=on_line if progress else None
    )
    stdout = scrub(run.stdout.decode("utf-8", "replace"), secrets)
    stderr = scrub(run.stderr.decode("utf-8", "replace"), secrets)
    atomic_write(raw_dir / f"{name}.stdout", stdout)
    atomic_write(raw_dir / f"{name}.stderr", stderr)
    if run.killed:
        raise MeasurementError(
            f"pgbench ran past its {timeout:g}s limit and was stopped; output in {raw_dir}"
        )
    if run.returncode != 0:
        tail = " | ".join(
            ln.strip()
            for ln in stderr.splitlines()
            if ln.strip() and not ln.startswith("progress:")
        )
        raise MeasurementError(
            f"pgbench exited with {run.returncode}: {tail[-600:] or '(no error output)'}"
        )
    return stdout, stderr
