"""Profiling: sample the target while a benchmark runs, and say where each query's time goes.

The core is :func:`profile_run`, a seam that knows nothing about drivers: it takes the target's
pids (or a function returning them, re-read at start) and a ``run`` callable that performs the
measured benchmark and returns a result with ``.queries`` (queries completed in its measured
window) and, ideally, the window itself (see :func:`run_facts`). Around ``run`` it attaches the
configured profiler (perf by default, py-spy for Python targets, or any command leaving folded
stacks), collapses the samples to folded stacks, keeps only those inside the measured window,
and writes the folded stacks, a speedscope JSON and an SVG flame graph next to a
``profile.json``. An optional ``unprofiled`` callable runs first, without the profiler, so the
QPS cost of profiling is reported in the same invocation and never mistaken for a regression.

:func:`sessionctl.profiling.benchmark.profile_benchmark` wires this to the campaign's target
(:func:`sessionctl.profiling.pids.target_pids`) and benchmark driver (``run_once``), sweeps
concurrency levels, diffs against the session's baseline profile and records one
``Measurement(source="profile")``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionctl.campaign.model import ProfileSpec
from sessionctl.errors import MeasurementError, ToolNotFound
from sessionctl.measurement import Measurement, Value
from sessionctl.profiling.report import Profile, ProfileReport, analyze
from sessionctl.reporting import NULL, Reporter

__all__ = [
    "Profile",
    "ProfileReport",
    "ProfileRun",
    "RunFacts",
    "analyze",
    "profile_run",
    "run_facts",
]

# Wall-clock stamps are far above any plausible CLOCK_MONOTONIC value (seconds since boot).
_EPOCH_THRESHOLD = 1e9


@dataclass(frozen=True)
class RunFacts:
    """What the profiler needs from a benchmark result."""

    queries: int
    qps: float | None
    window: tuple[float, float] | None  # CLOCK_MONOTONIC seconds of the measured window
    duration: float | None


def _as_monotonic(t: float) -> float:
    if t > _EPOCH_THRESHOLD:  # a time.time() stamp: shift it onto the monotonic clock
        return t - (time.time() - time.monotonic())
    return t


def run_facts(result: Any) -> RunFacts:
    """Read queries, QPS and the measured window from a driver result (duck-typed).

    Accepted shapes: ``.queries`` (required); ``.qps``; the window as ``.window`` (a
    ``(start, end)`` pair or an object with ``.start``/``.end``), or ``.window_start`` /
    ``.window_end``, or ``.started``/``.finished``, in ``time.monotonic()`` or ``time.time()``
    seconds; ``.duration`` in seconds.
    """
    queries = getattr(result, "queries", None)
    if queries is None:
        raise MeasurementError(
            f"profile: the benchmark result {type(result).__name__} has no 'queries'"
        )
    window: tuple[float, float] | None = None
    w = getattr(result, "window", None)
    if isinstance(w, (tuple, list)) and len(w) == 2:
        window = (float(w[0]), float(w[1]))
    elif w is not None and hasattr(w, "start") and hasattr(w, "end"):
        window = (float(w.start), float(w.end))
    else:
        for a, b in (
            ("window_start", "window_end"),
            ("started", "finished"),
            ("started_at", "ended_at"),
        ):
            s, e = getattr(result, a, None), getattr(result, b, None)
            if isinstance(s, (int, float)) and isinstance(e, (int, float)):
                window = (float(s), float(e))
                break
    if window is not None:
        window = (_as_monotonic(window[0]), _as_monotonic(window[1]))
        if window[1] <= window[0]:
            window = None
    duration = getattr(result, "duration", None)
    if duration is None and window is not None:
        duration = window[1] - window[0]
    qps = getattr(result, "qps", None)
    if qps is None and duration:
        qps = int(queries) / float(duration)
    return RunFacts(
        int(queries),
        float(qps) if qps is not None else None,
        window,
        float(duration) if duration else None,
    )


@dataclass(frozen=True)
class ProfileRun:
    """A finished profile: the data, its report, the files written and the profiler's cost."""

    profile: Profile
    report: ProfileReport
    folder: Path
    files: dict[str, str]
    qps_profiled: float | None
    qps_unprofiled: float | None
    result: Any = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def overhead(self) -> float | None:
        """Fraction of QPS lost while profiling (0.05 = 5 % slower), when both runs were made."""
        if not self.qps_profiled or not self.qps_unprofiled:
            return None
        return 1.0 - self.qps_profiled / self.qps_unprofiled

    def overhead_md(self) -> str:
        """One line on the profiler's QPS cost (QPS under a profiler is not comparable)."""
        if self.overhead is None or not self.qps_profiled or not self.qps_unprofiled:
            return ""
        change = self.qps_profiled / self.qps_unprofiled - 1.0
        noise = "; run-to-run noise exceeds the profiler's cost here" if change > 0 else ""
        return (
            f"Profiler overhead: {self.qps_unprofiled:,.0f} QPS unprofiled → "
            f"{self.qps_profiled:,.0f} QPS profiled ({change:+.1%}{noise}); "
            "compare QPS only between runs made the same way.\n"
        )

    def values(self, suffix: str = "") -> tuple[Value, ...]:
        out = list(self.report.values(suffix))
        if self.qps_profiled is not None:
            out.append(Value(f"qps_profiled{suffix}", self.qps_profiled, "q/s", "higher"))
        if self.qps_unprofiled is not None:
            out.append(Value(f"qps_unprofiled{suffix}", self.qps_unprofiled, "q/s", "higher"))
        if self.overhead is not None:
            out.append(Value(f"profiler_overhead{suffix}", self.overhead * 100, "%", "lower"))
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "files": self.files,
            "qps_profiled": self.qps_profiled,
            "qps_unprofiled": self.qps_unprofiled,
            "overhead": self.overhead,
            "report": self.report.to_dict(),
            "details": self.details,
        }

    def measurement(
        self, *, name: str, phase: str | None, root: Path | None = None, extra_md: str = ""
    ) -> Measurement:
        """The session record of this profile (values, tables, raw folder and file paths)."""
        suffix = f"@c{self.profile.concurrency}" if self.profile.concurrency else ""
        raw = self.folder
        if root is not None and raw.is_relative_to(root):
            raw = raw.relative_to(root)
        return Measurement(
            source="profile",
            name=name,
            phase=phase,
            values=self.values(suffix),
            summary_md=self.report.to_markdown() + self.overhead_md() + extra_md,
            raw_dir=str(raw),
            details={
                **self.details,
                "files": self.files,
                "folder": str(self.folder),
                "top": [r.to_dict() for r in self.report.top_self[:10]],  # for the log entry
            },
        )


def _new_recorder(
    spec: ProfileSpec,
    pids: Sequence[int],
    folder: Path,
    duration: float | None,
    call_graph: str | None,
    refresh: Callable[[], Sequence[int]] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Build the recorder for ``spec.tool`` and the details worth keeping about it."""
    if spec.tool == "perf":
        from sessionctl.profiling import perf

        event = spec.event or "cpu-clock"
        reason = perf.unusable_reason(event)
        if reason is not None:
            raise ToolNotFound(reason)
        options = perf.PerfOptions(
            event=event, frequency=spec.frequency, call_graph=call_graph or spec.call_graph
        )
        mode, notes = perf.choose_call_graph(options, pids)
        rec = perf.PerfRecording(
            pids=pids,
            data_path=folder / "perf.data",
            options=options,
            call_graph=mode,
            refresh=refresh,
        )
        return rec, {"call_graph": mode, "event": event, "notes": notes}
    if spec.tool == "py-spy":
        from sessionctl.profiling.pids import alive
        from sessionctl.profiling.pyspy import PySpyRecording

        rate = min(spec.frequency, 1000)
        live = alive(refresh() if refresh is not None else pids)  # py-spy cannot attach to the gone
        return PySpyRecording(pids=live, out_dir=folder, rate=rate), {
            "event": "py-spy",
            "rate": rate,
            "notes": [],
        }
    from sessionctl.profiling.pyspy import CommandRecording

    rec2 = CommandRecording(
        template=spec.command,
        pids=pids,
        out_dir=folder,
        frequency=spec.frequency,
        duration=duration or 0.0,
    )
    return rec2, {"event": spec.event or "command", "notes": []}


def profile_run(
    *,
    pids: Sequence[int] | Callable[[], Sequence[int]],
    run: Callable[[], Any],
    out_dir: Path,
    spec: ProfileSpec | None = None,
    unprofiled: Callable[[], Any] | None = None,
    concurrency: int | None = None,
    label: str = "",
    call_graph: str | None = None,
    keep_script: bool = False,
    top: int = 20,
    meta: dict[str, Any] | None = None,
    reporter: Reporter = NULL,
) -> ProfileRun:
    """Run the benchmark under the profiler (after an optional unprofiled run) and analyse it."""
    spec = spec or ProfileSpec()
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    qps_unprofiled = None
    if unprofiled is not None:
        reporter.phase("unprofiled run (for the profiler's overhead)")
        qps_unprofiled = run_facts(unprofiled()).qps
    # Read the pids after the unprofiled run (its backends are exiting) and again right before
    # the profiler attaches (the recorders call ``refresh``): a stale pid makes perf fail.
    refresh = pids if callable(pids) else None
    target_pids = list(pids() if callable(pids) else pids)
    if not target_pids:
        raise MeasurementError(
            "profile: the target has no processes to profile; is it running? "
            "(set target.pid or target.processes)"
        )
    recorder, details = _new_recorder(spec, target_pids, folder, None, call_graph, refresh)
    for note in details["notes"]:
        reporter.warn(note)
    reporter.phase(f"profiled run ({spec.tool}, {details.get('call_graph', details['event'])})")
    recorder.start()
    target_pids = list(recorder.pids)  # what the profiler really attached to
    if getattr(recorder, "retried", False):
        reporter.info("a target process exited while perf attached; attached to a fresh list")
    started = time.monotonic()
    try:
        result = run()
    except BaseException:
        recorder.abort()
        raise
    ended = time.monotonic()
    raw_stacks = recorder.stop()  # perf: None (its samples are read from perf.data below)
    facts = run_facts(result)
    window = facts.window or (started, ended)
    files: dict[str, str] = {}
    warnings = list(details["notes"])
    if spec.tool == "perf":
        from sessionctl.profiling import perf
        from sessionctl.profiling.folded import collapse_perf_script

        warnings += recorder.check_log()  # raises when perf stopped early at --max-size
        reporter.info("collapsing perf samples")
        copy_to = folder / "perf-script.txt.gz" if keep_script else None
        with perf.script_lines(recorder.data_path, copy_to=copy_to) as lines:
            collapsed = collapse_perf_script(lines, window=window)
        warnings += list(collapsed.warnings) + perf.script_warnings(recorder.data_path)
        stacks, period = collapsed.stacks, collapsed.mean_period
        files["perf_data"] = str(recorder.data_path)
        if copy_to is not None:
            files["perf_script"] = str(copy_to)
        details.update(argv=recorder.argv, dropped_outside_window=collapsed.dropped)
    else:
        stacks, period = raw_stacks or {}, None
        details["argv"] = getattr(recorder, "argvs", None) or getattr(recorder, "argv", None)
    if not stacks:
        raise MeasurementError(
            f"profile: no samples from pids {target_pids[:8]} in the measured window; the target "
            "used no CPU there, or these are not the processes serving the benchmark "
            "(check target.pid/processes)"
        )
    details.pop("notes", None)
    profile = Profile(
        stacks=stacks,
        queries=facts.queries,
        tool=spec.tool,
        event=details.get("event"),
        frequency=spec.frequency,
        period_ns=period,
        duration=window[1] - window[0],
        concurrency=concurrency,
        label=label or folder.name,
        meta={
            **(meta or {}),
            "pids": target_pids,
            "qps": facts.qps,
            "qps_unprofiled": qps_unprofiled,
            "warnings": warnings,
            **details,
        },
    )
    files.update(_write_outputs(profile, folder))
    report = analyze(profile, focus=spec.focus, groups=spec.groups, top=top)
    return ProfileRun(
        profile=profile,
        report=report,
        folder=folder,
        files=files,
        qps_profiled=facts.qps,
        qps_unprofiled=qps_unprofiled,
        result=result,
        details={**details, "pids": target_pids, "window": list(window), "queries": facts.queries},
    )


def _write_outputs(profile: Profile, folder: Path) -> dict[str, str]:
    """Write profile.json + folded stacks, the flame graph and the speedscope file."""
    from sessionctl.profiling.flamegraph import write_svg
    from sessionctl.profiling.speedscope import write_speedscope

    profile.save(folder)
    conc = f" at c{profile.concurrency}" if profile.concurrency else ""
    q = f", {profile.queries:,} queries" if profile.queries else ""
    svg = write_svg(
        folder / "flamegraph.svg",
        profile.stacks,
        title=f"{profile.label}{conc}",
        subtitle=f"{profile.tool} {profile.event or ''}: {profile.samples:,} samples{q}",
        queries=profile.queries,
    )
    speedscope = write_speedscope(
        folder / "speedscope.json", profile.stacks, name=profile.label, period_ns=profile.period_ns
    )
    return {
        "profile": str(folder / "profile.json"),
        "folded": str(folder / "stacks.folded"),
        "flamegraph": str(svg),
        "speedscope": str(speedscope),
    }
