"""Fetch an exposition over HTTP (urllib) or from a file, and parse it into a Snapshot.

Saved snapshots start with a comment line ``# sessionctl-snapshot source=... taken_at=...``, which
is valid exposition text, so a file written by :func:`save` is both re-parseable by any
Prometheus tool and remembers where and when it was taken (``diff`` needs the time for rates).
"""

from __future__ import annotations

import errno
import os
import socket
import time
import urllib.parse
from collections.abc import Collection
from pathlib import Path
from typing import Any

from sessionctl.errors import MeasurementError, ParseError
from sessionctl.metrics.exposition import Snapshot, parse

HEADER = "# sessionctl-snapshot"
_ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"


def is_url(url_or_path: str) -> bool:
    return url_or_path.startswith(("http://", "https://"))


DEADLINE = 60.0  # seconds for a whole scrape: an endpoint that dribbles cannot hang a bench
MAX_BYTES = 256 * 1024 * 1024  # the largest exposition (after gunzip) we agree to hold


def scrape(
    url_or_path: str,
    *,
    timeout: float = 10.0,
    families: Collection[str] | None = None,
    deadline: float = DEADLINE,
    max_bytes: int = MAX_BYTES,
) -> Snapshot:
    """Fetch and parse a ``/metrics`` URL or a saved exposition file."""
    if families is not None and not is_url(url_or_path):
        snap = _scrape_mapped(url_or_path, families, max_bytes)
        if snap is not None:
            return snap
    text, taken_at, source = fetch(
        url_or_path, timeout=timeout, deadline=deadline, max_bytes=max_bytes
    )
    _refuse_html(text, source)
    return parse(text, source=source, families=families, taken_at=taken_at)


def _scrape_mapped(path: str, families: Collection[str], max_bytes: int) -> Snapshot | None:
    """A few families of a file, read through mmap: neither read into memory nor decoded, only
    the wanted lines are (a saved 10 MB snapshot then costs one regex scan). None when the file
    is not a plain one (gzip, empty, missing, too big): the ordinary path handles and reports it.
    """
    import mmap

    p = Path(path).expanduser()
    try:
        with p.open("rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size == 0 or st.st_size > max_bytes:
                return None
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                if buf[:2] == b"\x1f\x8b":
                    return None
                head = buf[:512].decode("utf-8", "replace")
                _refuse_html(head, path)
                taken_at = _taken_at(head.split("\n", 1)[0], st.st_mtime)
                return parse(buf, source=path, families=families, taken_at=taken_at)
    except (OSError, ValueError):
        return None


def _taken_at(first_line: str, mtime: float) -> float:
    """When a snapshot was taken: its ``# sessionctl-snapshot`` header, else the file's mtime."""
    if not first_line.startswith(HEADER):
        return mtime
    fields = dict(f.split("=", 1) for f in first_line[len(HEADER) :].split() if "=" in f)
    try:
        return float(fields.get("taken_at", mtime))
    except ValueError:
        return mtime


def fetch(
    url_or_path: str,
    *,
    timeout: float = 10.0,
    deadline: float = DEADLINE,
    max_bytes: int = MAX_BYTES,
) -> tuple[str, float, str]:
    """Return ``(text, taken_at, source)`` for a URL or a file; errors are one clear line.

    ``timeout`` bounds each network wait, ``deadline`` the whole transfer, ``max_bytes`` the
    size of the (decompressed) text.
    """
    if is_url(url_or_path):
        return _fetch_url(url_or_path, timeout, deadline, max_bytes)
    return _read_file(url_or_path, max_bytes)


def _refuse_html(text: str, source: str) -> None:
    """An HTML page (a login form, a dashboard on the wrong port) is not an exposition."""
    head = text[:512].lstrip().lower()
    if head.startswith(("<!doctype", "<html", "<head", "<body", "<?xml", "<")):
        raise MeasurementError(
            f"{source}: returned an HTML page, not Prometheus text (a login page, or the wrong "
            "port or path?); check target.metrics_url"
        )


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


def _fetch_url(url: str, timeout: float, deadline: float, max_bytes: int) -> tuple[str, float, str]:
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
    until = time.monotonic() + deadline
    try:
        with urllib.request.urlopen(req, timeout=min(timeout, deadline)) as resp:
            # prometheus_client and Materialize render the whole body before the headers go out,
            # so the moment the headers arrive is the moment the numbers were read.
            taken_at = time.time()
            encoding = resp.headers.get("Content-Encoding", "")
            charset = resp.headers.get_content_charset() or "utf-8"
            if resp.headers.get_content_type() == "text/html":
                _refuse_html("<html", shown)
            data = _read_bounded(resp, shown, until, deadline, max_bytes)
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
        data = _gunzip(data, shown, max_bytes)
    return _decode(data, shown, charset), taken_at, shown


def _read_bounded(resp: Any, shown: str, until: float, deadline: float, max_bytes: int) -> bytes:
    """Read the body as it arrives (``read1``), stopping at the deadline or the size cap."""
    chunks: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() > until:
            raise MeasurementError(
                f"{shown}: the response took longer than {deadline:g}s ({total:,} bytes so far); "
                "is this a Prometheus endpoint? check target.metrics_url"
            )
        chunk = resp.read1(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise MeasurementError(_too_big(shown, max_bytes))
        chunks.append(chunk)


def _gunzip(data: bytes, shown: str, max_bytes: int) -> bytes:
    """Decompress, refusing a body that grows past ``max_bytes`` (a gzip bomb)."""
    import zlib

    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise MeasurementError(f"{shown}: corrupt gzip body ({exc})") from None
    if len(out) > max_bytes:
        raise MeasurementError(_too_big(shown, max_bytes))
    return out


def _too_big(shown: str, max_bytes: int) -> str:
    return (
        f"{shown}: the exposition is larger than {max_bytes / 2**20:,.0f} MiB; "
        "is this a Prometheus endpoint? check target.metrics_url"
    )


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


def _read_file(path: str, max_bytes: int = MAX_BYTES) -> tuple[str, float, str]:
    p = Path(path).expanduser()
    try:
        with p.open("rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise MeasurementError(_too_big(path, max_bytes))
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
        data = _gunzip(data, path, max_bytes)
    text = _decode(data, path, "utf-8")
    return text, _taken_at(text[:512].split("\n", 1)[0], mtime), path


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
