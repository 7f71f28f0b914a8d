"""Scraping: HTTP failures as one clear line, gzip, provenance headers, credential redaction."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sessionctl.errors import MeasurementError, ParseError
from sessionctl.metrics import parse, save, scrape
from sessionctl.metrics.scrape import redact

BODY = b'# TYPE up gauge\nup{job="x"} 1\n'


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/notready":
            self.send_response(503, "Service Unavailable")
            self.end_headers()
            self.wfile.write(b"not ready")
            return
        gz = "gzip" in self.headers.get("Accept-Encoding", "") and self.path == "/gz"
        body = gzip.compress(BODY) if gz else BODY
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        if gz:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.shutdown, daemon=True).start()
    server.server_close()


def test_plain_and_gzip_bodies(http: str) -> None:
    for path in ("/metrics", "/gz"):
        snap = scrape(http + path)
        assert snap.families["up"].samples == (("up", 'job="x"', 1.0, None),)
        assert snap.source == http + path and snap.taken_at > 0


def test_http_error_status(http: str) -> None:
    with pytest.raises(MeasurementError) as err:
        scrape(http + "/notready")
    assert (
        str(err.value)
        == f"{http}/notready: HTTP 503 Service Unavailable; expected 200 with Prometheus text"
    )


def test_silent_server_times_out() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)  # the kernel completes the handshake; nobody ever answers
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/metrics"
        with pytest.raises(
            MeasurementError, match=r"no answer within 0\.3s; is the server overloaded"
        ):
            scrape(url, timeout=0.3)
    finally:
        sock.close()


def test_save_keeps_provenance_and_reparses(http: str, tmp_path: Path) -> None:
    snap = scrape(http + "/metrics")
    out = save(tmp_path / "s.prom", snap)
    again = scrape(str(out))
    assert again.taken_at == snap.taken_at and again.source == str(out)
    assert again.families == snap.families
    assert (
        out.read_text().splitlines()[0]
        == f"# sessionctl-snapshot source={http}/metrics taken_at={snap.taken_at!r}"
    )
    save(tmp_path / "s2.prom", again)  # re-saving does not stack headers
    assert (tmp_path / "s2.prom").read_text().count("# sessionctl-snapshot") == 1


def test_gzip_file_and_bad_utf8(tmp_path: Path) -> None:
    (tmp_path / "m.prom.gz").write_bytes(gzip.compress(BODY))
    assert "up" in scrape(str(tmp_path / "m.prom.gz")).families
    (tmp_path / "bad.prom").write_bytes(b'a 1\nb 2\nc{x="\xff"} 3\n')
    with pytest.raises(ParseError, match=r"bad\.prom:3: not valid utf-8 \(byte 0xff\)"):
        scrape(str(tmp_path / "bad.prom"))


def test_credentials_never_shown() -> None:
    assert redact("http://user:secret@127.0.0.1:1/metrics") == "http://127.0.0.1:1/metrics"
    with pytest.raises(MeasurementError) as err:
        scrape("http://user:secret@127.0.0.1:1/metrics")
    assert "secret" not in str(err.value) and "connection refused" in str(err.value)
    assert parse("a 1\n", source="x").source == "x"
