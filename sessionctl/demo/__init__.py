"""``sessionctl demo``: the whole loop, for real, against an embedded PostgreSQL.

Sets up a throwaway workspace (a git repository holding a tiny shop application and the
``demo`` campaign), starts a local PostgreSQL, loads the data, and runs one complete session with
a scripted agent (:mod:`sessionctl.demo.agent`): start → baseline → profile → one change →
re-measure (paired A/B) → record → close. The server is always stopped; on failure the workspace
is kept for inspection and its path is part of the error.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sessionctl.errors import SessionctlError, UsageError
from sessionctl.files import atomic_write
from sessionctl.reporting import NULL, Reporter
from sessionctl.workspace import Workspace

CAMPAIGN = "demo"


@dataclass(frozen=True)
class DemoResult:
    """What the demo did, for the CLI to show."""

    root: Path
    kept: bool
    session: int
    verdicts: tuple[dict[str, Any], ...]
    log_entry: str
    git_log: str
    next_steps: tuple[str, ...]
    prompt_path: Path
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "kept": self.kept,
            "session": self.session,
            "verdicts": list(self.verdicts),
            "log_entry": self.log_entry,
            "git_log": self.git_log,
            "next_steps": list(self.next_steps),
            "prompt": str(self.prompt_path),
            "seconds": round(self.seconds, 1),
            **self.extra,
        }


class DemoFailed(SessionctlError):
    """A demo phase failed; the workspace is kept and named in the message."""


def _copy_tree(src: Any, dest: Path) -> None:
    for item in src.iterdir():
        if item.name == "__pycache__":
            continue
        target = dest / item.name
        if item.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            _copy_tree(item, target)
        else:
            atomic_write(target, item.read_bytes())


def create_workspace(root: Path, *, sql_url: str, start: list[str]) -> Workspace:
    """Write the demo application and campaign into ``root`` and commit them."""
    import json

    root.mkdir(parents=True, exist_ok=True)
    _copy_tree(resources.files("sessionctl.demo").joinpath("files"), root)
    campaign = root / "prompts" / f"{CAMPAIGN}.yaml"
    text = campaign.read_text().replace("@SQL_URL@", sql_url)
    # A JSON list is a YAML flow sequence: the argv survives paths with spaces.
    text = text.replace('"@START@"', json.dumps(start))
    campaign.write_text(text)
    (root / "logs").mkdir(exist_ok=True)
    atomic_write(
        root / "logs" / f"{CAMPAIGN}-perf-log.md",
        "# Demo shop: customer lookup perf log\n\n"
        "One entry per session, appended by `sessionctl close`.\n",
    )
    (root / "migrations").mkdir(exist_ok=True)
    atomic_write(root / "migrations" / ".gitkeep", "")
    ws = Workspace(root)
    from sessionctl.campaign.store import write_prompt

    write_prompt(ws, CAMPAIGN)
    _git_init(root, message="Demo shop: schema, data load and the demo campaign")
    return ws


def _git_init(root: Path, *, message: str) -> None:
    """Make ``root`` a git repository with everything in one first commit."""
    from sessionctl.process import run

    run(["git", "init", "-q", "-b", "main"], cwd=root)
    # A fresh machine often has no git identity; the demo repository gets its own.
    if run(["git", "config", "user.email"], cwd=root, check=False).returncode != 0:
        run(["git", "config", "user.email", "demo@sessionctl.invalid"], cwd=root)
    if run(["git", "config", "user.name"], cwd=root, check=False).returncode != 0:
        run(["git", "config", "user.name", "sessionctl demo"], cwd=root)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-q", "-m", message], cwd=root)


def load_data(url: str, root: Path, *, reporter: Reporter) -> int:
    """Create the schema and load the orders; return the row count."""
    import psycopg

    with (
        reporter.task("loading 300k orders", total=2) as task,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        conn.execute((root / "app" / "schema.sql").read_text())  # type: ignore[arg-type]
        task.advance()
        conn.execute((root / "app" / "load.sql").read_text())  # type: ignore[arg-type]
        task.advance()
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
    return int(row[0]) if row else 0


def data_folder(root: Path) -> Path:
    """Where the demo server keeps its data: inside the demo folder, like everything else."""
    return root / ".sessionctl" / "pgdata"


def _prepare(root: Path, datadir: Path, user: str | None) -> None:
    """Make the folders the server needs; as root, check its unprivileged user reaches them."""
    import os

    for folder in (root, datadir.parent):
        folder.mkdir(parents=True, exist_ok=True)
        if user is not None:
            os.chmod(folder, 0o755)  # ours: the server's user must pass through them
    from sessionctl.target.embedded_postgres import blocking_folder

    blocked = blocking_folder(datadir.parent, user)
    if blocked is not None:
        raise UsageError(
            f"{blocked}: the {user} user that runs PostgreSQL (sessionctl runs as root) cannot "
            f"enter it, and the demo keeps its server's data in {datadir}; pass a --dir it can "
            f"reach (e.g. under {tempfile.gettempdir()}) or run `chmod o+x {blocked}`"
        )


def run_demo(
    *,
    directory: Path | None = None,
    keep: bool = False,
    duration: float | None = None,
    pairs: int = 6,
    reporter: Reporter = NULL,
) -> DemoResult:
    """Run the demo end to end; the embedded server is stopped whatever happens."""
    import sys
    import time

    from sessionctl.demo.agent import ScriptedAgent
    from sessionctl.target.embedded_postgres import (
        EmbeddedPostgres,
        free_port,
        unprivileged_user,
    )

    started = time.monotonic()
    if directory is not None:
        root = directory.expanduser().resolve()
        if root.exists() and any(root.iterdir()):
            raise UsageError(
                f"{root}: folder exists and is not empty; pass a new --dir or remove it"
            )
        keep = True
    else:
        root = Path(tempfile.mkdtemp(prefix="sessionctl-demo-"))
    reporter.phase(f"demo workspace {root}")
    datadir = data_folder(root)
    port = free_port()
    ok = False
    try:
        _prepare(root, datadir, unprivileged_user())
    except UsageError:
        if directory is None:
            shutil.rmtree(root, ignore_errors=True)
        raise
    pg = EmbeddedPostgres(datadir, port=port)
    try:
        reporter.info(f"PostgreSQL binaries: {pg.bindir}")
        with reporter.task("creating the demo database", total=1) as task:
            pg.start()
            pg.wait_ready()
            task.advance()
        reporter.info(
            f"PostgreSQL listening on 127.0.0.1:{pg.port} (loopback only), data in {datadir}"
        )
        serve = [sys.executable, "-m", "sessionctl.target.embedded_postgres", "serve"]
        ws = create_workspace(
            root, sql_url=pg.url, start=[*serve, "--datadir", str(datadir), "--port", str(port)]
        )
        rows = load_data(pg.url, root, reporter=reporter)
        reporter.info(
            f"loaded {rows:,} orders; from here on sessionctl starts and stops the server"
        )
        pg.stop()
        agent = ScriptedAgent(
            ws=ws, campaign=CAMPAIGN, reporter=reporter, pairs=pairs, duration=duration
        )
        outcome = agent.run_session()
        ok = True
        return DemoResult(
            root=root,
            kept=keep,
            session=outcome.session,
            verdicts=outcome.verdicts,
            log_entry=outcome.log_entry,
            git_log=outcome.git_log,
            next_steps=outcome.next_steps,
            prompt_path=ws.rendered_path(CAMPAIGN),
            seconds=time.monotonic() - started,
            extra={"rows": rows, "datadir": str(datadir)},
        )
    except SessionctlError as exc:
        keep = True
        raise DemoFailed(f"demo failed: {exc} (workspace kept at {root})") from exc
    except KeyboardInterrupt:
        keep = True
        raise
    finally:
        pg.stop()
        if ok and not keep:
            shutil.rmtree(root, ignore_errors=True)  # the server's data folder is inside
