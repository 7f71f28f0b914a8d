"""A/A calibration over repeated trials: how often this machine's noise earns a false verdict.

``sessionctl compare --aa --trials N`` runs N A/A comparisons (the default protocol, with the
baseline on both sides; see :mod:`sessionctl.verdict.protocol`) and reports:

- the share of trials in which some metric claimed a direction. There are two readings: the
  lenient one counts improved/regressed, the strict one also counts "probably …". The issue's
  target is that >= 95 % of trials say only "no change"/"inconclusive". Each share comes with
  its 95 % Wilson interval, because 20 trials pin a rate down only loosely;
- the noise floor pooled over the trials, per metric: the median run-to-run CV (both sides),
  the median minimum detectable effect and the median pairs needed for the threshold.

One calibration is recorded into the open session as a single ``compare`` measurement marked
``aa``, so it never becomes the session's verdict.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sessionctl.errors import UsageError
from sessionctl.measurement import Measurement
from sessionctl.reporting import NULL, Reporter
from sessionctl.verdict.judgement import DIRECTIONAL
from sessionctl.verdict.protocol import CompareResult, run_compare
from sessionctl.workspace import Workspace

TARGET = 0.95  # share of A/A trials that must say only "no change"/"inconclusive"


@dataclass(frozen=True)
class Calibration:
    """Repeated A/A comparisons of one benchmark, and what they say about this machine."""

    benchmark: str
    trials: tuple[CompareResult, ...]
    session: int | None = None

    @property
    def false_trials(self) -> int:
        """Trials with an improved/regressed verdict on some metric (the lenient reading)."""
        return sum(1 for t in self.trials if t.false_verdicts)

    @property
    def directional_trials(self) -> int:
        """Trials with any directional verdict, "probably …" included (the strict reading)."""
        return sum(1 for t in self.trials if t.directional_verdicts)

    def readings(self) -> list[dict[str, Any]]:
        """Both readings: trials that stayed quiet, their share, its 95 % interval, pass/fail."""
        from sessionctl.verdict import stats

        n = len(self.trials)
        out = []
        for name, bad in (("lenient", self.false_trials), ("strict", self.directional_trials)):
            ok = n - bad
            low, high = stats.wilson(ok, n)
            false_low, false_high = stats.wilson(bad, n)
            out.append({"reading": name, "quiet_trials": ok, "trials": n, "share": ok / n,
                        "ci_low": low, "ci_high": high, "passed": ok >= TARGET * n,
                        "false_trials": bad, "false_share": bad / n,
                        "false_ci_low": false_low, "false_ci_high": false_high})  # fmt: skip
        return out

    def false_share_line(self) -> str:
        """The false-verdict share of each reading with its 95 % interval, in one line."""
        parts = [
            f"{r['reading']} {r['false_trials']}/{r['trials']} = {_pct(r['false_share'])} "
            f"(95% CI {_pct(r['false_ci_low'])} … {_pct(r['false_ci_high'])})"
            for r in self.readings()
        ]
        return f"false-verdict share: {'; '.join(parts)}; target <= {_pct(1 - TARGET)}"

    def noise_floor(self) -> list[dict[str, Any]]:
        """Per metric, pooled over the trials: median CV, median MDE, median pairs needed."""
        pooled: dict[str, dict[str, list[float]]] = {}
        for t in self.trials:
            for f in t.noise_floor():
                into = pooled.setdefault(f["metric"], {"cv": [], "mde": [], "pairs": []})
                into["cv"] += [x for x in (f["cv_a"], f["cv_b"]) if x is not None]
                into["mde"] += [f["mde"]] if f["mde"] is not None else []
                into["pairs"] += [f["pairs_needed"]] if f["pairs_needed"] is not None else []
        return [
            {
                "metric": metric,
                "median_cv": _median(v["cv"]),
                "median_mde": _median(v["mde"]),
                "median_pairs_needed": _ceil(_median(v["pairs"])),  # a count: never 2168.5
            }
            for metric, v in pooled.items()
        ]

    def verdict_counts(self) -> dict[str, dict[str, int]]:
        """Per metric, how many trials gave each verdict."""
        counts: dict[str, dict[str, int]] = {}
        for t in self.trials:
            for j in t.judgements:
                per = counts.setdefault(j.metric, {})
                per[j.verdict] = per.get(j.verdict, 0) + 1
        return counts

    def summary_md(self) -> str:
        """The calibration as a markdown paragraph and tables (for the session log)."""
        lines = [f"`{self.benchmark}` A/A calibration: {len(self.trials)} trials.", ""]
        lines += [
            "| reading | quiet trials | share | 95% CI | target >= 95% |",
            "|---|---:|---:|---|---|",
        ]
        for r in self.readings():
            lines.append(
                f"| {r['reading']} | {r['quiet_trials']}/{r['trials']} | {_pct(r['share'])} "
                f"| {_pct(r['ci_low'])} … {_pct(r['ci_high'])} | "
                f"{'met' if r['passed'] else 'not met'} |"
            )
        lines += [
            "",
            self.false_share_line() + ".",
            "",
            "| metric | median CV | median MDE | pairs for threshold |",
            "|---|---:|---:|---:|",
        ]
        for f in self.noise_floor():
            pairs = f["median_pairs_needed"]
            lines.append(
                f"| `{f['metric']}` | {_pct(f['median_cv'])} | {_pct(f['median_mde'])} "
                f"| {'n/a' if pairs is None else f'{pairs:g}'} |"
            )
        return "\n".join(lines) + "\n"

    def to_dict(self, *, runs: bool = True) -> dict[str, Any]:
        trials = [t.to_dict() for t in self.trials]
        if not runs:
            for t in trials:
                t.pop("runs", None)
        return {
            "benchmark": self.benchmark,
            "aa": True,
            "session": self.session,
            "target": TARGET,
            "readings": self.readings(),
            "noise_floor": self.noise_floor(),
            "verdicts": self.verdict_counts(),
            "trials": trials,
        }


def _median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _ceil(x: float | None) -> int | None:
    return None if x is None else math.ceil(x)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def run_calibration(
    ws: Workspace,
    campaign: str,
    *,
    trials: int,
    bench: str | None = None,
    seed: int | None = None,
    record: bool = True,
    reporter: Reporter = NULL,
    **compare: Any,
) -> Calibration:
    """Run ``trials`` A/A comparisons (``compare`` goes to each ``run_compare``) and sum up."""
    from sessionctl.session.record import open_number, record_measurement

    started_in = open_number(ws, campaign)  # the calibration belongs to this session only
    if trials < 1:
        raise UsageError(f"--trials must be at least 1, got {trials}")
    done: list[CompareResult] = []
    for i in range(trials):
        reporter.phase(f"A/A trial {i + 1}/{trials}")
        res = run_compare(ws, campaign, bench=bench, aa=True, record=False, reporter=reporter,
                          seed=None if seed is None else seed + i, **compare)  # fmt: skip
        done.append(res)
        said = ", ".join(f"{j.metric} {j.verdict}" for j in res.judgements)
        quiet = not any(j.verdict in DIRECTIONAL for j in res.judgements)
        reporter.info(f"trial {i + 1}/{trials}: {said}" + ("" if quiet else "  <- false"))
    cal = Calibration(done[0].benchmark, tuple(done))
    if record:
        m = Measurement("compare", cal.benchmark, None, (), cal.summary_md(), None,
                        {"aa": True, "calibration": cal.to_dict(runs=False)})  # fmt: skip
        number = record_measurement(ws, campaign, m, started_in=started_in)
        cal = Calibration(cal.benchmark, cal.trials, number)
    return cal
