"""What a compact log entry shows: one results table, counted warnings, the profile's top.

The default ``log-entry.md.j2`` reads like the entries people write by hand: **Setup**, the
problem profiling found (top functions with samples per query and the flame graph), **Root
cause**, **Changes**, one compact **Results** table, the headline's cumulative gain and **Key
observations**. Every row, warning and number stays in the session's record (``closed.json``,
``close --dry-run --json``); ``log_detail: full`` renders them all (``log-entry-full.md.j2``).

Tables: a DDL session's is objects level x statement (median ms); a throughput session's is
connections x QPS/latency; each cell ``before → after (delta)``, the delta in bold when the
verdict is significant. Other judged metrics appear only when they are the headline or a
metric the campaign watches (``metrics:``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionctl.measurement import Measurement
from sessionctl.units import format_number

if TYPE_CHECKING:
    from sessionctl.verdict.session import ResultRow
    from sessionctl.workspace import Workspace

_DDL = re.compile(r"^(?:(?P<bench>[^:]+):)?(?P<kind>[A-Za-z_][\w-]*)\.median_ms@n(?P<level>\d+k?)$")
_LOAD = re.compile(
    r"^(?:(?P<bench>[^:]+):)?(?P<stat>qps|tps|mean_ms|p50_ms|p90_ms|p99_ms)@c(?P<c>\d+)$"
)
_LOAD_HEADERS = {
    "qps": "QPS",
    "tps": "TPS",
    "mean_ms": "mean (ms)",
    "p50_ms": "p50 (ms)",
    "p90_ms": "p90 (ms)",
    "p99_ms": "p99 (ms)",
}
_SIGNIFICANT = ("improved", "regressed")
_WARNING_WIDTH = 160


def cell(row: ResultRow, *, with_unit: bool = False) -> str:
    """``444 → 127 (**−71.4%**)``: bold when the verdict is significant.

    ``with_unit`` (a table whose header names no unit): ``10 ms → 5 ms (...)``, the unit the
    row carries or, for a record that kept none, the one the commit message infers from the
    name (``p50_ms`` -> ms; :func:`sessionctl.verdict.session.default_unit`).
    """
    if with_unit:
        from dataclasses import replace

        from sessionctl.verdict.session import default_unit

        shown = replace(row, unit=row.unit or default_unit(row.metric))
        before, after = shown.before_text, shown.after_text
    else:
        before = format_number(row.before) if row.before is not None else "n/a"
        after = format_number(row.after) if row.after is not None else "n/a"
    delta = row.delta_text
    if row.verdict in _SIGNIFICANT and delta != "n/a":
        delta = f"**{delta}**"
    return f"{before} → {after} ({delta})"


def _level_value(label: str) -> int:
    return int(label[:-1]) * 1000 if label.endswith("k") else int(label)


def _grid(
    rows: Sequence[ResultRow],
    pattern: re.Pattern[str],
    *,
    corner: str,
    row_key: Callable[[re.Match[str]], Any],
    row_order: Callable[[Any], Any],
    column: str,
    heading: Callable[[str], str],
    column_order: Callable[[str], Any] | None = None,
) -> tuple[str, set[str]]:
    """The rows ``pattern`` matches as a grid: one line per ``row_key``, one column per
    ``column`` group (first seen first, or by ``column_order``); empty when none match."""
    grid: dict[Any, dict[str, ResultRow]] = {}
    columns: list[str] = []
    for r in rows:
        m = pattern.match(r.metric)
        if m is None:
            continue
        grid.setdefault(row_key(m), {})[m[column]] = r
        if m[column] not in columns:
            columns.append(m[column])
    if not grid:
        return "", set()
    if column_order is not None:
        columns.sort(key=column_order)
    lines = [
        f"| {corner} | " + " | ".join(heading(c) for c in columns) + " |",
        "|---:|" + "---:|" * len(columns),
    ]
    for key in sorted(grid, key=row_order):
        cells = [cell(grid[key][c]) if c in grid[key] else "" for c in columns]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    shown = {r.metric for by_column in grid.values() for r in by_column.values()}
    return "\n".join(lines), shown


def ddl_table(rows: Sequence[ResultRow]) -> tuple[str, set[str]]:
    """Objects level x statement, median ms per statement (empty when no DDL rows)."""
    return _grid(
        rows, _DDL, corner="objects", row_key=lambda m: m["level"], row_order=_level_value,
        column="kind", heading=lambda k: f"`{k}` (ms)",
    )  # fmt: skip


def load_table(rows: Sequence[ResultRow]) -> tuple[str, set[str]]:
    """Connections x throughput and latency (empty when no such rows)."""
    return _grid(
        rows, _LOAD, corner="connections", row_key=lambda m: int(m["c"]), row_order=int,
        column="stat", heading=_LOAD_HEADERS.__getitem__, column_order=list(_LOAD_HEADERS).index,
    )  # fmt: skip


def results_table(
    rows: Sequence[ResultRow], *, headline: str | None, watched: Sequence[str] = ()
) -> tuple[str, int]:
    """The compact results: the DDL or load grid, then the headline and watched metrics.

    Returns the markdown and how many judged rows it leaves out.
    """
    parts: list[str] = []
    shown: set[str] = set()
    for table, metrics in (ddl_table(rows), load_table(rows)):
        if table:
            parts.append(table)
            shown |= metrics

    def wanted(r: ResultRow) -> bool:
        name = r.metric.split(":", 1)[-1]
        return r.metric == headline or any(name.startswith(w) for w in watched)

    extra = [r for r in rows if r.metric not in shown and wanted(r)]
    if not parts and not extra:
        extra = list(rows[:4])  # nothing recognised: the first few rows stand in
    if extra:
        lines = ["| metric | before → after (delta) | verdict |", "|---|---:|---|"]
        lines += [f"| `{r.metric}` | {cell(r, with_unit=True)} | {r.verdict} |" for r in extra]
        parts.append("\n".join(lines))
        shown |= {r.metric for r in extra}
    return "\n\n".join(parts), sum(1 for r in rows if r.metric not in shown)


def warnings_line(warnings: Sequence[str]) -> str:
    """Warnings collapsed into one line: each distinct text once, with how many metrics.

    Texts that differ only in their numbers are one ("CV 12–22% over 2 runs (×3)").
    """
    groups: dict[tuple[str, ...], list[list[str]]] = {}
    for w in warnings:
        head, sep, rest = w.partition(": ")
        text = rest if sep and " " not in head.strip() else w  # 'metric: text' -> 'text'
        text = " ".join(text.split())
        if len(text) > _WARNING_WIDTH:
            text = text[: _WARNING_WIDTH - 1].rstrip() + "…"
        pieces = _NUMBER.split(text)
        groups.setdefault(tuple(pieces[0::2]), []).append(pieces[1::2])
    out = []
    for words, numbers in groups.items():
        slots = [_span([n[i] for n in numbers]) for i in range(len(words) - 1)]
        text = "".join(w + s for w, s in zip(words, [*slots, ""], strict=True))
        out.append(f"{text} (×{len(numbers)})" if len(numbers) > 1 else text)
    return "; ".join(out)


_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


def _span(values: Sequence[str]) -> str:
    """One number as written, or the range ``low–high`` of several."""
    low, high = min(values, key=float), max(values, key=float)
    return low if float(low) == float(high) else f"{low}–{high}"


def profile_top(
    measurements: Sequence[Measurement], ws: Workspace | None = None, *, top: int = 5
) -> dict[str, Any] | None:
    """The latest profile's top functions (samples per query) and its flame graph."""
    found = [m for m in measurements if m.source == "profile"]
    if not found:
        return None
    m = found[-1]
    spq = next((v for v in m.values if v.name.startswith("samples_per_query")), None)
    conc = next((v.name.split("@", 1)[1] for v in m.values if "@" in v.name), None)
    functions = []
    for row in (m.details.get("top") or [])[:top]:
        per_q = row.get("self_per_query")
        share = float(row.get("self_share") or 0.0)
        if per_q is not None:
            amount = f"{per_q:,.0f}/q" if per_q >= 10 else f"{format_number(per_q)}/q"
        else:
            amount = f"{share * 100:.0f}%"
        functions.append({"name": str(row.get("name")), "amount": amount})
    graph = (m.details.get("files") or {}).get("flamegraph")
    if graph and ws is not None:
        path = Path(graph)
        if path.is_absolute() and path.is_relative_to(ws.root):
            graph = path.relative_to(ws.root).as_posix()
    return {
        "at": conc,
        "samples_per_query": format_number(spq.value) if spq is not None else None,
        "functions": functions,
        "flamegraph": graph,
    }


def cumulative_gain(
    ws: Workspace,
    campaign: str,
    session: int,
    row: ResultRow | None,
    *,
    metric: str | None = None,
) -> str | None:
    """The headline's cumulative gain, in the words ``history`` uses for it:
    '`qps@c64`: 250.0 → 330.0 queries/s = +32.0% over 3 sessions (44-47; compounded +31.2%)'.

    ``metric``: the headline's name (the campaign's ``headline:``, ``close --metric``, or the
    default rule's pick; a ``bench:name`` label matches its name). The kept sessions are those
    of :func:`sessionctl.history.cumulative`: closed (never aborted: their change was not kept)
    sessions whose archive (``closed.json``) has both sides of it, then this one. With no
    earlier one, None (the results table already says it all).
    """
    from sessionctl import history

    if row is None or row.after is None:
        return None
    name = metric or row.metric
    rows: list[history.SessionRow] = []
    for n in range(1, session):
        data = history.archive(ws.session_dir(campaign) / str(n))
        if not data:
            continue
        head = history.headline_from_rows(data.get("results") or (), metric=name)
        outcome = "aborted" if data.get("kind") == "abort" else "closed"
        rows.append(history.SessionRow(number=n, outcome=outcome, headline=head))
    own = history.Headline(
        metric=name, better=row.better, unit=row.unit, before=row.before, after=row.after,
        effect=None if row.ratio is None else (row.ratio - 1) * 100,
    )  # fmt: skip
    rows.append(history.SessionRow(number=session, outcome="closed", headline=own))
    gain = history.cumulative(rows, metric=name)
    if gain is None or gain.sessions < 2:
        return None
    return history.cumulative_text(gain, markdown=True)


def setup_line(
    measurements: Sequence[Measurement],
    benchmarks: Mapping[str, Any],
    target: Sequence[str] | None = None,
) -> str:
    """'`read` (builtin; c64; 20s per level); target `bin/server --release`'."""
    out: list[str] = []
    for name in dict.fromkeys(m.name for m in measurements if m.source not in ("profile",)):
        b = benchmarks.get(name)
        if b is None:
            continue
        if b.driver == "ddl" and b.ddl is not None:
            levels = ", ".join(_level_text(n) for n in b.ddl.levels)
            out.append(f"`{name}` (ddl; {levels} objects; {b.ddl.probes_per_level} probes/level)")
        else:
            conc = ", ".join(f"c{c}" for c in b.concurrency)
            out.append(f"`{name}` ({b.driver}; {conc}; {format_number(b.duration)}s per level)")
    if target:
        import shlex

        out.append(f"target `{shlex.join(target)}`")
    return "; ".join(out)


def _level_text(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def context(
    ws: Workspace,
    campaign: Any,
    session: int,
    *,
    rows: Sequence[ResultRow],
    headline: str | None,
    measurements: Sequence[Measurement],
    entries: Sequence[Mapping[str, Any]],
    warnings: Sequence[str],
    diffstat: str = "",
    cumulative_metric: str | None = None,
) -> dict[str, Any]:
    """The compact entry's template variables (added to the full entry's).

    ``cumulative_metric``: the headline to state the campaign's cumulative gain for (None: no
    gain line, e.g. for an abort, whose change is not kept).
    """
    table, left_out = results_table(
        rows, headline=headline, watched=[m.name for m in campaign.metrics]
    )
    head_row = next((r for r in rows if r.metric == headline), None)
    benches = dict.fromkeys(m.name for m in measurements if m.source != "profile")
    about = [", ".join(f"`{b}`" for b in benches)] if benches else []
    if table.startswith("| objects |"):
        about.append("median per statement")
    closed = ws.session_dir(campaign.name) / str(session) / "closed.json"
    try:
        record_path = closed.resolve().relative_to(ws.root.resolve()).as_posix()
    except ValueError:
        record_path = str(closed)
    from sessionctl import perflog

    return {
        "h": heading_marks(perflog.read(ws, campaign.name)),
        "compact_results": table,
        "results_about": ", ".join(about),
        "rows_left_out": left_out,
        "warnings_line": warnings_line(warnings),
        "warnings_count": len(warnings),
        "profile_top": profile_top(measurements, ws),
        "cumulative": cumulative_gain(
            ws, campaign.name, session, head_row, metric=cumulative_metric
        )
        if cumulative_metric
        else None,
        "setup": setup_line(
            measurements, {b.name: b for b in campaign.benchmarks}, campaign.target.start
        ),
        "observations": [str(e["text"]) for e in entries if e.get("type") == "observation"],
        "root_causes": [str(e["text"]) for e in entries if e.get("type") == "root_cause"],
        "record_path": record_path,
        "files_line": files_line(diffstat),
    }


def heading_marks(log: str | None) -> str:
    """'###' when the log's last session entry is a level-3 heading (a hand-kept log), else '##'.

    The entry then sits at the level of the ones before it; its own subsections go one deeper.
    """
    found = re.findall(r"^(#{1,5})\s*Session\s+\d+", log or "", flags=re.MULTILINE | re.IGNORECASE)
    return found[-1] if found else "##"


def files_line(diffstat: str) -> str:
    """'`src/a.rs` (+10 −2), `img.png` (binary)': the files a change touched, on one line."""
    out = []
    for line in diffstat.splitlines():
        path, sep, counts = line.rpartition(" | ")
        if not sep:
            continue
        counts = counts.strip().replace(" -", " −")
        out.append(f"`{path.strip()}` ({counts})")
    return ", ".join(out)
