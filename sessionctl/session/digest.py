"""A long session at a glance, for ``status``: per-phase summaries, the last few measurements
and findings, a measurement's values grouped by level, and long path lists cut to their first
few.

An agent recording per query, or a long run loop, leaves tens of thousands of entries; a
build folder missing from ``.gitignore`` leaves 100k untracked files. What a person reads must
not grow with either: the counts say how much there is, ``--all`` and ``--json`` show it all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sessionctl.measurement import PHASES

T = TypeVar("T")

# How many measurements and findings `status` shows unless told otherwise.
LAST = 10
# How many paths of a long list (untracked files, a huge change) are named before the count.
FIRST_PATHS = 5


@dataclass(frozen=True)
class PhaseSummary:
    """What one phase holds: measurements, the numbers in them, findings."""

    phase: str
    measurements: int
    values: int
    findings: int


def phase_summaries(
    measurements: Iterable[Mapping[str, Any]], findings: Iterable[Mapping[str, Any]]
) -> list[PhaseSummary]:
    """Counts per phase, in workflow order (phases with nothing recorded left out)."""
    acc: dict[str, list[int]] = {}
    for m in measurements:
        row = acc.setdefault(_phase(m), [0, 0, 0])
        row[0] += 1
        row[1] += len(m.get("values") or ())
    for f in findings:
        acc.setdefault(_phase(f), [0, 0, 0])[2] += 1
    order = {p: i for i, p in enumerate(PHASES)}
    return [
        PhaseSummary(p, *acc[p]) for p in sorted(acc, key=lambda p: (order.get(p, len(order)), p))
    ]


def last(items: Sequence[T], n: int | None) -> tuple[Sequence[T], int]:
    """The last ``n`` items (all of them for None) and how many earlier ones are left out."""
    if n is None or n >= len(items):
        return items, 0
    return items[len(items) - n :] if n > 0 else items[:0], len(items) - max(n, 0)


def by_level(values: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """A measurement's values grouped by level (the part of a name after ``@``), levels in the
    order first seen, values in recorded order within a level."""
    order: dict[str, int] = {}
    for v in values:
        order.setdefault(split_level(str(v["name"]))[1], len(order))
    return sorted(values, key=lambda v: order[split_level(str(v["name"]))[1]])


def split_level(name: str) -> tuple[str, str]:
    """``create_table.median_ms@1k`` → (``create_table.median_ms``, ``1k``); no ``@``: no level."""
    metric, at, level = name.rpartition("@")
    return (metric, level) if at and metric else (name, "")


def capped(paths: Sequence[str], first: int = FIRST_PATHS) -> tuple[Sequence[str], int]:
    """The first few paths and how many more there are."""
    return paths[:first], max(len(paths) - first, 0)


def _phase(entry: Mapping[str, Any]) -> str:
    return str(entry.get("phase") or "note")
