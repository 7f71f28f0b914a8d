"""The demo's scripted agent: does what a good agent does in one session, through sessionctl.

It calls the same core operations an agent's ``sessionctl start/bench/record/compare/close``
commands call, in the order the handoff prompt asks for, and makes one real change: a migration
adding the index the lookup needs, applied to the running server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessionctl.files import atomic_write
from sessionctl.reporting import Reporter
from sessionctl.workspace import Workspace

MIGRATION = "migrations/001_orders_customer_idx.sql"
INDEX_SQL = "CREATE INDEX IF NOT EXISTS orders_customer_id_idx ON orders (customer_id);"
DROP_SQL = "DROP INDEX IF EXISTS orders_customer_id_idx;"


@dataclass(frozen=True)
class SessionOutcome:
    session: int
    verdicts: tuple[dict[str, Any], ...]
    log_entry: str
    git_log: str
    next_steps: tuple[str, ...]


@dataclass
class ScriptedAgent:
    """One scripted session against the demo campaign."""

    ws: Workspace
    campaign: str
    reporter: Reporter
    pairs: int = 6
    duration: float | None = None  # override the benchmark's duration (the test uses short runs)
    # Each A/B slot is a saturated run and an open-loop run; a 260x effect needs no 3 s runs, and
    # the whole demo stays well under 3 minutes.
    compare_duration: float = 1.5

    def run_session(self) -> SessionOutcome:
        from sessionctl.session import close as close_mod
        from sessionctl.session import engine

        r = self.reporter
        log_path = self.ws.log_path(self.campaign)
        log_before = log_path.read_text() if log_path.exists() else ""

        r.phase("start: open the session on the top next step")
        session = engine.start(self.ws, self.campaign, reporter=r)

        r.phase("baseline: measure before changing anything")
        self._bench("baseline")

        r.phase("profile: where does the lookup's time go?")
        plan = self._explain()
        engine.record(self.ws, self.campaign, phase="profile", findings=[plan])
        r.info(plan)

        r.phase(f"change: add {MIGRATION} and apply it")
        self._apply_change()
        engine.record(
            self.ws,
            self.campaign,
            phase="change",
            findings=[f"Added {MIGRATION} (btree index on orders.customer_id) and applied it."],
        )

        r.phase("re-measure: the same benchmark after the change")
        self._bench("remeasure")
        after_plan = self._explain()
        engine.record(self.ws, self.campaign, phase="remeasure", findings=[after_plan])

        r.phase(
            f"compare: {self.pairs} interleaved A/B pairs of {self._compare_seconds():g} s runs "
            "(A without the index, B with it)"
        )
        self._compare()

        r.phase("close: log entry, code commit, prompt commit")
        result = close_mod.close(
            self.ws,
            self.campaign,
            resolve="index-customer-lookup",
            include=[MIGRATION],
            summary=(
                "An index on orders.customer_id turns the lookup's sequential scan into an "
                "index scan; the paired A/B comparison above gives the verdict."
            ),
            reporter=r,
        )
        log_after = log_path.read_text()
        entry = log_after[len(log_before) :] if log_after.startswith(log_before) else log_after
        from sessionctl.campaign.store import load

        steps = tuple(
            f"{s.id}: {s.title}" for s in load(self.ws, self.campaign).campaign.next_steps
        )
        return SessionOutcome(
            session=session.number,
            verdicts=tuple(_verdicts(result)),
            log_entry=entry.strip() + "\n",
            git_log=_git_log(self.ws.root),
            next_steps=steps,
        )

    def _bench(self, phase: str) -> None:
        from sessionctl.bench.runner import run_bench

        outcome = run_bench(
            self.ws,
            self.campaign,
            phase=phase,
            repeat=3,
            duration=self.duration,
            reporter=self.reporter,
        )
        self.reporter.info(outcome.measurement.summary_md)

    def _sql(self, *statements: str) -> list[Any]:
        """Run statements on the campaign's target (started and stopped around them)."""
        from sessionctl.campaign.store import load
        from sessionctl.target.server import TargetHandle

        camp = load(self.ws, self.campaign).campaign
        rows: list[Any] = []
        with (
            TargetHandle(self.ws, camp, reporter=self.reporter) as target,
            target.connect() as conn,
        ):
            for sql in statements:
                cur = conn.execute(sql)
                rows = cur.fetchall() if cur.description else []
        return rows

    def _explain(self) -> str:
        from sessionctl.campaign.store import load

        query = load(self.ws, self.campaign).campaign.benchmark("lookup").query or ""
        rows = self._sql(f"EXPLAIN (ANALYZE, COSTS OFF) {query}")
        lines = [str(r[0]) for r in rows]
        scan = next((ln.strip() for ln in lines if re.search(r"Scan", ln)), lines[0].strip())
        timing = "; ".join(
            ln.strip() for ln in lines if ln.strip().startswith(("Planning Time", "Execution Time"))
        )
        return f"EXPLAIN ANALYZE of the lookup: `{scan.lstrip('-> ')}`; {timing}."

    def _apply_change(self) -> None:
        path = self.ws.root / MIGRATION
        atomic_write(
            path,
            "-- Session change: the customer lookup filters on customer_id; index it.\n"
            + INDEX_SQL
            + "\n",
        )
        self._sql(path.read_text(), "ANALYZE orders")

    def _compare(self) -> None:
        from sessionctl.verdict.protocol import SqlSides, run_compare

        result = run_compare(
            self.ws,
            self.campaign,
            sides=SqlSides(a_sql=(DROP_SQL,), b_sql=(INDEX_SQL, "ANALYZE orders")),
            pairs=self.pairs,
            duration=self._compare_seconds(),
            reporter=self.reporter,
        )
        self.reporter.info(result.summary_md)

    def _compare_seconds(self) -> float:
        return self.duration if self.duration is not None else self.compare_duration


def _verdicts(result: Any) -> list[dict[str, Any]]:
    judgements = getattr(result, "judgements", None) or getattr(
        getattr(result, "plan", None), "judgements", ()
    )
    return [j.to_dict() if hasattr(j, "to_dict") else dict(j) for j in judgements or ()]


def _git_log(root: Path) -> str:
    from sessionctl.process import run

    return run(["git", "log", "--format=%h %s", "--stat=100"], cwd=root).stdout
