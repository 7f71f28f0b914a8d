"""Turn a hand-written handoff prompt (markdown) into campaign YAML that renders back to it.

The prompt is split into blocks (:mod:`sessionctl.campaign.markdown`). Blocks recognised with
confidence become structured fields: next-step lists after a "next steps" lead-in (steps and a
group titled by the lead-in), "Completed optimizations/diagnostics" lists, dbbench ini blocks
(benchmarks). Everything else is kept verbatim as ordered ``sections``, and ``layout`` records
the original order, so rendering the result reproduces every paragraph, bullet, code block and
number of the original in the same order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sessionctl.campaign import markdown as md
from sessionctl.campaign.model import SCHEMA_VERSION
from sessionctl.campaign.schema import LAYOUT_BUILTIN

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_NEXT = re.compile(r"(?i)\bnext[ -]?steps?\b|\bto[- ]?dos?\b|\bideas to (?:try|explore)\b")
_COMPLETED = re.compile(
    r"(?i)^\W*(?:completed|done|finished|resolved)\b[^\n]{0,40}?\b(optimi[sz]ations?|diagnostics?)\b"
)
_SESSIONS = re.compile(r"(?i)\bsessions?\s+#?(\d+(?:\s*(?:,|and|&|-|–|to)\s*#?\d+)*)")
_UPCOMING = re.compile(
    r"(?i)\bsession\s+#?(\d+)\s+(?:is|will be)\s+(?:the\s+)?next\b"
    r"|\bnext\s+session\s+(?:is|will be)\s+(?:session\s+)?#?(\d+)"
)
_METRICS_URL = re.compile(r"https?://[^\s`<>)\]]+/metrics\b")
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
_ABBREV = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "incl.", "resp.")
# Section ids the schema reserves (built-in layout items), plus "title".
_RESERVED = {"title", *LAYOUT_BUILTIN}


def valid_name(name: str) -> bool:
    """Is this usable as a campaign name (a file name under prompts/)?"""
    return bool(_NAME.match(name))


@dataclass
class ImportResult:
    """The campaign YAML text and a summary of what was recognised."""

    yaml: str
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Unit:
    """A block (or part of a paragraph) in source order, before classification."""

    kind: str  # heading | prose | list | code | ini
    start: int
    end: int
    block: md.Block | None = None
    lines: tuple[str, ...] = ()


def slug(text: str, words: int = 4) -> str:
    """'Remaining Histogram::observe calls (~802' -> 'remaining-histogram-observe-calls'."""
    tokens = re.findall(r"[A-Za-z0-9]+", text.replace("_", " ").lower())
    return "-".join(tokens[:words]) or "item"


class _Ids:
    def __init__(self, reserved: set[str] | None = None) -> None:
        self.used: set[str] = set(reserved or ())

    def take(self, base: str) -> str:
        candidate, n = base, 2
        while candidate in self.used:
            candidate = f"{base}-{n}"
            n += 1
        self.used.add(candidate)
        return candidate


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


def _units(lines: list[str], blocks: list[md.Block]) -> list[_Unit]:
    """Blocks in order, with ini runs cut out of paragraphs and merged across blank lines."""
    raw: list[_Unit] = []
    for b in blocks:
        if b.kind == "paragraph":
            run_start = b.start
            run_ini = _is_ini_line(lines[b.start])
            for idx in range(b.start + 1, b.end + 1):
                ini = idx < b.end and _is_ini_line(lines[idx])
                if idx == b.end or ini != run_ini:
                    raw.append(
                        _Unit(
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
                raw.append(_Unit("ini", b.start, b.end, b, tuple(b.lines[1:-1])))
            else:
                raw.append(_Unit("code", b.start, b.end, b, b.lines))
        else:
            raw.append(_Unit(b.kind, b.start, b.end, b, b.lines))
    # Merge neighbouring ini runs (only blank lines between) that came from paragraphs.
    merged: list[_Unit] = []
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
            merged[-1] = _Unit(
                "ini", prev.start, u.end, prev.block, tuple(lines[prev.start : u.end])
            )
        else:
            merged.append(u)
    for u in merged:
        if u.kind == "ini" and not _looks_dbbench(list(u.lines)):
            u.kind = "prose"
    return merged


def _lead_text(u: _Unit) -> str:
    if u.kind == "heading" and u.block is not None:
        return u.block.text
    return " ".join(ln.strip() for ln in u.lines)


def _is_lead_in(u: _Unit) -> bool:
    if u.kind == "heading":
        return True
    text = _lead_text(u)
    return u.kind == "prose" and len(u.lines) <= 3 and len(text) <= 300


def _strip_bold(text: str) -> str:
    for mark in ("**", "__"):
        if (
            text.startswith(mark)
            and text.endswith(mark)
            and len(text) > 4
            and mark not in text[2:-2]
        ):
            return text[2:-2].strip()
    return text


def split_item(content: tuple[str, ...]) -> tuple[str, str]:
    """An item's title (first clause of its first paragraph) and the rest, as markdown."""
    first, after = md.item_paragraph(content)
    first = [ln.rstrip() for ln in first]
    joined = " ".join(ln.strip() for ln in first)
    cut = _cut(joined)
    if cut is None:
        title, rest_first = joined, []
    else:
        # Map the cut back onto the original lines so the rest keeps its line breaks.
        title = joined[: cut[0]].strip()
        remaining = joined[cut[1] :].lstrip()
        rest_first = _rewrap(first, remaining)
    title = _strip_bold(title)
    rest = "\n".join(rest_first + [ln.rstrip() for ln in after]).strip("\n")
    if rest and not rest_first and after and md.is_blank(after[0]):
        # The item goes on in a new paragraph: a leading newline tells the renderer so.
        rest = "\n" + rest
    return title, rest


def _cut(text: str) -> tuple[int, int] | None:
    """Where the title ends: (end of title, start of rest); the title keeps a sentence's '.'."""
    for m in re.finditer(r":(?:\s|$)", text):
        pos = m.start()
        # After punctuation ("e.g.:") the renderer could not tell ': ' from ' ': don't cut there.
        if not text[m.end() :].strip():
            break  # "Title:" with nothing after it on the line: keep the colon in the title
        if 3 <= pos <= 120 and text[:pos].count("`") % 2 == 0 and text[pos - 1] not in ".:!?;,—–":
            return pos, m.end()
        if pos > 120:
            break
    for m in re.finditer(r"[.!?](?:\s)", text):
        pos = m.start()
        if pos > 120:
            break
        word = text[: pos + 1].split()[-1].lower()
        if pos >= 3 and word not in _ABBREV and text[:pos].count("`") % 2 == 0:
            return pos + 1, m.end()
    return None


def _rewrap(first: list[str], remaining: str) -> list[str]:
    """Re-split ``remaining`` (a suffix of the joined first paragraph) on the original breaks."""
    if not remaining:
        return []
    out: list[str] = []
    stripped = [ln.strip() for ln in first]
    total = " ".join(stripped)
    offset = len(total) - len(remaining)
    pos = 0
    for ln in stripped:
        end = pos + len(ln)
        if end > offset:
            out.append(total[max(pos, offset) : end].strip())
        pos = end + 1
    return [ln for ln in out if ln] if out else [remaining]


def sessions_in(text: str) -> list[int]:
    """Every session number mentioned as 'Session 46' / 'Sessions 12, 14 and 15' / '12-14'."""
    found: list[int] = []
    for m in _SESSIONS.finditer(text):
        nums = [int(x) for x in re.findall(r"\d+", m.group(1))]
        rng = re.fullmatch(r"\s*#?(\d+)\s*(?:-|–|to)\s*#?(\d+)\s*", m.group(1))
        if rng and int(rng.group(2)) - int(rng.group(1)) < 100:
            nums = list(range(int(rng.group(1)), int(rng.group(2)) + 1))
        for n in nums:
            if n not in found:
                found.append(n)
    return found


def import_prompt(text: str, *, name: str, source: str = "prompt.md") -> ImportResult:
    """Build campaign YAML from a hand-written prompt's markdown."""
    lines = text.splitlines()
    units = _units(lines, md.parse(text))
    data: dict[str, Any] = {"schema": SCHEMA_VERSION, "revision": 0}
    headings: dict[str, str] = {}
    sections: list[dict[str, Any]] = []
    benchmarks: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    completed: dict[str, list[dict[str, Any]]] = {}
    layout: list[str] = []
    section_ids = _Ids(_RESERVED)
    step_ids = _Ids()
    group_ids = _Ids()
    bench_ids = _Ids()

    title = name.replace("-", " ").replace("_", " ")
    if units and units[0].kind == "heading" and units[0].block and units[0].block.level == 1:
        title = units[0].block.text or title
        units = units[1:]
    else:
        headings["title"] = ""

    consumed: set[int] = set()
    structured: dict[int, tuple[str, Any]] = {}
    stack: list[tuple[int, str]] = []  # the headings above, outermost first
    for idx, u in enumerate(units):
        if u.kind == "heading" and u.block is not None:
            while stack and stack[-1][0] >= u.block.level:
                stack.pop()
            stack.append((u.block.level, u.block.text))
            continue
        scope = " / ".join(text for _level, text in stack)
        if u.kind != "list" or u.block is None:
            continue
        prev = units[idx - 1] if idx > 0 else None
        lead = prev if prev is not None and idx - 1 not in consumed and _is_lead_in(prev) else None
        lead_text = _lead_text(lead) if lead else ""
        # Under a "Next steps" heading only a one-line "...:" paragraph introduces a list.
        if (
            lead is not None
            and lead.kind == "prose"
            and not (_NEXT.search(lead_text) or _COMPLETED.search(lead_text))
            and (len(lead.lines) > 1 or not lead_text.rstrip().endswith(":"))
        ):
            lead, lead_text = None, ""
        done = _COMPLETED.search(lead_text) if lead else None
        if lead is not None and done is not None:
            kind = "diagnostics" if done.group(1).lower().startswith("diag") else "optimizations"
            if kind in completed:
                continue  # a second list of the same kind would render out of order: keep as text
            entries = _completed_entries(u.block, step_ids)
            if entries is None:
                continue
            completed[kind] = entries
            headings[f"completed.{kind}"] = _lead_markdown(lead)
            consumed.add(idx - 1)
            structured[idx] = ("completed", kind)
        elif _NEXT.search(lead_text) or _NEXT.search(scope):
            items = _step_entries(u.block, step_ids)
            if items is None:
                continue
            gid = group_ids.take(slug(lead_text or "next steps", 5))
            group: dict[str, Any] = {"id": gid, "title": " ".join(lead_text.split())}
            if lead is not None and lead.kind == "heading" and lead.block is not None:
                group["level"] = lead.block.level
            else:
                group["level"] = 0
            if lead is not None:
                consumed.add(idx - 1)
            groups.append(group)
            for item in items:
                item["group"] = gid
            steps.extend(items)
            structured[idx] = ("next_steps", gid)

    pending: list[_Unit] = []

    def flush() -> None:
        if not pending:
            return
        head = pending[0] if pending[0].kind == "heading" else None
        body_units = pending[1:] if head else pending
        section: dict[str, Any] = {}
        if head is not None and head.block is not None:
            section["id"] = section_ids.take(slug(head.block.text or "section"))
            section["title"] = head.block.text
            if head.block.level != 2:
                section["level"] = head.block.level
        else:
            words = " ".join(" ".join(u.lines) for u in body_units[:1])
            section["id"] = section_ids.take(slug(words))
        body = ""
        if body_units:
            body = "\n".join(ln.rstrip() for ln in lines[body_units[0].start : body_units[-1].end])
        section["body"] = body.strip("\n")
        sections.append(section)
        layout.append(section["id"])
        pending.clear()

    for idx, u in enumerate(units):
        if idx in consumed:
            continue
        if idx in structured:
            flush()
            what, key = structured[idx]
            layout.append(f"{what}.{key}")
            continue
        if u.kind == "ini":
            flush()
            bench = _benchmark(u, lines, bench_ids)
            benchmarks.append(bench)
            layout.append(f"benchmarks.{bench['name']}")
            continue
        if u.kind == "heading" and pending:
            flush()
        pending.append(u)
    flush()
    layout.append("sessionctl")

    sessions = sessions_in(text)
    # "Session 32 is next" / "the next session is 32" name the session to come, not one done.
    upcoming = [int(n) for pair in _UPCOMING.findall(text) for n in pair if n]
    sessions = [n - 1 if n in upcoming else n for n in sessions]
    metrics_url = _METRICS_URL.search(text)
    data["title"] = title
    data["last_session"] = max(sessions, default=0)
    if metrics_url:
        data["target"] = {"metrics_url": metrics_url.group(0).rstrip(".,;:")}
    if benchmarks:
        data["benchmarks"] = benchmarks
    if completed:
        data["completed"] = completed
    if groups:
        data["next_step_groups"] = groups
    if steps:
        data["next_steps"] = steps
    data["sections"] = sections
    data["layout"] = layout
    data["headings"] = headings
    summary = {
        "title": title,
        "last_session": data["last_session"],
        "sections": len(sections),
        "next_steps": len(steps),
        "step_groups": len(groups),
        "benchmarks": len(benchmarks),
        "completed": sum(len(v) for v in completed.values()),
    }
    return ImportResult(yaml=_to_yaml(data, source), summary=summary)


def _lead_markdown(u: _Unit) -> str:
    if u.kind == "heading" and u.block is not None:
        return f"{'#' * u.block.level} {u.block.text}"
    return " ".join(ln.strip() for ln in u.lines)


def _step_entries(block: md.Block, ids: _Ids) -> list[dict[str, Any]] | None:
    out: list[dict[str, Any]] = []
    for item in block.items:
        title, body = split_item(item.content)
        if not title:
            return None
        step: dict[str, Any] = {"id": ids.take(slug(title)), "title": title}
        if body:
            step["body"] = body
        out.append(step)
    return out


def _completed_entries(block: md.Block, ids: _Ids) -> list[dict[str, Any]] | None:
    out: list[dict[str, Any]] = []
    for item in block.items:
        title, rest = split_item(item.content)
        if not title:
            return None
        # "Session 12: did X" is titled by its session: name the id after what was done.
        named = rest if re.fullmatch(r"(?i)sessions?\b[\d\s,&#and-]*", title) and rest else title
        entry: dict[str, Any] = {"id": ids.take(slug(named)), "title": title}
        sessions = sessions_in("\n".join(item.content))
        if sessions:
            entry["sessions"] = sessions
        if rest:
            entry["summary"] = rest
        out.append(entry)
    return out


def _benchmark(u: _Unit, lines: list[str], ids: _Ids) -> dict[str, Any]:
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
    bench["config"] = config
    return bench


def _to_yaml(data: dict[str, Any], source: str) -> str:
    """Emit the imported campaign with comments that say what to tidy by hand."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import LiteralScalarString

    from sessionctl.campaign.store import dump_new

    def conv(v: Any, key: str = "") -> Any:
        if isinstance(v, dict):
            m = CommentedMap()
            for k, val in v.items():
                m[k] = conv(val, k)
            return m
        if isinstance(v, list):
            seq = CommentedSeq(conv(x) for x in v)
            if key in ("sessions", "concurrency"):
                seq.fa.set_flow_style()
            return seq
        if isinstance(v, str) and "\n" in v:
            return LiteralScalarString(v + "\n")
        return v

    doc = conv(data)
    doc.yaml_set_start_comment(
        f"Imported from {source} by `sessionctl prompt import`.\n"
        "Free-form text is kept verbatim in `sections`, in the original order (`layout`);\n"
        "move it into context/goal/rules/target/status... as you tidy, and edit next steps\n"
        "with `sessionctl next ...`. Never edit the rendered .md by hand."
    )
    notes = {
        "revision": "bumped by every sessionctl write",
        "last_session": "the highest 'Session N' the prompt mentions; the next session is this + 1",
        "layout": "render order: section ids and built-in items (benchmarks.NAME, ...)",
        "headings": "heading line per layout item; '' renders none (title: '' = had no title)",
    }
    for key, note in notes.items():
        if key in doc:
            doc.yaml_add_eol_comment(note, key)
    return dump_new(doc)
