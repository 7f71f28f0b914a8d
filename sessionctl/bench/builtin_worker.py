"""The built-in driver's worker process: connections, the hot loops, the tallies.

Run as ``python -m sessionctl.bench.builtin_worker`` by :mod:`sessionctl.bench.builtin`; it reads
its job (JSON, one line) on stdin, answers ``{"ready": true}``, waits for ``{"go": [...]}``, runs,
and prints progress lines (``{"p": n}``) and finally ``{"done": tally}`` on stdout. It imports
nothing but the standard library, psycopg's libpq binding and the histogram, so it starts fast.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import random
import select
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sessionctl.bench.latency import N_BUCKETS, SUB_BITS, LatencyHistogram

assert SUB_BITS == 7, "the hot loops below inline bucket_index() for SUB_BITS == 7"

_NS = 1_000_000_000
DRAIN_NS = 10 * _NS  # how long in-flight queries may take to finish after the window
_PICKS = 4096  # precomputed weighted choices, cycled
_LOST, _WAIT, _OK, _FAILED = -1, 0, 1, 2  # what _Worker._reply found on a connection


class WorkerError(Exception):
    """A worker could not do its job (the parent turns the message into a one-line error)."""


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
            cum = list(cumsum(weights))
            self.picks = [bisect.bisect_right(cum, rnd.random() * cum[-1]) for _ in range(_PICKS)]
        self.conns = [self._connect() for _ in range(job["connections"])]
        self.counts = [0] * N_BUCKETS
        self.ok = self.errors = self.rows = self.total_ns = self.late = self.sent = 0
        self.min_ns: int | None = None
        self.max_ns = 0
        self.last_ns = 0
        self.error_samples: list[str] = []

    def _connect(self) -> Any:
        pq = self.pq
        conn = pq.PGconn.connect(self.url)
        if conn.status != pq.ConnStatus.OK:
            raise WorkerError(_msg(conn.error_message) or "connection failed")
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

    def _reply(self, conn: Any) -> int:
        """Read what arrived on ``conn``: ``_LOST`` (the server went away; counted), ``_WAIT``
        (the reply is not complete yet), else ``_OK`` / ``_FAILED`` (its results accounted)."""
        try:
            conn.consume_input()
        except Exception as exc:  # the server went away (libpq raises OperationalError)
            self._error("connection lost: " + _msg(str(exc).encode()))
            return _LOST
        if conn.is_busy():
            return _WAIT
        good = True
        res = conn.get_result()
        while res is not None:
            if not self._finish(res):
                good = False
            if conn.is_busy():
                return _WAIT  # the rest of the reply (ReadyForQuery) is still on its way
            res = conn.get_result()
        return _OK if good else _FAILED

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
            res = (
                conn.exec_prepared(names[i], None, None, 1) if prepared[i] else conn.exec_(sqls[i])
            )
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
        self.sent += k  # every query sent, warm-up and drain included
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
        drain_deadline = end_ns + DRAIN_NS
        while inflight:
            events = ep.poll(0.5)
            t = mono()
            for fd, _ev in events:
                conn = byfd[fd]
                state = self._reply(conn)
                if state == _LOST:  # counted; drop the connection
                    ep.unregister(fd)
                    inflight -= 1
                    continue
                if state == _WAIT:
                    continue
                good = state == _OK
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
        self.sent += k  # every query sent, warm-up and drain included
        self._add(ok, errors, total, mn, mx)

    def open_loop(self, measure_ns: int, end_ns: int, rate: float) -> None:
        """Fixed-rate arrivals; a query waits for a free connection; latency from its due time."""
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
        drain_deadline = end_ns + DRAIN_NS
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
                state = self._reply(conn)
                if state == _LOST:  # counted; drop the connection
                    ep.unregister(fd)
                    del byfd[fd]
                    continue
                if state == _WAIT:
                    continue
                good = state == _OK
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
        self.sent += k  # every query sent, warm-up and drain included
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
            self.counts,
            total_ns=self.total_ns,
            min_ns=self.min_ns,
            max_ns=self.max_ns if self.ok else None,
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
            "sent": self.sent,
            "connections": len(self.conns),
            "prepared": all(self.prepared),
            "error_samples": self.error_samples,
        }


def cumsum(xs: Sequence[float]) -> Sequence[float]:
    out, acc = [], 0.0
    for x in xs:
        if x < 0 or math.isnan(x):
            raise WorkerError(f"query weights must be >= 0, got {x}")
        acc += x
        out.append(acc)
    if acc <= 0:
        raise WorkerError("query weights sum to 0")
    return out


def _msg(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())


if __name__ == "__main__":
    _worker_main()
