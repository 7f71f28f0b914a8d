"""The target: a real scripted HTTP server started, probed and stopped; failures name the command,
the URL and the log tail; process discovery for profiling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sessionctl.campaign.model import Campaign, ReadyProbe, Target
from sessionctl.errors import TargetError
from sessionctl.process import session_pids, spawn, stop_tree
from sessionctl.profiling.pids import target_pids
from sessionctl.target.embedded_postgres import free_port
from sessionctl.target.server import TargetHandle, open_target
from sessionctl.workspace import Workspace

SERVER = r"""
import http.server, os, signal, subprocess, sys, time

port, mode = int(sys.argv[1]), sys.argv[2]
print("fake server starting, greeting=" + os.environ.get("GREETING", "-"), flush=True)
if mode == "crash":
    print("boom: missing config file", flush=True)
    sys.exit(3)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
time.sleep(0.3)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/api/readyz" and mode == "ok"
        self.send_response(200 if ok else 503)
        self.end_headers()
        self.wfile.write(b"ready" if ok else b"not ready")
    def log_message(self, *a):
        pass

def bye(*_):
    print("got SIGINT, shutting down", flush=True)
    sys.exit(0)

signal.signal(signal.SIGINT, bye)
print("listening on", port, flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


@pytest.fixture
def server_script(tmp_path: Path) -> Path:
    path = tmp_path / "fake_server.py"
    path.write_text(SERVER)
    return path


def campaign(target: Target) -> Campaign:
    return Campaign(schema=1, revision=0, title="t", name="demo", target=target)


def http_target(script: Path, port: int, mode: str = "ok", timeout: float = 20) -> Target:
    return Target(
        start=(sys.executable, str(script), str(port), mode),
        env={"GREETING": "hello-$SESSIONCTL_TEST_WHO"},
        ready=ReadyProbe(url=f"http://127.0.0.1:{port}/api/readyz", timeout=timeout, interval=0.1),
        stop_timeout=5,
    )


def wait_http(port: int, timeout: float = 30) -> None:
    """Block until the scripted server answers (it has spawned its child by then)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/readyz", timeout=2).close()
            return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[1][0] != "Z"


def test_start_probe_and_stop_a_scripted_server(
    tmp_path: Path, server_script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONCTL_TEST_WHO", "world")
    ws = Workspace(tmp_path)
    port = free_port()
    with open_target(ws, campaign(http_target(server_script, port))) as target:
        assert target.ready and target.proc is not None
        pids = target_pids(target)
        assert target.proc.pid in pids and len(pids) >= 2  # the server and its child
        log = target.log_path
        assert log is not None and log.parent == ws.runs_dir("demo")
        leader = target.proc.pid
    assert target.proc is None
    assert not any(alive(p) for p in pids)
    text = log.read_text()
    assert "greeting=hello-world" in text
    assert "got SIGINT, shutting down" in text  # SIGINT first, as configured
    assert not session_pids(leader)


def test_server_that_exits_early_reports_code_and_log_tail(
    tmp_path: Path, server_script: Path
) -> None:
    target = TargetHandle(
        Workspace(tmp_path), campaign(http_target(server_script, free_port(), "crash"))
    )
    with pytest.raises(TargetError) as info:
        target.__enter__()
    msg = str(info.value)
    assert "exited with 3 before it was ready" in msg
    assert "boom: missing config file" in msg and str(server_script) in msg
    assert "\n" not in msg


def test_readiness_timeout_names_url_and_log_then_stops(
    tmp_path: Path, server_script: Path
) -> None:
    port = free_port()
    target = TargetHandle(
        Workspace(tmp_path), campaign(http_target(server_script, port, "never", timeout=0.8))
    )
    with pytest.raises(TargetError) as info:
        target.__enter__()
    msg = str(info.value)
    assert f"http://127.0.0.1:{port}/api/readyz" in msg and "HTTP 503" in msg
    assert "listening on" in msg  # the log tail
    assert target.proc is None  # stopped on failure


def test_unreachable_user_run_server_is_one_redacted_line(tmp_path: Path) -> None:
    url = f"postgresql://materialize:s3cret@127.0.0.1:{free_port()}/materialize"
    t = Target(sql_url=url, ready=ReadyProbe(timeout=0.3, interval=0.1))
    started = time.monotonic()
    with pytest.raises(TargetError) as info:
        open_target(Workspace(tmp_path), campaign(t))
    msg = str(info.value)
    assert msg.startswith("target not reachable at postgresql://materialize:***@127.0.0.1:")
    assert "s3cret" not in msg and "add target.start" in msg
    assert time.monotonic() - started < 10


def test_start_false_uses_the_running_server(tmp_path: Path, server_script: Path) -> None:
    port = free_port()
    proc = spawn([sys.executable, str(server_script), str(port), "ok"], stdout=subprocess.DEVNULL)
    try:
        wait_http(port)
        t = http_target(server_script, port)
        with open_target(Workspace(tmp_path), campaign(t), start=False) as target:
            assert target.proc is None and target.ready
        assert proc.poll() is None  # not ours to stop
    finally:
        stop_tree(proc, first_signal=signal.SIGINT, grace=5)


def test_pids_from_pid_and_from_process_pattern(tmp_path: Path, server_script: Path) -> None:
    port = free_port()
    proc = spawn([sys.executable, str(server_script), str(port), "ok"], stdout=subprocess.DEVNULL)
    try:
        wait_http(port)
        by_pid = TargetHandle(Workspace(tmp_path), campaign(Target(pid=proc.pid)))
        assert proc.pid in target_pids(by_pid) and len(target_pids(by_pid)) >= 2  # with its child
        pattern = TargetHandle(
            Workspace(tmp_path), campaign(Target(processes=rf"fake_server\.py {port}"))
        )
        assert target_pids(pattern) == [proc.pid]
        assert target_pids(TargetHandle(Workspace(tmp_path), campaign(Target()))) == []
    finally:
        stop_tree(proc, first_signal=signal.SIGINT, grace=5)


def test_artifacts_placeholder(tmp_path: Path) -> None:
    t = Target(
        start=("bin/srv", "--optimized", "--bindir={artifacts}/bin"), artifacts_param="{artifacts}"
    )
    with_dir = TargetHandle(Workspace(tmp_path), campaign(t), artifacts_dir=Path("/a/b"))
    assert with_dir._argv() == ["bin/srv", "--optimized", "--bindir=/a/b/bin"]
    assert TargetHandle(Workspace(tmp_path), campaign(t))._argv() == ["bin/srv", "--optimized"]
