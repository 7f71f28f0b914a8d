"""Turn a hand-written handoff prompt (markdown) into a tidy campaign YAML.

:func:`import_prompt` reads the prompt in named steps: split it into blocks
(:mod:`~sessionctl.campaign.import_blocks`), take the title, find the lists it can structure
(completed work, next steps in any of the users' shapes, dbbench configs), then place the
remaining prose in the campaign's fields (:mod:`~sessionctl.campaign.placement`): context,
goal, rules, workflow, target, status, profiling notes; what fits none stays a verbatim
section in place. Instructions sessionctl now carries out itself go to ``superseded``
(:mod:`~sessionctl.campaign.superseded`), listed and not rendered. ``layout`` keeps the
original order, so the rendering has every word of the original except those instructions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sessionctl.campaign import import_blocks as blocks
from sessionctl.campaign import markdown as md
from sessionctl.campaign.model import SCHEMA_VERSION
from sessionctl.campaign.placement import Placer
from sessionctl.campaign.schema import LAYOUT_BUILTIN
from sessionctl.campaign.titles import (
    Ids,
    attributed_sessions,
    range_text,
    sessions_in,
    slug,
    split_item,
    strip_marks,
    without_attribution,
)
from sessionctl.workspace import default_log

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_NEXT = re.compile(
    r"(?i)\bnext[ -]?steps?\b|\bto[- ]?dos?\b|\bideas to (?:try|explore)\b"
    r"|\bremaining\s+(?:directions|ideas|work|candidates|optimi[sz]ations)\b"
    r"|\bpreviously\s+identified\b|\bopen\s+directions\b"
)
_COMPLETED = re.compile(
    r"(?i)^\W*(?:completed|done|finished|resolved)\b"
    r"(?:[^\n]{0,40}?\b(?P<kind>optimi[sz]ations?|diagnostics?)\b)?"
)
_UPCOMING = re.compile(
    r"(?i)\bsession\s+#?(\d+)\s+(?:is|will be)\s+(?:the\s+)?next\b"
    r"|\bnext\s+session\s+(?:is|will be)\s+(?:session\s+)?#?(\d+)"
)
_METRICS_URL = re.compile(r"https?://[^\s`<>)\]]+/metrics\b")
# Section ids the schema reserves (built-in layout items), plus "title".
_RESERVED = {"title", *LAYOUT_BUILTIN}


def valid_name(name: str) -> bool:
    """Is this usable as a campaign name (a file name under prompts/)?"""
    return bool(_NAME.match(name))


@dataclass
class ImportResult:
    """The campaign YAML text, a summary of what was recognised, and the set-aside instructions."""

    yaml: str
    summary: dict[str, Any] = field(default_factory=dict)
    superseded: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _Lists:
    """What the structuring pass found: list unit -> layout key, and the leads it used."""

    structured: dict[int, str] = field(default_factory=dict)
    consumed: set[int] = field(default_factory=set)
    steps: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    completed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    headings: dict[str, str] = field(default_factory=dict)


def import_prompt(
    text: str, *, name: str, source: str = "prompt.md", keep_instructions: bool = False
) -> ImportResult:
    """Build campaign YAML from a hand-written prompt's markdown."""
    lines = text.splitlines()
    units = blocks.units(lines, md.parse(text))
    title, units, untitled = _take_title(units, name)
    lists = _structure_lists(units)
    placer = Placer(
        log_path=default_log(name),
        keep_instructions=keep_instructions,
        section_ids=Ids(_RESERVED),
    )
    benchmarks = _place(units, lines, lists, placer)
    values, sections, layout = placer.finish()
    data = _campaign(text, title, values, benchmarks, lists, sections, layout)
    data["headings"] = {**({"title": ""} if untitled else {}), **lists.headings, **placer.headings}
    if placer.superseded and not keep_instructions:
        data["superseded"] = placer.superseded
    summary = {
        "title": title,
        "last_session": data["last_session"],
        "placed": [
            k
            for k in ("context", "goal", "rules", "workflow", "target", "status", "profiling_notes")
            if k in values
        ],
        "sections": len(sections),
        "next_steps": len(lists.steps),
        "step_groups": len(lists.groups),
        "benchmarks": len(benchmarks),
        "completed": sum(len(v) for v in lists.completed.values()),
        "superseded": len(placer.superseded),
    }
    return ImportResult(
        yaml=_to_yaml(data, source), summary=summary, superseded=list(placer.superseded)
    )


def _take_title(units: list[blocks.Unit], name: str) -> tuple[str, list[blocks.Unit], bool]:
    """The title (a leading level-1 heading, else the campaign name) and the units after it."""
    if units and units[0].kind == "heading" and units[0].block and units[0].block.level == 1:
        return units[0].block.text or name, units[1:], False
    return name.replace("-", " ").replace("_", " "), units, True


def _structure_lists(units: list[blocks.Unit]) -> _Lists:
    """Find the completed lists and next-step groups, and the lead-ins that introduce them."""
    found = _Lists()
    step_ids, group_ids = Ids(), Ids()
    stack: list[tuple[int, str]] = []  # the headings above, outermost first
    for idx, u in enumerate(units):
        if u.kind == "heading" and u.block is not None:
            while stack and stack[-1][0] >= u.block.level:
                stack.pop()
            stack.append((u.block.level, u.block.text))
            continue
        if u.kind != "list" or u.block is None:
            continue
        scope = " / ".join(text for _level, text in stack)
        prev = units[idx - 1] if idx > 0 else None
        ok = prev is not None and idx - 1 not in found.consumed and blocks.is_lead_in(prev)
        lead = prev if ok else None
        lead_text = strip_marks(blocks.lead_text(lead)) if lead else ""
        # Under a "Next steps" heading only a one-line "...:" paragraph introduces a list.
        if (
            lead is not None
            and lead.kind == "prose"
            and not (_NEXT.search(lead_text) or _COMPLETED.search(lead_text))
            and (len(lead.lines) > 1 or not lead_text.rstrip().endswith(":"))
        ):
            lead, lead_text = None, ""
        done = _COMPLETED.search(lead_text) if lead else None
        if lead is not None and done is not None and (lead.kind == "heading" or ":" in lead_text):
            diag = (done.group("kind") or "").lower().startswith("diag")
            kind = "diagnostics" if diag else "optimizations"
            if kind in found.completed:
                continue  # a second list of the same kind would render out of order: keep as text
            entries = _completed_entries(u.block, step_ids)
            if entries is None:
                continue
            found.completed[kind] = entries
            found.headings[f"completed.{kind}"] = _computed_heading(_lead_markdown(lead), entries)
            found.consumed.add(idx - 1)
            found.structured[idx] = f"completed.{kind}"
        elif _NEXT.search(lead_text) or _NEXT.search(scope):
            items = _step_entries(u.block, step_ids)
            if items is None:
                continue
            gid = group_ids.take(slug(lead_text or "next steps"))
            group: dict[str, Any] = {"id": gid, "title": " ".join(lead_text.split())}
            lead_block = lead.block if lead is not None and lead.kind == "heading" else None
            group["level"] = lead_block.level if lead_block is not None else 0
            if lead is not None:
                found.consumed.add(idx - 1)
            found.groups.append(group)
            for item in items:
                item["group"] = gid
            found.steps.extend(items)
            found.structured[idx] = f"next_steps.{gid}"
    return found


def _place(
    units: list[blocks.Unit], lines: list[str], lists: _Lists, placer: Placer
) -> list[dict[str, Any]]:
    """Walk the units in order: structured items take their place, the rest goes to the placer."""
    benchmarks: list[dict[str, Any]] = []
    bench_ids = Ids()
    for idx, u in enumerate(units):
        if idx in lists.consumed:
            continue
        if idx in lists.structured:
            placer.item(lists.structured[idx])
            continue
        if u.kind == "ini":
            bench = blocks.benchmark(u, lines, bench_ids)
            benchmarks.append(bench)
            placer.item(f"benchmarks.{bench['name']}")
            continue
        if u.kind == "heading" and u.block is not None:
            # A heading right above a structured item (or its one-line lead) titles it.
            before = lists.structured.get(idx + 1)
            if idx + 1 in lists.consumed and units[idx + 1].kind != "heading":
                before = lists.structured.get(idx + 2)
            if before in lists.headings:
                before = None
            placer.heading(u.block.level, u.block.text, u.start, u.end, before_item=before)
        elif u.kind == "prose":
            if idx + 1 < len(units) and units[idx + 1].kind == "ini":
                _describe_benchmark(u, units[idx + 1], placer)
                continue
            group = _introduced_group(units, idx, lists)
            if group is not None:
                # "Below here, I have some next steps to explore." goes with the steps (as
                # their group's intro), not with whatever field came before it.
                text = "\n".join(ln.rstrip() for ln in u.lines).strip("\n")
                kept = placer.kept(text)
                if kept:
                    group["intro"] = kept
                continue
            placer.prose(u.lines, u.start, u.end)
        else:
            text = "\n".join(ln.rstrip() for ln in lines[u.start : u.end]).strip("\n")
            items: tuple[str, ...] = ()
            if u.kind == "list" and u.block is not None:
                items = tuple("\n".join(i.content).strip("\n") for i in u.block.items)
            placer.block(text, u.start, u.end, items)
    return benchmarks


def _introduced_group(units: list[blocks.Unit], idx: int, lists: _Lists) -> dict[str, Any] | None:
    """The step group a paragraph introduces: it speaks of next steps from its first sentence
    and sits right above the one-line lead-in ("Immediate next steps:") of a group's list."""
    from sessionctl.campaign.placement import is_opaque, sentences

    u = units[idx]
    if idx + 2 >= len(units) or idx + 1 not in lists.consumed or is_opaque(u.lines):
        return None
    if units[idx + 1].kind != "prose":
        return None  # a heading starts a part of its own: the paragraph stays where it is
    key = lists.structured.get(idx + 2, "")
    if not key.startswith("next_steps."):
        return None
    first = sentences(" ".join(ln.strip() for ln in u.lines))[:1]
    if not first or not _NEXT.search(strip_marks(first[0])):
        return None
    gid = key.partition(".")[2]
    return next((g for g in lists.groups if g["id"] == gid), None)


def _describe_benchmark(u: blocks.Unit, ini: blocks.Unit, placer: Placer) -> None:
    """The paragraph leading into a pasted dbbench config: its last sentence describes it."""
    from sessionctl.campaign.placement import sentences

    text = "\n".join(ln.rstrip() for ln in u.lines).strip("\n")
    parts = sentences(text)
    if len(parts) > 1:
        head = text[: text.rindex(parts[-1])]
        placer.prose(tuple(head.splitlines()), u.start, u.end)
    ini.description = parts[-1].strip() if parts else text


def _campaign(
    text: str,
    title: str,
    values: dict[str, Any],
    benchmarks: list[dict[str, Any]],
    lists: _Lists,
    sections: list[dict[str, Any]],
    layout: list[str],
) -> dict[str, Any]:
    """The campaign mapping, in the order a reader of the YAML expects."""
    sessions = sessions_in(text)
    # "Session 32 is next" / "the next session is 32" name the session to come, not one done.
    upcoming = [int(n) for pair in _UPCOMING.findall(text) for n in pair if n]
    sessions = [n - 1 if n in upcoming else n for n in sessions]
    data: dict[str, Any] = {"schema": SCHEMA_VERSION, "revision": 0, "title": title}
    data["last_session"] = max(sessions, default=0)
    for key in ("context", "goal", "rules", "workflow"):
        if key in values:
            data[key] = values[key]
    target: dict[str, Any] = {}
    if "target" in values:
        target["notes"] = values["target"]
    metrics_url = _METRICS_URL.search(text)
    if metrics_url:
        target["metrics_url"] = metrics_url.group(0).rstrip(".,;:")
    if target:
        data["target"] = target
    if benchmarks:
        data["benchmarks"] = benchmarks
    if "status" in values:
        data["status"] = values["status"]
    if lists.completed:
        data["completed"] = lists.completed
    if "profiling_notes" in values:
        data["profiling_notes"] = values["profiling_notes"]
    if lists.groups:
        data["next_step_groups"] = lists.groups
    if lists.steps:
        data["next_steps"] = lists.steps
    if sections:
        data["sections"] = sections
    data["layout"] = [*layout, "sessionctl"]
    return data


def _lead_markdown(u: blocks.Unit) -> str:
    if u.kind == "heading" and u.block is not None:
        return f"{'#' * u.block.level} {u.block.text}"
    return " ".join(ln.strip() for ln in u.lines)


def _computed_heading(heading: str, entries: list[dict[str, Any]]) -> str:
    """'Completed optimizations (Sessions 7-9, 11):' -> '... (Sessions {sessions}):' when the
    numbers are exactly the list's sessions, so the heading follows the list as it grows."""
    numbers = sorted({n for e in entries for n in e.get("sessions", ())})
    if not numbers:
        return heading
    m = re.search(r"(?i)\b(sessions?)\s+(\d[\d,\s–-]*\d|\d)", heading)
    if m is None or range_text(numbers) != m.group(2).strip():
        return heading
    return heading[: m.start(2)] + "{sessions}" + heading[m.end(2) :]


def _step_entries(block: md.Block, ids: Ids) -> list[dict[str, Any]] | None:
    out: list[dict[str, Any]] = []
    for item in block.items:
        title, body = split_item(item.content)
        if not title:
            return None
        step: dict[str, Any] = {"id": ids.for_title(title), "title": title}
        if body:
            step["body"] = body
        out.append(step)
    return out


def _completed_entries(block: md.Block, ids: Ids) -> list[dict[str, Any]] | None:
    out: list[dict[str, Any]] = []
    for item in block.items:
        title, rest = split_item(item.content)
        if not title:
            return None
        sessions = attributed_sessions(title, rest)
        bare, attributed = without_attribution(title)
        if attributed:
            title = bare  # the renderer adds "(Session N)" back from `sessions`
        if re.fullmatch(r"(?i)\(?sessions?\b[\d\s,&#and–-]*\)?", rest.strip()):
            rest = ""  # "~~Title~~ (Session 7)": the rest is only the attribution
            sessions = sessions or attributed
        # "Session 12: did X" is titled by its session: name the id after what was done.
        named = rest if re.fullmatch(r"(?i)sessions?\b[\d\s,&#and-]*", title) and rest else title
        entry: dict[str, Any] = {"id": ids.for_title(named), "title": title}
        if sessions:
            entry["sessions"] = sessions
        if rest:
            entry["summary"] = rest
        out.append(entry)
    return out


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
        "Prose was placed in context/goal/rules/workflow/target/status/... by its wording;\n"
        "what fitted none is kept verbatim in `sections`; `layout` keeps the original order.\n"
        "Move text between fields as you tidy, and edit next steps with `sessionctl next ...`.\n"
        "Never edit the rendered .md by hand."
    )
    notes = {
        "revision": "bumped by every sessionctl write",
        "last_session": "the highest 'Session N' the prompt mentions; the next session is this + 1",
        "layout": "render order: section ids and built-in items (benchmarks.NAME, ...)",
        "headings": "heading line per layout item; '' renders none (title: '' = had no title)",
        "superseded": "instructions sessionctl now carries out: kept here, not rendered",
    }
    for key, note in notes.items():
        if key in doc:
            doc.yaml_add_eol_comment(note, key)
    return dump_new(doc)
