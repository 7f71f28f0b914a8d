"""Titles, ids and session numbers of imported list items (next steps, completed work).

A title is plain text (no ``**`` or ``~~``) and whole: a bold or struck lead is the title up to
its closing marker, otherwise the first clause (up to ': ') or sentence of the first paragraph.
The body keeps the rest. Ids are a few significant words of the title, extended by the next
word (not a counter) when they would collide.
"""

from __future__ import annotations

import re

from sessionctl.campaign import markdown as md

# Words whose "." ends no sentence (placement, splitting paragraphs, adds "no.").
ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "incl.", "resp.")
_SESSIONS = re.compile(r"(?i)\bsessions?\s+#?(\d+(?:\s*(?:,|and|&|-|–|to)\s*#?\d+)*)")
# "(Session 10)" / "(Sessions 8, 9)" at the end of a title: the attribution, not the title.
_ATTRIBUTION = re.compile(r"\s*\((?i:sessions?)\s+#?\d+(?:\s*(?:,|and|&|-|–|to)\s*#?\d+)*\)\s*$")
_STOP = {
    "a", "an", "the", "of", "for", "to", "in", "into", "on", "and", "or", "by", "at", "from",
    "with", "via", "per", "is", "are", "be", "it", "its", "that", "this", "as", "than",
    "whole", "all", "some", "any", "each", "every", "more", "very", "just", "only", "also",
    "across", "between", "before", "after", "over", "under", "about", "instead", "when",
    "where", "which", "so", "we", "our", "us", "can",
}  # fmt: skip
_ID_WORDS = 3
_ID_CHARS = 32


def strip_marks(text: str) -> str:
    """'**~~Title~~**' -> 'Title': emphasis that wraps the whole text is decoration."""
    text = text.strip()
    changed = True
    while changed:
        changed = False
        for mark in ("**", "__", "~~"):
            n = len(mark)
            if (
                text.startswith(mark)
                and text.endswith(mark)
                and len(text) > 2 * n
                and mark not in text[n:-n]
            ):
                text, changed = text[n:-n].strip(), True
    return text


def _marked_lead(joined: str) -> tuple[str, str] | None:
    """A lead wrapped in '**'/'~~' (nested either way): (its plain text, what follows)."""
    opened: list[str] = []
    pos = 0
    while joined[pos : pos + 2] in ("**", "__", "~~"):
        opened.append(joined[pos : pos + 2])
        pos += 2
    if not opened:
        return None
    end = pos
    for mark in reversed(opened):
        close = joined.find(mark, end)
        if close < 0:
            return None
        end = close + len(mark)
    title = joined[:end]
    for mark in ("**", "__", "~~"):
        title = title.replace(mark, "")
    return " ".join(title.split()), joined[end:]


def split_item(content: tuple[str, ...]) -> tuple[str, str]:
    """An item's plain title and the rest of it, as markdown."""
    first, after = md.item_paragraph(content)
    first = [ln.rstrip() for ln in first]
    joined = " ".join(ln.strip() for ln in first)
    marked = _marked_lead(joined)
    if marked is not None and marked[0]:
        title = marked[0]
        remaining = marked[1].lstrip()
        paren = re.match(r"\([^()]*\)(?=:(?:\s|$))", remaining)
        if paren:  # '**Title** (Session 4): body' - the parenthesis belongs to the title
            title, remaining = f"{title} {paren.group(0)}", remaining[paren.end() :]
        if remaining.startswith(":") and not title.endswith(":"):
            remaining = remaining[1:].lstrip()  # '**Title**: body' - the colon is decoration
        rest_first = _rewrap(first, remaining)
    else:
        cut = _cut(joined)
        if cut is None:
            title, rest_first = joined, []
        else:
            # Map the cut back onto the original lines so the rest keeps its line breaks.
            title = joined[: cut[0]].strip()
            rest_first = _rewrap(first, joined[cut[1] :].lstrip())
        title = strip_marks(title)
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
        if pos > 160:
            break
        word = text[: pos + 1].split()[-1].lower()
        if pos >= 3 and word not in ABBREVIATIONS and text[:pos].count("`") % 2 == 0:
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


def without_attribution(title: str) -> tuple[str, list[int]]:
    """'Prefix map (Session 12)' -> ('Prefix map', [12]); other titles unchanged."""
    m = _ATTRIBUTION.search(title)
    if m is None or m.start() == 0:
        return title, []
    return title[: m.start()].rstrip(), sessions_in(m.group(0))


def sessions_in(text: str) -> list[int]:
    """Every session number mentioned as 'Session 46' / 'Sessions 12, 14 and 15' / '12-14'."""
    found: list[int] = []
    for m in _SESSIONS.finditer(text):
        nums: list[int] = []
        for part in re.split(r",|\band\b|&", m.group(1)):
            rng = re.fullmatch(r"\s*#?(\d+)\s*(?:-|–|to)\s*#?(\d+)\s*", part)
            if rng and 0 <= int(rng.group(2)) - int(rng.group(1)) < 100:
                nums.extend(range(int(rng.group(1)), int(rng.group(2)) + 1))
            else:
                nums.extend(int(x) for x in re.findall(r"\d+", part))
        for n in nums:
            if n not in found:
                found.append(n)
    return found


def attributed_sessions(title: str, rest: str) -> list[int]:
    """The sessions that did a completed item: its attribution, not every session it mentions.

    '(Session 10)' or a leading 'Session 10:' names them; otherwise the title's mentions, and
    only then the first sentence of the rest ('Sessions 9 and 10; needed ...').
    """
    for text in (title, rest.split("\n\n")[0]):
        m = _ATTRIBUTION.search(text)
        if m is not None:
            return sessions_in(m.group(0))
    lead = re.match(r"(?i)\s*sessions?\s+[\d\s,&#and–-]+", rest)
    for text in (title, lead.group(0) if lead else "", re.split(r"[.;]\s", rest)[0]):
        found = sessions_in(text)
        if found:
            return found
    return []


def range_text(numbers: list[int] | tuple[int, ...]) -> str:
    """[7, 8, 9, 11] -> '7-9, 11'."""
    nums = sorted(set(numbers))
    parts: list[str] = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if j - i < 2 else f"{nums[i]}-{nums[j]}")
        if j - i == 1:
            parts.append(str(nums[j]))
        i = j + 1
    return ", ".join(parts)


def _words(text: str) -> list[str]:
    """Significant words: identifiers (snake_case, Path::name) stay one word, stop words go."""
    out: list[str] = []
    for raw in re.findall(r"[A-Za-z0-9]+(?:[-_:]+[A-Za-z0-9]+)*", text):
        parts = [p for p in re.split(r"[-_:]+", raw.lower()) if p]
        if not parts or not any(ch.isalpha() for ch in raw):
            continue
        if len(parts) == 1 and (parts[0] in _STOP or len(parts[0]) < 2):
            continue
        out.append("-".join(parts))
    return out


def slug(text: str, words: int = _ID_WORDS) -> str:
    """'Merge allocate_id into the catalog transaction.' -> 'merge-allocate-id-catalog'."""
    return _slug(_words(text), words)


def _slug(tokens: list[str], words: int, limit: int = _ID_CHARS) -> str:
    if not tokens:
        return "item"
    out = tokens[0]
    for tok in tokens[1:words]:
        if len(out) + 1 + len(tok) > limit:
            break
        out += "-" + tok
    return out


class Ids:
    """Hands out unique ids: a clash takes one more word of the title before a counter."""

    def __init__(self, reserved: set[str] | None = None) -> None:
        self.used: set[str] = set(reserved or ())

    def take(self, base: str) -> str:
        candidate, n = base, 2
        while candidate in self.used:
            candidate = f"{base}-{n}"
            n += 1
        self.used.add(candidate)
        return candidate

    def for_title(self, title: str) -> str:
        """A short readable id for ``title``, longer only as far as needed to be unique."""
        tokens = _words(title)
        for words in range(_ID_WORDS, max(_ID_WORDS, len(tokens)) + 1):
            # The first try keeps to the length limit; extending to be unique may pass it.
            candidate = _slug(tokens, words, _ID_CHARS if words == _ID_WORDS else 10_000)
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate
        return self.take(_slug(tokens, _ID_WORDS))
