"""Benchmark: how long the ddl driver's filler growth takes per 1k objects on local PostgreSQL.

Starts a throwaway PostgreSQL (``EmbeddedPostgres``: fsync off, loopback), or uses ``--url``,
and in two fresh databases of that server creates the same ``--objects`` filler tables
(``CREATE TABLE filler_{n} (a int)``, ``--batch`` statements per transaction):

* ``reference``: a bare psycopg loop, no catalog queries, no progress (the floor);
* ``sessionctl``: :func:`sessionctl.bench.ddl.grow`, in steps of 1k objects, which also counts
  the objects after every batch (what makes resume and exact levels possible).

Prints seconds per 1k objects for both, per 1k-object step for sessionctl (does growth slow
down as the catalog grows?), and the ratio sessionctl / reference. No target: the number is
what ``benchmarks/ddl_growth.md`` quotes. Run:
``python benchmarks/ddl_growth.py [--objects 5000] [--batch 100] [--url postgresql://...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COUNT = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
FILLER = "CREATE TABLE filler_{n} (a int)"


@contextlib.contextmanager
def database(server_url: str) -> Iterator[str]:
    """A fresh database on the server, dropped afterwards."""
    import psycopg

    name = f"ddlbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as c:
            c.execute(f"DROP DATABASE {name} WITH (FORCE)")


def reference(url: str, objects: int, batch: int) -> float:
    """Seconds for a bare loop creating ``objects`` tables in ``batch``-statement transactions."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        for start in range(1, objects + 1, batch):
            with conn.transaction():
                for n in range(start, min(start + batch, objects + 1)):
                    conn.execute(FILLER.replace("{n}", str(n)))
        return time.perf_counter() - t0


def sessionctl_growth(url: str, objects: int, batch: int) -> list[float]:
    """Seconds for each 1k-object step of ``grow`` up to ``objects``."""
    from sessionctl.bench.ddl_population import connector, grow, plan
    from sessionctl.campaign.model import DdlSpec

    spec = DdlSpec(
        count_sql=COUNT,
        filler=FILLER,
        batch_size=batch,
        probes={"t": "CREATE TABLE probe_{n} (a int)"},
    )
    p = plan(spec)
    steps: list[float] = []
    for level in range(1000, objects + 1, 1000):
        g = grow(connect=connector(url), plan=p, level=level)
        steps.append(g.seconds)
    return steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--objects", type=int, default=5000, help="objects to create (multiple of 1000)"
    )
    ap.add_argument("--batch", type=int, default=100, help="statements per growth transaction")
    ap.add_argument(
        "--url", help="an existing server (its databases are left alone); default: embedded"
    )
    args = ap.parse_args()
    objects = max(1000, args.objects // 1000 * 1000)

    with contextlib.ExitStack() as stack:
        if args.url:
            server = args.url
        else:
            from sessionctl.target.embedded_postgres import EmbeddedPostgres

            pg = stack.enter_context(EmbeddedPostgres())
            pg.wait_ready()
            server = pg.url
        with database(server) as db:
            ref = reference(db, objects, args.batch)
        with database(server) as db:
            steps = sessionctl_growth(db, objects, args.batch)
    ours = sum(steps)
    print(f"objects: {objects:,}  batch: {args.batch} statements/transaction")
    print(f"reference (bare psycopg loop): {ref / objects * 1000:.3f} s per 1k ({ref:.2f} s total)")
    print(
        f"sessionctl grow:               {ours / objects * 1000:.3f} s per 1k ({ours:.2f} s total)"
    )
    print("sessionctl per 1k step:        " + ", ".join(f"{s:.3f}" for s in steps) + " s")
    print(f"ratio sessionctl / reference:  {ours / ref:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
