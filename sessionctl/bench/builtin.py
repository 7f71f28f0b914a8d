"""The built-in driver: N connections sending a query (or a weighted mix) as fast as answered.

Why it looks the way it does: a Python client on the same 2 cores as the server must not become
the bottleneck, so the hot loop avoids everything that allocates per query beyond necessity.

* Worker **processes** (``-m sessionctl.bench.builtin_worker``), one per core by default, each
  owning several connections: no GIL contention, and the parent stays idle (it only reads the
  workers' progress lines, ten a second, for the progress bar).
* Inside a worker, raw libpq through ``psycopg.pq`` (psycopg's own C binding): statements are
  prepared once per connection and sent with ``send_query_prepared`` asking for binary results;
  one ``epoll`` waits on every socket. A worker with one connection uses blocking ``exec_prepared``.
* Latencies go into an inlined log-linear histogram (:mod:`sessionctl.bench.latency`), merged by
  the parent. Warm-up completions are not counted; only completions inside the measured window
  are. Statements that cannot be prepared (several commands in one string) fall back to the
  simple protocol.

Closed loop by default (each connection reissues as soon as its answer arrives). With ``rate``
it runs open loop: arrivals at a fixed total rate, latency measured from each query's *intended*
start, so queueing behind a slow server counts (no coordinated omission).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sessionctl.bench.builtin_worker import DRAIN_NS, WorkerError, cumsum
from sessionctl.bench.latency import LatencyHistogram
from sessionctl.bench.results import RunResult
from sessionctl.errors import MeasurementError, TargetError
from sessionctl.files import atomic_write_json
from sessionctl.process import spawn, stop_tree
from sessionctl.target.server import redact, scrub, secrets_of

_NS = 1_000_000_000


@dataclass(frozen=True)
class BuiltinSpec:
    """What one built-in run does."""

    url: str
    queries: tuple[tuple[str, float], ...]  # (sql, weight)
    concurrency: int
    duration: float | None = 10.0  # None: run until ``count``
    count: int | None = None  # total queries, split across connections
    warmup: float = 0.0
    rate: float | None = None  # open loop: total arrivals per second
    workers: int | None = None  # default: min(concurrency, cores)
    prepare: bool = True


ProgressFn = Callable[[float, float, int], None]  # (elapsed s, live qps, completed)


def run_builtin(
    spec: BuiltinSpec,
    *,
    progress: ProgressFn | None = None,
    raw_dir: Path | None = None,
    connect_timeout: float = 30.0,
) -> RunResult:
    """Run one measured load (closed or open loop) and return its result."""
    if spec.concurrency < 1:
        raise MeasurementError(f"concurrency must be >= 1, got {spec.concurrency}")
    if not spec.queries:
        raise MeasurementError("the built-in driver needs at least one query")
    if spec.duration is None and spec.count is None:
        raise MeasurementError("give the built-in driver a duration or a count")
    try:
        cumsum([w for _, w in spec.queries])
    except WorkerError as exc:
        raise MeasurementError(f"built-in driver: {exc}") from None
    secrets = secrets_of(spec.url)
    nworkers = max(1, min(spec.concurrency, spec.workers or os.cpu_count() or 1))
    base, extra = divmod(spec.concurrency, nworkers)
    per_worker = [base + (1 if i < extra else 0) for i in range(nworkers)]
    counts = _split(spec.count, spec.concurrency, per_worker)
    workers: list[_Proc] = []
    try:
        for wid, nconn in enumerate(per_worker):
            job = {
                "url": spec.url,
                "queries": list(spec.queries),
                "connections": nconn,
                "count": counts[wid],
                "rate": spec.rate / nworkers if spec.rate else None,
                "prepare": spec.prepare,
                "seed": wid + 1,
            }
            workers.append(_Proc(wid, job, raw_dir))
        _await_ready(workers, connect_timeout, spec.url, secrets)
        start_ns = time.monotonic_ns() + 20_000_000
        measure_ns = start_ns + int(spec.warmup * _NS)
        end_ns = measure_ns + int(spec.duration * _NS) if spec.duration is not None else 2**62
        for w in workers:
            w.send({"go": [start_ns, measure_ns, end_ns]})
        results = _poll(workers, measure_ns, end_ns, progress)
    finally:
        for w in workers:
            w.close()
    return _summarize(spec, results, measure_ns, end_ns, raw_dir, secrets)


class _Proc:
    """One worker process (``python -m sessionctl.bench.builtin_worker``), JSON lines both ways.

    Plain subprocesses rather than multiprocessing: nothing depends on how the caller's
    ``__main__`` is written, and the job (which holds the URL) travels over stdin, not argv.
    """

    def __init__(self, wid: int, job: dict[str, Any], raw_dir: Path | None) -> None:
        self.wid = wid
        self.buf = b""
        self.lines: deque[dict[str, Any]] = deque()
        self.done: dict[str, Any] | None = None
        self.ok = 0
        err_path = raw_dir / f"worker-{wid}.stderr" if raw_dir is not None else None
        self._err = open(err_path, "wb") if err_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = spawn(
            [sys.executable, "-m", "sessionctl.bench.builtin_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            env=_worker_env(),
        )
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]
        self.send(job)

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        self.proc.stdin.flush()

    def read(self) -> None:
        """Collect whatever the worker has written so far (never blocks)."""
        assert self.proc.stdout is not None
        while True:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buf += chunk
        *complete, self.buf = self.buf.split(b"\n")
        for line in complete:
            if not line.strip():
                continue
            msg = json.loads(line)
            if "p" in msg:
                self.ok = int(msg["p"])
            else:
                self.lines.append(msg)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        if self.proc.poll() is None:
            stop_tree(self.proc, first_signal=signal.SIGTERM, grace=2.0, term_grace=2.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if not isinstance(self._err, int):
            self._err.close()
            path = Path(self._err.name)
            if path.exists() and path.stat().st_size == 0:
                path.unlink()  # keep only stderr that says something


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    # The worker must import this very sessionctl, wherever it was imported from.
    pkg_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
    return env


def _split(total: int | None, conc: int, per_worker: Sequence[int]) -> list[int | None]:
    if total is None:
        return [None] * len(per_worker)
    out: list[int | None] = []
    left = total
    for i, n in enumerate(per_worker):
        share = left if i == len(per_worker) - 1 else round(total * n / conc)
        out.append(share)
        left -= share
    return out


def _await_ready(workers: list[_Proc], timeout: float, url: str, secrets: list[str]) -> None:
    deadline = time.monotonic() + timeout
    pending = list(workers)
    while pending:
        for w in list(pending):
            w.read()
            if w.lines:
                msg = w.lines.popleft()
                if msg.get("ready"):
                    pending.remove(w)
                    continue
                raise TargetError(
                    f"built-in driver cannot use {redact(url)}: "
                    f"{scrub(str(msg.get('error')), secrets)}"
                )
            if not w.alive():
                w.read()
                if not w.lines:
                    raise MeasurementError(
                        f"built-in driver worker {w.wid} exited with {w.proc.returncode} "
                        "before connecting"
                    )
        if time.monotonic() > deadline:
            raise TargetError(
                f"built-in driver: connecting to {redact(url)} took over {timeout:g}s"
            )
        if pending:
            time.sleep(0.02)


def _poll(
    workers: list[_Proc],
    measure_ns: int,
    end_ns: int,
    progress: ProgressFn | None,
) -> list[dict[str, Any]]:
    """Wait for every worker's tally; meanwhile report live QPS from their progress lines."""
    last_t, last_n = time.monotonic_ns(), 0
    while any(w.done is None for w in workers):
        for w in workers:
            if w.done is not None:
                continue
            w.read()
            while w.lines:
                msg = w.lines.popleft()
                if "error" in msg:
                    raise MeasurementError(f"built-in driver worker {w.wid}: {msg['error']}")
                if "done" in msg:
                    w.done = msg["done"]
            if w.done is None and not w.alive():
                w.read()
                if not any("done" in m for m in w.lines):
                    raise MeasurementError(
                        f"built-in driver worker {w.wid} died (exit code {w.proc.returncode})"
                    )
        now = time.monotonic_ns()
        if now > end_ns + DRAIN_NS + 30 * _NS:
            raise MeasurementError(
                "built-in driver workers did not finish 40s after the window ended"
            )
        if progress is not None and now - last_t >= 200_000_000:
            done = sum(w.ok for w in workers)
            progress(
                max(0.0, (now - measure_ns) / _NS), (done - last_n) * _NS / (now - last_t), done
            )
            last_t, last_n = now, done
        time.sleep(0.05)
    return [w.done for w in workers if w.done is not None]


def _summarize(
    spec: BuiltinSpec,
    results: list[dict[str, Any]],
    measure_ns: int,
    end_ns: int,
    raw_dir: Path | None,
    secrets: list[str],
) -> RunResult:
    hist = LatencyHistogram.merged(LatencyHistogram.from_dict(r["hist"]) for r in results)
    ok = sum(r["ok"] for r in results)
    errors = sum(r["errors"] for r in results)
    rows = sum(r["rows"] for r in results)
    samples: list[str] = []
    for r in results:
        for e in r["error_samples"]:
            e = scrub(e, secrets)
            if e not in samples:
                samples.append(e)
    if spec.duration is not None:
        window_end = end_ns
    else:
        window_end = max((r["last_ns"] for r in results if r["last_ns"]), default=measure_ns)
    seconds = max((window_end - measure_ns) / _NS, 1e-9)
    if ok == 0:
        why = samples[0] if samples else "no query completed inside the measured window"
        raise MeasurementError(f"built-in driver: no successful query ({errors} errors): {why}")
    qps = ok / seconds
    details: dict[str, Any] = {
        "workers": len(results),
        "connections": [r["connections"] for r in results],
        "rows": rows,
        "executed": sum(r["sent"] for r in results),  # incl. warm-up: what metric deltas saw
        "mode": "open" if spec.rate else "closed",
        "warmup": spec.warmup,
        "prepared": all(r["prepared"] for r in results),
        "error_samples": samples[:5],
        "histogram": hist.to_dict(),
    }
    if spec.rate:
        details["rate"] = spec.rate
        details["late"] = sum(
            r["late"] for r in results
        )  # arrivals never sent before the window ended
    result = RunResult(
        driver="builtin",
        concurrency=spec.concurrency,
        duration=seconds,
        qps=qps,
        tps=qps,
        queries=ok + errors,
        errors=errors,
        latency_ms=hist.summary_ms(),
        window=(measure_ns / _NS, window_end / _NS),
        raw_path=str(raw_dir) if raw_dir else None,
        details=details,
    )
    if raw_dir is not None:
        spec_d = asdict(spec)
        spec_d["url"] = redact(spec.url)
        atomic_write_json(
            raw_dir / "builtin.json",
            {"spec": spec_d, "result": result.to_dict(), "workers": results},
        )
    return result
