"""Judgements: what the per-run numbers of one metric's comparison honestly allow us to say.

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

Several metrics judged together (``judge_family``: the QPS, p50 and p99 of one comparison, or
the values a baseline and a re-measure share): a directional verdict also needs the paired t's
p-value, **Holm-adjusted** across the m metrics of the family, below 0.05. Each metric's own
95 % test lets a change that is not there through 5 % of the time, so three metrics would give
some directional claim in up to 15 % of A/A comparisons; with the adjustment the chance that
*any* metric of the comparison claims a direction falsely stays at most 5 %, whatever their
correlation. A verdict that fails it becomes inconclusive with a warning giving the adjusted p.
The minimum detectable effect and the pairs needed are computed at the level the first of
Holm's steps faces, 0.05 / m, so they say what this many pairs can establish for the family.

Cross-checks: a directional verdict (improved, regressed, probably …) also needs the rank test's
p < 0.05 (when this many pairs can reach it at all: the exact signed-rank test needs 6 pairs)
and a bootstrap interval that excludes no change on the same side. When either disagrees the
verdict steps down one level (improved → probably improved → inconclusive) with a warning
naming the check, so every claim of a direction rests on all three methods. Hence a paired
direction needs at least ``MIN_PAIRS_FOR_DIRECTION`` (3) pairs: with 2 there is no bootstrap
to cross-check with, and the t interval on one degree of freedom rests on a single estimate of
the spread (two near-equal ratios, 1.0813 and 1.0817, would say "regressed +8.1%" with nothing
to back it); such a verdict is inconclusive, with a warning naming ``--pairs``.

When which direction is better is unknown, a verdict other than no change/inconclusive cannot be
named; the judgement says "inconclusive" with a warning giving the change.

Warnings (spread, drift, order effect, outliers) use tests that stay honest with few runs: exact
permutation p-values where the usual approximations break down (see ``sessionctl.verdict.stats``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from sessionctl.campaign.model import CompareSpec
from sessionctl.verdict import stats

VERDICTS = (
    "improved",
    "regressed",
    "no change",
    "probably improved",
    "probably regressed",
    "inconclusive",
)
DIRECTIONAL = ("improved", "regressed", "probably improved", "probably regressed")
MIN_PAIRS_FOR_DIRECTION = 3
UNPAIRED_DRIFT_ALLOWANCE = 0.05
HIGH_CV = 0.10
N_RESAMPLES = 4000


@dataclass(frozen=True)
class Judgement:
    """The verdict on one metric, with every number that led to it."""

    metric: str
    verdict: str
    ratio: float | None = None  # B/A (after/before) of geometric means
    # 95 % interval of the ratio (widened by the drift allowance if unpaired)
    ci_low: float | None = None
    ci_high: float | None = None
    method: str = "paired"  # 'paired' | 'unpaired'
    p_t: float | None = None
    p_wilcoxon: float | None = None  # signed-rank (paired) or rank-sum (unpaired)
    p_family: float | None = None  # p_t Holm-adjusted across the metrics judged together
    family: int = 1  # how many metrics were judged together (the Holm family)
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
    unit: str = ""  # of a and b ('queries/s', 'ms'); '' when the producer did not say

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
        floats = (
            "ratio",
            "ci_low",
            "ci_high",
            "p_t",
            "p_wilcoxon",
            "p_family",
            "boot_low",
            "boot_high",
            "mde",
        )
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

    def p_t(j: Judgement) -> str:
        if j.family > 1 and j.p_family is not None:
            return f"{p(j.p_t)} (Holm {p(j.p_family)})"
        return p(j.p_t)

    lines = [
        "| metric | A | B | ratio | 95% CI | p (t) | p (Wilcoxon) | bootstrap | verdict |",
        "|---|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for j in judgements:
        lines.append(
            f"| `{j.metric}` | {num(j.a)} | {num(j.b)} | {pct(j.ratio) if j.ratio else 'n/a'} "
            f"| {interval(j.ci_low, j.ci_high)} | {p_t(j)} | {p(j.p_wilcoxon)} "
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


def is_throughput(metric: str) -> bool:
    """True for throughput values (``qps@c4``, ``tps``, ``...rate``)."""
    return any(t in _THROUGHPUT for t in _tokens(metric))


def infer_better(metric: str) -> str | None:
    """Guess which direction is better from a value name (``qps`` higher, ``*_ms`` lower)."""
    if is_throughput(metric):
        return "higher"
    if any(t in _LOWER or re.match(r"^p\d+$", t) for t in _tokens(metric)):
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


def _positive(values: Sequence[float]) -> bool:
    return bool(values) and all(v > 0 and math.isfinite(v) for v in values)


def _degenerate(
    metric: str,
    method: str,
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    threshold: float,
    better: str | None,
    too_few: str,
) -> Judgement | None:
    """The inconclusive judgement when no interval can be had (None when one can)."""
    n = min(len(xs), len(ys))
    if not (_positive(xs) and _positive(ys)):
        warning, a, b = "non-positive or missing values: a ratio is undefined", None, None
    elif n < 2:
        warning, a, b = too_few, stats.geometric_mean(xs), stats.geometric_mean(ys)
    else:
        return None
    ratio = b / a if a and b else None
    return Judgement(metric, "inconclusive", ratio, method=method, threshold=threshold, n=n,
                     warnings=(warning,), better=better, a=a, b=b)  # fmt: skip


@dataclass(frozen=True)
class _Fit:
    """One comparison's log-scale numbers, before the verdict is taken."""

    estimate: float
    low: float  # 95 % interval (already widened when unpaired)
    high: float
    p_t: float
    p_rank: float | None
    min_p_rank: float  # the smallest p the rank test can reach with this many runs
    boot: tuple[float, float] | None
    mde: float
    needed: int | None


def _conclude(
    metric: str,
    method: str,
    fit: _Fit,
    sides: dict[str, Sequence[float]],
    *,
    better: str | None,
    threshold: float,
    n: int,
    first: Sequence[str],
    then: Sequence[str],
) -> Judgement:
    """Verdict, cross-checks and the shared warnings: ``first``, checks, spread, ``then``."""
    warnings = list(first)
    verdict = classify(fit.low, fit.high, delta=math.log1p(threshold), better=better)
    verdict = _cross_check(verdict, better=better, p_rank=fit.p_rank, min_p_rank=fit.min_p_rank,
                           boot=fit.boot, warnings=warnings)  # fmt: skip
    if method == "paired" and n < MIN_PAIRS_FOR_DIRECTION and verdict in DIRECTIONAL:
        warnings.append(
            f"{n} pairs: a direction needs at least {MIN_PAIRS_FOR_DIRECTION} (no bootstrap "
            f"cross-check with fewer): {verdict} -> inconclusive; rerun with --pairs "
            f"{MIN_PAIRS_FOR_DIRECTION} or more"
        )
        verdict = "inconclusive"
    for label, values in sides.items():
        c = stats.cv(values)
        if c is not None and c > HIGH_CV:
            warnings.append(
                f"high run-to-run spread on {label}: CV {c * 100:.0f}% over {len(values)} runs "
                f"(> {HIGH_CV * 100:.0f}%)"
            )
    warnings.extend(then)
    ratio = math.exp(fit.estimate)
    if better is None and verdict == "inconclusive":
        warnings.append(f"changed {pct(ratio)}, but which direction is better is unknown")
    boot = (math.exp(fit.boot[0]), math.exp(fit.boot[1])) if fit.boot else (None, None)
    a, b = (stats.geometric_mean(v) for v in sides.values())
    return Judgement(
        metric=metric, verdict=verdict, ratio=ratio, ci_low=math.exp(fit.low),
        ci_high=math.exp(fit.high), method=method, p_t=fit.p_t, p_wilcoxon=fit.p_rank,
        boot_low=boot[0], boot_high=boot[1], threshold=threshold, n=n,
        mde=math.expm1(fit.mde), pairs_needed=fit.needed, warnings=tuple(warnings),
        better=better, a=a, b=b,
    )  # fmt: skip


def _drift(label: str, values: Sequence[float]) -> list[str]:
    """A warning when the values trend over the run order (exact Spearman test for few runs)."""
    drift = stats.spearman(list(range(len(values))), values)
    if drift is None or drift.p >= stats.ALPHA:
        return []
    return [f"drift {label} (Spearman rho {drift.rho:+.2f}, p={drift.p:.3g})"]


def judge_paired(
    metric: str,
    a: Sequence[float],
    b: Sequence[float],
    *,
    better: str | None,
    threshold: float,
    seed: int = 0,
    first: Sequence[str] | None = None,
    family: int = 1,
) -> Judgement:
    """Judge B against A from per-pair values; ``first[i]`` ('A'/'B') ran first in pair i.

    ``family``: how many metrics are judged together (MDE and pairs needed at 0.05 / family);
    ``judge_family`` then applies the adjustment to the verdicts.
    """
    if len(a) != len(b):
        raise ValueError(f"{metric}: {len(a)} A runs but {len(b)} B runs; pairs need both")
    n = len(a)
    early = _degenerate(metric, "paired", a, b, threshold=threshold, better=better,
                        too_few="single pair: no interval")  # fmt: skip
    if early is not None:
        return early
    lr = stats.log_ratios(a, b)
    t = stats.one_sample_t(lr)
    assert t is not None
    w = stats.wilcoxon_signed_rank(lr)
    boot = (
        stats.bootstrap_ci([lr], stats.fast_mean, n_resamples=N_RESAMPLES, seed=seed)
        if n >= 3
        else None
    )
    min_p = stats.wilcoxon_min_p(sum(1 for x in lr if x != 0))
    sd = stats.sample_sd(lr)
    level = stats.ALPHA / max(1, family)
    fit = _Fit(t.estimate, t.low, t.high, t.p, w.p if w else None, min_p, boot,
               stats.mde(sd / math.sqrt(n), n - 1, alpha=level),
               stats.units_needed(sd * sd, math.log1p(threshold), alpha=level))  # fmt: skip
    notes = []
    if min_p > stats.ALPHA:
        notes.append(f"{n} pairs: the Wilcoxon test cannot reach p<0.05 (needs >= 6 pairs)")
    if sd == 0:
        notes.append(
            f"all {n} pairs have the same ratio: the interval has zero width (quantized values?)"
        )
    levels = [(math.log(x) + math.log(y)) / 2 for x, y in zip(a, b, strict=True)]
    notes += _drift("across run order", levels)
    if first is not None:
        oe = stats.order_effect(lr, [f.upper() == "A" for f in first])
        if oe is not None and oe.p < stats.ALPHA:
            note = "" if oe.balanced else "; order unbalanced, so it biases the effect"
            notes.append(
                f"order effect: second run in a pair {pct(math.exp(oe.log_effect))} "
                f"(p={oe.p:.3g}){note}"
            )
    out = stats.outliers(lr)
    if out:
        numbers = ", #".join(str(i + 1) for i in sorted(out))
        notes.append(f"{len(out)} outlier pair(s) by generalized ESD (kept): #{numbers}")
    return _conclude(metric, "paired", fit, {"A": a, "B": b}, better=better,
                     threshold=threshold, n=n, first=(), then=notes)  # fmt: skip


def judge_unpaired(
    metric: str,
    before: Sequence[float],
    after: Sequence[float],
    *,
    better: str | None,
    threshold: float,
    seed: int = 0,
    family: int = 1,
) -> Judgement:
    """Judge a block of after-runs against before-runs (drift uncontrolled: interval widened)."""
    early = _degenerate(metric, "unpaired", before, after, threshold=threshold, better=better,
                        too_few="single run per side")  # fmt: skip
    if early is not None:
        return early
    lx, ly = [math.log(v) for v in before], [math.log(v) for v in after]
    allow = math.log1p(UNPAIRED_DRIFT_ALLOWANCE)
    t = stats.welch_t(lx, ly)
    assert t is not None
    mw = stats.mann_whitney(lx, ly)
    boot = stats.bootstrap_ci([lx, ly], lambda x, y: stats.fast_mean(y) - stats.fast_mean(x),
                              n_resamples=N_RESAMPLES, seed=seed)  # fmt: skip
    unit_var = stats.sample_sd(lx) ** 2 + stats.sample_sd(ly) ** 2
    level = stats.ALPHA / max(1, family)
    fit = _Fit(t.estimate, t.low - allow, t.high + allow, t.p, mw.p if mw else None,
               min(1.0, 2 / math.comb(len(lx) + len(ly), len(lx))),
               (boot[0] - allow, boot[1] + allow) if boot else None,
               (stats.mde(t.se, t.df, alpha=level) if t.se else 0.0) + allow,
               stats.units_needed(unit_var, math.log1p(threshold), groups=2,
                                  alpha=level))  # fmt: skip
    notes = []
    for label, vals in (("before", lx), ("after", ly)):
        notes += _drift(f"within the {label} runs", vals)
        out = stats.outliers(vals)
        if out:
            notes.append(f"{len(out)} outlier run(s) {label} by generalized ESD (kept)")
    caveat = (
        f"unpaired: drift between the before and after runs is not controlled; interval "
        f"widened by ±{UNPAIRED_DRIFT_ALLOWANCE * 100:.0f}% "
        "(use `sessionctl compare` for a paired A/B)"
    )
    return _conclude(metric, "unpaired", fit, {"before": before, "after": after}, better=better,
                     threshold=threshold, n=min(len(lx), len(ly)), first=(caveat,),
                     then=notes)  # fmt: skip


def judge_family(judgements: Sequence[Judgement]) -> list[Judgement]:
    """Apply Holm's adjustment across metrics judged together (see the module docstring).

    Every judgement with a t test gets ``p_family`` (its p_t, Holm-adjusted over the m that
    have one) and ``family = m``; a directional verdict whose adjusted p is not below 0.05
    becomes inconclusive, with a warning. A family of one changes nothing but the record.
    """
    adjusted = stats.holm([j.p_t for j in judgements])
    m = sum(p is not None for p in adjusted)
    out = []
    for j, p in zip(judgements, adjusted, strict=True):
        if p is None:
            out.append(j)
            continue
        verdict, warnings = j.verdict, j.warnings
        if verdict in DIRECTIONAL and p >= stats.ALPHA:
            verdict = "inconclusive"
            note = (
                f"not significant once the {m} metrics judged together are accounted for "
                f"(Holm-adjusted p={p:.3g}): {j.verdict} -> inconclusive"
            )
            warnings = (*warnings, note)
        out.append(replace(j, verdict=verdict, warnings=warnings, p_family=p, family=m))
    return out
