"""A large delta at a glance: how many families and series changed, which moved most.

A full diff of Materialize's ``/metrics`` changes tens of thousands of series; listing them all
buries the answer. :func:`overview` counts what changed per family and picks the top movers by
absolute delta (``_bucket`` series left out: their family's ``_count`` says the same, once).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any

from sessionctl.metrics.delta import Delta, SeriesDelta

_DELTA, _RESET, _NEW = itemgetter(6), itemgetter(7), itemgetter(8)


@dataclass(frozen=True)
class FamilyChange:
    """One family's share of a delta: series changed out of its series, and their Δ summed."""

    family: str
    kind: str
    changed: int
    series: int
    delta: float  # Σ Δ of the changed series (histograms/summaries: of their _count)
    resets: int
    new: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "kind": self.kind,
            "changed": self.changed,
            "series": self.series,
            "delta": self.delta,
            "resets": self.resets,
            "new": self.new,
        }


@dataclass(frozen=True)
class Overview:
    """Counts for a whole delta, the families that changed (most changed series first, then
    largest |Δ|) and the series with the largest absolute deltas."""

    families: int
    series: int
    changed: int
    resets: int
    new: int
    missing: int
    by_family: tuple[FamilyChange, ...]
    movers: tuple[SeriesDelta, ...]

    @property
    def families_changed(self) -> int:
        return len(self.by_family)

    def to_dict(self) -> dict[str, Any]:
        return {
            "families": self.families,
            "families_changed": self.families_changed,
            "series": self.series,
            "changed": self.changed,
            "resets": self.resets,
            "new": self.new,
            "missing": self.missing,
            "by_family": [f.to_dict() for f in self.by_family],
            "movers": [s.to_dict() for s in self.movers],
        }


def overview(delta: Delta, changed: Sequence[SeriesDelta], *, top: int = 10) -> Overview:
    """Summarise ``changed`` (the series of ``delta`` worth listing) per family, with the ``top``
    movers by absolute delta."""
    family = itemgetter(2)
    totals = Counter(map(family, delta.series))  # counted in C: 100k series
    acc: dict[str, list[Any]] = {}  # family -> [kind, changed, Σ Δ, resets, new]
    # A delta lists each family's series together: one run per family, summed in C.
    for name, group in groupby(changed, key=family):
        run = list(group)
        kind = run[0].kind
        if kind in ("histogram", "summary"):
            d = sum(s.delta for s in run if s.name.endswith("_count"))
        else:
            d = sum(map(_DELTA, run))
        counts = [kind, len(run), d, sum(map(_RESET, run)), sum(map(_NEW, run))]
        row = acc.get(name)
        if row is None:
            acc[name] = counts
        else:
            row[1:] = [a + b for a, b in zip(row[1:], counts[1:], strict=True)]
    resets = sum(r[3] for r in acc.values())
    new = sum(r[4] for r in acc.values())
    by_family = sorted(
        (FamilyChange(f, k, c, totals.get(f, c), d, r, n) for f, (k, c, d, r, n) in acc.items()),
        key=lambda f: (-f.changed, -abs(f.delta), f.family),
    )
    candidates = [s for s in changed if not s.name.endswith("_bucket") and s.delta == s.delta]
    movers = heapq.nlargest(top, candidates, key=lambda s: abs(s.delta))
    return Overview(
        families=len(delta.families),
        series=len(delta.series),
        changed=len(changed),
        resets=resets,
        new=new,
        missing=len(delta.missing),
        by_family=tuple(by_family),
        movers=tuple(movers),
    )
