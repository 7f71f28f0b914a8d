"""Profile a campaign's benchmark: its target's processes, its driver's runs, its open session.

:func:`profile_benchmark` is what ``sessionctl profile`` runs: the target comes up (or is found)
through :class:`~sessionctl.target.server.TargetHandle`; :func:`~.pids.target_pids`
picks its processes (its own tree only, re-read right before the profiler attaches); each
concurrency level is one :func:`sessionctl.profiling.profile_run` around the driver's
``run_once`` (after a short unprofiled ``run_once`` for the overhead figure); the profiles are
diffed against the session's baseline profile when asked, lined up as a concurrency sweep when
there are several levels, and recorded as ONE ``Measurement(source="profile")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionctl.measurement import Measurement, Value
from sessionctl.profiling import ProfileRun, profile_run
from sessionctl.profiling.report import Profile
from sessionctl.reporting import NULL, Reporter
from sessionctl.workspace import Workspace


@dataclass(frozen=True)
class ProfileOutcome:
    """What one ``sessionctl profile`` invocation produced."""

    runs: tuple[ProfileRun, ...]
    measurement: Measurement
    session: int | None
    run_dir: Path
    diffs: dict[int, Any] = field(default_factory=dict)  # concurrency -> ProfileDiff
    sweep: Any = None  # a diff.Sweep when several levels were profiled
    not_recorded: str | None = None  # why not, when recording was asked for and did not happen

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "run_dir": str(self.run_dir),
            "profiles": [r.to_dict() for r in self.runs],
            "diffs": {str(c): d.to_dict() for c, d in self.diffs.items()},
            "sweep": self.sweep.to_dict() if self.sweep is not None else None,
            "measurement": self.measurement.to_dict(),
        }


def baseline_profile(ws: Workspace, campaign: str, *, concurrency: int | None) -> Path | None:
    """The newest baseline profile folder at this concurrency: the open session's, else any."""
    from sessionctl.session.record import current, measurements

    key = str(concurrency)
    session = current(ws, campaign)
    if session is not None:
        for m in reversed(measurements(ws, campaign, session.number)):
            folder = (m.details.get("profiles") or {}).get(key) if m.source == "profile" else None
            if m.phase == "baseline" and folder and Path(folder).is_dir():
                return Path(folder)
    import json

    found: list[tuple[float, Path]] = []
    for meta_path in ws.runs_dir(campaign).glob("*/profile-c*/profile.json"):
        try:
            head = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if (head.get("meta") or {}).get("phase") == "baseline" and head.get(
            "concurrency"
        ) == concurrency:
            found.append((meta_path.stat().st_mtime, meta_path.parent))
    return max(found)[1] if found else None


def profile_benchmark(
    ws: Workspace,
    campaign: str,
    *,
    bench: str | None = None,
    concurrency: Sequence[int] | None = None,
    duration: float | None = None,
    phase: str | None = None,
    tool: str | None = None,
    against: str | None = None,
    overhead: bool = True,
    overhead_duration: float | None = None,
    call_graph: str | None = None,
    frequency: int | None = None,
    focus: Sequence[str] = (),
    top: int = 20,
    record: bool = True,
    start: bool = True,
    reporter: Reporter = NULL,
) -> ProfileOutcome:
    """Profile a campaign benchmark at each concurrency level and record it into the session."""
    import dataclasses

    from sessionctl.bench.runner import bench_context, check_driver, load_campaign, run_once
    from sessionctl.errors import UsageError
    from sessionctl.measurement import PHASES
    from sessionctl.profiling.diff import diff_profiles, sweep
    from sessionctl.profiling.pids import target_pids
    from sessionctl.target.server import TargetHandle

    if phase is not None and phase not in PHASES:
        raise UsageError(f"--phase {phase}: unknown; use one of {', '.join(PHASES)}")
    if tool is not None and tool not in ("perf", "py-spy", "command"):
        raise UsageError(f"--tool {tool}: use perf, py-spy or command")
    camp = load_campaign(ws, campaign)
    b = camp.benchmark(bench)
    check_driver(b)
    spec = dataclasses.replace(
        camp.profile,
        tool=tool or camp.profile.tool,  # type: ignore[arg-type]
        frequency=frequency or camp.profile.frequency,
        focus=tuple(dict.fromkeys((*camp.profile.focus, *focus))),
    )
    levels = list(concurrency or b.concurrency)
    if len(set(levels)) != len(levels):
        # Two profiles at one level would make the sweep's "growth" meaningless.
        raise UsageError(
            f"--concurrency {','.join(map(str, levels))}: a level is given twice; "
            "profile each level once"
        )
    fixed_against = None
    if against and against != "baseline":
        fixed_against = Profile.load(Path(against))  # fail before the benchmark, not after
    runs: list[ProfileRun] = []
    diffs: dict[int, Any] = {}
    from sessionctl.session.record import open_number

    started_in = open_number(ws, campaign)  # the profile belongs to this session only
    with TargetHandle(ws, camp, start=start, reporter=reporter) as target:
        target.preflight()
        ctx = bench_context(
            ws,
            camp,
            target,
            bench=b.name,
            phase=phase,
            concurrency=concurrency,
            duration=duration,
            reporter=reporter,
        )
        secs = ctx.duration
        quick = overhead_duration if overhead_duration is not None else min(secs, 5.0)
        if b.driver == "ddl":  # one profile per probe kind at the current object count
            from sessionctl.profiling.ddl import profile_kinds

            if against:
                reporter.warn("ddl: --against is not supported yet; use `profile diff A B`")
            runs = profile_kinds(
                ctx, pids=lambda: target_pids(target), spec=spec, overhead=overhead,
                call_graph=call_graph, top=top, reporter=reporter,
                meta={"phase": phase, "bench": b.name, "campaign": campaign,
                      "focus": list(spec.focus), "groups": dict(spec.groups)},
            )  # fmt: skip
        for level in () if b.driver == "ddl" else ctx.concurrency:

            def measured(level: int = level) -> Any:
                return run_once(
                    ctx, concurrency=level, duration=secs, label=f"{b.name} c{level} profiled"
                )

            def unprofiled(level: int = level) -> Any:
                return run_once(
                    ctx, concurrency=level, duration=quick, label=f"{b.name} c{level} unprofiled"
                )

            run = profile_run(
                pids=lambda: target_pids(target),
                run=measured,
                unprofiled=unprofiled if overhead else None,
                out_dir=ctx.run_dir / f"profile-c{level}",
                spec=spec,
                concurrency=level,
                label=f"{b.name}-c{level}-{phase or 'profile'}",
                call_graph=call_graph,
                top=top,
                meta={
                    "phase": phase,
                    "bench": b.name,
                    "campaign": campaign,
                    "focus": list(spec.focus),
                    "groups": dict(spec.groups),
                },
                reporter=reporter,
            )
            runs.append(run)
            reporter.info(
                f"c{level}: {run.profile.samples:,} samples, {run.profile.queries:,} queries, "
                f"{run.report.samples_per_query or 0:.4g} samples/query"
                + (f", QPS {-run.overhead:+.1%} while profiled" if run.overhead is not None else "")
            )
            base = fixed_against
            if against == "baseline":
                folder = baseline_profile(ws, campaign, concurrency=level)
                if folder is None:
                    reporter.warn(
                        f"c{level}: no baseline profile yet "
                        "(run `sessionctl profile --phase baseline`); no diff"
                    )
                elif folder != run.folder:
                    base = Profile.load(folder)
            if base is not None:
                diffs[level] = diff_profiles(
                    base, run.profile, focus=spec.focus, groups=spec.groups
                )
    swept = sweep([r.profile for r in runs]) if len(runs) > 1 and b.driver != "ddl" else None
    measurement = _combined_measurement(
        ws, b.name, phase or "profile", runs, diffs, swept, ctx.run_dir
    )
    session = None
    if record:
        from sessionctl.session.record import record_measurement

        session = record_measurement(
            ws, campaign, measurement, phase=phase or "profile", started_in=started_in
        )
        if session is None and started_in is not None:
            reporter.warn(f"session {started_in} ended while profiling: not recorded")
    why = None
    if record and session is None:
        from sessionctl.session.record import unrecorded_reason

        why = unrecorded_reason(started_in, "profiling")
    return ProfileOutcome(tuple(runs), measurement, session, ctx.run_dir, diffs, swept, why)


def _combined_measurement(
    ws: Workspace,
    name: str,
    phase: str | None,
    runs: Sequence[ProfileRun],
    diffs: dict[int, Any],
    swept: Any,
    run_dir: Path,
) -> Measurement:
    values: list[Value] = []
    parts: list[str] = []
    for r in runs:
        if "statement" in r.details:  # ddl: per statement kind, at the measured object count
            from sessionctl.profiling import ddl

            values += ddl.values(r)
        else:
            values += r.values(f"@c{r.profile.concurrency}")
        parts.append(r.report.to_markdown(top=10) + r.overhead_md())
        d = diffs.get(r.profile.concurrency or 0)
        if d is not None:
            parts.append(d.to_markdown(top=10))
    if swept is not None:
        parts.append(swept.to_markdown(top=10))
    raw = run_dir.relative_to(ws.root) if run_dir.is_relative_to(ws.root) else run_dir
    first = runs[0]
    return Measurement(
        source="profile",
        name=name,
        phase=phase,
        values=tuple(values),
        summary_md="\n".join(parts),
        raw_dir=str(raw),
        details={
            "tool": first.profile.tool,
            "call_graph": first.details.get("call_graph"),
            "argv": first.details.get("argv"),
            "profiles": {str(r.profile.concurrency): str(r.folder) for r in runs},
            "files": {str(r.profile.concurrency): r.files for r in runs},
            "overhead": {str(r.profile.concurrency): r.overhead for r in runs},
            "diffs": {str(c): d.to_dict(top=20) for c, d in diffs.items()},
            "sweep": swept.to_dict(top=20) if swept is not None else None,
        },
    )
