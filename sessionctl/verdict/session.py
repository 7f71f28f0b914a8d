"""The session's verdicts: which judgement speaks for each metric, the results rows, the trailers.

Per metric, the latest paired comparison (``sessionctl compare``) of its benchmark gives the
judgement; every value a baseline and a re-measure share that no comparison covers is judged
unpaired (drift uncontrolled, so the interval is widened; the rule is in
``sessionctl.verdict.judgement``). Each comparison's metrics form one Holm family (adjusted when the
comparison ran); the unpaired values of the session form another. An A/A calibration
(``compare --aa``) is recorded for its noise floor but is never a verdict.

Rows and trailers show the numbers a verdict was computed from, so the delta always sits inside
its interval: for a paired judgement the geometric means of the A and the B runs (of per-run
medians/percentiles for latency) and the paired ratio, for an unpaired one the geometric means
of the baseline and the re-measure runs. The headline metric (the overall verdict and the
commit trailers) is the campaign's ``headline: {metric, better}`` (or ``close --metric``); without
one, the highest-concurrency ``qps@cN``, else the first throughput metric, else the first judged
one. A declared headline is the session's primary endpoint: its direction is the one declared,
and it is judged on its own rather than Holm-adjusted with the secondary metrics (a paired
comparison's family is fixed when ``compare`` runs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from sessionctl.campaign.model import CompareSpec
from sessionctl.measurement import Measurement, Value
from sessionctl.verdict.judgement import (
    VERDICTS,
    Judgement,
    infer_better,
    interval,
    is_throughput,
    judge_family,
    judge_paired,
    judge_unpaired,
    pct,
    threshold_for,
)

__all__ = [
    "NOT_COMPARABLE",
    "VERDICTS",
    "HeadlineChoice",
    "Judgement",
    "ResultRow",
    "choose_headline",
    "headline",
    "judge_paired",
    "judge_unpaired",
    "result_row",
    "results_rows",
    "rows_from",
    "summarize_session",
    "threshold_for",
    "trailers",
]


def is_calibration(m: Measurement) -> bool:
    """True for an A/A calibration's record (``compare --aa``): never a session's verdict."""
    return m.source == "compare" and (bool(m.details.get("aa")) or "calibration" in m.details)


def _samples(v: Value) -> tuple[float, ...]:
    return v.samples if v.samples else (v.value,)


def matches(label: str, metric: str) -> bool:
    """True when a judgement's label (``name`` or ``bench:name``) is the value ``metric``."""
    return label == metric or label.endswith(f":{metric}")


def summarize_session(
    measurements: Sequence[Measurement],
    *,
    compare: CompareSpec,
    primary: str | None = None,
    better: str | None = None,
) -> list[Judgement]:
    """The session's verdicts: per metric a paired comparison's, else baseline vs re-measure.

    The latest ``compare`` measurement of each benchmark gives paired judgements (A/A
    calibrations never do); every value a baseline and a re-measure share that no comparison
    covers is judged unpaired. Labels are ``bench:name`` when several benchmarks are involved.
    ``primary``: the headline value (judged unpaired on its own, with direction ``better`` when
    given); the other unpaired values form one Holm family.
    """
    paired: dict[str, list[Judgement]] = {}
    for m in measurements:
        if m.source == "compare" and m.details.get("judgements") and not is_calibration(m):
            paired[m.name] = [Judgement.from_dict(d) for d in m.details["judgements"]]
    before: dict[tuple[str, str], Value] = {}
    after: dict[tuple[str, str], Value] = {}
    for m in measurements:
        side = before if m.phase == "baseline" else after if m.phase == "remeasure" else None
        if side is not None:
            for v in m.values:
                side[(m.name, v.name)] = v
    covered = {(bench, j.metric) for bench, js in paired.items() for j in js}
    # The measured object count (``objects@n3.0k``) is a condition of a ddl measurement, not an
    # outcome: it decides what is comparable (``_across_counts``), it is never judged itself.
    shared = [k for k in before if k in after and k not in covered and before[k].unit != COUNT_UNIT]
    several = len({bench for bench, _ in shared} | set(paired)) > 1
    out = [
        _declared(replace(j, metric=f"{bench}:{j.metric}") if several else j, primary, better)
        for bench, js in paired.items()
        for j in js
    ]
    unpaired: list[Judgement] = []
    first: list[Judgement] = []
    mismatched = _across_counts(before, after, covered, several)
    is_primary = [primary is not None and matches(name, primary) for _bench, name in shared]
    family = len(shared) - sum(is_primary)
    for (bench, name), alone in zip(shared, is_primary, strict=True):
        bv, av = before[(bench, name)], after[(bench, name)]
        label = f"{bench}:{name}" if several else name
        direction = (better if alone else None) or av.better or bv.better or infer_better(name)
        j = judge_unpaired(label, _samples(bv), _samples(av), better=direction,
                           threshold=threshold_for(name, compare),
                           family=1 if alone else family)  # fmt: skip
        if bv.objects is not None and j.n < 2:  # a ddl value: one probe block per side
            j = replace(j, warnings=(ONE_BLOCK,))
        (first if alone else unpaired).append(replace(j, unit=j.unit or bv.unit or av.unit))
    return out + judge_family(first) + judge_family(unpaired) + mismatched


NOT_COMPARABLE = "not comparable"
COUNT_UNIT = "objects"  # the unit of a ddl run's measured object count (``objects@n3.0k``)
ONE_BLOCK = (
    "one probe block per side (its probes are not independent runs): no verdict; "
    "`sessionctl compare` judges paired blocks"
)


def _across_counts(
    before: Mapping[tuple[str, str], Value],
    after: Mapping[tuple[str, str], Value],
    covered: set[tuple[str, str]],
    several: bool,
) -> list[Judgement]:
    """Values keyed by a measured object count (ddl: ``table.median_ms@n3.0k``) that a baseline
    and a re-measure have only at different counts: one "not comparable" row each, never a
    verdict (latency at 1,000 objects says nothing about a change measured at 3,000)."""
    from sessionctl.bench.ddl_report import count_key

    def by_stem(side: Mapping[tuple[str, str], Value]) -> dict[tuple[str, str], dict[str, Value]]:
        out: dict[tuple[str, str], dict[str, Value]] = {}
        for (bench, name), v in side.items():
            key = count_key(name) if v.objects is not None and v.unit != COUNT_UNIT else None
            if key is not None and (bench, name) not in covered:
                out.setdefault((bench, key[0]), {})[key[1]] = v
        return out

    b_stems, a_stems = by_stem(before), by_stem(after)
    rows = []
    for (bench, stem), b_at in b_stems.items():
        a_at = a_stems.get((bench, stem), {})
        only_b = sorted((v.objects or 0, at) for at, v in b_at.items() if at not in a_at)
        only_a = sorted((v.objects or 0, at) for at, v in a_at.items() if at not in b_at)
        for (nb, lb), (na, la) in zip(only_b, only_a, strict=False):
            bv, av = b_at[lb], a_at[la]
            label = f"{stem}@{lb}≠{la}"
            rows.append(
                Judgement(
                    metric=f"{bench}:{label}" if several else label,
                    verdict=NOT_COMPARABLE,
                    method="unpaired",
                    n=min(len(_samples(bv)), len(_samples(av))),
                    better=bv.better or av.better,
                    a=bv.value,
                    b=av.value,
                    unit=bv.unit or av.unit,
                    warnings=(
                        f"baseline measured at {nb:,} objects, re-measure at {na:,}: not "
                        "judged across object counts; re-measure at the baseline's count",
                    ),
                )
            )
    return rows


_OPPOSITE = {
    "improved": "regressed",
    "regressed": "improved",
    "probably improved": "probably regressed",
    "probably regressed": "probably improved",
}


def _declared(j: Judgement, primary: str | None, better: str | None) -> Judgement:
    """A paired judgement of the headline, read in the campaign's declared direction.

    ``compare`` judged it with the direction it inferred from the name; when the campaign
    declares the other one, the interval is the same and only the words swap.
    """
    if primary is None or better is None or j.better == better or not matches(j.metric, primary):
        return j
    if j.better not in ("higher", "lower"):
        note = f"compare judged it with no direction; the headline says {better} is better"
        return replace(j, warnings=(*j.warnings, note))
    note = f"compare judged it {j.better} is better; read as the headline's {better} is better"
    return replace(j, verdict=_OPPOSITE.get(j.verdict, j.verdict), better=better,
                   warnings=(*j.warnings, note))  # fmt: skip


# --- results rows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultRow:
    """One line of the session's results: a metric's before, after, delta, verdict, interval."""

    metric: str
    unit: str
    better: str | None
    before: float | None  # paired: geometric mean of the A runs; unpaired: of the baseline runs
    after: float | None  # paired: of the B runs; unpaired: of the re-measure runs
    ratio: float | None  # after / before as judged (the paired ratio when paired)
    verdict: str
    ci_low: float | None = None  # 95 % interval of the ratio
    ci_high: float | None = None
    method: str = "paired"  # 'paired' | 'unpaired'
    n: int = 0  # pairs (paired) or runs per side (unpaired)

    @property
    def name(self) -> str:
        """The metric (the name ``perflog.ResultRow`` uses)."""
        return self.metric

    @property
    def delta(self) -> float | None:
        """The change in percent (``6725.3`` for +6725.3 %), None without a ratio."""
        return None if self.ratio is None else (self.ratio - 1) * 100

    @property
    def before_text(self) -> str:
        """``147.2 queries/s`` (or ``n/a``)."""
        return _with_unit(self.before, self.unit)

    @property
    def after_text(self) -> str:
        """``10,044 queries/s`` (or ``n/a``)."""
        return _with_unit(self.after, self.unit)

    @property
    def delta_text(self) -> str:
        """``+6725.3%`` (or ``n/a``)."""
        return "n/a" if self.ratio is None else pct(self.ratio)

    @property
    def interval_text(self) -> str:
        """``+5210.1% … +8571.0%`` (or ``n/a``)."""
        return interval(self.ci_low, self.ci_high)

    def to_dict(self) -> dict[str, Any]:
        texts = ("name", "delta", "before_text", "after_text", "delta_text", "interval_text")
        return asdict(self) | {k: getattr(self, k) for k in texts}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ResultRow:
        def opt(key: str) -> float | None:
            return None if d.get(key) is None else float(d[key])

        # Rows journaled by older versions have 'name' and no method: they were baseline vs
        # re-measure numbers, so unpaired.
        return cls(
            metric=str(d.get("metric") or d["name"]), unit=str(d.get("unit") or ""),
            better=d.get("better"), before=opt("before"), after=opt("after"), ratio=opt("ratio"),
            verdict=str(d.get("verdict") or "n/a"), ci_low=opt("ci_low"), ci_high=opt("ci_high"),
            method=str(d.get("method") or "unpaired"), n=int(d.get("n") or 0),
        )  # fmt: skip


def _with_unit(value: float | None, unit: str) -> str:
    from sessionctl.units import format_number

    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{format_number(value)} {unit}" if unit else format_number(value)


def _split(label: str, benches: Sequence[str]) -> tuple[str | None, str]:
    """``lookup:qps@c4`` -> ('lookup', 'qps@c4') when ``lookup`` is a benchmark of the session."""
    for bench in sorted(benches, key=len, reverse=True):
        if label.startswith(f"{bench}:"):
            return bench, label[len(bench) + 1 :]
    return None, label


def _latest(ms: Sequence[Measurement], phase: str, bench: str | None, name: str) -> Value | None:
    found = None
    for m in ms:
        if m.phase == phase and bench in (None, m.name):
            found = m.value(name) or found
    return found


def default_unit(name: str) -> str:
    """The unit the drivers give a value of this name (for records that did not keep one):
    ``queries/s`` for ``qps``, else the name's suffix (``p50_ms`` -> ``ms``, ``_us``, ``_s``).

    ``bench:name`` labels and ``@`` levels are allowed (``lookup:p50_ms@c4`` -> ``ms``).
    """
    base = name.split("@", 1)[0].rsplit(":", 1)[-1]
    units = {"qps": "queries/s", "tps": "transactions/s"}
    if base in units:
        return units[base]
    m = re.search(r"_(ms|us|ns|s)$", base)
    return m[1] if m else ""


def result_row(j: Judgement, measurements: Sequence[Measurement]) -> ResultRow:
    """The row for one judgement: the numbers it was computed from, with the unit they carry."""
    bench, name = _split(j.metric, sorted({m.name for m in measurements}))
    base = _latest(measurements, "baseline", bench, name)
    again = _latest(measurements, "remeasure", bench, name)
    before, after, ratio = j.a, j.b, j.ratio
    # Non-positive values: show them as measured (a "not comparable" row carries its own).
    if j.method == "unpaired" and ratio is None and j.verdict != NOT_COMPARABLE:
        before = base.value if base is not None else None
        after = again.value if again is not None else None
        ratio = after / before if before and after is not None else None
    unit = j.unit or next((v.unit for v in (base, again) if v is not None and v.unit), "")
    return ResultRow(
        metric=j.metric, unit=unit or default_unit(name), better=j.better, before=before,
        after=after, ratio=ratio, verdict=j.verdict, ci_low=j.ci_low, ci_high=j.ci_high,
        method=j.method, n=j.n,
    )  # fmt: skip


def rows_from(
    judgements: Sequence[Judgement], measurements: Sequence[Measurement]
) -> list[ResultRow]:
    """One row per judgement (from ``summarize_session``), in its order."""
    return [result_row(j, measurements) for j in judgements]


def results_rows(measurements: Sequence[Measurement], *, compare: CompareSpec) -> list[ResultRow]:
    """The session's results table: one row per judged metric, compare-only metrics included."""
    return rows_from(summarize_session(measurements, compare=compare), measurements)


# --- the headline and the commit trailers -------------------------------------------------------

_QPS_AT = re.compile(r"(?:^|:)qps@c(\d+)$")


@dataclass(frozen=True)
class HeadlineChoice:
    """Which judgement the session's verdict speaks for, and why (said in the log and output)."""

    metric: str | None  # the value name the verdict is on (None: nothing judged)
    judgement: Judgement | None
    source: str  # 'campaign' (headline:), 'option' (close --metric) or 'default'
    note: str  # one line: which metric, and where the choice came from

    @property
    def verdict(self) -> str:
        return self.judgement.verdict if self.judgement is not None else "n/a"


def choose_headline(
    judgements: Sequence[Judgement], *, metric: str | None = None, source: str = "campaign"
) -> HeadlineChoice:
    """The headline judgement: ``metric``'s (campaign ``headline:`` / ``close --metric``), else
    the default rule (see the module docstring)."""
    if metric:
        where = "close --metric" if source == "option" else "the campaign's headline"
        found = next((j for j in judgements if matches(j.metric, metric)), None)
        if found is None:
            have = ", ".join(j.metric for j in judgements) or "nothing"
            return HeadlineChoice(
                metric, None, source,
                f"verdict n/a: {metric} ({where}) was not measured on both sides "
                f"(judged: {have}); record it in the baseline and the re-measure",
            )  # fmt: skip
        return HeadlineChoice(metric, found, source, f"verdict on {found.metric} ({where})")
    j = headline(judgements)
    if j is None:
        return HeadlineChoice(None, None, "default", "verdict n/a: nothing was judged")
    return HeadlineChoice(
        j.metric, j, "default",
        f"verdict on {j.metric} (the campaign sets no headline: the highest-concurrency QPS, "
        "else the first throughput, else the first judged metric)",
    )  # fmt: skip


def headline(judgements: Sequence[Judgement]) -> Judgement | None:
    """The judgement the default rule picks (see the module docstring)."""
    best: tuple[int, Judgement] | None = None
    for j in judgements:
        m = _QPS_AT.search(j.metric)
        if m and (best is None or int(m[1]) > best[0]):
            best = (int(m[1]), j)
    if best is not None:
        return best[1]
    return next((j for j in judgements if is_throughput(j.metric)), None) or next(
        iter(judgements), None
    )


def _plain(x: float) -> str:
    """A number for a machine-read trailer: as shown to people, without separators or unit."""
    from sessionctl.units import format_number

    return format_number(x).replace(",", "")


def trailers(
    judgements: Sequence[Judgement],
    measurements: Sequence[Measurement],
    *,
    choice: HeadlineChoice | None = None,
) -> list[tuple[str, str]]:
    """Commit trailers for the headline metric: plain numbers, no units (empty when none).

    ``Verdict: improved``, ``Metric: qps@c4``, ``Baseline-QPS: 147.2``, ``After-QPS: 10044``,
    ``Effect: +6725.3%``, ``CI: +5210.1%..+8571.0%``, ``Method: paired`` (a ``p50_ms`` headline
    gives ``Baseline-P50-MS``/``After-P50-MS``). A declared headline that was not measured
    gives ``Verdict: n/a`` and its ``Metric:``.
    """
    choice = choice or choose_headline(judgements)
    j = choice.judgement
    if j is None:
        return [("Verdict", "n/a"), ("Metric", choice.metric)] if choice.metric else []
    row = result_row(j, measurements)
    name = _split(j.metric, sorted({m.name for m in measurements}))[1]
    quantity = name.split("@", 1)[0].split("{", 1)[0]
    key = re.sub(r"[^A-Za-z0-9]+", "-", quantity).strip("-").upper() or "VALUE"
    out = [("Verdict", j.verdict), ("Metric", j.metric)]
    for side, value in (("Baseline", row.before), ("After", row.after)):
        if value is not None and math.isfinite(value):
            out.append((f"{side}-{key}", _plain(value)))
    if row.ratio is not None:
        out.append(("Effect", pct(row.ratio)))
    if j.ci_low is not None and j.ci_high is not None:
        out.append(("CI", f"{pct(j.ci_low)}..{pct(j.ci_high)}"))
    return [*out, ("Method", j.method)]


def grouped_warnings(warnings: Sequence[str], *, named: int = 3) -> list[str]:
    """``metric: text`` warnings that several metrics share, said once with the metrics named.

    ``["a: x", "b: x", "c: y"]`` gives ``["x (2 metrics: a, b)", "c: y"]``; the first ``named``
    metrics are listed, then how many more (each is still in ``close --dry-run --json``).
    """
    groups: dict[str, list[str]] = {}
    for w in warnings:
        head, sep, rest = w.partition(": ")
        key, metric = (rest, head) if sep and head and " " not in head.strip() else (w, "")
        groups.setdefault(key, []).append(metric)
    out: list[str] = []
    for text, metrics in groups.items():
        names = [m for m in metrics if m]
        if len(names) < 2:
            out.extend(f"{m}: {text}" if m else text for m in metrics)
            continue
        shown = ", ".join(names[:named]) + (
            f", and {len(names) - named} more" if len(names) > named else ""
        )
        out.append(f"{text} ({len(names)} metrics: {shown})")
    return out
