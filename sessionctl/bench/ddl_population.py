"""The DDL benchmark's object population: the validated spec, catalog queries, resumable growth.

Growth is resumable by construction: the next filler number comes from the catalog (the highest
existing ``<prefix><n>`` name + 1), and each batch of ``batch_size`` statements is one
transaction, so a batch killed midway rolls back as a whole and a rerun continues with no
duplicates and no errors. Fillers are never dropped. ``{n}`` is a plain text substitution
(``template.replace("{n}", ...)``), so other braces in SQL survive.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sessionctl.campaign.model import DdlSpec
from sessionctl.errors import ConfigError, Interrupted, MeasurementError, TargetError
from sessionctl.reporting import NULL, Reporter

if TYPE_CHECKING:
    import psycopg

Connect = Callable[[], "psycopg.Connection[Any]"]

_CREATE_RE = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+|UNLOGGED\s+)?"
    r"(MATERIALIZED\s+VIEW|TABLE|VIEW|INDEX|SOURCE|SINK|TYPE|SCHEMA|SEQUENCE|SECRET|CONNECTION)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?(\S*?\{n\}\S*?)(?=[\s(;]|$)",
    re.IGNORECASE,
)
_PREFIX_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_$]*)?\{n\}")

# Default "which names exist" queries: the catalog's object names starting with a prefix. Names
# compare lower-cased because unquoted identifiers fold to lower case on both dialects.
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
        raise ConfigError(
            f"{where}: template {template!r} has no {{n}}; name objects like filler_{{n}}"
        )
    prefix = m.group(1) or ""
    if not prefix:
        raise ConfigError(
            f"{where}: put a name prefix before {{n}} (e.g. filler_{{n}}) so runs find it"
        )
    return prefix


def default_cleanup(template: str, *, where: str) -> str:
    """``DROP <kind> <name>`` for a ``CREATE <kind> <name>`` template."""
    m = _CREATE_RE.search(template)
    if m is None:
        raise ConfigError(
            f"{where}: cannot derive a DROP for {template!r}; "
            "add `cleanup: {<kind>: DROP ... {n}}`"
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
        raise ConfigError(
            f"{where}.probes: add at least one, e.g. {{table: CREATE TABLE probe_{{n}} (a int)}}"
        )
    unknown = set(spec.cleanup) - set(spec.probes)
    if unknown:
        raise ConfigError(
            f"{where}.cleanup: no probe kind {sorted(unknown)[0]!r} "
            f"(have: {', '.join(spec.probes)})"
        )
    filler_prefix = spec.filler_prefix or name_prefix(spec.filler, where=f"{where}.filler")
    if "{n}" not in spec.filler:
        raise ConfigError(
            f"{where}.filler: template has no {{n}}; use e.g. CREATE TABLE filler_{{n}} (a int)"
        )
    kinds: list[ProbeKind] = []
    for kind, tmpl in spec.probes.items():
        kw = f"{where}.probes.{kind}"
        prefix = name_prefix(tmpl, where=kw)
        if (
            prefix == filler_prefix
            or prefix.startswith(filler_prefix)
            or filler_prefix.startswith(prefix)
        ):
            # Overlapping prefixes would let probe cleanup touch fillers (or resume skip probes).
            raise ConfigError(
                f"{kw}: name prefix {prefix!r} overlaps the filler prefix {filler_prefix!r}"
            )
        drop = spec.cleanup.get(kind) or default_cleanup(tmpl, where=kw)
        if "{n}" not in drop:
            raise ConfigError(f"{where}.cleanup.{kind}: template has no {{n}}")
        kinds.append(ProbeKind(kind=kind, create=tmpl, drop=drop, prefix=prefix))
    for i, a in enumerate(kinds):
        for b in kinds[i + 1 :]:
            if a.prefix == b.prefix:
                raise ConfigError(
                    f"{where}.probes: kinds {a.kind!r} and {b.kind!r} share the prefix {a.prefix!r}"
                )
    txn_kinds = spec.txn_kinds or (kinds[0].kind,)
    for k in txn_kinds:
        if k not in spec.probes:
            raise ConfigError(
                f"{where}.txn_kinds: no probe kind {k!r} (have: {', '.join(spec.probes)})"
            )
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


def sql_error(what: str, sql: str, exc: Exception) -> TargetError:
    """One line for a failed statement: what we were doing, the server's message, the SQL."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TargetError(f"{what} failed: {msg} (statement: {sql[:120]})")


def count_objects(conn: psycopg.Connection[Any], p: Plan) -> int:
    """Run the count query; it must return one integer."""
    import psycopg

    try:
        row = conn.execute(p.count_sql).fetchone()
    except psycopg.Error as exc:
        raise sql_error("ddl.count_sql", p.count_sql, exc) from None
    if row is None or not isinstance(row[0], int):
        raise MeasurementError(f"ddl.count_sql: expected one integer, got {row!r}; fix the query")
    return int(row[0])


def _like(prefix: str) -> str:
    # Only a coarse filter (``_`` matches any character): the exact match is the regex below.
    # Characters that would need escaping become ``_``, so no dialect's escape rules matter.
    return "".join("_" if ch in "\\'%" else ch for ch in prefix.lower()) + "%"


def numbers_in_use(conn: psycopg.Connection[Any], p: Plan, prefix: str) -> list[int]:
    """The ``{n}`` of every existing object named ``<prefix><n>`` (sorted)."""
    import psycopg

    sql = p.names_sql or _NAMES_SQL[p.dialect].format(like=_like(prefix))
    try:
        rows = conn.execute(sql).fetchall()
    except psycopg.Error as exc:
        raise sql_error("ddl.names_sql", sql, exc) from None
    pat = re.compile(re.escape(prefix) + r"([0-9]+)$", re.IGNORECASE)
    out = []
    for name, *_rest in rows:
        m = pat.match(str(name))
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def connector(url: str) -> Connect:
    """A connection factory for ``url`` (autocommit; errors never show the password)."""

    def connect() -> psycopg.Connection[Any]:
        import psycopg

        from sessionctl.target.server import redact, scrub, secrets_of

        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            first = next(
                (ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__
            )
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
                    before, current = current, count_objects(conn, plan)
                    if current <= before:
                        # Growing would never reach the level: stop instead of looping forever.
                        raise MeasurementError(
                            f"ddl.count_sql stayed at {current:,} after {size} more fillers "
                            f"({plan.filler_prefix}{next_n - 1} exists); make count_sql "
                            "count the filler objects (same schema / object kind)"
                        )
                    per_filler = (current - start) / created
                    elapsed = time.perf_counter() - t0
                    task.update(completed=current - start, objects=current, rate=created / elapsed)
            except KeyboardInterrupt:
                lost = "the open batch rolled back" if plan.batch_txn else "each statement commits"
                raise Interrupted(
                    f"growth interrupted at {current:,} objects ({created:,} fillers done; "
                    f"{lost}); rerun to continue from there"
                ) from None
            except psycopg.Error as exc:
                raise sql_error(
                    f"growing to {level:,} objects at filler {next_n}", plan.filler, exc
                ) from None
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
