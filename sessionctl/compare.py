"""The paired A/B protocol: interleaved, counterbalanced runs of a baseline (A) and a candidate (B).

Sides (:class:`ComparisonSides`) come in three kinds that share one shape, a :class:`Side` being
"where the server runs from" plus "SQL that puts it in this side's state":

- **artifacts**: A runs the build preserved at ``start`` (:func:`preserve_artifacts` copies the
  campaign's ``target.artifacts`` into the session's scratch folder; the start command's
  ``target.artifacts_param`` placeholder is replaced by that folder), B the current build.
- **worktree**: A runs from a git worktree (``git worktree add --detach``) or jj workspace
  (``jj workspace add``) of the session's starting revision, B from the workspace.
- **sql**: one server; each side differs by setup SQL run when the protocol switches to it
  (``A: DROP INDEX …`` / ``B: CREATE INDEX …``), the PostgreSQL-only A/B of the demo and tests.

The protocol: one uncounted warm-up run per side, then ``pairs`` pairs in counterbalanced order
(``abba``: AB BA BA AB …, which cancels linear and quadratic drift over every four pairs, or
``random``: a balanced shuffle from a printed seed). The target restarts before every run when
``target.restart == 'per_run'`` and whenever the two sides need different server processes. Each
counted slot is a closed-loop (saturating) run for throughput and, when the benchmark has a
``rate``, a fixed-rate open-loop run for latency; without one, latency is read off the saturated
run and every latency judgement says so.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sessionctl.campaign.model import Benchmark, Campaign
from sessionctl.errors import SessionctlError, TargetError, UsageError
from sessionctl.files import atomic_write_json
from sessionctl.measurement import Measurement, Value
from sessionctl.reporting import NULL, Reporter
from sessionctl.verdict import Judgement, judge_paired, pct, threshold_for
from sessionctl.workspace import Workspace

TAIL_SATURATED = (
    "tail latency read off the saturated closed-loop run; set the benchmark's `rate` (or pass "
    "--rate) for a fixed-rate open-loop measurement"
)


@dataclass(frozen=True)
class Side:
    """One side of a comparison: where its server runs from, and the SQL that sets it up."""

    label: str  # 'A' or 'B'
    description: str
    root: Path | None = None  # run the target from this folder (a worktree); None: the workspace
    artifacts_dir: Path | None = None  # substituted for target.artifacts_param
    setup_sql: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "description": self.description,
            "root": str(self.root) if self.root else None,
            "artifacts_dir": str(self.artifacts_dir) if self.artifacts_dir else None,
            "setup_sql": list(self.setup_sql),
        }


@dataclass(frozen=True)
class ComparisonSides:
    """The two sides of a comparison and what kind of difference separates them."""

    kind: str  # 'artifacts' | 'worktree' | 'sql' | 'aa'
    a: Side
    b: Side

    @property
    def same_server(self) -> bool:
        """True when both sides run on one server process (only SQL separates them)."""
        return self.a.root == self.b.root and self.a.artifacts_dir == self.b.artifacts_dir

    def side(self, label: str) -> Side:
        return self.a if label == "A" else self.b

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "A": self.a.to_dict(), "B": self.b.to_dict()}


def SqlSides(*, a_sql: Sequence[str] = (), b_sql: Sequence[str] = ()) -> ComparisonSides:  # noqa: N802
    """Two sides of one server that differ by setup SQL (e.g. without vs with an index)."""
    return ComparisonSides(
        "sql",
        Side("A", "setup SQL: " + ("; ".join(a_sql) or "none"), setup_sql=tuple(a_sql)),
        Side("B", "setup SQL: " + ("; ".join(b_sql) or "none"), setup_sql=tuple(b_sql)),
    )


def ArtifactSides(artifacts_dir: Path) -> ComparisonSides:  # noqa: N802
    """A runs the build preserved at start, B the current one."""
    return ComparisonSides(
        "artifacts",
        Side("A", f"baseline build preserved at start ({artifacts_dir})", artifacts_dir=artifacts_dir),
        Side("B", "current build"),
    )


def WorktreeSides(worktree: Path) -> ComparisonSides:  # noqa: N802
    """A runs from a worktree of the starting revision, B from the workspace."""
    return ComparisonSides(
        "worktree",
        Side("A", f"starting revision, worktree {worktree}", root=worktree),
        Side("B", "working copy"),
    )


def AaSides(base: ComparisonSides | None = None) -> ComparisonSides:  # noqa: N802
    """Both sides are the baseline (A of ``base``, or the target as it is): an A/A calibration."""
    a = base.a if base is not None else Side("A", "the target as it is")
    return ComparisonSides("aa", a, replace(a, label="B"))


# --- the baseline's sources ----------------------------------------------------------------


def preserve_artifacts(ws: Workspace, campaign: Campaign, session: Any) -> Path:
    """Copy ``target.artifacts`` into the session's scratch folder (the A side of later compares)."""
    number = getattr(session, "number", session)
    dest = ws.session_dir(campaign.name) / str(number) / "artifacts"
    if dest.exists():
        return dest
    patterns = campaign.target.artifacts
    if not patterns:
        raise UsageError(
            f"prompts/{campaign.name}.yaml: target.artifacts: none listed; name the built files to "
            "preserve (e.g. target/release/environmentd)"
        )
    tmp = dest.with_name(f".artifacts-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for i, pattern in enumerate(patterns):
            matches = sorted(ws.root.glob(pattern)) if any(c in pattern for c in "*?[") else [ws.root / pattern]
            matches = [m for m in matches if m.exists()]
            if not matches:
                raise UsageError(
                    f"prompts/{campaign.name}.yaml: target.artifacts[{i}]: {pattern} does not exist "
                    "under the workspace; build it before `sessionctl start`, or fix the path"
                )
            for src in matches:
                rel = src.resolve().relative_to(ws.root.resolve())
                out = tmp / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(src, out, symlinks=True)
                else:
                    shutil.copy2(src, out)
        os.replace(tmp, dest)  # all or nothing: a half-copied build is never used as a baseline
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def baseline_worktree(
    ws: Workspace, campaign: str, session: Any, *, runner: Callable[..., Any] | None = None
) -> Path:
    """A worktree (git) or workspace (jj) of the session's starting revision, created once."""
    from sessionctl import process

    run = runner or process.run
    rev = dict(getattr(session, "start_revision", {}) or {})
    commit, kind = rev.get("commit"), rev.get("vcs")
    if not commit or kind not in ("git", "jj"):
        raise UsageError(f"{campaign}: the open session has no starting revision to build a baseline from")
    path = ws.session_dir(campaign) / str(session.number) / "baseline"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "git":
        run(["git", "worktree", "add", "--detach", str(path), commit], cwd=ws.root)
    else:
        name = f"sessionctl-baseline-{session.number}"
        run(["jj", "--no-pager", "--color=never", "workspace", "add", "--name", name,
             "--revision", commit, str(path)], cwd=ws.root)
    return path


def default_sides(ws: Workspace, camp: Campaign, *, aa: bool = False) -> ComparisonSides:
    """The sides for ``sessionctl compare``: preserved artefacts, else a worktree, else A/A only."""
    from sessionctl.session.record import current

    session = current(ws, camp.name)
    base: ComparisonSides | None = None
    if session is not None:
        arts = ws.session_dir(camp.name) / str(session.number) / "artifacts"
        if camp.target.artifacts and arts.is_dir():
            base = ArtifactSides(arts)
        elif camp.target.start and session.start_revision.get("commit"):
            base = WorktreeSides(baseline_worktree(ws, camp.name, session))
    if aa:
        return AaSides(base)
    if base is None:
        raise UsageError(
            f"prompts/{camp.name}.yaml: nothing to compare against: open a session with "
            "target.artifacts (preserved at start) or target.start (a worktree of the starting "
            "revision), pass --a-sql/--b-sql for two states of one server, or use --aa"
        )
    return base


# --- the protocol ---------------------------------------------------------------------------


def schedule(pairs: int, order: str, seed: int) -> list[str]:
    """Per pair, which side runs first: 'AB' or 'BA' (abba: AB BA BA AB …; random: balanced shuffle)."""
    if pairs < 1:
        raise UsageError(f"--pairs must be at least 1, got {pairs}")
    if order == "abba":
        return [("AB", "BA", "BA", "AB")[i % 4] for i in range(pairs)]
    if order == "random":
        plan = ["AB", "BA"] * (pairs // 2) + (["AB"] if pairs % 2 else [])
        random.Random(seed).shuffle(plan)
        return plan
    raise UsageError(f"--order {order!r}: use abba or random")


@dataclass(frozen=True)
class RunSpec:
    """One run the protocol asks the driver for."""

    concurrency: int
    duration: float
    rate: float | None = None  # None: closed loop (saturating)


MeasureFn = Callable[[Any, Benchmark, RunSpec], Any]  # (target handle, benchmark, spec) -> RunResult


@dataclass(frozen=True)
class CompareResult:
    """A finished comparison: per-run data, judgements and where it was recorded."""

    benchmark: str
    sides: ComparisonSides
    order: str
    seed: int
    plan: tuple[str, ...]
    runs: tuple[dict[str, Any], ...]
    judgements: tuple[Judgement, ...]
    tail: str
    aa: bool
    summary_md: str
    raw_dir: str | None
    session: int | None = None
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def false_verdicts(self) -> int:
        """Judgements claiming improved/regressed (in an A/A calibration, every one is false)."""
        return sum(1 for j in self.judgements if j.verdict in ("improved", "regressed"))

    def noise_floor(self) -> list[dict[str, Any]]:
        """Per metric: run-to-run CV of each side, MDE and pairs needed (what this machine can see)."""
        from sessionctl import stats

        out = []
        for j in self.judgements:
            a = [r["values"][j.metric] for r in self.runs if r["side"] == "A" and j.metric in r["values"]]
            b = [r["values"][j.metric] for r in self.runs if r["side"] == "B" and j.metric in r["values"]]
            out.append({"metric": j.metric, "cv_a": stats.cv(a), "cv_b": stats.cv(b), "mde": j.mde,
                        "pairs_needed": j.pairs_needed, "threshold": j.threshold})
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "benchmark": self.benchmark,
            "sides": self.sides.to_dict(),
            "order": self.order,
            "seed": self.seed,
            "plan": list(self.plan),
            "tail": self.tail,
            "aa": self.aa,
            "judgements": [j.to_dict() for j in self.judgements],
            "runs": list(self.runs),
            "raw_dir": self.raw_dir,
            "session": self.session,
            "warnings": list(self.warnings),
            **self.extra,
        }
        if self.aa:
            d["calibration"] = {
                "false_verdicts": self.false_verdicts,
                "metrics": len(self.judgements),
                "noise_floor": self.noise_floor(),
            }
        return d
