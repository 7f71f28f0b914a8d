"""The one redaction rule: passwords in URLs and ``password=`` settings never shown or stored.

:func:`redact` masks the password of every ``scheme://user:PASSWORD@host`` URL and every
``password=VALUE`` / ``PGPASSWORD: VALUE`` setting in a text; :func:`scrub` also replaces known
secrets (taken from the configured URLs by :func:`secrets_of`) wherever they appear.

Everything here runs in linear time: the text may be a 5 MB YAML value or a server log, and a
backtracking regular expression over it (the old URL pattern) took minutes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote

MASK = "***"
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_SPACE = frozenset(" \t\n\r\f\v")
# `password=`, `PGPASSWORD=`, `db_passwd: `, `API_TOKEN: `, `client_secret=` ...; a quoted value
# may hold spaces (bounded, so a stray quote cannot make every candidate scan to the text's end).
_KW_PW = re.compile(
    r"(?P<head>\b(?:\w*pass(?:word|wd|phrase)|\w*_(?:token|secret|key)|\w*api_?key)\b"
    r"[ \t]*[=:][ \t]*)"
    r"(?P<pw>'(?:[^'\\\n]|\\.){0,1024}'|\"(?:[^\"\\\n]|\\.){0,1024}\"|[^\s&;,}\]]+)",
    re.IGNORECASE,
)


def _url_passwords(text: str) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` of each URL password, left to right, in one pass over ``text``."""
    n = len(text)
    floor = 0  # nothing before this is looked at again
    fail_until = -1  # a password scan from before here found no '@' before a space or the end
    i = text.find("://")
    while i != -1:
        j = i
        while j > floor and text[j - 1] in _SCHEME_CHARS:
            j -= 1
        scheme_ok = any(c.isascii() and c.isalpha() for c in text[j:i])
        k = i + 3
        while k < n and text[k] not in ":/@" and text[k] not in _SPACE:
            k += 1
        next_from = i + 3
        if scheme_ok and k < n and text[k] == ":" and k >= fail_until:
            p = k + 1
            while p < n and text[p] != "@" and text[p] not in _SPACE:
                p += 1
            if p < n and text[p] == "@":
                yield k + 1, p
                next_from = p + 1
            else:
                fail_until = p
        floor = max(floor, next_from)
        i = text.find("://", next_from)


def redact(text: str) -> str:
    """Mask passwords: ``postgres://u:pw@h/db`` → ``postgres://u:***@h/db``, ``password=***``."""
    if not text:
        return text
    parts: list[str] = []
    last = 0
    for start, end in _url_passwords(text):
        parts.append(text[last:start])
        parts.append(MASK)
        last = end
    parts.append(text[last:])
    out = "".join(parts)
    return _KW_PW.sub(lambda m: f"{m['head']}{MASK}", out)


def secrets_of(*urls: str | None) -> list[str]:
    """Return the passwords inside ``urls`` (raw and URL-decoded), for :func:`scrub`."""
    found: list[str] = []
    for url in urls:
        if not url:
            continue
        pws = [url[a:b] for a, b in _url_passwords(url)]
        pws += [m["pw"].strip("'\"") for m in _KW_PW.finditer(url)]
        for pw in pws:
            for s in (pw, unquote(pw)):
                if s and s not in found:
                    found.append(s)
    return found


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in ``text`` (and redact any URL in it)."""
    for s in sorted(secrets, key=len, reverse=True):
        if s:
            text = text.replace(s, MASK)
    return redact(text)


def redact_data(obj: Any) -> Any:
    """``obj`` (JSON-like data) with every string redacted and every secret-named value masked."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {
            k: MASK
            if isinstance(k, str) and secret_key(k) and isinstance(v, str) and v
            else redact_data(v)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact_data(v) for v in obj]
    return obj


_SECRET_KEY = re.compile(
    r"password|passwd|passphrase|secret|credential|api_?key|(^|_)(pass|token)$", re.IGNORECASE
)


def secret_key(name: str) -> bool:
    """Whether a setting named ``name`` (``PGPASSWORD``, ``api_token``...) holds a secret."""
    return _SECRET_KEY.search(name) is not None


def redact_argv(argv: Iterable[str]) -> list[str]:
    """An argument list as it may be shown or stored (``--url=...``, ``password=...`` masked,
    and the value after ``--password``/``--token``-like flags)."""
    out: list[str] = []
    hide_next = False
    for a in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        if a.startswith("-") and "=" not in a and secret_key(a.lstrip("-").replace("-", "_")):
            hide_next = True
        elif a.startswith("-") and "=" in a:
            flag, _, value = a.partition("=")
            if secret_key(flag.lstrip("-").replace("-", "_")) and value:
                a = f"{flag}={MASK}"
        out.append(redact(a))
    return out
