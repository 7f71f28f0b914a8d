"""``target.restart: never``: one long-lived server process for many commands (a real scripted
server, the real PostgreSQL fixture for the SQL, the real CLI), stopped only when asked."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from sessionctl.cli import app
from sessionctl.target import long_lived
from sessionctl.target.embedded_postgres import EmbeddedPostgres, free_port
from sessionctl.workspace import Workspace

pytestmark = pytest.mark.postgres

# A server that takes a moment to boot and notes every start (its pid) in a file.
SERVER = r"""
import http.server, os, signal, sys, time

port, starts = int(sys.argv[1]), sys.argv[2]
build = sys.argv[3].removeprefix("--build=") if len(sys.argv) > 3 else "-"
with open(starts, "a") as fh:
    fh.write(f"{os.getpid()} {build}\n")
time.sleep(0.3)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ready")
    def log_message(self, *a):
        pass

signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
print("listening on", port, flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""

COUNT = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"


@pytest.fixture
def db(postgres: EmbeddedPostgres) -> Iterator[str]:
    name = f"ddll_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres.url, autocommit=True) as c:
        c.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def campaign(ws: Workspace, db: str, tmp_path: Path) -> Iterator[tuple[Workspace, Path]]:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    starts = tmp_path / "starts.txt"
    port = free_port()
    ws.campaign_path("ll").write_text(f"""schema: 1
revision: 1
title: long-lived target
target:
  start: ["{sys.executable}", "{script}", "{port}", "{starts}"]
  restart: never
  ready:
    url: http://127.0.0.1:{port}/
    timeout: 20s
    interval: 0.05s
  stop_timeout: 5s
  sql_url: "{db}"
benchmarks:
  - name: ddl-now
    driver: ddl
    ddl:
      count_sql: {COUNT}
      filler: CREATE TABLE filler_{{n}} (a int)
      probes:
        table: CREATE TABLE probe_{{n}} (a int)
      probes_per_level: 2
compare:
  pairs: 2
  warmup_runs: 0
""")
    yield ws, starts
    long_lived.stop(ws, "ll", first_signal=2, grace=5)  # never leave a server behind


def test_ten_commands_reuse_one_server_until_stopped(
    campaign: tuple[Workspace, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionctl import console

    monkeypatch.setattr(console, "_quiet", False)
    ws, starts = campaign
    runner = CliRunner()
    commands = [["bench", "ddl-now", "--no-record"]] * 6 + [
        ["compare", "ddl-now", "--aa", "--no-record"]
    ] * 3 + [["target", "start"]]  # fmt: skip
    outputs = []
    for argv in commands:
        res = runner.invoke(app, [*argv, "--campaign", "ll"])
        assert res.exit_code == 0, res.output
        outputs.append(res.output)
    pids = [ln.split()[0] for ln in starts.read_text().splitlines()]
    assert len(pids) == 1  # one server process started, for all ten commands
    pid = int(pids[0])
    assert long_lived.alive(pid)
    assert "starting target" in outputs[0]
    assert all(f"long-lived, pid {pid}); reusing it" in out for out in outputs[1:])
    res = runner.invoke(app, ["target", "status", "--campaign", "ll", "--json"])
    doc = json.loads(res.stdout)
    assert (doc["pid"], doc["ready"], doc["long_lived"]) == (pid, True, True)

    res = runner.invoke(app, ["target", "stop", "--campaign", "ll"])
    assert res.exit_code == 0 and f"stopped the target (pid {pid})" in res.output
    assert not long_lived.alive(pid)
    assert not long_lived.state_path(ws, "ll").exists()
    res = runner.invoke(app, ["target", "stop", "--campaign", "ll"])
    assert res.exit_code == 2 and "nothing to stop" in res.output


def test_a_server_already_answering_is_used_and_not_stopped(
    campaign: tuple[Workspace, Path],
) -> None:
    from sessionctl.campaign.store import load
    from sessionctl.target.server import TargetHandle

    ws, starts = campaign
    camp = load(ws, "ll").campaign
    with TargetHandle(ws, camp) as first:
        pid = first.leader_pid
    assert pid is not None and long_lived.alive(pid)
    # Someone else's view: the state file is gone, but the server answers: use it, start nothing.
    long_lived.clear_state(ws, "ll")
    with TargetHandle(ws, camp) as second:
        assert second.proc is None and second.ready
    assert starts.read_text().split() == [str(pid), "-"]
    assert long_lived.alive(pid)
    os.kill(pid, 2)


def test_status_shows_a_recorded_server_that_died_as_exited(
    campaign: tuple[Workspace, Path],
) -> None:
    runner = CliRunner()
    up = json.loads(runner.invoke(app, ["target", "start", "-C", "ll", "--json"]).stdout)
    pid = up["pid"]
    os.kill(pid, 9)  # it crashed: the state file still names it
    for _ in range(400):  # SIGKILL is not instant; bounded, whatever the machine's load
        if not long_lived.alive(pid):
            break
        time.sleep(0.05)
    doc = json.loads(runner.invoke(app, ["target", "status", "-C", "ll", "--json"]).stdout)
    assert (doc["pid"], doc["alive"], doc["ready"]) == (pid, False, False)
    res = runner.invoke(app, ["target", "status", "-C", "ll"])
    assert (
        res.exit_code == 0 and f"{pid} (exited)" in res.stdout and "none recorded" not in res.stdout
    )
    again = json.loads(runner.invoke(app, ["target", "start", "-C", "ll", "--json"]).stdout)
    assert again["pid"] != pid and again["alive"] and again["ready"]


def test_a_preserved_build_side_is_refused_without_touching_the_server(
    campaign: tuple[Workspace, Path], tmp_path: Path
) -> None:
    from sessionctl.errors import UsageError
    from sessionctl.verdict.protocol import ArtifactSides, run_compare

    ws, starts = campaign
    with pytest.raises(UsageError) as info:
        run_compare(ws, "ll", sides=ArtifactSides(tmp_path / "build"), record=False)
    msg = str(info.value)
    assert "target.restart is never (one long-lived server), but side A" in msg
    assert "pass --restart-target" in msg and "\n" not in msg
    assert not starts.exists()  # nothing was started (or restarted)


def test_restart_target_runs_the_build_sides_then_brings_the_current_build_back(
    campaign: tuple[Workspace, Path], tmp_path: Path
) -> None:
    from sessionctl.campaign.store import load
    from sessionctl.target.server import TargetHandle
    from sessionctl.verdict.protocol import ArtifactSides, run_compare

    ws, starts = campaign
    path = ws.campaign_path("ll")
    text = path.read_text().replace(f'"{starts}"]', f'"{starts}", "--build={{artifacts}}"]')
    path.write_text(text.replace("  restart: never\n", "  restart: never\n  artifacts_param: "
                                 "'{artifacts}'\n"))  # fmt: skip
    with TargetHandle(ws, load(ws, "ll").campaign) as first:
        before = first.leader_pid
    build = tmp_path / "build"
    build.mkdir()
    res = run_compare(ws, "ll", sides=ArtifactSides(build), pairs=1, record=False,
                      restart_target=True)  # fmt: skip
    assert [r["side"] for r in res.runs] == ["A", "B"]
    lines = starts.read_text().splitlines()
    # The long-lived server (current build), A's build, B (current), then B again, long-lived.
    assert [ln.split(" ", 1)[1] for ln in lines] == ["-", str(build), "-", "-"]
    assert not long_lived.alive(before)
    st = long_lived.live_state(ws, "ll")
    assert st is not None and str(st.pid) == lines[-1].split()[0] and long_lived.alive(st.pid)


def test_target_restart_replaces_the_server_and_per_command_targets_refuse(
    campaign: tuple[Workspace, Path],
) -> None:
    ws, starts = campaign
    runner = CliRunner()
    first = json.loads(runner.invoke(app, ["target", "start", "-C", "ll", "--json"]).stdout)
    again = json.loads(runner.invoke(app, ["target", "restart", "-C", "ll", "--json"]).stdout)
    assert first["pid"] != again["pid"] and again["ready"]
    assert not long_lived.alive(first["pid"]) and long_lived.alive(again["pid"])
    assert [int(ln.split()[0]) for ln in starts.read_text().splitlines()] == [
        first["pid"], again["pid"],
    ]  # fmt: skip
    path = ws.campaign_path("ll")
    path.write_text(path.read_text().replace("restart: never", "restart: per_command"))
    res = runner.invoke(app, ["target", "start", "-C", "ll"])
    assert res.exit_code == 2
    assert "target.restart is per_command: each command starts and stops the server" in res.output


def test_two_commands_at_once_start_one_server(campaign: tuple[Workspace, Path]) -> None:
    import threading

    from sessionctl.campaign.store import load
    from sessionctl.target.server import TargetHandle

    ws, starts = campaign
    camp = load(ws, "ll").campaign
    handles = [TargetHandle(ws, camp) for _ in range(2)]
    errors: list[BaseException] = []

    def enter(h: TargetHandle) -> None:
        try:
            h.__enter__()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=enter, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and all(h.ready for h in handles)
    assert len(starts.read_text().splitlines()) == 1  # the second waited for the first's server
    assert {h.leader_pid for h in handles} == {int(starts.read_text().split()[0])}
