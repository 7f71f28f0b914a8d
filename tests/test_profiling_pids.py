"""Which processes the profiler attaches to: the target's own tree, live, re-read before attaching.

Real processes throughout: small Python process trees started under a symlinked name (so their
process name is ours to match), a TCP listener for the port rule, and the real PostgreSQL fixture
(its postmaster, its backends that exit after a client disconnects). The perf tests skip with the
reason where ``perf record`` cannot run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionctl.cli import app
from sessionctl.errors import ConfigError
from sessionctl.profiling import perf
from sessionctl.profiling.pids import (
    alive,
    descendants,
    listening_inodes,
    matches,
    matching_trees,
    process_table,
    select_pids,
    url_port,
)
from sessionctl.target.embedded_postgres import EmbeddedPostgres
from sessionctl.workspace import Workspace

NAME = "sctlfakesrv"  # the process name of the fake servers (comm is the executable's base name)

# A fake server: optionally listens on a port, starts CHILDREN children (each a fake server
# without children, or a plain python wrapper holding one when WRAP), prints their pids, sleeps.
SERVER = """
import json, os, socket, subprocess, sys, time
exe, python = sys.argv[1], sys.argv[2]
children, wrap, listen = int(sys.argv[3]), sys.argv[4] == "wrap", sys.argv[5] == "listen"
sock = None
if listen:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
leaf = [exe, "-c", "import time; time.sleep(60)"]
kids = []
for _ in range(children):
    if wrap:  # a process NOT named like the server, whose own child is a server again
        inner = ("import subprocess, sys, time; p = subprocess.Popen(sys.argv[1:]); "
                 "print(p.pid, flush=True); time.sleep(60)")
        w = subprocess.Popen([python, "-c", inner, *leaf], stdout=subprocess.PIPE, text=True)
        kids.append({"wrapper": w.pid, "server": int(w.stdout.readline())})
    else:
        kids.append({"server": subprocess.Popen(leaf).pid})
print(json.dumps({"kids": kids, "port": sock.getsockname()[1] if sock else None}), flush=True)
time.sleep(60)
"""


class FakeServer:
    """A running fake server tree: ``root``, ``servers`` (matching pids), ``port``."""

    def __init__(self, exe: Path, *, children: int = 1, wrap: bool = False, listen: bool = False):
        argv = [str(exe), "-c", SERVER, str(exe), os.path.realpath(sys.executable), str(children)]
        self.proc = subprocess.Popen(
            [*argv, "wrap" if wrap else "-", "listen" if listen else "-"],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.root = self.proc.pid
        self.kids = info["kids"]
        self.port: int | None = info["port"]
        self.servers = sorted([self.root, *(k["server"] for k in self.kids)])

    def stop(self) -> None:
        os.killpg(self.proc.pid, 9)
        self.proc.wait()


@pytest.fixture
def exe(tmp_path: Path) -> Path:
    link = tmp_path / NAME
    link.symlink_to(sys.executable)
    return link


@pytest.fixture
def servers(exe: Path) -> Iterator[list[FakeServer]]:
    started: list[FakeServer] = []
    yield started
    for s in started:
        s.stop()


def start(servers: list[FakeServer], exe: Path, **kw: bool | int) -> FakeServer:
    s = FakeServer(exe, **kw)  # type: ignore[arg-type]
    servers.append(s)
    time.sleep(0.05)  # process start times are in clock ticks: keep the trees' ages apart
    return s


PATTERN = f"^{NAME}$"


def test_processes_pick_the_oldest_matching_tree_only(exe: Path, servers: list[FakeServer]) -> None:
    old = start(servers, exe, children=2)
    young = start(servers, exe, children=1)
    assert select_pids(pattern=PATTERN) == old.servers
    assert not set(select_pids(pattern=PATTERN)) & set(young.servers)


def test_processes_pick_the_tree_listening_on_the_target_port(
    exe: Path, servers: list[FakeServer]
) -> None:
    old = start(servers, exe, children=1)
    target = start(servers, exe, children=2, listen=True)
    assert target.port and listening_inodes(target.port)
    assert select_pids(pattern=PATTERN, port=target.port) == target.servers
    assert select_pids(pattern=PATTERN) == old.servers  # port unknown: the oldest tree


def test_a_non_matching_process_in_between_keeps_one_tree(
    exe: Path, servers: list[FakeServer]
) -> None:
    s = start(servers, exe, children=2, wrap=True)
    assert select_pids(pattern=PATTERN) == s.servers
    table = process_table()
    assert list(matching_trees(table, s.servers)) == [s.root]
    wrappers = {k["wrapper"] for k in s.kids}
    assert wrappers <= descendants(table, s.root) and not wrappers & set(s.servers)


def test_pid_and_started_session_rules(exe: Path, servers: list[FakeServer]) -> None:
    other = start(servers, exe, children=1)
    s = start(servers, exe, children=2)
    assert select_pids(pid=s.root) == s.servers
    assert select_pids(pid=s.root, pattern="no-such-name") == [s.root]  # the pid itself stays
    # A started target: its session (it was started with start_new_session, as spawn() does).
    assert select_pids(session=s.root) == s.servers
    assert select_pids(session=s.root, pattern=PATTERN) == s.servers
    # Nothing of the session is left (a detaching launcher): fall back to the processes rule.
    assert select_pids(session=999_999_999, pattern=PATTERN) == other.servers
    assert select_pids(session=999_999_999) == []
    with pytest.raises(ConfigError, match=r"target.processes: '\(' is not a valid regex"):
        select_pids(pattern="(")


def test_alive_drops_exited_and_zombie_processes() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # exited but not reaped: a zombie until wait()
        state = Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        time.sleep(0.02)
    try:
        assert alive([gone.pid, os.getpid(), zombie.pid, os.getpid()]) == [os.getpid()]
    finally:
        zombie.wait()


def test_url_port_reads_urls_and_keyword_dsns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPORT", raising=False)
    assert url_port("postgresql://u:secret@127.0.0.1:6875/materialize") == 6875
    assert url_port("host=localhost port=6877 user=mz_system") == 6877
    assert url_port("postgresql:///db") == 5432
    monkeypatch.setenv("PGPORT", "7000")
    assert url_port("postgresql:///db") == 7000
    assert url_port(None) is None and url_port("not a dsn = =") is None


# --- a real PostgreSQL ----------------------------------------------------------------------


def postmaster(pg: EmbeddedPostgres) -> int:
    return int((pg.datadir / "postmaster.pid").read_text().split()[0])


@pytest.mark.postgres
def test_postgres_tree_by_port_and_exited_backends_drop_out(postgres: EmbeddedPostgres) -> None:
    import psycopg

    pm = postmaster(postgres)
    with psycopg.connect(postgres.url) as conn:
        backend = conn.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        during = select_pids(pattern="^postgres$", port=url_port(postgres.url))
    assert pm in during and backend in during
    assert set(during) <= {pm, *descendants(process_table(), pm)} | {backend}
    deadline = time.monotonic() + 10
    while backend in alive([backend]) and time.monotonic() < deadline:
        time.sleep(0.02)  # the backend exits a moment after its client disconnects
    after = select_pids(pattern="^postgres$", port=url_port(postgres.url))
    assert pm in after and backend not in after


REASON = perf.unusable_reason("cpu-clock")
needs_perf = pytest.mark.skipif(REASON is not None, reason=f"perf is not usable here: {REASON}")


@pytest.mark.postgres
@needs_perf
def test_perf_retries_once_when_a_pid_vanishes_while_it_attaches(
    postgres: EmbeddedPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    pm = postmaster(postgres)
    real = perf.alive
    calls: list[list[int]] = []

    def racy(pids: list[int]) -> list[int]:
        # The first look at /proc still sees the pid: it exits before perf opens it.
        out = list(pids) if not calls else real(pids)
        calls.append(out)
        return out

    monkeypatch.setattr(perf, "alive", racy)
    rec = perf.PerfRecording(
        pids=[], data_path=tmp_path / "perf.data", refresh=lambda: [pm, gone.pid], call_graph="none"
    )
    rec.start()
    rec.stop()
    assert rec.retried and calls[0] == [pm, gone.pid] and list(rec.pids) == [pm]
    assert (tmp_path / "perf.data").stat().st_size > 0

    # When the fresh list still holds a vanished pid, the one retry fails with perf's own words.
    monkeypatch.setattr(perf, "alive", lambda pids: list(pids))
    bad = perf.PerfRecording(pids=[pm, gone.pid], data_path=tmp_path / "b.data", call_graph="none")
    with pytest.raises(Exception, match="No such process"):
        bad.start()
    assert bad.retried


CAMPAIGN = """\
schema: 1
revision: 1
title: PostgreSQL profile by process name
target:
  sql_url: {url}
  processes: ^postgres$
benchmarks:
  - name: lookup
    driver: pgbench
    query: SELECT relname FROM pg_class WHERE oid = 1259
    concurrency: [2]
    duration: 1s
"""


@pytest.mark.postgres
@needs_perf
def test_cli_profile_with_processes_attaches_to_the_target_tree_only(
    ws: Workspace, postgres: EmbeddedPostgres, tmp_path: Path, servers: list[FakeServer]
) -> None:
    pm = postmaster(postgres)
    decoy_exe = tmp_path / "decoy" / "postgres"  # another "postgres" on the machine
    decoy_exe.parent.mkdir()
    decoy_exe.symlink_to(sys.executable)
    decoy = start(servers, decoy_exe, children=1)
    table = process_table()
    named = re.compile("^postgres$")
    # Other PostgreSQL servers on this machine (the decoy, other test runs, a system one).
    elsewhere = {p for p, proc in table.items() if matches(proc, named)}
    elsewhere -= {pm, *descendants(table, pm)}
    assert set(decoy.servers) <= elsewhere
    ws.campaign_path("pg").write_text(CAMPAIGN.format(url=postgres.url))
    # The unprofiled run first: its backends exit while the profiled run's pids are read.
    result = CliRunner().invoke(
        app, ["profile", "-c", "2", "-d", "1s", "--overhead-duration", "0.5s", "--json"]
    )
    assert result.exit_code == 0, result.output
    pids = json.loads(result.stdout)["profiles"][0]["details"]["pids"]
    assert pm in pids and not set(pids) & elsewhere
    now = process_table()
    tree = {pm, *descendants(now, pm)}
    assert all(p in tree for p in pids if p in now)  # the live ones are all in the target's tree
