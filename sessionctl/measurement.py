"""Measurement records: what every benchmark, scrape, profile or comparison hands to a session.

A :class:`Measurement` is a flat set of named :class:`Value` s (``qps@c64``, ``p99_ms@c64``,
``mz_frontend_peek_seconds{method=...}.mean_us@c64``...) plus a markdown summary and the folder
with its raw data. The session engine stores it, the perf log renders the before/after table from
the values that a baseline and a re-measure have in common, and the verdict machinery reads the
per-run ``samples``. Keeping the shape flat means every producer (built-in driver, pgbench,
dbbench, DDL probe, profiler, ``record --metric``) lands in the same table.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Better = Literal["higher", "lower"]
Phase = Literal["baseline", "profile", "change", "remeasure", "note"]
PHASES: tuple[str, ...] = ("baseline", "profile", "change", "remeasure", "note")


@dataclass(frozen=True)
class Value:
    """One named number, with its unit, which direction is better, and the per-run samples."""

    name: str
    value: float
    unit: str = ""
    better: Better | None = None
    samples: tuple[float, ...] = ()
    objects: int | None = None  # the object count it was measured at (ddl), None elsewhere

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["samples"] = list(self.samples)
        if self.objects is None:
            del d["objects"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Value:
        return cls(
            name=d["name"],
            value=float(d["value"]),
            unit=d.get("unit", ""),
            better=d.get("better"),
            samples=tuple(float(x) for x in d.get("samples", ())),
            objects=None if d.get("objects") is None else int(d["objects"]),
        )


@dataclass(frozen=True)
class Measurement:
    """A finished measurement, ready to be recorded into a session."""

    source: str  # "builtin" | "pgbench" | "dbbench" | "ddl" | "profile" | "compare" | "manual" ...
    name: str  # the benchmark (or metric) name
    phase: str | None = None
    values: tuple[Value, ...] = ()
    summary_md: str = ""  # a markdown table/paragraph for the log entry
    raw_dir: str | None = None  # workspace-relative folder with raw output
    details: dict[str, Any] = field(default_factory=dict)  # driver-specific, JSON-able
    at: str = field(default_factory=lambda: now_iso())

    def value(self, name: str) -> Value | None:
        for v in self.values:
            if v.name == name:
                return v
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "name": self.name,
            "phase": self.phase,
            "values": [v.to_dict() for v in self.values],
            "summary_md": self.summary_md,
            "raw_dir": self.raw_dir,
            "details": self.details,
            "at": self.at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measurement:
        return cls(
            source=d["source"],
            name=d["name"],
            phase=d.get("phase"),
            values=tuple(Value.from_dict(v) for v in d.get("values", ())),
            summary_md=d.get("summary_md", ""),
            raw_dir=d.get("raw_dir"),
            details=dict(d.get("details") or {}),
            at=d.get("at") or now_iso(),
        )


def now_iso() -> str:
    """The current time as an ISO-8601 UTC string (tests freeze it via SESSIONCTL_NOW)."""
    import os

    frozen = os.environ.get("SESSIONCTL_NOW")
    if frozen:
        return frozen
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
