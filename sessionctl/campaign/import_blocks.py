"""An imported prompt's blocks, and the dbbench ini runs among them.

Markdown blocks (:mod:`sessionctl.campaign.markdown`) become units in source order; a run of
dbbench ini lines is cut out of the paragraph it sits in (users paste the config straight
after "use this script:") and becomes a benchmark (:func:`benchmark`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sessionctl.campaign import markdown as md
from sessionctl.campaign.titles import Ids

_INI_SECTION = re.compile(r"^\[[^\]\n]+\]\s*$")
_INI_KEY = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?P<value>.*)$")
_DBBENCH_KEYS = {
    "duration",
    "error",
    "query",
    "query-file",
    "query-log-file",
    "query-args-file",
    "concurrency",
    "rate",
    "queue-depth",
    "count",
    "start",
    "stop",
    "batch-size",
    "multi-query-mode",
    "query-results-file",
    "query-log-parser",
    "time-field",
}


@dataclass
class Unit:
    """A block (or part of a paragraph) in source order, before classification."""

    kind: str  # heading | prose | list | code | ini
    start: int
    end: int
    block: md.Block | None = None
    lines: tuple[str, ...] = ()
    description: str | None = None  # an ini's lead-in sentence ("use this script:")


def _is_ini_line(line: str) -> bool:
    s = line.strip()
    if not s or s[0] in ";#":
        return False
    m = _INI_KEY.match(s)
    return bool(_INI_SECTION.match(s) or (m and m.group("key") in _DBBENCH_KEYS))


def _looks_dbbench(lines: list[str]) -> bool:
    keys = [m.group("key") for m in (_INI_KEY.match(ln.strip()) for ln in lines) if m]
    has_query = any(k.startswith("query") for k in keys)
    has_section = any(_INI_SECTION.match(ln.strip()) for ln in lines)
    return has_query and (has_section or "concurrency" in keys or "duration" in keys)


def units(lines: list[str], blocks: list[md.Block]) -> list[Unit]:
    """Blocks in order, with ini runs cut out of paragraphs and merged across blank lines."""
    raw: list[Unit] = []
    for b in blocks:
        if b.kind == "paragraph":
            run_start = b.start
            run_ini = _is_ini_line(lines[b.start])
            for idx in range(b.start + 1, b.end + 1):
                ini = idx < b.end and _is_ini_line(lines[idx])
                if idx == b.end or ini != run_ini:
                    raw.append(
                        Unit(
                            "ini" if run_ini else "prose",
                            run_start,
                            idx,
                            b,
                            tuple(lines[run_start:idx]),
                        )
                    )
                    run_start, run_ini = idx, ini
        elif b.kind == "code":
            body = [ln for ln in b.lines[1:-1] if ln.strip()]
            closed = len(b.lines) > 1 and md.FENCE.match(b.lines[-1]) is not None
            if (
                closed
                and body
                and all(_is_ini_line(ln) or ln.strip()[:1] in ";#" for ln in body)
                and _looks_dbbench(body)
            ):
                raw.append(Unit("ini", b.start, b.end, b, tuple(b.lines[1:-1])))
            else:
                raw.append(Unit("code", b.start, b.end, b, b.lines))
        else:
            raw.append(Unit(b.kind, b.start, b.end, b, b.lines))
    # Merge neighbouring ini runs (only blank lines between) that came from paragraphs.
    merged: list[Unit] = []
    for u in raw:
        prev = merged[-1] if merged else None
        if (
            prev is not None
            and u.kind == "ini"
            and prev.kind == "ini"
            and prev.block is not None
            and prev.block.kind == "paragraph"
            and u.block is not None
            and u.block.kind == "paragraph"
            and all(not lines[k].strip() for k in range(prev.end, u.start))
        ):
            merged[-1] = Unit(
                "ini", prev.start, u.end, prev.block, tuple(lines[prev.start : u.end])
            )
        else:
            merged.append(u)
    for u in merged:
        if u.kind == "ini" and not _looks_dbbench(list(u.lines)):
            u.kind = "prose"
    return merged


def lead_text(u: Unit) -> str:
    if u.kind == "heading" and u.block is not None:
        return u.block.text
    return " ".join(ln.strip() for ln in u.lines)


def is_lead_in(u: Unit) -> bool:
    if u.kind == "heading":
        return True
    text = lead_text(u)
    return u.kind == "prose" and len(u.lines) <= 3 and len(text) <= 300


def benchmark(u: Unit, lines: list[str], ids: Ids) -> dict[str, Any]:
    config = "\n".join(ln.rstrip() for ln in u.lines).strip("\n")
    levels: list[int] = []
    duration: str | None = None
    for ln in u.lines:
        m = _INI_KEY.match(ln.strip())
        if not m:
            continue
        if m.group("key") == "concurrency" and m.group("value").strip().isdigit():
            n = int(m.group("value").strip())
            if n not in levels:
                levels.append(n)
        if m.group("key") == "duration" and duration is None:
            duration = m.group("value").strip()
    bench: dict[str, Any] = {"name": ids.take("dbbench"), "driver": "dbbench"}
    before = " ".join(lines[max(0, u.start - 3) : u.start])
    binary = re.search(r"(?:~|\.{0,2})?/?[\w./-]*dbbench/dbbench\b|~/[\w./-]*dbbench\b", before)
    if binary:
        bench["binary"] = binary.group(0)
    if levels:
        bench["concurrency"] = sorted(levels)
    if duration:
        from sessionctl.units import parse_duration

        try:
            parse_duration(duration)
            bench["duration"] = duration
        except ValueError:
            pass  # dbbench reports its own error for a bad duration; the ini is kept verbatim
    if u.description:
        bench["description"] = u.description
    bench["config"] = config
    return bench
