"""``compare`` for ``driver: ddl``: paired probe blocks judged at the object count measured.

Each counted slot of the protocol (:mod:`sessionctl.verdict.protocol`) is one block of probes
(:mod:`sessionctl.bench.ddl_block`) at the count that exists now; the block's median and p90 per
probe kind (and each watched metric's delta per statement) are the per-run values, judged pair by
pair like the throughput drivers' runs. Judgements are keyed by the count (``@n3.0k``), and a
pair whose sides counted different objects makes every metric "not comparable".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sessionctl.verdict.judgement import Judgement

TAIL = "probe blocks at the current object count (block median/p90 per pair)"


def objects(runs: Sequence[dict[str, Any]]) -> list[int]:
    return sorted({int(r["objects"]) for r in runs if not r["warmup"] and "objects" in r})


def judge(
    runs: Sequence[dict[str, Any]], plan: Sequence[str], spec: Any, seed: int,
    warnings: list[str],
    judge_paired_runs: Callable[..., list[Judgement]],
) -> list[Judgement]:  # fmt: skip
    """Judge ddl probe blocks pair by pair, keyed by the object count both sides measured at.

    Every pair's A and B blocks must have counted the same objects (to 2 significant figures,
    the precision of the ``@n3.0k`` key): otherwise nothing is judged and every metric says
    "not comparable" (a side's setup SQL, or someone else, changed the population).
    """
    from sessionctl.bench.ddl_report import count_label
    from sessionctl.verdict.session import NOT_COMPARABLE

    counted = [r for r in runs if not r["warmup"]]
    per_pair: dict[int, dict[str, int]] = {}
    for r in counted:
        per_pair.setdefault(r["pair"], {})[r["side"]] = int(r["objects"])
    bad = [(k, p) for k, p in sorted(per_pair.items())
           if len(p) == 2 and count_label(p["A"]) != count_label(p["B"])]  # fmt: skip
    moved = [r for r in counted if count_label(r["objects_after"]) != count_label(r["objects"])]
    if moved:
        r = moved[0]
        warnings.append(f"pair {r['pair']} side {r['side']}: the object count moved during the "
                        f"block ({r['objects']:,} to {r['objects_after']:,}); is something else "
                        "creating objects?")  # fmt: skip
    labels = sorted({count_label(n) for p in per_pair.values() for n in p.values()})
    counts = objects(runs)
    if bad:
        k, p = bad[0]
        why = (
            f"pair {k}: A measured at {p.get('A', 0):,} objects, B at {p.get('B', 0):,}; paired "
            "blocks must measure at the same object count (check the sides' setup SQL)"
        )
        warnings.append(f"not comparable: {why}")
        names: list[str] = []
        for r in counted:
            names.extend(n for n in r["values"] if n not in names)
        return [Judgement(metric=f"{n}@{'≠'.join(labels)}", verdict=NOT_COMPARABLE,
                          better=counted[0]["better"].get(n), n=len(per_pair),
                          unit=counted[0]["units"].get(n, ""), warnings=(why,))
                for n in names]  # fmt: skip
    if len(labels) > 1:
        warnings.append(f"the object count moved between pairs ({counts[0]:,} to {counts[-1]:,}); "
                        "each pair was measured at one count")  # fmt: skip
    at = count_label(counts[len(counts) // 2]) if counts else "n0"
    for r in runs:  # key every run's values by the count, as the judgements are
        for field in ("values", "better", "units"):
            r[field] = {f"{k}@{at}": v for k, v in r[field].items()}
    return judge_paired_runs(runs, plan, spec, seed, None, warnings)
