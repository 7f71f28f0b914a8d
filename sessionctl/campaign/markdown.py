"""A small block-level markdown reader for importing hand-written prompts.

It finds headings (ATX and setext), fenced code, lists (with nested sub-bullets, numbered
sub-steps and lazy continuation lines kept inside their item) and paragraphs, and records the
line span of each block so the importer can keep unrecognised text verbatim. It is not a full
CommonMark parser; it only has to be right about where blocks start and end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

BlockKind = Literal["heading", "paragraph", "list", "code"]

FENCE = re.compile(r"^(?P<ind> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
ATX = re.compile(r"^ {0,3}(?P<hashes>#{1,6})(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(?P<ch>=+|-+)[ \t]*$")
MARKER = re.compile(r"^(?P<ind> *)(?P<marker>[-*+]|\d{1,9}[.)])(?P<gap>[ \t]+|$)")
THEMATIC = re.compile(r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$")


@dataclass(frozen=True)
class Item:
    """One list item: its marker and its content lines, dedented to the item's content column."""

    marker: str
    start: int
    end: int
    content: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    """A block spanning source lines ``start`` to ``end`` (exclusive, 0-based)."""

    kind: BlockKind
    start: int
    end: int
    lines: tuple[str, ...]
    level: int = 0
    text: str = ""
    info: str = ""
    items: tuple[Item, ...] = ()


def indent_of(line: str) -> int:
    """Leading spaces (tabs count as 4)."""
    expanded = line.expandtabs(4)
    return len(expanded) - len(expanded.lstrip(" "))


def is_blank(line: str) -> bool:
    return not line.strip()


def _marker(line: str, max_indent: int | None = 3) -> re.Match[str] | None:
    m = MARKER.match(line.expandtabs(4))
    if m is None or THEMATIC.match(line):
        return None
    if max_indent is not None and len(m.group("ind")) > max_indent:
        return None
    return m


def _interrupts_paragraph(line: str) -> bool:
    """Does this line end a paragraph by starting another block?"""
    if FENCE.match(line) or ATX.match(line):
        return True
    m = _marker(line)
    if m is None or is_blank(line[m.end() :]):
        return False
    marker = m.group("marker")
    # Like CommonMark: an ordered list interrupts a paragraph only when it starts at 1.
    return marker[0] in "-*+" or marker[:-1] == "1"


def parse(text: str) -> list[Block]:
    """Split markdown ``text`` into blocks (blank lines separate; they belong to no block)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        if is_blank(line):
            i += 1
            continue
        fence = FENCE.match(line)
        if fence:
            i = _code(lines, i, fence, blocks)
            continue
        atx = ATX.match(line)
        if atx:
            level = len(atx.group("hashes"))
            blocks.append(
                Block(
                    "heading",
                    i,
                    i + 1,
                    (line,),
                    level=level,
                    text=(atx.group("text") or "").strip(),
                )
            )
            i += 1
            continue
        if _marker(line):
            i = _list(lines, i, blocks)
            continue
        i = _paragraph(lines, i, blocks)
    return blocks


def _code(lines: list[str], i: int, fence: re.Match[str], blocks: list[Block]) -> int:
    mark = fence.group("fence")
    j = i + 1
    while j < len(lines):
        close = FENCE.match(lines[j])
        if (
            close
            and close.group("fence")[0] == mark[0]
            and len(close.group("fence")) >= len(mark)
            and not close.group("info").strip()
        ):
            j += 1
            break
        j += 1
    blocks.append(Block("code", i, j, tuple(lines[i:j]), info=fence.group("info").strip()))
    return j


def _paragraph(lines: list[str], i: int, blocks: list[Block]) -> int:
    j = i + 1
    while j < len(lines):
        line = lines[j]
        if is_blank(line) or _interrupts_paragraph(line):
            break
        setext = SETEXT.match(line)
        if setext and j == i + 1:
            level = 1 if setext.group("ch")[0] == "=" else 2
            blocks.append(
                Block(
                    "heading", i, j + 1, tuple(lines[i : j + 1]), level=level, text=lines[i].strip()
                )
            )
            return j + 1
        j += 1
    blocks.append(Block("paragraph", i, j, tuple(lines[i:j])))
    return j


def _list(lines: list[str], i: int, blocks: list[Block]) -> int:
    items: list[Item] = []
    n = len(lines)
    j = i
    while j < n:
        m = _marker(lines[j], max_indent=None)
        assert m is not None
        line = lines[j].expandtabs(4)
        gap = len(m.group("gap"))
        rest_blank = is_blank(line[m.end() :])
        col = len(m.group("ind")) + len(m.group("marker")) + (1 if gap > 4 or rest_blank else gap)
        content = [line[col:] if len(line) > col else ""]
        start = j
        j += 1
        prev_blank = False
        while j < n:
            cur = lines[j]
            if is_blank(cur):
                k = j
                while k < n and is_blank(lines[k]):
                    k += 1
                if k >= n:
                    break
                nxt = lines[k]
                if indent_of(nxt) >= col:
                    content.extend("" for _ in range(j, k))
                    j = k
                    prev_blank = True
                    continue
                break
            ind = indent_of(cur)
            if ind >= col:
                content.append(cur.expandtabs(4)[col:])
            elif _marker(cur, max_indent=None) is not None:
                break  # a sibling item
            elif prev_blank or FENCE.match(cur) or ATX.match(cur):
                break
            else:
                content.append(cur.strip())  # lazy continuation of the item's paragraph
            prev_blank = False
            j += 1
        while content and is_blank(content[-1]):
            content.pop()
        items.append(Item(m.group("marker"), start, j, tuple(content)))
        if j >= n or _marker(lines[j], max_indent=None) is None:
            # A blank line then a sibling marker keeps the list going.
            k = j
            while k < n and is_blank(lines[k]):
                k += 1
            if k < n and k > j and _marker(lines[k]) is not None and indent_of(lines[k]) < col:
                j = k
                continue
            break
    blocks.append(Block("list", i, j, tuple(lines[i:j]), items=tuple(items)))
    return j


def item_paragraph(content: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Split an item's content into its first paragraph's lines and everything after."""
    first: list[str] = []
    for idx, line in enumerate(content):
        if is_blank(line) or (first and _interrupts_paragraph(line)) or (first and _marker(line)):
            return first, list(content[idx:])
        first.append(line)
    return first, []
