"""Instructions in a hand-written prompt that sessionctl now carries out itself.

An imported prompt that still told the agent to edit the prompt, commit it separately, run
``jj new``/``jj describe`` by hand or write to a log of its own would contradict the rendered
"Recording your work with sessionctl" section (and the run audit fails an agent that obeys
it). The importer keeps such sentences in the campaign's ``superseded:`` list, with what
replaces them, and does not render them (``prompt import --keep-instructions`` keeps them).
"""

from __future__ import annotations

import re

# (pattern, what replaces it); {log} is the campaign's log path.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"(?i)\b(?:update|edit|change|modify|rewrite)\s+(?:this|the)\s+prompt\b"
            r"|\bremove\s+(?:it|them|\w+)\s+from\s+(?:this|the)\s+prompt\b"
            r"|\bprompt\b[^.]{0,40}\bso\s+that\s+we\s+don't\s+consider\b"
        ),
        "`sessionctl close --resolve ID` moves a done step to the completed list and "
        "re-renders the prompt (never edit the .md by hand)",
    ),
    (
        re.compile(r"(?i)\bseparate\s+(?:git\s+commit|jj\s+change|commit|change)\b"),
        "`sessionctl close` commits the prompt update as a change of its own",
    ),
    (
        re.compile(
            r"(?i)`?\bjj\s+(?:new|describe|commit|desc)\b"
            r"|\bdescription\s+to\s+the\s+(?:jj\s+)?change\b"
            r"|\b(?:make|create)\s+a\s+git\s+commit\b"
            r"|\bgit\s+commit\s+(?:it|them|this|your|the\s+(?:prompt|change|changes|log))\b"
        ),
        "`sessionctl close` describes the session's change and starts the next one",
    ),
)
_LOG_REF = re.compile(r"@(?P<path>[\w./-]*log[\w./-]*\.md)\b|(?P<bare>\b[\w./-]*-log\.md)\b")


def replaced_by(sentence: str, *, log_path: str) -> str | None:
    """What replaces the instruction in ``sentence``, or None when it does not conflict."""
    found = [text for pattern, text in _RULES if pattern.search(sentence)]
    for m in _LOG_REF.finditer(sentence):
        path = m.group("path") or m.group("bare") or ""
        if path.lstrip("./") != log_path:
            found.append(f"`sessionctl close` appends each session's entry to {log_path}")
            break
    return "; ".join(dict.fromkeys(found)) or None
