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

Fillers are never dropped: creating 50k objects takes hours. Probe and filler ``{n}`` is a
plain text substitution (``template.replace("{n}", ...)``), so other braces in SQL survive.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionctl.campaign.model import DdlSpec, MetricSpec
from sessionctl.errors import ConfigError, Interrupted, MeasurementError, TargetError
from sessionctl.reporting import NULL, Reporter

if TYPE_CHECKING:
    import psycopg

    from sessionctl.bench.ddl_report import DdlResult
    from sessionctl.measurement import Measurement

Connect = Callable[[], "psycopg.Connection[Any]"]

_CREATE_RE = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+|UNLOGGED\s+)?"
    r"(MATERIALIZED\s+VIEW|TABLE|VIEW|INDEX|SOURCE|SINK|TYPE|SCHEMA|SEQUENCE|SECRET|CONNECTION)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?(\S*?\{n\}\S*?)(?=[\s(;]|$)",
    re.IGNORECASE,
)
_PREFIX_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_$]*)?\{n\}")

# Default "which names exist" queries: the catalog's object names starting with a prefix.
# LIKE with a backslash escape works unchanged on PostgreSQL and Materialize; names compare
# lower-cased because unquoted identifiers fold to lower case on both.
_NAMES_SQL = {
    "postgres": "SELECT relname FROM pg_catalog.pg_class WHERE lower(relname) LIKE '{like}'",
    "materialize": "SELECT name FROM mz_catalog.mz_objects WHERE lower(name) LIKE '{like}'",
}


def dialect_of(count_sql: str) -> str:
    """Guess the server dialect from the count query: Materialize catalogs start with ``mz_``."""
    return "materialize" if re.search(r"\bmz_\w+", count_sql) else "postgres"


def name_prefix(template: str, *, where: str) -> str:
    """The identifier text right before ``{n}`` (``filler_`` in ``CREATE TABLE filler_{n} ...``)."""
    m = _PREFIX_RE.search(template)
    if m is None:
        raise ConfigError(f"{where}: template {template!r} has no {{n}}; name objects like filler_{{n}}")
    prefix = m.group(1) or ""
    if not prefix:
        raise ConfigError(f"{where}: put a name prefix before {{n}} (e.g. filler_{{n}}) so runs find it")
    return prefix


def default_cleanup(template: str, *, where: str) -> str:
    """``DROP <kind> <name>`` for a ``CREATE <kind> <name>`` template."""
    m = _CREATE_RE.search(template)
    if m is None:
        raise ConfigError(
            f"{where}: cannot derive a DROP for {template!r}; add `cleanup: {{<kind>: DROP ... {{n}}}}`"
        )
    kind = re.sub(r"\s+", " ", m.group(1)).upper()
    return f"DROP {kind} {m.group(2)}"


def fill(template: str, n: int) -> str:
    """Substitute the sequence number into a template."""
    return template.replace("{n}", str(n))


@dataclass(frozen=True)
class ProbeKind:
    """One probe statement kind: how to create a probe object and how to drop it again."""

    kind: str
    create: str
    drop: str
    prefix: str


@dataclass(frozen=True)
class Plan:
    """A validated, defaults-filled DdlSpec."""

    count_sql: str
    names_sql: str | None
    filler: str
    filler_prefix: str
    levels: tuple[int, ...]
    probes: tuple[ProbeKind, ...]
    probes_per_level: int
    batch_size: int
    batch_txn: bool
    txn_batches: tuple[int, ...]
    txn_kinds: tuple[str, ...]
    dialect: str


def plan(spec: DdlSpec, *, where: str = "ddl", levels: Sequence[int] | None = None) -> Plan:
    """Validate ``spec`` (errors name ``where``) and fill in per-dialect defaults."""
    lv = tuple(sorted(set(levels if levels is not None else spec.levels)))
    if not lv or any(x < 0 for x in lv):
        raise ConfigError(f"{where}.levels: give object counts >= 0, e.g. [0, 1000, 10000]")
    if spec.batch_size < 1:
        raise ConfigError(f"{where}.batch_size: must be >= 1")
    if spec.probes_per_level < 1:
        raise ConfigError(f"{where}.probes_per_level: must be >= 1")
    if any(b < 1 for b in spec.txn_batches):
        raise ConfigError(f"{where}.txn_batches: sizes must be >= 1")
    if not spec.probes:
        raise ConfigError(f"{where}.probes: add at least one, e.g. {{table: CREATE TABLE probe_{{n}} (a int)}}")
    unknown = set(spec.cleanup) - set(spec.probes)
    if unknown:
        raise ConfigError(f"{where}.cleanup: no probe kind {sorted(unknown)[0]!r} (have: {', '.join(spec.probes)})")
    filler_prefix = spec.filler_prefix or name_prefix(spec.filler, where=f"{where}.filler")
    if "{n}" not in spec.filler:
        raise ConfigError(f"{where}.filler: template has no {{n}}; use e.g. CREATE TABLE filler_{{n}} (a int)")
    kinds: list[ProbeKind] = []
    for kind, tmpl in spec.probes.items():
        kw = f"{where}.probes.{kind}"
        prefix = name_prefix(tmpl, where=kw)
        if prefix == filler_prefix or prefix.startswith(filler_prefix) or filler_prefix.startswith(prefix):
            # Overlapping prefixes would let probe cleanup touch fillers (or resume skip probes).
            raise ConfigError(f"{kw}: name prefix {prefix!r} overlaps the filler prefix {filler_prefix!r}")
        drop = spec.cleanup.get(kind) or default_cleanup(tmpl, where=kw)
        if "{n}" not in drop:
            raise ConfigError(f"{where}.cleanup.{kind}: template has no {{n}}")
        kinds.append(ProbeKind(kind=kind, create=tmpl, drop=drop, prefix=prefix))
    for i, a in enumerate(kinds):
        for b in kinds[i + 1 :]:
            if a.prefix == b.prefix:
                raise ConfigError(f"{where}.probes: kinds {a.kind!r} and {b.kind!r} share the prefix {a.prefix!r}")
    txn_kinds = spec.txn_kinds or (kinds[0].kind,)
    for k in txn_kinds:
        if k not in spec.probes:
            raise ConfigError(f"{where}.txn_kinds: no probe kind {k!r} (have: {', '.join(spec.probes)})")
    return Plan(
        count_sql=spec.count_sql,
        names_sql=spec.names_sql,
        filler=spec.filler,
        filler_prefix=filler_prefix,
        levels=lv,
        probes=tuple(kinds),
        probes_per_level=spec.probes_per_level,
        batch_size=spec.batch_size,
        batch_txn=spec.batch_txn,
        txn_batches=tuple(spec.txn_batches),
        txn_kinds=tuple(txn_kinds),
        dialect=dialect_of(spec.count_sql),
    )


# --- catalog queries ------------------------------------------------------------------------


def _sql_error(what: str, sql: str, exc: Exception) -> TargetError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TargetError(f"{what} failed: {msg} (statement: {sql[:120]})")


def count_objects(conn: psycopg.Connection[Any], p: Plan) -> int:
    """Run the count query; it must return one integer."""
    import psycopg

    try:
        row = conn.execute(p.count_sql).fetchone()
    except psycopg.Error as exc:
        raise _sql_error("ddl.count_sql", p.count_sql, exc) from None
    if row is None or not isinstance(row[0], int):
        raise MeasurementError(f"ddl.count_sql: expected one integer, got {row!r}; fix the query")
    return int(row[0])


def _like(prefix: str) -> str:
    escaped = prefix.lower().replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    return (escaped + "%").replace("'", "''")


def numbers_in_use(conn: psycopg.Connection[Any], p: Plan, prefix: str) -> list[int]:
    """The ``{n}`` of every existing object named ``<prefix><n>`` (sorted)."""
    import psycopg

    sql = p.names_sql or _NAMES_SQL[p.dialect].format(like=_like(prefix))
    try:
        rows = conn.execute(sql).fetchall()
    except psycopg.Error as exc:
        raise _sql_error("ddl.names_sql", sql, exc) from None
    pat = re.compile(re.escape(prefix) + r"([0-9]+)$", re.IGNORECASE)
    out = []
    for (name, *_rest) in rows:
        m = pat.match(str(name))
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def connector(url: str) -> Connect:
    """A connection factory for ``url`` (autocommit; errors never show the password)."""

    def connect() -> psycopg.Connection[Any]:
        import psycopg

        from sessionctl.target import redact, scrub, secrets_of

        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise TargetError(
                f"cannot connect to the target at {redact(url)}: {scrub(first, secrets_of(url))}"
            ) from None

    return connect


# --- growth ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Growth:
    """What one ``grow`` call did."""

    level: int
    start_count: int
    end_count: int
    created: int
    seconds: float
    first_n: int
    batches: int

    @property
    def seconds_per_1k(self) -> float | None:
        return self.seconds / self.created * 1000 if self.created else None


def grow(
    *,
    connect: Connect,
    plan: Plan,
    level: int,
    reporter: Reporter = NULL,
    next_n: int | None = None,
) -> Growth:
    """Create filler objects until ``count_sql`` reaches ``level``; resumable after any kill."""
    import psycopg

    with contextlib.closing(connect()) as conn:
        conn.autocommit = True
        start = count_objects(conn, plan)
        if start >= level:
            return Growth(level, start, start, 0, 0.0, next_n or 0, 0)
        if next_n is None:
            used = numbers_in_use(conn, plan, plan.filler_prefix)
            next_n = (used[-1] + 1) if used else 1
        first_n = next_n
        current, created, batches = start, 0, 0
        per_filler = 1.0  # objects counted per filler statement, learned as we go (toast, indexes)
        t0 = time.perf_counter()
        with reporter.task(f"growing to {level:,} objects", total=level - start) as task:
            try:
                while current < level:
                    size = min(plan.batch_size, max(1, math.ceil((level - current) / per_filler)))
                    stmts = [fill(plan.filler, next_n + i) for i in range(size)]
                    _run_batch(conn, stmts, txn=plan.batch_txn)
                    next_n += size
                    created += size
                    batches += 1
                    current = count_objects(conn, plan)
                    per_filler = max((current - start) / created, 1e-3)
                    elapsed = time.perf_counter() - t0
                    task.update(completed=current - start, objects=current, rate=created / elapsed)
            except KeyboardInterrupt:
                raise Interrupted(
                    f"growth interrupted at {current:,} objects ({created:,} fillers committed; "
                    "the open batch rolled back); rerun to continue from there"
                ) from None
            except psycopg.Error as exc:
                raise _sql_error(f"growing to {level:,} objects at filler {next_n}", plan.filler, exc) from None
        return Growth(level, start, current, created, time.perf_counter() - t0, first_n, batches)


def _run_batch(conn: psycopg.Connection[Any], stmts: Sequence[str], *, txn: bool) -> None:
    if not txn:
        for s in stmts:
            conn.execute(s)
        return
    # One transaction per batch: a kill mid-batch rolls all of it back, so resume never
    # finds half a batch (and never needs to know which statements ran).
    with conn.transaction():
        for s in stmts:
            conn.execute(s)


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

    def snapshot(self) -> Any:
        """A filtered scrape (only the watched families are parsed), or None."""
        if not self.enabled:
            return None
        from sessionctl import metrics
        from sessionctl.errors import SessionctlError

        assert self.url is not None
        families = {s.name for s in self.specs} | {f"{s.name}_total" for s in self.specs if s.kind == "counter"}
        try:
            return metrics.scrape(self.url, families=families)
        except SessionctlError as exc:
            # A metrics endpoint going away must not throw away the latencies measured so far.
            self.failed = f"metrics scrape failed ({exc}); the report has wall-clock times only"
            return None

    def delta(self, before: Any, after: Any, statements: int, label: str) -> tuple[dict[str, Any], ...]:
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


@dataclass(frozen=True)
class ProbeRun:
    """Timed probes of one kind at one level."""

    level: int
    count: int  # object count right before the probes
    kind: str
    ms: tuple[float, ...]
    warmup_ms: float
    drop_ms: tuple[float, ...] = ()
    metrics: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class TxnRun:
    """One transaction of ``size`` probe statements."""

    level: int
    count: int
    kind: str
    size: int
    total_ms: float
    stmt_ms: tuple[float, ...]
    commit_ms: float
    metrics: tuple[dict[str, Any], ...] = ()

    @property
    def per_stmt_ms(self) -> float:
        return self.total_ms / self.size


def _timed(conn: psycopg.Connection[Any], sql: str) -> float:
    t0 = time.perf_counter()
    conn.execute(sql)
    return (time.perf_counter() - t0) * 1000.0


@dataclass
class _Probes:
    """Probe objects created in this run and not dropped yet (the only things we may drop)."""

    connect: Connect
    keep: bool
    reporter: Reporter
    live: list[tuple[ProbeKind, int]] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    def add(self, kind: ProbeKind, n: int) -> None:
        self.live.append((kind, n))

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
                    self.reporter.warn(f"probe cleanup failed: {sql}: {str(exc).strip().splitlines()[0]}")
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
    next_n: Iterator[int],
    window: MetricWindow,
    tracker: _Probes,
) -> ProbeRun:
    """Warm up once, then time ``probes`` statements of one kind with metrics around them."""
    n = next(next_n)
    warm = _timed(conn, fill(kind.create, n))
    tracker.add(kind, n)
    before = window.snapshot()
    times: list[float] = []
    for _ in range(probes):
        n = next(next_n)
        times.append(_timed(conn, fill(kind.create, n)))
        tracker.add(kind, n)
    after = window.snapshot()
    rows = window.delta(before, after, probes, f"{kind.kind}-n{level}")
    drops = tracker.drop_all(conn)
    return ProbeRun(level, count, kind.kind, tuple(times), warm, tuple(drops), rows)


def txn_batch(
    conn: psycopg.Connection[Any],
    kind: ProbeKind,
    *,
    level: int,
    count: int,
    size: int,
    next_n: Iterator[int],
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
            n = next(next_n)
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
    import psycopg

    from sessionctl.bench.ddl_report import DdlResult

    if connect is None:
        if not url:
            raise ConfigError("target.sql_url: missing; the ddl driver needs a SQL connection URL")
        connect = connector(url)
    p = plan(spec, where=where, levels=levels)
    window = MetricWindow(metrics_url, metric_specs, run_dir)
    tracker = _Probes(connect=connect, keep=keep_probes, reporter=reporter)
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
    probe_numbers = _counter((max(used) + 1) if used else 1)
    try:
        for level in p.levels:
            reporter.phase(f"level {level:,} objects")
            g = grow(connect=connect, plan=p, level=level, reporter=reporter, next_n=next_filler)
            next_filler = g.first_n + g.created
            growths.append(g)
            if g.created:
                reporter.info(
                    f"created {g.created:,} fillers in {g.seconds:.1f}s "
                    f"({g.seconds_per_1k or 0:.2f}s per 1k); now {g.end_count:,} objects"
                )
            elif g.start_count > level:
                reporter.info(f"already {g.start_count:,} objects (>= {level:,}); measuring there")
            with contextlib.closing(connect()) as pconn:
                pconn.autocommit = True
                count = count_objects(pconn, p)
                for kind in p.probes:
                    with reporter.task(f"probing {kind.kind} at {count:,} objects", total=p.probes_per_level + 1):
                        run = probe_kind(
                            pconn, kind, level=level, count=count, probes=p.probes_per_level,
                            next_n=probe_numbers, window=window, tracker=tracker,
                        )  # fmt: skip
                    runs.append(run)
                    reporter.info(_probe_line(run))
                if level == p.levels[-1]:
                    for kind in (k for k in p.probes if k.kind in p.txn_kinds):
                        for size in p.txn_batches:
                            t = txn_batch(
                                pconn, kind, level=level, count=count, size=size,
                                next_n=probe_numbers, window=window, tracker=tracker,
                            )  # fmt: skip
                            txns.append(t)
                            reporter.info(
                                f"txn of {size} x {kind.kind}: {t.per_stmt_ms:.2f} ms/statement "
                                f"(commit {t.commit_ms:.2f} ms)"
                            )
        with contextlib.closing(connect()) as conn:
            final = count_objects(conn, p)
    except KeyboardInterrupt:
        raise Interrupted("ddl run interrupted; its probe objects were dropped, fillers kept") from None
    except psycopg.Error as exc:
        raise _sql_error("ddl probe", "probe statements", exc) from None
    finally:
        # Runs on every exit: the probes this run created are the only objects it may drop.
        tracker.drop_all()
    for note in ([window.failed] if window.failed else []) + window.notes:
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
        metrics_note="; ".join(([window.failed] if window.failed else []) + window.notes) or None,
    )
    if run_dir is not None:
        from sessionctl.files import atomic_write_json

        atomic_write_json(Path(run_dir) / "ddl.json", result.to_dict())
    return result


def _counter(start: int) -> Iterator[int]:
    n = start
    while True:
        yield n
        n += 1


def _probe_line(run: ProbeRun) -> str:
    from sessionctl.bench.ddl_report import stats

    s = stats(run.ms)
    return (
        f"{run.kind} at {run.count:,} objects: median {s.median:.2f} ms, p90 {s.p90:.2f} ms, "
        f"max {s.max:.2f} ms ({len(run.ms)} probes)"
    )


def run_ddl(ctx: Any) -> Measurement:
    """The runner's entry point for ``driver: ddl``: run, record nothing, return the Measurement."""
    from sessionctl.bench.ddl_report import to_measurement

    bench = ctx.bench
    if bench.ddl is None:
        raise ConfigError(f"prompts/{ctx.campaign.name}.yaml: benchmarks.{bench.name}: driver ddl needs `ddl:`")
    target = ctx.target
    options = getattr(ctx, "options", None) or {}
    result = run_ddl_core(
        url=getattr(target, "sql_url", None),
        spec=bench.ddl,
        metrics_url=getattr(target, "metrics_url", None),
        metric_specs=ctx.campaign.metrics,
        reporter=ctx.reporter,
        run_dir=Path(ctx.run_dir) if getattr(ctx, "run_dir", None) else None,
        keep_probes=bool(options.get("keep_probes", False)),
        connect=(lambda: target.connect(system=False)) if hasattr(target, "connect") else None,
        levels=options.get("levels"),
        where=f"prompts/{ctx.campaign.name}.yaml: benchmarks.{bench.name}.ddl",
    )
    return to_measurement(result, name=bench.name, phase=ctx.phase, raw_dir=getattr(ctx, "raw_dir", None))
