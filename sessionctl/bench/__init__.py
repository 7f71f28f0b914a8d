"""Benchmark drivers and the runner that turns a sweep of runs into one Measurement.

Drivers: ``builtin`` (psycopg closed/open loop, :mod:`.builtin`), ``pgbench`` (:mod:`.pgbench`),
``dbbench`` (:mod:`.dbbench`), ``ddl`` (:mod:`.ddl`). :mod:`.runner` picks one by the benchmark's
``driver`` through its registry and hands it a :class:`BenchContext`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sessionctl.campaign.model import Benchmark, Campaign
    from sessionctl.reporting import Reporter
    from sessionctl.target.server import TargetHandle
    from sessionctl.workspace import Workspace


@dataclass(frozen=True)
class BenchContext:
    """Everything a driver needs for one ``bench`` invocation (the contract between the runner,
    the drivers, ``compare`` and the profiler).

    * ``ws``, ``campaign``, ``bench``: the workspace, the validated campaign, the benchmark to run.
    * ``target``: a ready :class:`~sessionctl.target.server.TargetHandle` (``.sql_url``,
      ``.system_sql_url``, ``.metrics_url``, ``.connect(system=False)``, ``.run_setup()``;
      its processes are ``sessionctl.profiling.pids.target_pids(target)``).
    * ``phase``: the session phase to record under (``baseline``, ``remeasure``...) or None.
    * ``reporter``: where progress goes (never print).
    * ``run_dir``: the folder for this invocation's raw data (absolute); drivers write below it.
    * ``concurrency``: the levels of the sweep; ``duration``: measured seconds per run;
      ``repeat``: runs per level; ``warmup``: seconds run before each measured window.
    * ``options``: driver-specific extras (e.g. ``{"levels": [...]}`` for ``ddl``).
    """

    ws: Workspace
    campaign: Campaign
    bench: Benchmark
    target: TargetHandle
    phase: str | None
    reporter: Reporter
    run_dir: Path
    concurrency: tuple[int, ...]
    duration: float
    repeat: int = 1
    warmup: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def raw_dir(self) -> str:
        """``run_dir`` relative to the workspace root (what a Measurement stores)."""
        try:
            return str(self.run_dir.relative_to(self.ws.root))
        except ValueError:
            return str(self.run_dir)
