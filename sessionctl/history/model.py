"""The records of ``sessionctl history``: a session's row, its headline, the cumulative effect."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OUTCOMES = ("closed", "aborted", "failed", "retired", "open", "logged")


@dataclass(frozen=True)
class Headline:
    """One session's headline value: before, after, the change and its 95 % interval (in %)."""

    metric: str
    better: str | None = None
    unit: str = ""
    before: float | None = None
    after: float | None = None
    effect: float | None = None  # percent change after vs before (-50.0 for halved)
    ci: tuple[float, float] | None = None  # percent, the interval of ``effect``
    verdict: str | None = None
    method: str | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.effect is None else 1 + self.effect / 100

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci else None
        return d


@dataclass(frozen=True)
class SessionRow:
    """One session of the campaign, as ``history`` lists it."""

    number: int
    date: str | None = None
    step: str | None = None
    title: str | None = None
    kind: str | None = None  # optimization | diagnostic
    outcome: str = "closed"  # see OUTCOMES
    verdict: str | None = None  # the session's verdict (closed optimization sessions)
    headline: Headline | None = None
    change: str | None = None  # the code change's commit (and jj change id)
    cost_usd: float | None = None
    reason: str | None = None
    raw: tuple[str, ...] = ()  # workspace-relative folders of raw benchmark/profile data
    flamegraphs: tuple[str, ...] = ()  # workspace-relative flame graph files

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["headline"] = self.headline.to_dict() if self.headline else None
        d["raw"] = list(self.raw)
        d["flamegraphs"] = list(self.flamegraphs)
        return d


@dataclass(frozen=True)
class Cumulative:
    """The headline's change over a run of kept (closed) sessions.

    ``effect``: the last session's after vs the first session's before, as measured (what the
    users' logs state: "444 ms → 127 ms = -71 %"); ``compounded``: the product of every
    session's own after/before, which does not mix measurements made on different days. When
    the two disagree in sign (:attr:`signs_disagree`: the level drifted between sessions), the
    texts lead with the compounded figure and say so in plain words.
    """

    metric: str
    better: str | None
    unit: str
    first_session: int
    last_session: int
    sessions: int
    first_before: float | None
    last_after: float | None
    effect: float | None
    compounded: float | None

    @property
    def signs_disagree(self) -> bool:
        """As measured and compounded point opposite ways (e.g. +10.6% vs -23.0%)."""
        if self.effect is None or self.compounded is None:
            return False
        return self.effect * self.compounded < 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"signs_disagree": self.signs_disagree}


@dataclass(frozen=True)
class History:
    campaign: str
    metric: str | None
    better: str | None
    rows: tuple[SessionRow, ...] = ()
    cumulative: Cumulative | None = None
    since: int | None = None
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "headline": {"metric": self.metric, "better": self.better},
            "since": self.since,
            "sessions": [r.to_dict() for r in self.rows],
            "cumulative": self.cumulative.to_dict() if self.cumulative else None,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Gain:
    """A session's headline and the campaign's cumulative change up to (and with) it."""

    headline: Headline | None
    cumulative: Cumulative | None
