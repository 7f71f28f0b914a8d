"""Where an imported prompt's prose belongs: context, goal, rules, workflow, target, status...

The importer splits free prose into sentences and asks :func:`signal` which campaign field
each one speaks for; a sentence without a clear signal stays with the one before it in its
paragraph. A heading names the field for what follows it (:func:`heading_kind`). These are
heuristics tuned on the users' real prompts: anything they do not recognise stays a verbatim
section, in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sessionctl.campaign.superseded import replaced_by
from sessionctl.campaign.titles import ABBREVIATIONS, Ids, slug

# Prose fields (one text each) and rules (a list), in the order the default layout renders them.
TEXT_FIELDS = ("context", "goal", "workflow", "target", "status", "profiling_notes")

_HEADINGS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("status", re.compile(r"(?i)^\W*(?:current\s+)?status\b|^\W*where\s+we\s+(?:are|stand)\b")),
    ("rules", re.compile(r"(?i)^\W*(?:rules|constraints|guidelines|ground\s+rules)\b")),
    ("context", re.compile(r"(?i)^\W*(?:context|background|overview)\W*$")),
    ("goal", re.compile(r"(?i)^\W*(?:goals?|objectives?|the\s+goal)\W*$")),
    (
        "workflow",
        re.compile(
            r"(?i)^\W*(?:workflow|process|how\s+(?:to\s+work|we\s+work|a\s+session\s+works))"
        ),
    ),
    ("profiling_notes", re.compile(r"(?i)^\W*profiling(?:\s+notes)?\W*$")),
)

_SIGNALS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "status",
        re.compile(
            r"(?i)^\W*(?:current\s+)?status\b|^\W*(?:after|as\s+of)\s+session\s+\d+"
            r"|\bwe\s+are\s+(?:at|in)\s+session\s+\d+"
            r"|\bhas\s+been\s+(?:resolved|fixed|removed|eliminated)\b"
            r"|\bsession\s+\d+\s+(?:added|fixed|removed|replaced|introduced|measured|cut|"
            r"reduced|moved|brought|showed|found)\b|\bbottleneck\s+has\s+shifted\b"
        ),
    ),
    (
        "rules",
        re.compile(
            r"(?i)^\W*(?:please\s+)?(?:don't|do\s+not|never|must\s+not)\b"
            r"|^\W*we\s+(?:don't|do\s+not|never)\s+want\b|^\W*no\s+\w+(?:\s+\w+)?\s+of\s+any\s+kind\b"
            # Imperatives about how to work: "Please keep ...", "Always ...", "Make sure ...".
            r"|^\W*(?:please\s+)?(?:always|make\s+sure|be\s+sure\s+to|ensure)\b"
            r"|^\W*please\s+keep\b"
        ),
    ),
    (
        "profiling_notes",
        re.compile(
            r"(?i)^\W*(?:use|run)\s+(?:perf|py-spy)\b|--call-graph\b|\bcall\s+graphs?\b"
            r"|\bframe\s+pointers\b|^\W*profil\w*\s+(?:with|using)\b"
        ),
    ),
    (
        "workflow",
        re.compile(
            r"(?i)\bone\s+(?:optimi[sz]ation|change|idea)\b|\bper\s+session\b|\beach\s+session\b"
            r"|\bthen\s+stop\b|\bnew\s+session\b|\bafter\s+(?:every|each)\s+session\b"
        ),
    ),
    (
        "goal",
        re.compile(
            r"(?i)^\W*(?:figure\s+out|find\s+out|(?:please\s+)?focus\s+on|our\s+goal|the\s+goal"
            r"|goal:|we\s+want\s+(?:to\s+(?:make|improve|reduce|get|bring)|them|it)\b)"
        ),
    ),
    (
        "target",
        re.compile(
            r"(?i)\bcurrently\s+benchmarking\b|\bwe\s+(?:are\s+)?benchmark(?:ing)?\s+`?[\w./]+/"
            r"|\blog\s*in\s+as\b|\blogin\s+as\b|\bprometheus\b|https?://\S+/metrics\b"
        ),
    ),
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(`*_~\[A-Z])")
_ABBREV = (*ABBREVIATIONS, "no.")
_STATUS_LEAD = re.compile(
    r"(?i)\b(?:status|where\s+we\s+(?:are|stand)|progress|after\s+session\s+\d+|as\s+of)\b"
)
_BOLD_LEAD = re.compile(r"^\s*(\*\*|__)(?P<lead>.+?)\1")


def heading_kind(title: str) -> str | None:
    """The field a heading introduces ('## Rules of the game' -> 'rules'), or None."""
    for kind, pattern in _HEADINGS:
        if pattern.search(title.strip()):
            return kind
    return None


def signal(sentence: str) -> str | None:
    """The field one sentence clearly speaks for, or None."""
    for kind, pattern in _SIGNALS:
        if pattern.search(sentence):
            return kind
    return None


def bold_lead_kind(paragraph: str) -> str | None:
    """'**Current status (after Session 24):** ...' -> 'status': the lead names the paragraph."""
    m = _BOLD_LEAD.match(paragraph)
    if m is None:
        return None
    if _STATUS_LEAD.search(m.group("lead")):
        return "status"
    return heading_kind(m.group("lead"))


def is_opaque(lines: tuple[str, ...]) -> bool:
    """A quote or a table: kept whole, never split into sentences."""
    return any(ln.lstrip().startswith((">", "|")) for ln in lines)


def sentences(text: str) -> list[str]:
    """Split a paragraph (line breaks kept) into sentences; code spans are never split."""
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        before = text[start : m.start()]
        word = before.split()[-1].lower() if before.split() else ""
        if word in _ABBREV or before.count("`") % 2 == 1 or not before.strip():
            continue
        out.append(text[start : m.start()])
        start = m.end()
    out.append(text[start:])
    return [s for s in out if s.strip()]


# --- walking the prompt ----------------------------------------------------------------------

DEFAULT_HEADINGS = {
    "context": "## Context",
    "goal": "## Goal",
    "rules": "## Rules",
    "workflow": "## How a session works",
    "target": "## The target",
    "status": "## Current status",
    "profiling_notes": "## Profiling notes",
}


@dataclass
class Piece:
    """Source text bound for one place, with the lines of the block it came from."""

    text: str
    start: int
    end: int


def joined(pieces: list[Piece]) -> str:
    """Pieces as one markdown text: a blank line between blocks, a newline within one."""
    out = ""
    prev: Piece | None = None
    for p in pieces:
        if prev is not None:
            out += "\n" if p.start < prev.end or p.start == prev.end else "\n\n"
        out += p.text.strip("\n")
        prev = p
    return out


@dataclass
class Placer:
    """Sends each unrecognised block (or sentence) of a prompt to its field or a section.

    ``fallback`` is where prose without a signal goes: ``context`` in the opening, the field a
    heading names under that heading, else ``section`` (kept verbatim, in place).
    """

    log_path: str
    keep_instructions: bool = False
    fields: dict[str, list[Piece]] = field(default_factory=dict)
    rules: list[list[Piece]] = field(default_factory=list)
    sections: list[dict[str, Any]] = field(default_factory=list)
    layout: list[Any] = field(default_factory=list)  # keys, and section dicts until finish()
    headings: dict[str, str] = field(default_factory=dict)
    headed: set[str] = field(default_factory=set)  # fields a heading of the prompt titles
    superseded: list[dict[str, str]] = field(default_factory=list)
    section_ids: Ids = field(default_factory=Ids)
    fallback: str = "context"
    scope: str | None = None  # the field a heading put us in (None: none)
    scope_level: int = 0
    current: str | None = None  # where the last piece went
    section: dict[str, Any] | None = None  # the verbatim section being filled

    # -- destinations

    def put(self, kind: str, piece: Piece, *, new_rule: bool = True) -> None:
        """Send ``piece`` to ``kind`` (a field, 'rules' or 'section')."""
        if kind == "section":
            if self.section is None:
                self.open_section(None, 2)
            assert self.section is not None
            self.section["pieces"].append(piece)
        else:
            held = self.section
            if held is not None and held.get("field") == kind and not held["pieces"]:
                self.sections.remove(held)
                self.layout = [e for e in self.layout if e is not held]
                self.headed.add(kind)
                if held["heading"] != DEFAULT_HEADINGS[kind]:
                    self.headings.setdefault(kind, held["heading"])
            self.section = None
            if kind == "rules":
                if new_rule or not self.rules or self.current != "rules":
                    self.rules.append([])
                self.rules[-1].append(piece)
            else:
                self.fields.setdefault(kind, []).append(piece)
            if kind not in self.layout:
                self.layout.append(kind)
        self.current = kind

    def open_section(self, title: str | None, level: int) -> None:
        self.section = {"title": title, "level": level, "pieces": []}
        self.sections.append(self.section)
        self.layout.append(self.section)

    def item(self, key: str) -> None:
        """A structured item (benchmark, step group, completed list) at this point."""
        self.section = None
        self.layout.append(key)
        self.current = key
        if self.scope != "status":
            self.scope, self.fallback = None, "section"

    # -- blocks

    def heading(
        self, level: int, text: str, start: int, end: int, *, before_item: str | None = None
    ) -> None:
        """A heading: it names a field, titles the next structured item, or opens a section."""
        line = f"{'#' * level} {text}"
        kind = heading_kind(text)
        if self.scope == "status" and level > self.scope_level and kind is None and not before_item:
            self.put("status", Piece(line, start, end))  # a subsection of the status
            return
        if before_item is not None:
            self.headings[before_item] = line
            self.scope, self.fallback, self.section = None, "section", None
            return
        if kind is not None and not (kind == "rules" and kind in self.headed):
            if kind in self.headed:
                self.put(kind, Piece(line, start, end))  # a second heading for the same field
            else:
                # Held as an empty section until the field's first text comes (it then titles
                # the field); a field heading with nothing under it stays a section.
                self.open_section(text, level)
                assert self.section is not None
                self.section |= {"field": kind, "heading": line}
            self.scope, self.scope_level, self.fallback = kind, level, kind
            self.current = None
            return
        self.scope, self.fallback = None, "section"
        self.open_section(text, level)

    def prose(self, lines: tuple[str, ...], start: int, end: int) -> None:
        """A paragraph: kept whole under a heading, else sentence by sentence."""
        text = "\n".join(ln.rstrip() for ln in lines).strip("\n")
        if self.scope is None and self.section is not None and self.section["title"]:
            self._put_kept(text, "section", start, end)
            return
        if is_opaque(lines):
            kind = self.fallback if self.fallback in TEXT_FIELDS else "section"
            self.put(kind, Piece(text, start, end))
            return
        if self.scope is not None:
            self._put_kept(text, self.scope, start, end)
            if self.scope == "rules":
                self.scope, self.fallback = None, "section"
            return
        self.sentences(text, start, end)

    def sentences(self, text: str, start: int, end: int) -> None:
        """Place each sentence where its signal says (unsignalled ones follow the previous)."""
        lead = bold_lead_kind(text)
        runs: list[tuple[str, list[str], bool]] = []
        prev: str | None = None
        run: list[str] = []
        run_kind = ""
        run_new_rule = True
        for s in sentences(text):
            if self._superseded(s):
                continue
            own = signal(s)
            kind = lead or own or prev or self.fallback
            new_rule = kind == "rules" and (own == "rules" or prev != "rules")
            if run and (kind != run_kind or (kind == "rules" and new_rule)):
                runs.append((run_kind, run, run_new_rule))
                run = []
            if not run:
                run_kind, run_new_rule = kind, new_rule
            run.append(s.strip())
            prev = kind
            if kind != self.fallback and self.fallback == "context":
                self.fallback = "section"  # the opening ends where the first other thing starts
        if run:
            runs.append((run_kind, run, run_new_rule))
        whole = len(runs) == 1 and len(runs[0][1]) == len(sentences(text))
        for kind, parts, new_rule in runs:
            # A paragraph split between places is reflowed: its line breaks fell mid-sentence.
            piece = text if whole else " ".join(" ".join(parts).split())
            self.put(kind, Piece(piece, start, end), new_rule=new_rule)

    def block(self, text: str, start: int, end: int, items: tuple[str, ...] = ()) -> None:
        """A list or code block: a rule list under a rules heading, else where the text went."""
        if self.scope == "rules" and items:
            for item in items:
                self.put("rules", Piece(item, start, end))
            self.scope, self.fallback = None, "section"
            return
        if self.scope is None and self.section is not None and self.section["title"]:
            self.put("section", Piece(text, start, end))
            return
        if self.scope in TEXT_FIELDS:
            self.put(self.scope, Piece(text, start, end))
        elif self.current in TEXT_FIELDS and self.section is None:
            self.put(self.current, Piece(text, start, end))
        else:
            self.put("section", Piece(text, start, end))

    def _put_kept(self, text: str, kind: str, start: int, end: int) -> None:
        """Put a paragraph whole, less its superseded sentences."""
        kept = self.kept(text)
        if kept:
            self.put(kind, Piece(kept, start, end))

    def kept(self, text: str) -> str:
        """A paragraph less its superseded sentences (whole when none is; reflowed else)."""
        parts = sentences(text)
        kept = [s.strip() for s in parts if not self._superseded(s)]
        return text if len(kept) == len(parts) else " ".join(kept)

    def _superseded(self, sentence: str) -> bool:
        rep = replaced_by(sentence, log_path=self.log_path)
        if rep is None:
            return False
        self.superseded.append({"text": " ".join(sentence.split()), "replaced_by": rep})
        return not self.keep_instructions

    # -- the result

    def finish(self) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
        """(field values, sections, layout) with section ids assigned."""
        values: dict[str, Any] = {}
        for kind in TEXT_FIELDS:
            if self.fields.get(kind):
                values[kind] = joined(self.fields[kind])
        if self.rules:
            values["rules"] = [joined(r) for r in self.rules if r]
        sections: list[dict[str, Any]] = []
        layout: list[str] = []
        for entry in self.layout:
            if isinstance(entry, str):
                layout.append(entry)
                continue
            sec: dict[str, Any] = entry
            body = joined(sec["pieces"])
            if not body and not sec["title"]:
                continue
            out: dict[str, Any] = {"id": self.section_ids.take(slug(sec["title"] or body))}
            if sec["title"]:
                out["title"] = sec["title"]
                if sec["level"] != 2:
                    out["level"] = sec["level"]
            out["body"] = body
            sections.append(out)
            layout.append(out["id"])
        return values, sections, layout
