"""``sessionctl history`` and ``sessionctl report`` over a real campaign's sessions.

The sessions are made through the real CLI in a real git repository; the report is opened in
a real headless Chromium (installed with apt-get by the fixture when running as root, skipped
with a reason otherwise).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import REPO, git, running_as_root
from typer.testing import CliRunner

from sessionctl import history
from sessionctl.cli import app
from sessionctl.measurement import Measurement
from sessionctl.session import record as session_record
from sessionctl.workspace import Workspace

CAMPAIGN = """\
schema: 1
revision: 1
title: DDL latency
last_session: 0
headline: {metric: p50_ms, better: lower}
next_steps:
  - id: cache-plans
    title: Cache the plans
  - id: batch-writes
    title: Batch the catalog writes
  - id: trim-locks
    title: Trim the catalog locks
  - id: shrink-index
    title: Shrink the name index
"""

runner = CliRunner()


def invoke(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.stderr
    return res.stdout


def record(phase: str, name: str, *values: float) -> None:
    args = ["record", "--phase", phase]
    for v in values:
        args += ["--metric", f"{name}={v}"]
    invoke(*args)


def edit(ws: Workspace, text: str) -> None:
    (ws.root / "app.py").write_text(text)


@pytest.fixture
def campaign(ws: Workspace, frozen_now: str) -> Workspace:
    """Four sessions: an old-style archive (no headline kept), improved, retired, improved."""
    (ws.root / "prompts" / "ddl.yaml").write_text(CAMPAIGN)
    edit(ws, "x = 0\n")
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    # Session 1, closed the way sessionctl did before campaigns had a headline: judged on QPS,
    # its archive without the headline/reason/retired keys.
    invoke("start")
    record("baseline", "qps", 100, 101, 99)
    record("baseline", "p50_ms", 12, 12.2, 11.9)
    edit(ws, "x = 1\n")
    record("remeasure", "qps", 130, 131, 129)
    invoke("close", "--metric", "qps", "--resolve", "cache-plans")
    archive = ws.session_dir("ddl") / "1" / "closed.json"
    old = json.loads(archive.read_text())
    for key in ("headline", "reason", "retired"):
        old.pop(key)
    old["plan"].pop("headline")
    archive.write_text(json.dumps(old))
    # Session 2: p50 halves.
    invoke("start")
    record("baseline", "p50_ms", 10, 10.3, 9.8)
    edit(ws, "x = 2\n")
    record("remeasure", "p50_ms", 5, 5.1, 4.9)
    invoke("close", "--resolve", "batch-writes")
    # Session 3: tried, did not help, retired.
    invoke("start")
    record("baseline", "p50_ms", 5, 5.1)
    invoke("record", "--phase", "change", "--finding", "batched the writes")
    record("remeasure", "p50_ms", 5.05, 5.0)
    invoke("abort", "--reason", "no gain on p50", "--retire", "--discard")
    # Session 4: another fifth off.
    invoke("start")
    record("baseline", "p50_ms", 5, 5.1, 4.95)
    profile = ws.root / ".sessionctl" / "runs" / "ddl" / "profile-4"
    profile.mkdir(parents=True)
    (profile / "flamegraph.svg").write_text("<svg/>")
    made = Measurement(source="profile", name="ddl", phase="profile", raw_dir=str(profile))
    assert session_record.record_measurement(ws, "ddl", made) == 4
    edit(ws, "x = 4\n")
    record("remeasure", "p50_ms", 4, 4.1, 3.9)
    invoke("close", "--resolve", "shrink-index")
    return ws


def test_history_json_lists_every_session_with_its_headline(campaign: Workspace) -> None:
    data = json.loads(invoke("history", "--json"))
    rows = {r["number"]: r for r in data["sessions"]}
    assert sorted(rows) == [1, 2, 3, 4]
    assert [rows[n]["outcome"] for n in (1, 2, 3, 4)] == ["closed", "closed", "retired", "closed"]
    for n in (2, 3, 4):
        hd = rows[n]["headline"]
        assert set(hd) >= {"metric", "before", "after", "effect", "ci", "verdict"}
        assert hd["metric"] == "p50_ms" and hd["before"] > hd["after"]
        assert hd["ci"][0] <= hd["effect"] <= hd["ci"][1]
    assert rows[2]["verdict"] == "improved" and rows[2]["headline"]["verdict"] == "improved"
    assert rows[3]["verdict"] is None and rows[3]["reason"] == "no gain on p50"
    assert [rows[n]["step"] for n in (2, 3, 4)] == ["batch-writes", "trim-locks", "shrink-index"]
    # The old archive kept no headline and measured p50 on one side only: it is still listed,
    # with the headline it could not measure, and its own (QPS) verdict.
    assert rows[1]["headline"]["metric"] == "p50_ms" and rows[1]["headline"]["after"] is None
    assert rows[1]["change"] and rows[1]["step"] == "cache-plans"
    # Cumulative: sessions 2 and 4 (kept, both sides of p50), first before to last after.
    cum = data["cumulative"]
    first, last = rows[2]["headline"], rows[4]["headline"]
    assert (cum["first_session"], cum["last_session"], cum["sessions"]) == (2, 4, 2)
    assert cum["effect"] == pytest.approx((last["after"] / first["before"] - 1) * 100)
    compounded = (1 + first["effect"] / 100) * (1 + last["effect"] / 100)
    assert cum["compounded"] == pytest.approx((compounded - 1) * 100)
    assert -65 < cum["effect"] < -55  # 10 ms -> 4 ms


def test_history_since_and_csv(campaign: Workspace) -> None:
    since = json.loads(invoke("history", "--json", "--since", "3"))
    assert [r["number"] for r in since["sessions"]] == [3, 4]
    assert since["cumulative"]["first_session"] == 4 and since["cumulative"]["sessions"] == 1
    table = list(csv.DictReader(io.StringIO(invoke("history", "--csv"))))
    assert [r["session"] for r in table] == ["1", "2", "3", "4"]
    assert table[2]["outcome"] == "retired" and table[2]["metric"] == "p50_ms"
    assert float(table[1]["after"]) < float(table[1]["before"])
    text = invoke("history")
    assert "Cumulative: p50_ms: " in text and " over 2 sessions (2-4; compounded " in text


def test_a_gain_whose_two_figures_disagree_in_sign_says_so_everywhere(
    ws: Workspace, frozen_now: str, tmp_path: Path
) -> None:
    """Each session cuts p50 by a fifth, but the baseline drifts up between them: compounded
    is negative, first→last as measured positive. history, report and the log entry lead with
    the compounded figure and say the two disagree; --json carries both and the flag."""
    (ws.root / "prompts" / "ddl.yaml").write_text(CAMPAIGN)
    edit(ws, "x = 0\n")
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    for n, (base, after) in enumerate(((10.0, 8.0), (14.0, 11.2)), start=1):
        invoke("start")
        record("baseline", "p50_ms", base, base * 1.01, base * 0.99)
        edit(ws, f"x = {n}\n")
        record("remeasure", "p50_ms", after, after * 1.01, after * 0.99)
        invoke("close")
    cum = json.loads(invoke("history", "--json"))["cumulative"]
    assert cum["effect"] == pytest.approx(12.0, abs=0.2)  # 10 ms -> 11.2 ms
    assert cum["compounded"] == pytest.approx(-36.0, abs=0.2)  # 0.8 x 0.8
    assert cum["signs_disagree"] is True
    said = (
        "compounded -36.0% over 2 sessions (1-2); first→last as measured 10 ms → 11.2 ms "
        "= +12.0% (opposite signs: the level drifted between sessions)"
    )
    assert f"Cumulative: p50_ms: {said}" in " ".join(invoke("history").split())
    log = ws.log_path("ddl").read_text()
    assert f"**Cumulative:** `p50_ms`: {said}\n" in log
    out = tmp_path / "report.html"
    invoke("report", "-o", str(out))
    html = " ".join(out.read_text().split())
    assert (
        "Cumulative: <code>p50_ms</code> compounded <strong>-36.0%</strong> over 2 kept sessions "
        "(1–2); first→last as measured 10 ms → 11.2 ms = +12.0% (opposite signs: the level "
        "drifted between sessions)"
    ) in html


def test_history_lists_logged_sessions_without_records(campaign: Workspace) -> None:
    log = campaign.log_path("ddl")
    log.write_text(log.read_text() + "\n## Session 5 — tried by hand, no sessionctl\n\nnotes\n")
    data = json.loads(invoke("history", "--json"))
    row = data["sessions"][-1]
    assert (row["number"], row["outcome"], row["title"]) == (
        5,
        "logged",
        "tried by hand, no sessionctl",
    )
    assert row["headline"] is None and row["change"] is None
    assert data["cumulative"]["last_session"] == 4


def test_headline_gain_for_a_session_and_one_being_closed(campaign: Workspace) -> None:
    gain = history.headline_gain(campaign, "ddl", 2)
    assert gain.headline is not None and gain.headline.verdict == "improved"
    assert gain.cumulative is not None and gain.cumulative.last_session == 2
    pending = history.Headline(metric="p50_ms", better="lower", before=4.0, after=2.0, effect=-50.0)
    ahead = history.headline_gain(campaign, "ddl", 5, current=pending)
    assert ahead.headline == pending
    assert ahead.cumulative is not None and ahead.cumulative.last_after == 2.0
    assert ahead.cumulative.first_session == 2 and ahead.cumulative.sessions == 3


def test_report_is_one_self_contained_html_file(campaign: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "out" / "report.html"
    data = json.loads(invoke("report", "-o", str(out), "--json"))
    html = out.read_text()
    assert data["bytes"] == len(html.encode()) and data["sessions"] == 4 and data["plotted"] == 3
    assert '<svg id="headline-plot-svg"' in html and "<path" in html
    for outside in ("<script", "<link", "src=", "@import", "url(http"):
        assert outside not in html
    assert "no gain on p50" in html and "retired" in html
    rel = os.path.relpath(campaign.root / ".sessionctl/runs/ddl/profile-4", out.parent)
    assert f'<a href="{rel}/flamegraph.svg">flame graph</a>' in html
    assert f'<a href="{rel}/">raw data</a>' in html
    assert 'id="cumulative"' in html and "compounded" in html


def test_report_names_the_missing_extra(
    campaign: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real = builtins.__import__

    def no_matplotlib(name: str, *args: object, **kwargs: object) -> object:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    res = runner.invoke(app, ["report", "-o", "r.html"])
    assert res.exit_code == 2
    assert "pip install 'sessionctl[report]'" in res.stderr


# --- in a real browser ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Iterator[str]:
    """Debian's chromium: the one installed, else apt-get install it (root only), else skip."""
    found = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
    if found is None and running_as_root and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
        ):
            done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=1500, check=False)  # fmt: skip
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
                pytest.skip(f"{' '.join(argv)} failed: {' '.join(tail)}")
        found = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
    if found is None:
        pytest.skip("no /usr/bin/chromium, and not root with apt-get to install Debian's chromium")
    yield found


def _browser(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    argv = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}", *args,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, timeout=180, check=False)


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into rows of pixel bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and color in (2, 6), (depth, color)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first use may install chromium with apt-get
def test_report_renders_in_headless_chromium(
    campaign: Workspace, chromium: str, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    invoke("report", "-o", str(out))
    dom = _browser(chromium, tmp_path / "profile-dom", "--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-500:]
    text = dom.stdout.decode()
    assert '<svg id="headline-plot-svg"' in text  # the plot is in the rendered DOM
    assert text.count("<path") > 20 and 'id="sessions"' in text
    shot = tmp_path / "shot.png"
    res = _browser(chromium, tmp_path / "profile-shot", f"--screenshot={shot}",
                   "--window-size=1200,1400", "--hide-scrollbars", out.as_uri())  # fmt: skip
    assert res.returncode == 0 and shot.is_file(), res.stderr.decode(errors="replace")[-500:]
    width, bpp, rows = _png_pixels(shot.read_bytes())
    assert width == 1200 and len(rows) == 1400
    pixels = [row[i : i + 3] for row in rows[::4] for i in range(0, len(row), bpp * 4)]
    inked = sum(1 for p in pixels if min(p) < 200)
    assert inked / len(pixels) > 0.01, f"screenshot is blank ({inked} of {len(pixels)} inked)"
    assert len(set(pixels)) > 10, "screenshot has almost no colours: nothing rendered"
    # The plot is on screen: its cumulative line's blue (#0969da) is drawn nowhere else.
    every = (row[i : i + 3] for row in rows for i in range(0, len(row), bpp))
    drawn = sum(1 for p in every if abs(p[0] - 0x09) < 25 and abs(p[1] - 0x69) < 25
                and abs(p[2] - 0xDA) < 25)  # fmt: skip
    assert drawn > 50, f"the plot's line is not on the screenshot ({drawn} pixels)"


def test_failed_sessions_and_old_abort_archives(campaign: Workspace) -> None:
    archive = campaign.session_dir("ddl") / "3" / "closed.json"
    data = json.loads(archive.read_text())
    data["retired"] = None
    data["reason"] = "audit failed: no measurements"
    archive.write_text(json.dumps(data))
    rows = {r.number: r for r in history.collect(campaign, "ddl").rows}
    assert rows[3].outcome == "failed"
    # An archive from before the reason was kept: read off its log entry.
    del data["reason"]
    archive.write_text(json.dumps(data))
    assert history.collect(campaign, "ddl").rows[2].outcome == "aborted"


def test_history_and_report_before_any_session(ws: Workspace, tmp_path: Path) -> None:
    (ws.root / "prompts" / "ddl.yaml").write_text(CAMPAIGN)
    data = json.loads(invoke("history", "--json"))
    assert data["sessions"] == [] and data["cumulative"] is None
    assert data["headline"] == {"metric": "p50_ms", "better": "lower"}
    assert "no sessions yet" in invoke("history")
    written = json.loads(invoke("report", "-o", str(tmp_path / "r.html"), "--json"))
    assert written["sessions"] == 0 and written["plotted"] == 0
    assert '<svg id="headline-plot-svg"' in (tmp_path / "r.html").read_text()


def test_a_fresh_clone_reads_sessions_off_the_commit_trailers(campaign: Workspace) -> None:
    with_archives = json.loads(invoke("history", "--json"))
    shutil.rmtree(campaign.scratch / "sessions")  # .sessionctl/ is never committed
    data = json.loads(invoke("history", "--json"))
    rows = {r["number"]: r for r in data["sessions"]}
    # Session 3's abort retired its step: the campaign's retired list says so on any machine.
    assert [rows[n]["outcome"] for n in (1, 2, 3, 4)] == ["closed", "closed", "retired", "closed"]
    assert rows[2]["step"] == "batch-writes" and rows[2]["title"] == "Batch the catalog writes"
    head = git(campaign.root, "log", "--format=%H", "-F", "--grep=perf(ddl): session 2:").split()[0]
    assert rows[2]["change"] == head[:12]
    before = {r["number"]: r for r in with_archives["sessions"]}
    for n in (2, 4):
        got, had = rows[n]["headline"], before[n]["headline"]
        assert got["verdict"] == had["verdict"] == "improved"
        # The trailers carry the numbers as people read them: 3 significant digits, and
        # percentages to one decimal.
        assert got["before"] == pytest.approx(had["before"], rel=6e-3)
        assert got["after"] == pytest.approx(had["after"], rel=6e-3)
        assert got["effect"] == pytest.approx(had["effect"], abs=0.051)
        assert got["ci"] == pytest.approx(had["ci"], abs=0.051)
    assert rows[1]["headline"]["after"] is None  # judged on qps then: no p50 to show
    # The aborted session has no verdict, but what it measured on the headline is kept.
    got, had = rows[3]["headline"], before[3]["headline"]
    assert rows[3]["verdict"] is None and got["metric"] == "p50_ms"
    assert got["before"] == pytest.approx(had["before"], rel=6e-3)
    assert got["after"] == pytest.approx(had["after"], rel=6e-3)
    assert got["effect"] == pytest.approx(had["effect"], abs=0.051)
    aborted = git(campaign.root, "log", "-1", "--format=%B", "-F", "--grep=session 3 aborted:")
    assert "Metric: p50_ms" in aborted and "\nVerdict:" not in aborted
    assert data["cumulative"]["first_session"] == 2 and data["cumulative"]["last_session"] == 4


def test_jj_described_argv_and_parsing(tmp_path: Path) -> None:
    from sessionctl.process import Result
    from sessionctl.vcs.jj import DESCRIBED_TEMPLATE, JjVcs

    calls: list[list[str]] = []
    message = 'perf(ddl): session 2: "Batch"\n\nSession: 2\nVerdict: improved\n'

    def runner(argv: list[str], **kw: object) -> Result:
        calls.append(list(argv))
        return Result(tuple(argv), 0, f"abc123 {json.dumps(message)}\n", "")

    found = JjVcs(tmp_path, runner=runner).described('perf(ddl): "x" session ')
    assert calls == [[
        "jj", "--no-pager", "--color=never", "log", "-r",
        '::@ & description(substring:"perf(ddl): \\"x\\" session ")', "--no-graph",
        "-T", DESCRIBED_TEMPLATE,
    ]]  # fmt: skip
    assert found == [("abc123", message)]


def test_only_report_imports_matplotlib(campaign: Workspace) -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from sessionctl.cli import app\n"
        "for args in (['history', '--json'], ['history', '--csv'], ['report', '-o', 'r.html']):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    print(args[0], result.exit_code, 'matplotlib' in sys.modules)\n"
    )
    import sys

    done = subprocess.run([sys.executable, "-c", probe], cwd=campaign.root, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.splitlines() == ["history 0 False", "history 0 False", "report 0 True"]


def _history_at(ws: Workspace, columns: int) -> list[str]:
    """``sessionctl history`` as a terminal that many columns wide shows it."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(columns), "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "sessionctl", "history"],
        cwd=ws.root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


@pytest.mark.parametrize("columns", [100, 80])
def test_history_fits_the_terminal_one_line_per_session(campaign: Workspace, columns: int) -> None:
    lines = _history_at(campaign, columns)
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert table and max(len(line) for line in table) <= columns
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == 4, "\n".join(lines)  # no session's row wraps onto a second line
    row = next(line for line in body if "batch-writes" in line)
    assert "10 → 5" in row and "-50.2%" in row and "improved" in row
    assert "closed" in row and "headline (ms)" in "\n".join(lines)
    if columns == 100:
        assert "[-55.0%..-44.9%]" in row or "-55.0%..-44.9%" in row  # the interval fits at 100
    else:  # what was left out to fit is said, with where to find it
        note = next(line for line in lines if line.startswith("(left out to fit"))
        assert "95% CI" in note and "--json" in note and len(note) <= columns


def test_report_heads_with_the_title_and_leaves_out_empty_columns(
    campaign: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "report.html"
    invoke("report", "-o", str(out))
    html = out.read_text()
    assert "<h1>DDL latency</h1>" in html  # the campaign's title, not its file name
    assert "<th>95% CI</th>" in html and "<th>agent</th>" not in html  # no session has a cost
    # Several raw-data folders for one session are told apart.
    from sessionctl import report

    h = history.collect(campaign, "ddl")
    rows = list(h.rows)
    rows[1] = replace(rows[1], raw=(".sessionctl/runs/ddl/a", ".sessionctl/runs/ddl/b"))
    monkeypatch.setattr(report, "collect", lambda *a, **k: replace(h, rows=tuple(rows)))
    invoke("report", "-o", str(out))
    html = out.read_text()
    assert ">raw data 1</a>" in html and ">raw data 2</a>" in html and "<th>data</th>" in html
    bare = tuple(replace(r, raw=(), flamegraphs=()) for r in h.rows)
    monkeypatch.setattr(report, "collect", lambda *a, **k: replace(h, rows=bare))
    invoke("report", "-o", str(out))
    assert "<th>data</th>" not in out.read_text()  # no session has raw data or a flame graph
