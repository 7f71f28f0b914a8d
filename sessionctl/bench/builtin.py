"""The built-in driver: N connections issuing a query (or a weighted mix) as fast as the server answers.

Why it looks the way it does: a Python client on the same 2 cores as the server must not become
the bottleneck, so the hot loop avoids everything that allocates per query beyond necessity.

* Worker **processes** (``python -m sessionctl.bench.builtin``), one per core by default, each
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

import bisect
import contextlib
import json
import math
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sessionctl.bench.latency import N_BUCKETS, SUB_BITS, LatencyHistogram
from sessionctl.bench.results import RunResult
from sessionctl.errors import MeasurementError, TargetError
from sessionctl.files import atomic_write_json
from sessionctl.process import spawn, stop_tree
from sessionctl.target import redact, scrub, secrets_of

assert SUB_BITS == 7, "the hot loops below inline bucket_index() for SUB_BITS == 7"

_NS = 1_000_000_000
_DRAIN_NS = 10 * _NS  # how long in-flight queries may take to finish after the window
_PICKS = 4096  # precomputed weighted choices, cycled


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
    """One worker process (``python -m sessionctl.bench.builtin``), JSON lines both ways.

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
            [sys.executable, "-m", "sessionctl.bench.builtin"],
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
                    f"built-in driver cannot use {redact(url)}: {scrub(str(msg.get('error')), secrets)}"
                )
            if not w.alive():
                w.read()
                if not w.lines:
                    raise MeasurementError(
                        f"built-in driver worker {w.wid} exited with {w.proc.returncode} before connecting"
                    )
        if time.monotonic() > deadline:
            raise TargetError(f"built-in driver: connecting to {redact(url)} took over {timeout:g}s")
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
        if now > end_ns + _DRAIN_NS + 30 * _NS:
            raise MeasurementError("built-in driver workers did not finish 40s after the window ended")
        if progress is not None and now - last_t >= 200_000_000:
            done = sum(w.ok for w in workers)
            progress(max(0.0, (now - measure_ns) / _NS), (done - last_n) * _NS / (now - last_t), done)
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
        "mode": "open" if spec.rate else "closed",
        "warmup": spec.warmup,
        "prepared": all(r["prepared"] for r in results),
        "error_samples": samples[:5],
        "histogram": hist.to_dict(),
    }
    if spec.rate:
        details["rate"] = spec.rate
        details["late"] = sum(r["late"] for r in results)  # arrivals never sent before the window ended
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
        atomic_write_json(raw_dir / "builtin.json", {"spec": spec_d, "result": result.to_dict(), "workers": results})
    return result


# --- worker process -------------------------------------------------------------------------


def _worker_main() -> None:
    """Worker process: read the job, connect, say ready, wait for go, run, print the tally."""
    out = sys.stdout

    def say(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        job = json.loads(sys.stdin.readline())
        state = _Worker(job, say)
        say({"ready": True})
        line = sys.stdin.readline()
        if not line:
            return
        start_ns, measure_ns, end_ns = json.loads(line)["go"]
        delay = (start_ns - time.monotonic_ns()) / _NS
        if delay > 0:
            time.sleep(delay)
        if job["rate"]:
            state.open_loop(measure_ns, end_ns, job["rate"])
        elif len(state.conns) == 1:
            state.closed_loop_single(measure_ns, end_ns, job["count"])
        else:
            state.closed_loop(measure_ns, end_ns, job["count"])
        say({"done": state.tally()})
    except KeyboardInterrupt:
        return
    except Exception as exc:
        with contextlib.suppress(OSError, ValueError):
            say({"error": f"{type(exc).__name__}: {exc}"})


class _Worker:
    """A worker's connections, prepared statements and tallies."""

    def __init__(self, job: dict[str, Any], say: Callable[[dict[str, Any]], None]) -> None:
        from psycopg import pq

        self.pq = pq
        self.say = say
        self.url = job["url"].encode()
        sqls = [q for q, _ in job["queries"]]
        weights = [float(w) for _, w in job["queries"]]
        self.sqls = [s.encode() for s in sqls]
        self.names = [f"sessionctl_q{i}".encode() for i in range(len(sqls))]
        self.prepared = [bool(job["prepare"])] * len(sqls)
        rnd = random.Random(job["seed"])
        if len(sqls) == 1:
            self.picks = [0]
        else:
            cum = list(_cumsum(weights))
            self.picks = [bisect.bisect_right(cum, rnd.random() * cum[-1]) for _ in range(_PICKS)]
        self.conns = [self._connect() for _ in range(job["connections"])]
        self.counts = [0] * N_BUCKETS
        self.ok = self.errors = self.rows = self.total_ns = self.late = 0
        self.min_ns: int | None = None
        self.max_ns = 0
        self.last_ns = 0
        self.error_samples: list[str] = []

    def _connect(self) -> Any:
        pq = self.pq
        conn = pq.PGconn.connect(self.url)
        if conn.status != pq.ConnStatus.OK:
            raise TargetError(_msg(conn.error_message) or "connection failed")
        for i, sql in enumerate(self.sqls):
            if not self.prepared[i]:
                continue
            res = conn.prepare(self.names[i], sql)
            if res.status != pq.ExecStatus.COMMAND_OK:
                # e.g. several commands in one string: keep using the simple protocol for it
                self.prepared[i] = False
        return conn

    def _send(self, conn: Any, i: int) -> None:
        if self.prepared[i]:
            conn.send_query_prepared(self.names[i], None, None, 1)
        else:
            conn.send_query(self.sqls[i])

    def _finish(self, res: Any) -> bool:
        """Account one result; True when it is a success."""
        st = res.status
        if st == 2 or st == 1 or st == 0:  # TUPLES_OK, COMMAND_OK, EMPTY_QUERY
            self.rows += res.ntuples
            return True
        if len(self.error_samples) < 5:
            m = _msg(res.error_message)
            if m not in self.error_samples:
                self.error_samples.append(m)
        return False

    def _sample(self, text: str) -> None:
        if len(self.error_samples) < 5 and text not in self.error_samples:
            self.error_samples.append(text)

    def _error(self, text: str) -> None:
        self.errors += 1
        self._sample(text)

    def closed_loop_single(self, measure_ns: int, end_ns: int, count: int | None) -> None:
        """One connection: blocking round trips (cheaper than epoll for a single socket)."""
        mono = time.monotonic_ns
        conn = self.conns[0]
        counts, picks = self.counts, self.picks
        npicks = len(picks)
        names, sqls, prepared = self.names, self.sqls, self.prepared
        ok = errors = total = rows = 0
        mx, mn = 0, 2**63
        k = 0
        limit = count if count is not None else 2**62
        report = mono() + 100_000_000
        t = mono()
        while t < end_ns and ok + errors < limit:
            i = picks[k % npicks]
            k += 1
            sent = t
            res = conn.exec_prepared(names[i], None, None, 1) if prepared[i] else conn.exec_(sqls[i])
            t = mono()
            if t < measure_ns or t > end_ns:
                continue
            st = res.status
            if st == 2 or st == 1 or st == 0:  # TUPLES_OK, COMMAND_OK, EMPTY_QUERY
                rows += res.ntuples
                v = t - sent
                b = v.bit_length() - 8
                counts[(b << 7) + (v >> b) if b > 0 else v] += 1
                total += v
                if v > mx:
                    mx = v
                if v < mn:
                    mn = v
                ok += 1
                self.last_ns = t
            else:
                self._finish(res)
                errors += 1
                if conn.status != self.pq.ConnStatus.OK:
                    self._sample("connection lost: " + _msg(conn.error_message))
                    conn = self.conns[0] = self._connect()
            if t >= report:
                self.say({"p": ok})
                report = t + 100_000_000
        self.say({"p": ok})
        self.rows += rows
        self._add(ok, errors, total, mn, mx)

    def closed_loop(self, measure_ns: int, end_ns: int, count: int | None) -> None:
        """Several connections, one query in flight on each, multiplexed with epoll."""
        mono = time.monotonic_ns
        ep = select.epoll()
        byfd: dict[int, Any] = {}
        sent: dict[int, int] = {}
        counts, picks = self.counts, self.picks
        npicks = len(picks)
        ok = errors = total = 0
        mx, mn = 0, 2**63
        k = 0
        limit = count if count is not None else 2**62
        issued = 0
        for conn in self.conns:
            fd = conn.socket
            byfd[fd] = conn
            ep.register(fd, select.EPOLLIN)
            sent[fd] = mono()
            self._send(conn, picks[k % npicks])
            k += 1
            issued += 1
        inflight = len(byfd)
        report = mono() + 100_000_000
        drain_deadline = end_ns + _DRAIN_NS
        while inflight:
            events = ep.poll(0.5)
            t = mono()
            for fd, _ev in events:
                conn = byfd[fd]
                try:
                    conn.consume_input()
                except Exception as exc:  # the server went away: count it and drop the connection
                    self._error("connection lost: " + _msg(str(exc).encode()))
                    ep.unregister(fd)
                    inflight -= 1
                    continue
                if conn.is_busy():
                    continue
                good = True
                res = conn.get_result()
                busy = False
                while res is not None:
                    if not self._finish(res):
                        good = False
                    if conn.is_busy():
                        busy = True
                        break
                    res = conn.get_result()
                if busy:
                    continue  # the rest of the reply (ReadyForQuery) is still on its way
                t = mono()
                if measure_ns <= t <= end_ns:
                    if good:
                        v = t - sent[fd]
                        b = v.bit_length() - 8
                        counts[(b << 7) + (v >> b) if b > 0 else v] += 1
                        total += v
                        if v > mx:
                            mx = v
                        if v < mn:
                            mn = v
                        ok += 1
                        self.last_ns = t
                    else:
                        errors += 1
                if not good and conn.status != self.pq.ConnStatus.OK:
                    self._sample("connection lost: " + _msg(conn.error_message))
                    ep.unregister(fd)
                    inflight -= 1
                    continue
                if t < end_ns and issued < limit:
                    sent[fd] = t
                    self._send(conn, picks[k % npicks])
                    k += 1
                    issued += 1
                else:
                    inflight -= 1
                if t >= report:
                    self.say({"p": ok})
                    report = t + 100_000_000
            if t > drain_deadline:
                self._cancel_all()
                break
        self.say({"p": ok})
        ep.close()
        self._add(ok, errors, total, mn, mx)

    def open_loop(self, measure_ns: int, end_ns: int, rate: float) -> None:
        """Fixed-rate arrivals; a query waits for a free connection, its latency counts from its due time."""
        mono = time.monotonic_ns
        ep = select.epoll()
        byfd: dict[int, Any] = {}
        due_of: dict[int, int] = {}
        free: deque[Any] = deque()
        for conn in self.conns:
            byfd[conn.socket] = conn
            ep.register(conn.socket, select.EPOLLIN)
            free.append(conn)
        backlog: deque[int] = deque()
        interval = max(1, int(_NS / rate))
        next_due = mono()
        counts, picks = self.counts, self.picks
        npicks = len(picks)
        ok = errors = total = 0
        mx, mn = 0, 2**63
        k = 0
        report = mono() + 100_000_000
        drain_deadline = end_ns + _DRAIN_NS
        while True:
            t = mono()
            while next_due <= t and next_due < end_ns:
                backlog.append(next_due)
                next_due += interval
            while backlog and free:
                conn = free.popleft()
                due_of[conn.socket] = backlog.popleft()
                self._send(conn, picks[k % npicks])
                k += 1
            if next_due >= end_ns and len(free) == len(byfd):
                break
            if t > drain_deadline:
                self._cancel_all()
                break
            wait = max(0.0, (next_due - t) / _NS) if next_due < end_ns else 0.5
            for fd, _ev in ep.poll(min(wait, 0.5)):
                conn = byfd[fd]
                try:
                    conn.consume_input()
                except Exception as exc:
                    self._error("connection lost: " + _msg(str(exc).encode()))
                    ep.unregister(fd)
                    del byfd[fd]
                    continue
                if conn.is_busy():
                    continue
                good = True
                busy = False
                res = conn.get_result()
                while res is not None:
                    if not self._finish(res):
                        good = False
                    if conn.is_busy():
                        busy = True
                        break
                    res = conn.get_result()
                if busy:
                    continue
                t = mono()
                due = due_of.pop(fd)
                if measure_ns <= due and t <= end_ns:
                    if good:
                        v = t - due
                        b = v.bit_length() - 8
                        counts[(b << 7) + (v >> b) if b > 0 else v] += 1
                        total += v
                        if v > mx:
                            mx = v
                        if v < mn:
                            mn = v
                        ok += 1
                        self.last_ns = t
                    else:
                        errors += 1
                free.append(conn)
                if t >= report:
                    self.say({"p": ok})
                    report = t + 100_000_000
            if not byfd:
                break
        self.late = len(backlog)
        self.say({"p": ok})
        ep.close()
        self._add(ok, errors, total, mn, mx)

    def _cancel_all(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(Exception):
                if conn.is_busy():
                    conn.get_cancel().cancel()

    def _add(self, ok: int, errors: int, total: int, mn: int, mx: int) -> None:
        self.ok += ok
        self.errors += errors
        self.total_ns += total
        if ok:
            self.min_ns = mn if self.min_ns is None else min(self.min_ns, mn)
            self.max_ns = max(self.max_ns, mx)

    def tally(self) -> dict[str, Any]:
        hist = LatencyHistogram.from_counts(
            self.counts, total_ns=self.total_ns, min_ns=self.min_ns, max_ns=self.max_ns if self.ok else None
        )
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.finish()
        return {
            "ok": self.ok,
            "errors": self.errors,
            "rows": self.rows,
            "hist": hist.to_dict(),
            "last_ns": self.last_ns,
            "late": self.late,
            "connections": len(self.conns),
            "prepared": all(self.prepared),
            "error_samples": self.error_samples,
        }


def _cumsum(xs: Sequence[float]) -> Sequence[float]:
    out, acc = [], 0.0
    for x in xs:
        if x < 0 or math.isnan(x):
            raise MeasurementError(f"query weights must be >= 0, got {x}")
        acc += x
        out.append(acc)
    if acc <= 0:
        raise MeasurementError("query weights sum to 0")
    return out


def _msg(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())


if __name__ == "__main__":
    _worker_main()
