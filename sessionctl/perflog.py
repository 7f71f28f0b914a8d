"""The campaign's performance log (``log:``, default ``logs/<campaign>-perf-log.md``).

One entry per session.

Entries are rendered from ``templates/log-entry.md.j2`` (user-overridable) and appended; an
existing hand-written log is kept byte for byte, entries only go after it. The helpers here
also format what an entry and a commit message share: the results table (its rows and the
verdicts come from :mod:`sessionctl.verdict.session`), the diff stat and the trailers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionctl.files import atomic_write, read_exact
from sessionctl.measurement import Measurement
from sessionctl.units import format_number
from sessionctl.vcs.base import NumStat
from sessionctl.workspace import Workspace

if TYPE_CHECKING:  # the verdict module (statistics) is imported only when a close needs it
    from sessionctl.verdict.session import ResultRow

LOG_TEMPLATE = "log-entry.md.j2"  # compact (the default)
FULL_LOG_TEMPLATE = "log-entry-full.md.j2"  # every row and warning (`log_detail: full`)


def format_value(value: float, unit: str) -> str:
    """``307,123 qps``, ``3.2 ms``."""
    text = format_number(value)
    return f"{text} {unit}" if unit else text


def results_table(rows: Sequence[ResultRow]) -> str:
    """The markdown before/after/delta/verdict table (empty string when there is nothing).

    The rows and their texts come from :func:`sessionctl.verdict.session.results_rows`: paired A/B
    numbers where the session has a comparison, baseline vs re-measure elsewhere.
    """
    if not rows:
        return ""
    lines = ["| metric | before | after | delta | verdict |", "|---|---:|---:|---:|---|"]
    for r in rows:
        unit = "pairs" if r.method == "paired" else "runs/side"
        how = [f"{r.method}, {r.n} {unit}" if r.n else r.method]
        if r.ci_low is not None and r.ci_high is not None:
            how.insert(0, f"95% CI {r.interval_text}")
        lines.append(
            f"| `{r.metric}` | {r.before_text} | {r.after_text} | {r.delta_text} "
            f"| {r.verdict} ({'; '.join(how)}) |"
        )
    return "\n".join(lines)


def format_diffstat(stats: Iterable[NumStat]) -> str:
    """A git-style diff stat: one ``path | +A -R`` line per file and a total line."""
    stats = list(stats)
    if not stats:
        return ""
    width = max(len(s.path) for s in stats)
    lines = []
    added = removed = 0
    for s in stats:
        if s.added is None:
            lines.append(f"{s.path.ljust(width)} | binary")
            continue
        added += s.added
        removed += s.removed or 0
        lines.append(f"{s.path.ljust(width)} | +{s.added} -{s.removed or 0}")
    n = len(stats)

    def pl(k: int) -> str:
        return "" if k == 1 else "s"

    lines.append(
        f"{n} file{pl(n)} changed, {added} insertion{pl(added)}(+), "
        f"{removed} deletion{pl(removed)}(-)"
    )
    return "\n".join(lines)


def measurement_view(measurements: Sequence[Measurement], phase: str) -> list[dict[str, Any]]:
    """The ``phase`` measurements as template data (summary, or values as text)."""
    return [
        {
            "name": m.name,
            "source": m.source,
            "summary_md": m.summary_md,
            "values": [{"name": v.name, "text": format_value(v.value, v.unit)} for v in m.values],
        }
        for m in measurements
        if m.phase == phase
    ]


def agent_view(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The session's latest ``agent`` entry (what ``sessionctl run`` recorded) as template data.

    None when no agent ran the session (a person did, without ``sessionctl run``).
    """
    from sessionctl.units import format_duration

    found = [e for e in entries if e.get("type") == "agent"]
    if not found:
        return None
    e = found[-1]
    cost = e.get("cost_usd")
    tokens = e.get("tokens") or {}
    inp, cached, out = (int(tokens.get(k) or 0) for k in ("input", "cached_input", "output"))
    token_text = None
    if inp or cached or out:
        token_text = f"{inp:,} in" + (f", {cached:,} cached" if cached else "") + f", {out:,} out"
    duration = float(e.get("duration_s") or 0.0)
    reason = str(e.get("exit_reason") or "unknown")
    if reason == "exited":
        code = e.get("exit_code")
        end = "exited" if code is None else f"exited with code {code}"
    else:
        end = f"stopped: {e.get('detail') or reason}"
    ending = e.get("ending") or {}
    kind = str(ending.get("kind") or "")
    if kind not in ("", "finished", "timeout", "killed") and ending.get("message"):
        # Why it ended, as the agent said (API error, refused tools, turn or budget limit).
        from sessionctl.agent.ending import label as ending_label

        label = ending_label(kind)
        if kind == "api_error":
            end = f"{label}: {ending['message']}"
        elif reason == "exited":
            end += f"; {label}: {ending['message']}"
    audit = e.get("audit") or {}
    verdict = None
    if audit.get("skipped"):
        verdict = "skipped"
    elif "passed" in audit:
        verdict = "passed" if audit["passed"] else "failed"
    return {
        "preset": str(e.get("preset") or "agent"),
        "model": e.get("model"),
        "turns": int(e.get("turns") or 0),
        "cost_usd": cost,
        "cost": _usd(cost),
        "tokens": token_text,
        "duration": format_duration(round(duration) if duration >= 60 else round(duration, 1)),
        "exit_reason": reason,
        "end": end,
        "tool_calls": int(e.get("tool_calls") or 0),
        "transcript": e.get("transcript"),
        "audit": verdict,
        "problems": [str(p.get("message")) for p in audit.get("problems") or ()],
    }


def _usd(value: float | None) -> str:
    if value is None:
        return "cost n/a"
    return f"${value:.2f}" if value == 0 or abs(value) >= 0.01 else f"${value:.4f}"


def trailers(
    *,
    session: int,
    step_id: str | None,
    kind: str,
    verdict: str | None,
    measured: Sequence[tuple[str, str]] = (),
    force_reason: str | None,
) -> list[tuple[str, str]]:
    """Machine-readable trailers for change #1 (``Session: 47``, ``Baseline-QPS: ...``).

    ``measured``: the verdict's trailers (:func:`~sessionctl.verdict.session.trailers`); without
    them the session verdict (``n/a`` when nothing was judged) still gets its ``Verdict:`` line.
    """
    out = [("Session", str(session))]
    if step_id:
        out.append(("Step", step_id))
    out.append(("Session-Kind", kind))
    if measured:
        out.extend(measured)
    elif verdict is not None:
        out.append(("Verdict", verdict))
    if force_reason:
        out.append(("Forced", " ".join(force_reason.split())))
    return out


def parse_trailers(message: str) -> dict[str, str]:
    """The ``Key: value`` trailers of a change description (its last paragraph), as a dict."""
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    if not paragraphs:
        return {}
    found: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        key, sep, value = line.partition(": ")
        if not sep or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", key):
            return {}  # not a trailer block
        found[key] = value.strip()
    return found


def collapse(text: str) -> str:
    """Collapse the blank-line runs that optional template sections leave behind."""
    return re.sub(r"\n{3,}", "\n\n", text).lstrip("\n")


# --- the log file -------------------------------------------------------------------------------


def header(title: str) -> str:
    """The first lines of a log sessionctl creates itself."""
    return f"# {title}: performance log\n\nOne entry per session, appended by `sessionctl close`.\n"


def appended(existing: str | None, entry: str, *, title: str) -> str:
    """The log's new text: ``existing`` untouched, then a blank line, then ``entry``."""
    base = header(title) if existing is None else existing
    if "\r\n" in base:  # a hand-written CRLF log: the entry follows its line endings
        entry = entry.replace("\r\n", "\n").rstrip("\n").replace("\n", "\r\n") + "\r\n"
        if base.endswith("\r\n\r\n"):
            return base + entry
        return base + ("\r\n" if base.endswith("\r\n") else "\r\n\r\n") + entry
    if not base or base.endswith("\n\n"):
        sep = ""
    elif base.endswith("\n"):
        sep = "\n"
    else:
        sep = "\n\n"
    return base + sep + entry.rstrip("\n") + "\n"


def render_entry(context: Mapping[str, Any], *, ws: Workspace, campaign: Any = None) -> str:
    """Render one log entry from the template (the user's override folder wins).

    The campaign's ``log_detail`` picks the compact template (default) or the full one.
    """
    from sessionctl.render import render_template

    full = getattr(campaign, "log_detail", "compact") == "full"
    name = FULL_LOG_TEMPLATE if full else LOG_TEMPLATE
    text = render_template(name, dict(context), ws=ws, campaign=campaign)
    return collapse(text).rstrip("\n") + "\n"


def read(ws: Workspace, campaign: str) -> str | None:
    """The log's current text, or None when there is no log yet."""
    return read_exact(ws.log_path(campaign))  # a CRLF log stays CRLF


def append(ws: Workspace, campaign: str, entry: str, *, title: str) -> Path:
    """Append ``entry`` to the campaign's log (atomically, under the campaign lock)."""
    path = ws.log_path(campaign)
    with ws.lock(campaign):
        atomic_write(path, appended(read(ws, campaign), entry, title=title))
    return path


def has_session(text: str | None, number: int) -> bool:
    """True when the log already has a heading for session ``number`` (hand-written or ours)."""
    if not text:
        return False
    return (
        re.search(rf"^#+\s*Session\s+{number}\b", text, flags=re.MULTILINE | re.IGNORECASE)
        is not None
    )


_SESSION_HEADING = re.compile(r"^#+\s*Session\s+(\d+)\b", flags=re.MULTILINE | re.IGNORECASE)


def session_numbers(text: str | None) -> list[int]:
    """Every session number the log has a heading for (``## Session 25 — ...``), in order."""
    return [int(m[1]) for m in _SESSION_HEADING.finditer(text or "")]


def highest_session(text: str | None) -> int:
    """The highest session number the log has a heading for (0 when it has none)."""
    return max(session_numbers(text), default=0)


def adopt(ws: Workspace, campaign: str, source: Path, *, force: bool = False) -> tuple[str, int]:
    """Make the users' existing log ``source`` the campaign's log, kept byte for byte.

    A log inside the workspace stays where it is (the campaign's ``log:`` names it); one
    outside is copied to ``logs/<campaign>-perf-log.md``. Returns the workspace-relative path
    to record as ``log:`` and the highest session number the log has a heading for.
    """
    from sessionctl.errors import UsageError

    try:
        data = source.read_bytes()
    except OSError as exc:
        raise UsageError(f"--log {source}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--log {source}: not UTF-8 text; convert it first") from None
    root = ws.root.resolve()
    where = source.expanduser().resolve()
    if where.is_relative_to(root):
        return where.relative_to(root).as_posix(), highest_session(text)
    dest = ws.default_log_path(campaign)
    if dest.exists() and dest.read_bytes() != data and not force:
        raise UsageError(
            f"{dest.relative_to(ws.root)}: already exists with other content; pass --force "
            "to replace it with --log"
        )
    atomic_write(dest, data)
    return dest.relative_to(ws.root).as_posix(), highest_session(text)
