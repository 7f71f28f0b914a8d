"""Fault injection around measuring: the wrong server on the port, a session that ends while a
bench runs, runs too short to measure, malformed numbers, hostile metrics endpoints
(issue 19, items 5 and 7-11)."""

from __future__ import annotations

import gzip
import http.server
import json
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_bench_runner import open_session, write_campaign
from test_target_lifecycle import campaign, http_target, wait_http

from sessionctl import console
from sessionctl.bench.runner import run_bench
from sessionctl.campaign.model import Target
from sessionctl.errors import MeasurementError, TargetError, UsageError
from sessionctl.metrics.scrape import scrape
from sessionctl.process import spawn, stop_tree
from sessionctl.reporting import NullReporter
from sessionctl.session import engine
from sessionctl.session.record import (
    OpenSession,
    clear_current,
    current,
    measurements,
    write_current,
)
from sessionctl.target.embedded_postgres import free_port
from sessionctl.target.server import TargetHandle
from sessionctl.workspace import Workspace

# --- 5. the port is taken by another server -----------------------------------------------------


@pytest.mark.parametrize("start", [("/bin/false",), ("sleep", "30")])
def test_a_target_whose_port_is_taken_is_refused_not_measured(
    tmp_path: Path, start: tuple[str, ...]
) -> None:
    import signal
    import subprocess

    server = tmp_path / "fake_server.py"
    from test_target_lifecycle import SERVER

    server.write_text(SERVER)
    port = free_port()
    other = spawn([sys.executable, str(server), str(port), "ok"], stdout=subprocess.DEVNULL)
    try:
        wait_http(port)
        spec = http_target(server, port)
        t = Target(start=start, ready=spec.ready, stop_timeout=5)
        handle = TargetHandle(Workspace(tmp_path), campaign(t))
        with pytest.raises(TargetError, match=r"a server already answers there before target"):
            handle.__enter__()
        assert handle.proc is None and not handle.ready
    finally:
        stop_tree(other, first_signal=signal.SIGINT, grace=5)


def test_a_started_target_that_dies_during_a_run_is_reported(tmp_path: Path) -> None:
    import os
    import signal

    from test_target_lifecycle import SERVER

    server = tmp_path / "fake_server.py"
    server.write_text(SERVER)
    with TargetHandle(Workspace(tmp_path), campaign(http_target(server, free_port()))) as t:
        t.check_alive("bench c1")  # alive: nothing to say
        assert t.proc is not None
        os.killpg(t.proc.pid, signal.SIGKILL)
        t.proc.wait()
        with pytest.raises(TargetError, match=r"exited with -9 during bench c1: its numbers"):
            t.check_alive("bench c1")


# --- 7. a measurement belongs to the session open when it started -------------------------------


class SwitchSessionOnFirstResult(NullReporter):
    """Close session 7 and open session 8 the moment the first run's result is reported."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.warnings: list[str] = []

    def info(self, message: str) -> None:
        if "QPS" in message and current(self.ws, "bench").number == 7:  # type: ignore[union-attr]
            write_current(self.ws, OpenSession("bench", 8, None, False, "2026-11-22T10:05:00Z"))

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def test_a_bench_is_not_recorded_into_a_session_opened_while_it_ran(
    ws: Workspace, pg_url: str
) -> None:
    write_campaign(ws, pg_url)
    open_session(ws, 7)
    rep = SwitchSessionOnFirstResult(ws)
    out = run_bench(ws, "bench", bench="lookup", concurrency=[1], duration=0.2, reporter=rep)
    assert current(ws, "bench").number == 8  # type: ignore[union-attr]
    assert out.session is None and measurements(ws, "bench", 8) == []
    assert any("session 7 ended while the benchmark ran: not recorded" in w for w in rep.warnings)
    assert (out.run_dir / "outcome.json").is_file()  # the numbers are kept, not lost


def test_a_bench_started_without_a_session_is_not_recorded_later(
    ws: Workspace, pg_url: str
) -> None:
    write_campaign(ws, pg_url)

    class OpenOnResult(NullReporter):
        def info(self, message: str) -> None:
            if "QPS" in message and current(ws, "bench") is None:
                open_session(ws, 9)

    out = run_bench(
        ws, "bench", bench="lookup", concurrency=[1], duration=0.2, reporter=OpenOnResult()
    )
    assert out.session is None and measurements(ws, "bench", 9) == []


def test_the_report_of_an_unrecorded_bench_says_why_not_that_no_session_is_open(
    ws: Workspace, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from sessionctl.cli.bench import _show

    write_campaign(ws, pg_url)
    open_session(ws, 7)
    rep = SwitchSessionOnFirstResult(ws)
    out = run_bench(ws, "bench", bench="lookup", concurrency=[1], duration=0.2, reporter=rep)
    capsys.readouterr()
    _show(out, recorded=True)
    shown = capsys.readouterr().out
    assert "not recorded: session 7 ended while the benchmark ran; rerun it in the open" in shown
    assert "no session is open" not in shown  # session 8 is open: that line would be false

    write_campaign(ws, pg_url)
    clear_current(ws, "bench")
    out = run_bench(ws, "bench", bench="lookup", concurrency=[1], duration=0.2)
    capsys.readouterr()
    _show(out, recorded=True)
    assert "not recorded: no session was open when it started" in capsys.readouterr().out


# --- 8. a run too short to measure ---------------------------------------------------------------


def test_a_pgbench_run_without_percentiles_is_refused(ws: Workspace, pg_url: str) -> None:
    write_campaign(ws, pg_url)
    path = ws.prompts_dir / "bench.yaml"
    # One transaction (a 1.2 s sleep in a 1 s run) whose latency is never logged: no percentiles.
    path.write_text(
        path.read_text()
        + """  - name: slow
    driver: pgbench
    script: "\\\\sleep 1200 ms\\nselect 1;\\n"
    concurrency: [1]
    duration: 1s
    args: [--sampling-rate=0.0000001]
"""
    )
    open_session(ws, 7)
    with pytest.raises(MeasurementError, match=r"slow c1: the run produced no usable numbers.*p50"):
        run_bench(ws, "bench", bench="slow", phase="baseline")
    assert measurements(ws, "bench", 7) == []


def test_json_output_never_prints_bare_nan(capsys: pytest.CaptureFixture[str]) -> None:
    console.print_json({"p50": float("nan"), "rows": [{"qps": float("inf")}, 1.5]})
    out = capsys.readouterr().out
    assert "NaN" not in out and "Infinity" not in out
    assert json.loads(out) == {"p50": None, "rows": [{"qps": None}, 1.5]}


# --- 9. numbers in `record --metric` -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("qps=1_000", "expected name=value"),
        ("qps=0x10", "expected name=value"),
        ("qps=1e309", "out of range"),
        ("qps=-5", "cannot be negative"),
        ("p99=-2ms", "cannot be negative"),
    ],
)
def test_malformed_or_non_finite_metrics_are_refused(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        engine.parse_metric(text)


def test_well_formed_metrics_still_parse() -> None:
    assert engine.parse_metric("qps=1.5e3").value == 1500.0
    assert engine.parse_metric("p99=3.2ms").unit == "ms"
    assert engine.parse_metric("delta=-3").value == -3.0  # no direction known: a sign is fine


# --- 10 and 11. hostile metrics endpoints -------------------------------------------------------


Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@pytest.fixture
def endpoint() -> Iterator[Callable[[Handler], str]]:
    """Serve one handler function on a free local port; return the URL of /metrics."""
    servers: list[socketserver.TCPServer] = []

    def serve(handle: Handler) -> str:
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                handle(self)

            def log_message(self, *a: object) -> None:
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        srv.daemon_threads = True
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{srv.server_address[1]}/metrics"

    yield serve
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _reply(body: bytes, ctype: str = "text/plain", extra: dict[str, str] | None = None) -> Handler:
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handle


LOGIN = b"<!DOCTYPE html><html><body><form>Sign in</form></body></html>\n"
METRICS = """\
metrics:
  - name: bench_probe_seconds
    kind: histogram
    stats: [mean]"""


@pytest.mark.parametrize("ctype", ["text/html; charset=utf-8", "text/plain"])
def test_bench_refuses_a_login_page_as_metrics(
    ws: Workspace, pg_url: str, endpoint: Callable[[Handler], str], ctype: str
) -> None:
    url = endpoint(_reply(LOGIN, ctype))
    write_campaign(ws, pg_url, extra_target=f"  metrics_url: {url}", metrics=METRICS)
    with pytest.raises(MeasurementError, match=r"returned an HTML page, not Prometheus text"):
        run_bench(ws, "bench", bench="lookup", concurrency=[1], duration=0.2)


def test_bench_refuses_an_endpoint_without_any_configured_family(
    ws: Workspace, pg_url: str, endpoint: Callable[[Handler], str]
) -> None:
    url = endpoint(_reply(b"# TYPE other_total counter\nother_total 3\n"))
    write_campaign(ws, pg_url, extra_target=f"  metrics_url: {url}", metrics=METRICS)
    with pytest.raises(MeasurementError, match=r"none of the metric families.*bench_probe_seconds"):
        run_bench(ws, "bench", bench="lookup", concurrency=[1], duration=0.2)


def test_a_dribbling_endpoint_is_cut_off_at_the_deadline(
    endpoint: Callable[[Handler], str],
) -> None:
    stop = threading.Event()

    def dribble(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        h.end_headers()
        i = 0
        while not stop.is_set():
            try:
                h.wfile.write(f'dribble_total{{i="{i}"}} 1\n'.encode())
                h.wfile.flush()
            except OSError:  # the client gave up: that is the point
                return
            i += 1
            time.sleep(0.1)

    url = endpoint(dribble)
    started = time.monotonic()
    try:
        with pytest.raises(MeasurementError, match=r"took longer than 1s.*bytes so far"):
            scrape(url, timeout=5, deadline=1.0)
    finally:
        stop.set()
    assert time.monotonic() - started < 30  # bounded by the deadline, not by the endpoint


def test_an_oversized_or_bomb_response_is_refused(
    endpoint: Callable[[Handler], str], tmp_path: Path
) -> None:
    big = b"x_total 1\n" * 1000
    with pytest.raises(MeasurementError, match=r"larger than"):
        scrape(endpoint(_reply(big)), max_bytes=5000)
    bomb = gzip.compress(big * 100)
    assert len(bomb) < 5000
    with pytest.raises(MeasurementError, match=r"larger than"):
        scrape(endpoint(_reply(bomb, extra={"Content-Encoding": "gzip"})), max_bytes=5000)
    saved = tmp_path / "snap.prom.gz"
    saved.write_bytes(bomb)
    with pytest.raises(MeasurementError, match=r"larger than"):
        scrape(str(saved), max_bytes=5000)
    assert scrape(endpoint(_reply(big[:100])), max_bytes=5000).families  # a small one is fine
