"""Sessions as their code changes record them: the subject and the trailers ``close`` writes.

What a fresh clone has when the archives under ``.sessionctl/`` are gone.
"""

from __future__ import annotations

import re

from sessionctl.history.model import Headline, SessionRow
from sessionctl.workspace import Workspace

# perf(ddl): session 12: Title (p50_ms -50.2%, improved) / session 12 aborted: / (diagnostic):
_SUBJECT = re.compile(
    r"^perf\((?P<c>[^)]*)\): session (?P<n>\d+)(?P<how> aborted| \(diagnostic\))?: "
    r"(?P<title>.*?)(?: \([^()]*\))?$"
)
_PERCENT = re.compile(r"^([-+]?\d+(?:\.\d+)?)%$")


def _percent(text: str | None) -> float | None:
    m = _PERCENT.match((text or "").strip())
    return float(m[1]) if m else None


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def committed_rows(
    ws: Workspace, campaign: str, *, vcs: str = "auto", metric: str | None, better: str | None
) -> dict[int, SessionRow]:
    """Sessions as their code changes' descriptions record them (subject and trailers).

    What a fresh clone has when the archives under ``.sessionctl/`` are gone: the verdict, the
    headline's metric, before/after, effect and interval the trailers carry.
    """
    from sessionctl import perflog
    from sessionctl.errors import SessionctlError
    from sessionctl.vcs import detect

    try:
        found = detect(ws.root, prefer=vcs).described(f"perf({campaign}): session ")
    except SessionctlError:
        return {}  # no repository, or a VCS that cannot answer: the other records stand
    rows: dict[int, SessionRow] = {}
    for commit, message in found:
        m = _SUBJECT.match(message.split("\n", 1)[0].strip())
        if m is None or m["c"] != campaign or int(m["n"]) in rows:
            continue  # another campaign's, or an older change of the same session
        t = perflog.parse_trailers(message)
        said = t.get("Metric")
        head = None
        if said and (metric is None or said == metric or said.endswith(f":{metric}")):
            values = {k.split("-", 1)[0]: v for k, v in t.items()
                      if k.startswith(("Baseline-", "After-"))}  # fmt: skip
            low, _, high = (t.get("CI") or "").partition("..")
            ci = (_percent(low), _percent(high))
            head = Headline(
                metric=metric or said, better=better, before=_number(values.get("Baseline")),
                after=_number(values.get("After")), effect=_percent(t.get("Effect")),
                ci=(ci[0], ci[1]) if ci[0] is not None and ci[1] is not None else None,
                verdict=t.get("Verdict"), method=t.get("Method"),
            )  # fmt: skip
        elif metric is not None:
            head = Headline(metric=metric, better=better)
        aborted = (m["how"] or "").strip() == "aborted"
        rows[int(m["n"])] = SessionRow(
            number=int(m["n"]), step=t.get("Step"), title=m["title"],
            kind="diagnostic" if t.get("Session-Kind") == "diagnostic" else "optimization",
            outcome="aborted" if aborted else "closed",
            verdict=None if aborted else t.get("Verdict"), headline=head,
            change=commit[:12],
        )  # fmt: skip
    return rows
