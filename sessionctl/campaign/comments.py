"""Keep a sequence's trailing comments in place while items are added, moved or removed.

ruamel attaches the comment lines that follow a block sequence (say ``# Completed work``
before the next top-level key) to the *last item's* last value. Removing or moving that item
would take those lines with it; appending after it would strand them mid-list. :func:`keep_tail`
detaches them before the change and re-attaches them to whatever ends the list afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def _slot(node: Any) -> tuple[Any, Any, int] | None:
    """The (container, key, position) holding the comment after ``node``'s last scalar."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    while True:
        if isinstance(node, CommentedMap) and len(node):
            key = list(node.keys())[-1]
            value = node[key]
            if isinstance(value, (CommentedMap, CommentedSeq)) and len(value):
                node = value
                continue
            return node, key, 2
        if isinstance(node, CommentedSeq) and len(node):
            idx = len(node) - 1
            value = node[idx]
            if isinstance(value, (CommentedMap, CommentedSeq)) and len(value):
                node = value
                continue
            return node, idx, 0
        return None


def _detach(node: Any) -> str:
    slot = _slot(node)
    if slot is None:
        return ""
    container, key, pos = slot
    entry = container.ca.items.get(key)
    if not entry or len(entry) <= pos or entry[pos] is None:
        return ""
    token = entry[pos]
    eol, _, rest = token.value.partition("\n")
    if not rest:
        return ""
    if eol:
        token.value = eol + "\n"
    else:
        entry[pos] = None
        if all(e is None for e in entry):
            del container.ca.items[key]
    return rest


def _attach(node: Any, rest: str) -> bool:
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    slot = _slot(node)
    if slot is None:
        return False
    container, key, pos = slot
    entry = container.ca.items.setdefault(key, [None] * (pos + 2))
    while len(entry) <= pos:
        entry.append(None)
    token = entry[pos]
    if token is None:
        entry[pos] = CommentToken("\n" + rest, CommentMark(0), None)
    else:
        token.value = token.value.rstrip("\n") + "\n" + rest
    return True


@contextlib.contextmanager
def keep_tail(parent: Any, key: str) -> Iterator[None]:
    """Around a change to ``parent[key]`` (a sequence), keep its trailing comments at its end."""
    seq = parent.get(key) if hasattr(parent, "get") else None
    rest = _detach(seq) if seq is not None else ""
    yield
    if not rest:
        return
    seq = parent.get(key)
    if seq is not None and _attach(seq, rest):
        return
    # The list is now empty: hang the lines after the key itself so they are not lost.
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    entry = parent.ca.items.setdefault(key, [None, None, None, None])
    if entry[2] is None:
        entry[2] = CommentToken("\n" + rest, CommentMark(0), None)
    else:
        entry[2].value = entry[2].value.rstrip("\n") + "\n" + rest
