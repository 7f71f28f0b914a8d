"""Fetch an exposition over HTTP (urllib) or from a file, and parse it into a Snapshot.

Saved snapshots start with a comment line ``# sessionctl-snapshot source=... taken_at=...``, which
is valid exposition text, so a file written by :func:`save` is both re-parseable by any
Prometheus tool and remembers where and when it was taken (``diff`` needs the time for rates).
"""

from __future__ import annotations

import errno
import gzip
import os
import socket
import time
import urllib.parse
from collections.abc import Collection
from pathlib import Path

from sessionctl.errors import MeasurementError, ParseError
from sessionctl.metrics.exposition import Snapshot, parse

HEADER = "# sessionctl-snapshot"
_ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"


def is_url(url_or_path: str) -> bool:
    return url_or_path.startswith(("http://", "https://"))


def scrape(
    url_or_path: str, *, timeout: float = 10.0, families: Collection[str] | None = None
) -> Snapshot:
    """Fetch and parse a ``/metrics`` URL or a saved exposition file."""
    text, taken_at, source = fetch(url_or_path, timeout=timeout)
    return parse(text, source=source, families=families, taken_at=taken_at)


def fetch(url_or_path: str, *, timeout: float = 10.0) -> tuple[str, float, str]:
    """Return ``(text, taken_at, source)`` for a URL or a file; errors are one clear line."""
    if is_url(url_or_path):
        return _fetch_url(url_or_path, timeout)
    return _read_file(url_or_path)


def save(path: str | os.PathLike[str], snapshot: Snapshot) -> Path:
    """Write the snapshot's text with a provenance header, atomically."""
    from sessionctl.files import atomic_write

    body = snapshot.text
    if body.startswith(HEADER):
        body = body.split("\n", 1)[1] if "\n" in body else ""
    header = f"{HEADER} source={redact(snapshot.source)} taken_at={snapshot.taken_at!r}\n"
    target = Path(path)
    atomic_write(target, header + body)
    return target


def redact(url: str) -> str:
    """Drop any ``user:password@`` from a URL before it is shown or stored."""
    if not is_url(url):
        return url
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _fetch_url(url: str, timeout: float) -> tuple[str, float, str]:
    import urllib.error
    import urllib.request  # ~20 ms to import; only scrapes of a URL pay for it

    shown = redact(url)
    headers = {"Accept": _ACCEPT, "Accept-Encoding": "gzip"}
    userinfo = urllib.parse.urlsplit(url).netloc.rpartition("@")[0]
    if userinfo:  # urllib does not understand user:password@ in a URL; send basic auth instead
        import base64

        token = base64.b64encode(urllib.parse.unquote(userinfo).encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    req = urllib.request.Request(shown, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            # prometheus_client and Materialize render the whole body before the headers go out,
            # so the moment the headers arrive is the moment the numbers were read.
            taken_at = time.time()
            data = resp.read()
            encoding = resp.headers.get("Content-Encoding", "")
            charset = resp.headers.get_content_charset() or "utf-8"
    except urllib.error.HTTPError as exc:
        raise MeasurementError(
            f"{shown}: HTTP {exc.code} {exc.reason}; expected 200 with Prometheus text"
        ) from None
    except urllib.error.URLError as exc:
        raise MeasurementError(_url_error(shown, exc.reason, timeout)) from None
    except TimeoutError:
        raise MeasurementError(_timeout(shown, timeout)) from None
    except OSError as exc:
        raise MeasurementError(_url_error(shown, exc, timeout)) from None
    if encoding == "gzip":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise MeasurementError(f"{shown}: corrupt gzip body ({exc})") from None
    return _decode(data, shown, charset), taken_at, shown


def _url_error(shown: str, reason: object, timeout: float) -> str:
    if (
        isinstance(reason, ConnectionRefusedError)
        or getattr(reason, "errno", None) == errno.ECONNREFUSED
    ):
        return f"{shown}: connection refused; is the server running?"
    if isinstance(reason, TimeoutError):
        return _timeout(shown, timeout)
    if isinstance(reason, socket.gaierror):
        host = urllib.parse.urlsplit(shown).hostname
        return f"{shown}: cannot resolve host {host!r}; check the URL"
    text = getattr(reason, "strerror", None) or str(reason)
    return f"{shown}: {text}; check the URL and that the server is up"


def _timeout(shown: str, timeout: float) -> str:
    return (
        f"{shown}: no answer within {timeout:g}s; "
        "is the server overloaded, or is this the right port?"
    )


def _read_file(path: str) -> tuple[str, float, str]:
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
        mtime = p.stat().st_mtime
    except FileNotFoundError:
        raise MeasurementError(
            f"{path}: no such file; pass a metrics URL (http://...) or a saved snapshot"
        ) from None
    except IsADirectoryError:
        raise MeasurementError(
            f"{path}: is a directory; pass a metrics URL or a snapshot file"
        ) from None
    except OSError as exc:
        raise MeasurementError(f"{path}: cannot read ({exc.strerror})") from None
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = _decode(data, path, "utf-8")
    source, taken_at = path, mtime
    if text.startswith(HEADER):
        first = text.split("\n", 1)[0]
        fields = dict(f.split("=", 1) for f in first[len(HEADER) :].split() if "=" in f)
        try:
            taken_at = float(fields.get("taken_at", mtime))
        except ValueError:
            taken_at = mtime
    return text, taken_at, source


def _decode(data: bytes, source: str, charset: str) -> str:
    try:
        return data.decode(charset)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(
            f"{source}:{line}: not valid {charset} (byte 0x{data[exc.start]:02x})"
        ) from None
    except LookupError:
        return _decode(data, source, "utf-8")
