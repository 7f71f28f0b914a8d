"""The ``ddl`` driver: per-statement DDL latency as the object count grows.

One run, against a server whose state is reused across runs, builds and sessions:

1. count the objects (``count_sql``) and report it;
2. for each level (ascending), grow the filler population up to it in batches of
   ``batch_size`` statements per transaction. Growth is resumable by construction: the next
   filler number comes from the catalog (the highest existing ``<prefix><n>`` name + 1), and a
   batch killed midway rolls back as a whole, so a rerun continues with no duplicates;
3. time each probe statement individually (``perf_counter`` around one autocommitted
   execute, on a connection opened beforehand), after one discarded warm-up probe, with the
   campaign's metrics scraped around the timed probes so histogram deltas divide per statement;
4. at the highest level, run the first probe kind inside transactions of B statements
   (``txn_batches``) to see whether the per-statement cost grows with B;
5. drop the probe objects it created (never anything else), unless asked to keep them.

Fillers are never dropped: creating 50k objects takes hours. The spec, catalog queries and
growth live in :mod:`sessionctl.bench.ddl_population`; the report in
:mod:`sessionctl.bench.ddl_report`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionctl.bench.ddl_population import (
    Connect,
    Growth,
    Plan,
    ProbeKind,
    connector,
    count_objects,
    fill,
    grow,
    numbers_in_use,
    plan,
    sql_error,
)
from sessionctl.bench.ddl_report import ProbeRun, TxnRun
from sessionctl.campaign.model import DdlSpec, MetricSpec
from sessionctl.errors import ConfigError, Interrupted, TargetError
from sessionctl.reporting import NULL, Reporter

if TYPE_CHECKING:
    import psycopg

    from sessionctl.bench import BenchContext
    from sessionctl.bench.ddl_report import DdlResult
    from sessionctl.campaign.model import Benchmark
    from sessionctl.measurement import Measurement

# --- probes ---------------------------------------------------------------------------------


class MetricWindow:
    """Scrapes the campaign's metric families around a group of statements (no-op without a URL)."""

    def __init__(self, url: str | None, specs: Sequence[MetricSpec], raw_dir: Path | None) -> None:
        self.url = url
        self.specs = tuple(s for s in specs if s.kind in ("histogram", "counter"))
        self.raw_dir = raw_dir
        self.failed: str | None = None
        self.notes: list[str] = []

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.specs) and self.failed is None

    @property
    def messages(self) -> list[str]:
        """What the report should say about the metrics: a failed scrape, then the notes."""
        return ([self.failed] if self.failed else []) + self.notes

    def snapshot(self) -> Any:
        """A filtered scrape (only the watched families are parsed), or None."""
        if not self.enabled:
            return None
        from sessionctl import metrics
        from sessionctl.errors import SessionctlError

        assert self.url is not None
        families = {s.name for s in self.specs} | {
            f"{s.name}_total" for s in self.specs if s.kind == "counter"
        }
        try:
            return metrics.scrape(self.url, families=families)
        except SessionctlError as exc:
            # A metrics endpoint going away must not throw away the latencies measured so far.
            self.failed = f"metrics scrape failed ({exc}); the report has wall-clock times only"
            return None

    def delta(
        self, before: Any, after: Any, statements: int, label: str
    ) -> tuple[dict[str, Any], ...]:
        """Per-statement rows of the deltas between two snapshots (raw delta saved as JSON)."""
        if before is None or after is None or statements <= 0:
            return ()
        from sessionctl import metrics
        from sessionctl.bench.ddl_report import per_statement

        delta = metrics.diff(before, after)
        for w in delta.warnings:
            if w not in self.notes:
                self.notes.append(w)
        if self.raw_dir is not None:
            from sessionctl.files import atomic_write_json

            atomic_write_json(self.raw_dir / f"metrics-{label}.json", delta.to_dict())
        return tuple(per_statement(delta, self.specs, statements))


def _timed(conn: psycopg.Connection[Any], sql: str) -> float:
    t0 = time.perf_counter()
    conn.execute(sql)
    return (time.perf_counter() - t0) * 1000.0


@dataclass
class _Probes:
    """Probe numbers drawn in this run, and the probe objects not dropped yet.

    Numbers start above every existing probe name, so everything named with a number from
    ``first_n`` to ``last_n`` was created by this run: the only objects it may drop.
    """

    connect: Connect
    plan: Plan
    keep: bool
    reporter: Reporter
    first_n: int
    last_n: int = 0
    live: list[tuple[ProbeKind, int]] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    def number(self) -> int:
        """The next unused probe number."""
        self.last_n = max(self.last_n + 1, self.first_n)
        return self.last_n

    def add(self, kind: ProbeKind, n: int) -> None:
        self.live.append((kind, n))

    def _remaining(self) -> list[tuple[ProbeKind, int]]:
        with contextlib.closing(self.connect()) as conn:
            conn.autocommit = True
            return [
                (kind, n)
                for kind in self.plan.probes
                for n in numbers_in_use(conn, self.plan, kind.prefix)
                if self.first_n <= n <= self.last_n
            ]

    def sweep(self) -> None:
        """Check the catalog for this run's probes (an interrupted statement, a DROP template that
        drops nothing); drop them, and report any that stay."""
        import psycopg

        if self.keep or self.last_n < self.first_n:
            return
        try:
            found = self._remaining()
            if found:
                self.live.extend(x for x in found if x not in self.live)
                self.drop_all()
                stuck = self._remaining()
            else:
                stuck = []
        except (psycopg.Error, TargetError) as exc:
            self.reporter.warn(f"could not check for leftover probe objects: {exc}")
            return
        for kind, n in stuck:
            name = f"{kind.prefix}{n}"
            if not any(name in sql for sql in self.leftovers):
                self.leftovers.append(fill(kind.drop, n))
        if stuck:
            self.reporter.warn(
                f"{len(stuck)} probe object(s) of this run are still there after cleanup "
                f"(e.g. {stuck[0][0].prefix}{stuck[0][1]}); check the cleanup templates"
            )

    @contextlib.contextmanager
    def cleanup(self, interrupted: str) -> Iterator[None]:
        """Around the probing: on every exit drop the probes this run created (the only objects
        it may drop); Ctrl-C becomes :class:`Interrupted` (``interrupted``), a SQL error ours."""
        import psycopg

        try:
            yield
        except KeyboardInterrupt:
            raise Interrupted(interrupted) from None
        except psycopg.Error as exc:
            raise sql_error("ddl probe", "probe statements", exc) from None
        finally:
            self.drop_all()
            self.sweep()

    def drop_all(self, conn: psycopg.Connection[Any] | None = None) -> list[float]:
        """Drop what this run created (newest first: a view may depend on an older probe)."""
        import psycopg

        if self.keep or not self.live:
            self.live.clear()
            return []
        times: list[float] = []
        with contextlib.ExitStack() as stack:
            if conn is None or conn.closed or conn.info.transaction_status != 0:
                conn = stack.enter_context(contextlib.closing(self.connect()))
                conn.autocommit = True
            while self.live:
                kind, n = self.live[-1]
                sql = fill(kind.drop, n)
                try:
                    times.append(_timed(conn, sql))
                except psycopg.Error as exc:
                    self.leftovers.append(sql)
                    self.reporter.warn(
                        f"probe cleanup failed: {sql}: {str(exc).strip().splitlines()[0]}"
                    )
                    if conn.info.transaction_status != 0:
                        conn.rollback()
                self.live.pop()
        return times


def probe_kind(
    conn: psycopg.Connection[Any],
    kind: ProbeKind,
    *,
    level: int,
    count: int,
    probes: int,
    window: MetricWindow,
    tracker: _Probes,
    label: str | None = None,
) -> ProbeRun:
    """Warm up once, then time ``probes`` statements of one kind with metrics around them."""
    n = tracker.number()
    warm = _timed(conn, fill(kind.create, n))
    tracker.add(kind, n)
    before = window.snapshot()
    times: list[float] = []
    t0 = time.monotonic()
    for _ in range(probes):
        n = tracker.number()
        times.append(_timed(conn, fill(kind.create, n)))
        tracker.add(kind, n)
    t1 = time.monotonic()
    after = window.snapshot()
    rows = window.delta(before, after, probes, label or f"{kind.kind}-n{level}")
    drops = tracker.drop_all(conn)
    return ProbeRun(level, count, kind.kind, tuple(times), warm, tuple(drops), rows, (t0, t1))


def txn_batch(
    conn: psycopg.Connection[Any],
    kind: ProbeKind,
    *,
    level: int,
    count: int,
    size: int,
    window: MetricWindow,
    tracker: _Probes,
) -> TxnRun:
    """Time one ``BEGIN; <size probes>; COMMIT`` and each statement in it."""
    import psycopg

    before = window.snapshot()
    stmt_ms: list[float] = []
    pending: list[int] = []
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    try:
        for _ in range(size):
            n = tracker.number()
            stmt_ms.append(_timed(conn, fill(kind.create, n)))
            pending.append(n)
        commit_ms = _timed(conn, "COMMIT")
    except BaseException:
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")
        raise
    total = (time.perf_counter() - t0) * 1000.0
    after = window.snapshot()
    for n in pending:
        tracker.add(kind, n)
    rows = window.delta(before, after, size, f"{kind.kind}-txn{size}")
    tracker.drop_all(conn)
    return TxnRun(level, count, kind.kind, size, total, tuple(stmt_ms), commit_ms, rows)


# --- the whole run --------------------------------------------------------------------------


def run_ddl_core(
    *,
    url: str | None = None,
    spec: DdlSpec,
    metrics_url: str | None = None,
    metric_specs: Sequence[MetricSpec] = (),
    reporter: Reporter = NULL,
    run_dir: Path | None = None,
    keep_probes: bool = False,
    connect: Connect | None = None,
    levels: Sequence[int] | None = None,
    where: str = "ddl",
) -> DdlResult:
    """Grow to each level, probe there, run the txn batches at the top level; return the data."""

    from sessionctl.bench.ddl_report import DdlResult

    if connect is None:
        if not url:
            raise ConfigError("target.sql_url: missing; the ddl driver needs a SQL connection URL")
        connect = connector(url)
    p = plan(spec, where=where, levels=levels)
    window = MetricWindow(metrics_url, metric_specs, run_dir)
    growths: list[Growth] = []
    runs: list[ProbeRun] = []
    txns: list[TxnRun] = []
    with contextlib.closing(connect()) as conn:
        conn.autocommit = True
        initial = count_objects(conn, p)
        reporter.info(f"object count now: {initial:,} ({p.count_sql})")
        stale = {k.prefix: numbers_in_use(conn, p, k.prefix) for k in p.probes}
        used = [n for ns in stale.values() for n in ns]
        if used:
            example = next(f"{prefix}{ns[0]}" for prefix, ns in stale.items() if ns)
            reporter.warn(
                f"{len(used)} probe object(s) from an earlier run exist (e.g. {example}); "
                "left alone (drop them yourself if they are not wanted)"
            )
        fillers = numbers_in_use(conn, p, p.filler_prefix)
    next_filler = (fillers[-1] + 1) if fillers else 1
    tracker = _Probes(
        connect=connect,
        plan=p,
        keep=keep_probes,
        reporter=reporter,
        first_n=max(used, default=0) + 1,
    )
    with tracker.cleanup("ddl run interrupted; its probe objects were dropped, fillers kept"):
        for level in p.levels:
            reporter.phase(
                f"level {level:,} objects" if level else "level 0: the objects that exist now"
            )
            g = grow(connect=connect, plan=p, level=level, reporter=reporter, next_n=next_filler)
            next_filler = g.first_n + g.created
            growths.append(g)
            if g.created:
                reporter.info(
                    f"created {g.created:,} fillers in {g.seconds:.1f}s "
                    f"({g.seconds_per_1k or 0:.2f}s per 1k); now {g.end_count:,} objects"
                )
            elif g.start_count > level:
                from sessionctl.bench.ddl_report import count_label

                reporter.info(
                    f"already {g.start_count:,} objects (>= {level:,}); measuring there "
                    f"(values keyed @{count_label(g.start_count)}, the count measured)"
                )
            with contextlib.closing(connect()) as pconn:
                pconn.autocommit = True
                count = count_objects(pconn, p)
                for kind in p.probes:
                    with reporter.task(
                        f"probing {kind.kind} at {count:,} objects", total=p.probes_per_level + 1
                    ):
                        run = probe_kind(
                            pconn, kind, level=level, count=count, probes=p.probes_per_level,
                            window=window, tracker=tracker,
                        )  # fmt: skip
                    runs.append(run)
                    reporter.info(_probe_line(run))
                if level == p.levels[-1]:
                    for kind in (k for k in p.probes if k.kind in p.txn_kinds):
                        for size in p.txn_batches:
                            t = txn_batch(
                                pconn, kind, level=level, count=count, size=size,
                                window=window, tracker=tracker,
                            )  # fmt: skip
                            txns.append(t)
                            reporter.info(
                                f"txn of {size} x {kind.kind}: {t.per_stmt_ms:.2f} ms/statement "
                                f"(commit {t.commit_ms:.2f} ms)"
                            )
        with contextlib.closing(connect()) as conn:
            final = count_objects(conn, p)
    for note in window.messages:
        reporter.warn(note)
    result = DdlResult(
        dialect=p.dialect,
        count_sql=p.count_sql,
        initial_count=initial,
        final_count=final,
        levels=p.levels,
        growths=tuple(growths),
        probes=tuple(runs),
        txns=tuple(txns),
        kept_probes=keep_probes,
        leftovers=tuple(tracker.leftovers),
        metrics_note="; ".join(window.messages) or None,
    )
    if run_dir is not None:
        from sessionctl.files import atomic_write_json

        atomic_write_json(Path(run_dir) / "ddl.json", result.to_dict())
    return result


def _probe_line(run: ProbeRun) -> str:
    from sessionctl.bench.ddl_report import stats

    s = stats(run.ms)
    return (
        f"{run.kind} at {run.count:,} objects: median {s.median:.2f} ms, p90 {s.p90:.2f} ms, "
        f"max {s.max:.2f} ms ({len(run.ms)} probes)"
    )


def scope(bench: Benchmark, options: dict[str, Any]) -> str:
    """What one ``bench`` of this driver measures: its object-count levels and probes per level."""
    spec = bench.ddl
    if spec is None:
        return "no `ddl:` mapping"
    levels = sorted(set(int(x) for x in options.get("levels") or spec.levels))
    return (
        f"object counts {', '.join(f'{n:,}' for n in levels)}; "
        f"{spec.probes_per_level} probes per level"
    )


def run_ddl(ctx: BenchContext) -> Measurement:
    """The runner's entry point for ``driver: ddl``: run it, return the Measurement (unrecorded).

    ``ctx.options`` may carry ``levels`` (a list of object counts overriding the campaign's) and
    ``keep_probes`` (leave the probe objects in place).
    """
    from sessionctl.bench.ddl_report import to_measurement

    bench = ctx.bench
    where = f"prompts/{ctx.campaign.name}.yaml: benchmarks.{bench.name}"
    if bench.ddl is None:
        raise ConfigError(f"{where}: driver ddl needs a `ddl:` mapping")
    target = ctx.target
    levels = ctx.options.get("levels")
    result = run_ddl_core(
        spec=bench.ddl,
        metrics_url=target.metrics_url,
        metric_specs=ctx.campaign.metrics,
        reporter=ctx.reporter,
        run_dir=ctx.run_dir,
        keep_probes=bool(ctx.options.get("keep_probes", False)),
        connect=lambda: target.connect(system=False),
        levels=[int(x) for x in levels] if levels else None,
        where=f"{where}.ddl",
    )
    return to_measurement(result, name=bench.name, phase=ctx.phase, raw_dir=ctx.raw_dir)
