"""Judgements: what the per-run numbers of a comparison honestly allow us to say.

The unit is the run (or the A/B pair of runs), never the request. Every effect is a ratio B/A
(after/before): the ratio of geometric means of the per-run values. For throughput the per-run
value is the run's QPS; for latency it is the run's median or percentile, so the ratio is one of
per-run medians/percentiles aggregated geometrically.

**Paired** (``judge_paired``): the 95 % interval is a paired t on the per-pair log ratios,
cross-checked by the exact Wilcoxon signed-rank test (Pratt zeros) and a BCa bootstrap over
pairs. **Unpaired** (``judge_unpaired``, a block of baseline runs against a block of re-measure
runs): Welch's t on log values and the Wilcoxon rank-sum test; because drift between the blocks
is not controlled, the interval (and the bootstrap interval) is widened by
``UNPAIRED_DRIFT_ALLOWANCE`` (5 %, log-symmetric) on both sides before the verdict is taken, so an
unpaired comparison can never say "no change" for a threshold up to 5 %, and "improved" needs the
effect to clear threshold + allowance.

The verdict, with the interval ``[L, U]`` of the log ratio turned to the *better* direction
(``good = log ratio`` when higher is better, ``-log ratio`` when lower is better) and the
threshold ``d = ln(1 + threshold)`` (so the no-change zone is ``1/(1+t) < ratio < 1+t``):

- **improved**: ``L > d`` — the whole interval lies beyond the threshold on the better side.
- **regressed**: ``U < -d``.
- **no change**: ``-d < L`` and ``U < d`` — the whole interval lies inside ±threshold.
- **probably improved**: otherwise, when ``L > 0`` — the change is significant at 5 % in the
  better direction but the interval crosses the threshold (its practical size is not
  established). **probably regressed**: ``U < 0``.
- **inconclusive**: the interval contains no change and reaches beyond the threshold. A point
  estimate beyond the threshold does not by itself earn a "probably": that is what the minimum
  detectable effect and the pairs needed are for.

Cross-checks: a directional verdict (improved, regressed, probably …) also needs the rank test's
p < 0.05 (when this many pairs can reach it at all: the exact signed-rank test needs 6 pairs)
and a bootstrap interval that excludes no change on the same side. When either disagrees the
verdict steps down one level (improved → probably improved → inconclusive) with a warning
naming the check, so every claim of a direction rests on all three methods.

When which direction is better is unknown, a verdict other than no change/inconclusive cannot be
named; the judgement says "inconclusive" with a warning giving the change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from sessionctl import stats
from sessionctl.campaign.model import CompareSpec
from sessionctl.measurement import Measurement, Value

VERDICTS = (
    "improved",
    "regressed",
    "no change",
    "probably improved",
    "probably regressed",
    "inconclusive",
)
UNPAIRED_DRIFT_ALLOWANCE = 0.05
HIGH_CV = 0.10
N_RESAMPLES = 4000


@dataclass(frozen=True)
class Judgement:
    """The verdict on one metric, with every number that led to it."""

    metric: str
    verdict: str
    ratio: float | None = None  # B/A (after/before) of geometric means
    ci_low: float | None = (
        None  # 95 % interval of the ratio (widened by the drift allowance if unpaired)
    )
    ci_high: float | None = None
    method: str = "paired"  # 'paired' | 'unpaired'
    p_t: float | None = None
    p_wilcoxon: float | None = None  # signed-rank (paired) or rank-sum (unpaired)
    boot_low: float | None = None
    boot_high: float | None = None
    threshold: float = 0.0  # practical threshold as a fraction (0.02 = 2 %)
    n: int = 0  # pairs (paired) or the smaller side's run count (unpaired)
    mde: float | None = None  # minimum detectable effect as a fraction, alpha 0.05, power 0.8
    pairs_needed: int | None = None  # pairs (runs per side if unpaired) for MDE <= threshold
    warnings: tuple[str, ...] = ()
    better: str | None = None
    a: float | None = None  # geometric mean of side A / before
    b: float | None = None  # geometric mean of side B / after

    @property
    def effect(self) -> float | None:
        """The relative change (``ratio - 1``)."""
        return None if self.ratio is None else self.ratio - 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Judgement:
        known: dict[str, Any] = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        known["warnings"] = tuple(d.get("warnings") or ())
        floats = ("ratio", "ci_low", "ci_high", "p_t", "p_wilcoxon", "boot_low", "boot_high", "mde")
        for key in (*floats, "a", "b"):
            known[key] = None if known.get(key) is None else float(known[key])
        return cls(**known)

    def describe(self) -> str:
        """One line for a log table or a commit trailer, e.g. ``qps@c16: improved +12.3% [...]``."""
        unit = "pairs" if self.method == "paired" else "runs/side"
        if self.ratio is None:
            return f"{self.metric}: {self.verdict} (n={self.n} {unit})"
        text = f"{self.metric}: {self.verdict} {pct(self.ratio)}"
        if self.ci_low is not None and self.ci_high is not None:
            text += f" (95% CI {pct(self.ci_low)} to {pct(self.ci_high)}"
        else:
            text += " (no interval"
        return text + f", n={self.n} {unit}, {self.method})"


def pct(ratio: float) -> str:
    """A ratio as a signed percent change: 1.034 -> ``+3.4%``."""
    return f"{(ratio - 1) * 100:+.1f}%"


def interval(lo: float | None, hi: float | None) -> str:
    """A ratio interval as percent changes: ``+3.1% … +9.8%``."""
    return "n/a" if lo is None or hi is None else f"{pct(lo)} … {pct(hi)}"


def markdown_table(judgements: Sequence[Judgement]) -> str:
    """Judgements as a markdown table: A, B, ratio, t interval, p-values, bootstrap, verdict."""
    from sessionctl.units import format_number

    def num(x: float | None) -> str:
        return "n/a" if x is None else format_number(x)

    def p(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3g}"

    lines = [
        "| metric | A | B | ratio | 95% CI | p (t) | p (Wilcoxon) | bootstrap | verdict |",
        "|---|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for j in judgements:
        lines.append(
            f"| `{j.metric}` | {num(j.a)} | {num(j.b)} | {pct(j.ratio) if j.ratio else 'n/a'} "
            f"| {interval(j.ci_low, j.ci_high)} | {p(j.p_t)} | {p(j.p_wilcoxon)} "
            f"| {interval(j.boot_low, j.boot_high)} | {j.verdict} |"
        )
    return "\n".join(lines)


# --- thresholds and directions ---------------------------------------------------------------

_TAIL = re.compile(r"^(p9\d*|max)$")
_THROUGHPUT = {"qps", "tps", "rps", "ops", "throughput", "rate"}
_LOWER = {"ms", "us", "ns", "s", "seconds", "latency", "mean", "median", "p50", "max", "errors"}


def _tokens(metric: str) -> list[str]:
    base = metric.split("@", 1)[0].lower()
    base = re.sub(r"\{[^}]*\}", "", base)  # label values must not look like statistic names
    return [t for t in re.split(r"[._/:\-\s]+", base) if t]


def threshold_for(metric: str, spec: CompareSpec) -> float:
    """The practical threshold: 5 % for tails (p9x, p99x, max), 2 % for throughput and medians."""
    toks = _tokens(metric)
    if any(_TAIL.match(t) for t in toks):
        return spec.threshold_tail
    if any(t in _THROUGHPUT for t in toks):
        return spec.threshold_throughput
    return spec.threshold_median


def infer_better(metric: str) -> str | None:
    """Guess which direction is better from a value name (``qps`` higher, ``*_ms`` lower)."""
    toks = _tokens(metric)
    if any(t in _THROUGHPUT for t in toks):
        return "higher"
    if any(t in _LOWER or re.match(r"^p\d+$", t) for t in toks):
        return "lower"
    return None


# --- the verdict rule ------------------------------------------------------------------------


def classify(
    low: float,
    high: float,
    *,
    delta: float,
    better: str | None,
) -> str:
    """Verdict from a log-ratio interval and the log threshold (before any cross-check)."""
    if -delta < low and high < delta:
        return "no change"
    if better not in ("higher", "lower"):
        return "inconclusive"
    g_low, g_high = (low, high) if better == "higher" else (-high, -low)
    if g_low > delta:
        return "improved"
    if g_high < -delta:
        return "regressed"
    if g_low > 0:
        return "probably improved"
    if g_high < 0:
        return "probably regressed"
    return "inconclusive"


def _cross_check(
    verdict: str,
    *,
    better: str | None,
    p_rank: float | None,
    min_p_rank: float,
    boot: tuple[float, float] | None,
    warnings: list[str],
) -> str:
    """Step a directional verdict down one level when the rank test or the bootstrap disagree."""
    base = verdict.removeprefix("probably ")
    if base not in ("improved", "regressed"):
        return verdict
    up = (base == "improved") == (better == "higher")  # the log ratio is positive
    problems = []
    if p_rank is not None and min_p_rank <= stats.ALPHA and p_rank >= stats.ALPHA:
        problems.append(f"rank test p={p_rank:.3g}")
    if boot is not None and (boot[0] <= 0 if up else boot[1] >= 0):
        problems.append("bootstrap interval includes no change")
    if not problems:
        return verdict
    lower = "inconclusive" if verdict.startswith("probably") else f"probably {verdict}"
    warnings.append(f"cross-checks disagree ({'; '.join(problems)}): {verdict} -> {lower}")
    return lower


def _spread_warnings(label: str, values: Sequence[float], warnings: list[str]) -> None:
    c = stats.cv(values)
    if c is not None and c > HIGH_CV:
        warnings.append(
            f"high run-to-run spread on {label}: CV {c * 100:.0f}% (> {HIGH_CV * 100:.0f}%)"
        )


def _direction_warning(ratio: float, better: str | None, verdict: str, warnings: list[str]) -> None:
    if better is None and verdict == "inconclusive":
        warnings.append(f"changed {pct(ratio)}, but which direction is better is unknown")


def _positive(values: Sequence[float]) -> bool:
    return bool(values) and all(v > 0 and math.isfinite(v) for v in values)


def _empty(
    metric: str,
    method: str,
    *,
    threshold: float,
    better: str | None,
    n: int,
    warning: str,
    a: float | None = None,
    b: float | None = None,
) -> Judgement:
    ratio = b / a if a and b and a > 0 and b > 0 else None
    return Judgement(metric, "inconclusive", ratio, method=method, threshold=threshold, n=n,
                     warnings=(warning,), better=better, a=a, b=b)  # fmt: skip


def judge_paired(
    metric: str,
    a: Sequence[float],
    b: Sequence[float],
    *,
    better: str | None,
    threshold: float,
    seed: int = 0,
    first: Sequence[str] | None = None,
) -> Judgement:
    """Judge B against A from per-pair values; ``first[i]`` ('A'/'B') ran first in pair i."""
    if len(a) != len(b):
        raise ValueError(f"{metric}: {len(a)} A runs but {len(b)} B runs; pairs need both")
    n = len(a)
    if not (_positive(a) and _positive(b)):
        return _empty(
            metric,
            "paired",
            threshold=threshold,
            better=better,
            n=n,
            warning="non-positive or missing values: a ratio is undefined",
        )
    ga, gb = stats.geometric_mean(a), stats.geometric_mean(b)
    if n < 2:
        return _empty(
            metric,
            "paired",
            threshold=threshold,
            better=better,
            n=n,
            warning="single pair: no interval",
            a=ga,
            b=gb,
        )
    lr = stats.log_ratios(a, b)
    delta = math.log1p(threshold)
    warnings: list[str] = []
    t = stats.one_sample_t(lr)
    assert t is not None
    w = stats.wilcoxon_signed_rank(lr)
    boot = (
        stats.bootstrap_ci([lr], stats.fast_mean, n_resamples=N_RESAMPLES, seed=seed)
        if n >= 3
        else None
    )
    verdict = classify(t.low, t.high, delta=delta, better=better)
    nonzero = sum(1 for x in lr if x != 0)
    min_p = stats.wilcoxon_min_p(nonzero)
    verdict = _cross_check(
        verdict,
        better=better,
        p_rank=w.p if w else None,
        min_p_rank=min_p,
        boot=boot,
        warnings=warnings,
    )
    sd = stats.sample_sd(lr)
    mde = math.expm1(stats.mde(sd / math.sqrt(n), n - 1))
    needed = stats.units_needed(sd * sd, delta)
    if min_p > stats.ALPHA:
        warnings.append(f"{n} pairs: the Wilcoxon test cannot reach p<0.05 (needs >= 6 pairs)")
    _spread_warnings("A", a, warnings)
    _spread_warnings("B", b, warnings)
    drift = stats.spearman(
        list(range(n)), [(math.log(x) + math.log(y)) / 2 for x, y in zip(a, b, strict=True)]
    )
    if drift is not None and drift.p < stats.ALPHA:
        warnings.append(f"drift across run order (Spearman rho {drift.rho:+.2f}, p={drift.p:.3g})")
    if first is not None:
        oe = stats.order_effect(lr, [f.upper() == "A" for f in first])
        if oe is not None and oe.p < stats.ALPHA:
            note = "" if oe.balanced else "; order unbalanced, so it biases the effect"
            warnings.append(
                f"order effect: second run in a pair {pct(math.exp(oe.log_effect))} "
                f"(p={oe.p:.3g}){note}"
            )
    out = stats.mad_outliers(lr)
    if out:
        warnings.append(
            f"{len(out)} outlier pair(s) by MAD (kept): #{', #'.join(str(i + 1) for i in out)}"
        )
    ratio = math.exp(t.estimate)
    _direction_warning(ratio, better, verdict, warnings)
    return Judgement(
        metric=metric, verdict=verdict, ratio=ratio, ci_low=math.exp(t.low),
        ci_high=math.exp(t.high), method="paired", p_t=t.p, p_wilcoxon=w.p if w else None,
        boot_low=math.exp(boot[0]) if boot else None, boot_high=math.exp(boot[1]) if boot else None,
        threshold=threshold, n=n, mde=mde, pairs_needed=needed, warnings=tuple(warnings),
        better=better, a=ga, b=gb,
    )  # fmt: skip


def judge_unpaired(
    metric: str,
    before: Sequence[float],
    after: Sequence[float],
    *,
    better: str | None,
    threshold: float,
    seed: int = 0,
) -> Judgement:
    """Judge a block of after-runs against before-runs (drift uncontrolled: interval widened)."""
    n = min(len(before), len(after))
    if not (_positive(before) and _positive(after)):
        return _empty(
            metric,
            "unpaired",
            threshold=threshold,
            better=better,
            n=n,
            warning="non-positive or missing values: a ratio is undefined",
        )
    ga, gb = stats.geometric_mean(before), stats.geometric_mean(after)
    if n < 2:
        return _empty(
            metric,
            "unpaired",
            threshold=threshold,
            better=better,
            n=n,
            warning="single run per side",
            a=ga,
            b=gb,
        )
    lx, ly = [math.log(v) for v in before], [math.log(v) for v in after]
    delta = math.log1p(threshold)
    allow = math.log1p(UNPAIRED_DRIFT_ALLOWANCE)
    warnings = [
        f"unpaired: drift between the before and after runs is not controlled; interval "
        f"widened by ±{UNPAIRED_DRIFT_ALLOWANCE * 100:.0f}% "
        "(use `sessionctl compare` for a paired A/B)"
    ]
    t = stats.welch_t(lx, ly)
    assert t is not None
    lo, hi = t.low - allow, t.high + allow
    mw = stats.mann_whitney(lx, ly)
    boot_raw = stats.bootstrap_ci(
        [lx, ly],
        lambda x, y: stats.fast_mean(y) - stats.fast_mean(x),
        n_resamples=N_RESAMPLES,
        seed=seed,
    )
    boot = (boot_raw[0] - allow, boot_raw[1] + allow) if boot_raw else None
    verdict = classify(lo, hi, delta=delta, better=better)
    min_p = min(1.0, 2 / math.comb(len(lx) + len(ly), len(lx)))
    verdict = _cross_check(
        verdict,
        better=better,
        p_rank=mw.p if mw else None,
        min_p_rank=min_p,
        boot=boot,
        warnings=warnings,
    )
    unit_var = stats.sample_sd(lx) ** 2 + stats.sample_sd(ly) ** 2
    mde = math.expm1(stats.mde(t.se, t.df) + allow) if t.se else math.expm1(allow)
    needed = stats.units_needed(unit_var, delta, groups=2)
    _spread_warnings("before", before, warnings)
    _spread_warnings("after", after, warnings)
    for label, vals in (("before", lx), ("after", ly)):
        drift = stats.spearman(list(range(len(vals))), vals)
        if drift is not None and drift.p < stats.ALPHA:
            warnings.append(
                f"drift within the {label} runs (Spearman rho {drift.rho:+.2f}, p={drift.p:.3g})"
            )
        out = stats.mad_outliers(vals)
        if out:
            warnings.append(f"{len(out)} outlier run(s) {label} by MAD (kept)")
    ratio = math.exp(t.estimate)
    _direction_warning(ratio, better, verdict, warnings)
    return Judgement(
        metric=metric, verdict=verdict, ratio=ratio, ci_low=math.exp(lo), ci_high=math.exp(hi),
        method="unpaired", p_t=t.p, p_wilcoxon=mw.p if mw else None,
        boot_low=math.exp(boot[0]) if boot else None, boot_high=math.exp(boot[1]) if boot else None,
        threshold=threshold, n=n, mde=mde, pairs_needed=needed, warnings=tuple(warnings),
        better=better, a=ga, b=gb,
    )  # fmt: skip


# --- a whole session -------------------------------------------------------------------------


def _samples(v: Value) -> tuple[float, ...]:
    return v.samples if v.samples else (v.value,)


def summarize_session(
    measurements: Sequence[Measurement], *, compare: CompareSpec
) -> list[Judgement]:
    """The session's verdicts: per metric a paired comparison's, else baseline vs re-measure.

    The latest ``compare`` measurement of each benchmark gives paired judgements; every value a
    baseline and a re-measure share that no comparison covers is judged unpaired. Labels are
    ``bench:name`` when several benchmarks are involved.
    """
    paired: dict[str, list[Judgement]] = {}
    for m in measurements:
        if m.source == "compare" and m.details.get("judgements"):
            paired[m.name] = [Judgement.from_dict(d) for d in m.details["judgements"]]
    before: dict[tuple[str, str], Value] = {}
    after: dict[tuple[str, str], Value] = {}
    for m in measurements:
        side = before if m.phase == "baseline" else after if m.phase == "remeasure" else None
        if side is not None:
            for v in m.values:
                side[(m.name, v.name)] = v
    covered = {(bench, j.metric) for bench, js in paired.items() for j in js}
    shared = [k for k in before if k in after and k not in covered]
    several = len({bench for bench, _ in shared} | set(paired)) > 1
    out = [
        replace(j, metric=f"{bench}:{j.metric}") if several else j
        for bench, js in paired.items()
        for j in js
    ]
    for bench, name in shared:
        bv, av = before[(bench, name)], after[(bench, name)]
        label = f"{bench}:{name}" if several else name
        better = av.better or bv.better or infer_better(name)
        thr = threshold_for(name, compare)
        xs, ys = _samples(bv), _samples(av)
        if len(xs) < 2 or len(ys) < 2:
            ga = stats.geometric_mean(xs) if _positive(xs) else None
            gb = stats.geometric_mean(ys) if _positive(ys) else None
            out.append(
                _empty(
                    label,
                    "unpaired",
                    threshold=thr,
                    better=better,
                    n=min(len(xs), len(ys)),
                    warning="single run per side",
                    a=ga,
                    b=gb,
                )
            )
        else:
            out.append(judge_unpaired(label, xs, ys, better=better, threshold=thr))
    return out
