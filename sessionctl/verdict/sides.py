"""The two sides of an A/B comparison, and where the baseline (A) comes from.

Sides (:class:`ComparisonSides`) come in three kinds that share one shape, a :class:`Side` being
"where the server runs from" plus "SQL that puts it in this side's state":

- **artifacts**: A runs the build preserved at ``start`` (:func:`preserve_artifacts` copies the
  campaign's ``target.artifacts`` into the session's scratch folder; the start command's
  ``target.artifacts_param`` placeholder is replaced by that folder), B the current build.
- **worktree**: A runs from a git worktree (``git worktree add --detach``) or jj workspace
  (``jj workspace add``) of the session's starting revision, B from the workspace.
- **sql**: one server; each side differs by setup SQL run when the protocol switches to it
  (``A: DROP INDEX …`` / ``B: CREATE INDEX …``), the PostgreSQL-only A/B of the demo and tests.

An A/A calibration (:func:`AaSides`) runs the baseline on both sides.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sessionctl.campaign.model import Campaign
from sessionctl.errors import UsageError
from sessionctl.workspace import Workspace


@dataclass(frozen=True)
class Side:
    """One side of a comparison: where its server runs from, and the SQL that sets it up."""

    label: str  # 'A' or 'B'
    description: str
    root: Path | None = None  # run the target from this folder (a worktree); None: the workspace
    artifacts_dir: Path | None = None  # substituted for target.artifacts_param
    setup_sql: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        return d | {"setup_sql": list(self.setup_sql)}


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


def SqlSides(*, a_sql: Sequence[str] = (), b_sql: Sequence[str] = ()) -> ComparisonSides:
    """Two sides of one server that differ by setup SQL (e.g. without vs with an index)."""

    def describe(sql: Sequence[str]) -> str:
        # Statements often end in ';' already: strip it (and blanks) before joining with '; '.
        parts = [q.strip().rstrip("; \t\n") for q in sql]
        return "setup SQL: " + ("; ".join(p for p in parts if p) or "none")

    return ComparisonSides(
        "sql", Side("A", describe(a_sql), setup_sql=tuple(a_sql)),
        Side("B", describe(b_sql), setup_sql=tuple(b_sql)),
    )  # fmt: skip


def ArtifactSides(artifacts_dir: Path) -> ComparisonSides:
    """A runs the build preserved at start, B the current one."""
    return ComparisonSides(
        "artifacts",
        Side(
            "A", f"baseline build preserved at start ({artifacts_dir})", artifacts_dir=artifacts_dir
        ),
        Side("B", "current build"),
    )


def WorktreeSides(worktree: Path) -> ComparisonSides:
    """A runs from a worktree of the starting revision, B from the workspace."""
    return ComparisonSides(
        "worktree",
        Side("A", f"starting revision, worktree {worktree}", root=worktree),
        Side("B", "working copy"),
    )


def AaSides(base: ComparisonSides | None = None) -> ComparisonSides:
    """Both sides are the baseline (A of ``base``, or the target as it is): an A/A calibration."""
    a = base.a if base is not None else Side("A", "the target as it is")
    return ComparisonSides("aa", a, replace(a, label="B"))


# --- the baseline's sources ----------------------------------------------------------------


def prune_artifacts(ws: Workspace, campaign: str, *, keep: int, before: int) -> list[int]:
    """Delete the preserved builds of sessions before ``before`` but the newest ``keep``.

    Builds (optimized binaries) are large; only a few recent ones are worth keeping. Returns the
    session numbers whose ``artifacts`` folder was deleted.
    """
    root = ws.session_dir(campaign)
    found = sorted(
        int(d.name) for d in root.glob("*") if d.name.isdigit() and (d / "artifacts").is_dir()
    )
    older = [n for n in found if n < before]
    doomed = older[: max(0, len(older) - keep)]
    for n in doomed:
        shutil.rmtree(root / str(n) / "artifacts")
    return doomed


def preserve_artifacts(ws: Workspace, campaign: Campaign | str, session: Any) -> Path:
    """Copy ``target.artifacts`` into the session's scratch folder (A of later compares)."""
    if isinstance(campaign, str):
        from sessionctl.campaign.store import load

        campaign = load(ws, campaign).campaign
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
            glob = any(c in pattern for c in "*?[")
            matches = [
                m for m in (ws.root.glob(pattern) if glob else [ws.root / pattern]) if m.exists()
            ]
            if not matches:
                raise UsageError(
                    f"prompts/{campaign.name}.yaml: target.artifacts[{i}]: {pattern} does not "
                    "exist under the workspace; build it before `sessionctl start`, or fix the path"
                )
            for src in sorted(matches):
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
        raise UsageError(
            f"{campaign}: the open session has no starting revision to build a baseline from"
        )
    path = ws.session_dir(campaign) / str(session.number) / "baseline"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "git":
        run(["git", "worktree", "add", "--detach", str(path), commit], cwd=ws.root)
    else:
        # The start revision is the session's working-copy commit, rewritten (hidden) as soon as
        # the agent edits a file. `workspace add --revision X` makes the new workspace's commit
        # a child of X, which revives X beside its rewrite: a divergent change. So the new
        # workspace sits on X's parent, and X's own content (if it had any) is copied in by
        # `restore --from`, which reads a hidden commit without making it visible.
        name = f"sessionctl-baseline-{session.number}"
        jj = ["jj", "--no-pager", "--color=never"]
        run([*jj, "workspace", "add", "--name", name, "--revision", f"{commit}-", str(path)],
            cwd=ws.root)  # fmt: skip
        if rev.get("empty") is not True:
            run([*jj, "restore", "--from", commit], cwd=path)
    return path


def remove_baseline_worktree(
    ws: Workspace, campaign: str, session: Any, *, runner: Callable[..., Any] | None = None
) -> None:
    """Remove a session's baseline worktree/workspace (the session engine calls it at close)."""
    from sessionctl import process

    run = runner or process.run
    path = ws.session_dir(campaign) / str(session.number) / "baseline"
    if not path.exists():
        return
    if (session.start_revision or {}).get("vcs") == "jj":
        name = f"sessionctl-baseline-{session.number}"
        run(["jj", "--no-pager", "--color=never", "workspace", "forget", name], cwd=ws.root)
        shutil.rmtree(path)
    else:
        run(["git", "worktree", "remove", "--force", str(path)], cwd=ws.root)


def long_lived_refusal(campaign: str, a: str) -> str:
    """Why a long-lived target (``restart: never``) cannot run a side from another build."""
    return (
        f"prompts/{campaign}.yaml: target.restart is never (one long-lived server), but side A "
        f"({a}) needs a server of its own: pass --restart-target to stop it, run each side on "
        "its own server and bring the current build back up at the end, or compare two states "
        "of the running server with --a-sql/--b-sql"
    )


def default_sides(ws: Workspace, camp: Campaign, *, aa: bool = False) -> ComparisonSides:
    """The sides for ``sessionctl compare``: preserved artefacts, else a worktree, else A/A only.

    With a long-lived target (``target.restart: never``) an A/A runs on the server as it is; an
    A/B from a preserved build or worktree needs restarts, which ``compare`` does only when asked
    (``--restart-target``)."""
    from sessionctl.session.record import current

    session = current(ws, camp.name)
    base: ComparisonSides | None = None
    long_lived = camp.target.restart == "never" and bool(camp.target.start)
    if long_lived and aa:
        return AaSides(None)
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
