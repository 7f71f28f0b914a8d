"""Errors that blame the right party, files kept as they were (issue 19, items 14-16):
``record --file`` modes, sizes and non-files; ``template export`` paths; OS errors as exit 1;
valid-looking YAML numbers that crashed; blank findings; CRLF and BOM kept on write."""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from conftest import git
from typer.testing import CliRunner

from sessionctl.campaign import store
from sessionctl.cli import app
from sessionctl.render import packaged_templates_dir
from sessionctl.session import engine, record
from sessionctl.workspace import Workspace

runner = CliRunner()

CAMPAIGN = """\
schema: 1
revision: 1
title: Errors
last_session: 0
next_steps:
  - id: first
    title: The first step
"""


@pytest.fixture
def demo(ws: Workspace) -> Workspace:
    (ws.root / "prompts" / "demo.yaml").write_text(CAMPAIGN)
    git(ws.root, "add", "-A")
    git(ws.root, "commit", "-qm", "campaign")
    return ws


def invoke(*argv: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(argv))
    return res.exit_code, res.stdout, res.stderr


# --- 14. record --file -------------------------------------------------------------------------


def test_an_attachment_keeps_its_permissions(demo: Workspace, tmp_path: Path) -> None:
    engine.start(demo, "demo")
    private = tmp_path / "profile.txt"
    private.write_text("flame graph with a customer query\n")
    private.chmod(0o640)
    engine.record(demo, "demo", files=[private])
    stored = record.session_path(demo, "demo", 1) / "files" / "profile.txt"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o640
    assert stored.read_text() == "flame graph with a customer query\n"


def test_an_attachment_is_streamed_not_read_whole(
    demo: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.start(demo, "demo")
    big = tmp_path / "perf.data"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 7))

    def whole(self: Path) -> bytes:
        raise MemoryError(f"{self}: read whole")

    with monkeypatch.context() as mp:
        mp.setattr(Path, "read_bytes", whole)  # a 1 GB file would not fit
        engine.record(demo, "demo", files=[big])
    stored = record.session_path(demo, "demo", 1) / "files" / "perf.data"
    assert stored.read_bytes() == big.read_bytes()


def test_a_folder_or_a_fifo_is_named_for_what_it_is(demo: Workspace, tmp_path: Path) -> None:
    engine.start(demo, "demo")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = invoke("record", "demo", "--file", str(tmp_path))
    assert code == 2 and "is a folder" in err and "no such file" not in err
    code, _, err = invoke("record", "demo", "--file", str(fifo))
    assert code == 2 and "not a regular file (a FIFO" in err
    code, _, err = invoke("record", "demo", "--file", str(tmp_path / "missing.txt"))
    assert code == 2 and "no such file" in err
    assert record.entries(demo, "demo", 1) == []


# --- 15. template export stays inside the template folders --------------------------------------


def test_template_export_refuses_a_path_outside_the_folders(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    sneaky = f"../{packaged_templates_dir().name}/prompt.md.j2"  # exists, via the parent folder
    for name in (sneaky, "../../x.j2", "/etc/passwd"):
        code, _, err = invoke("template", "export", name, "--to", str(dest))
        assert code == 2 and "not a template name" in err, (name, err)
    assert not (tmp_path / packaged_templates_dir().name).exists()
    assert not dest.exists()
    code, _, err = invoke("template", "export", "prompt.md.j2", "--to", str(dest))
    assert code == 0, err
    assert (dest / "prompt.md.j2").is_file()


# --- 16. errors that blame us ---------------------------------------------------------------------


def test_a_read_only_file_system_is_exit_1_in_one_line(
    demo: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(*args: object, dir: str | None = None, **kw: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code, _, err = invoke("start", "demo")
    assert code == 1, err
    line = err.strip()
    assert len(line.splitlines()) == 1 and "internal error" not in line
    assert "Read-only file system" in line and "remount it writable" in line


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("benchmarks:\n  - name: b\n    driver: builtin\n    query: select 1\n"
         "    duration: .inf\n", "benchmarks[0].duration"),
        ("benchmarks:\n  - name: b\n    driver: builtin\n    query: select 1\n"
         "    duration: " + "1" + "0" * 39 + "s\n", "benchmarks[0].duration: duration 1e+39s "
         "is over 7 days (168h)"),
        ("agent:\n  timeout: " + "1" + "0" * 39 + "\n", "agent.timeout: duration 1e+39s"),
        ("compare:\n  threshold_throughput: .nan\n", "compare.threshold_throughput"),
        ("compare:\n  pairs: " + "9" * 400 + "\n", "compare.pairs"),
        ("compare:\n  threshold_tail: " + "9" * 5000 + "\n", "Exceeds the limit"),
        ("status: " + "[" * 500 + "]" * 500 + "\n", "nested too deeply"),
    ],
    ids=["inf-duration", "40-digit-duration", "40-digit-number", "nan-threshold", "long-int",
         "5000-digits", "deep-list"],
)  # fmt: skip
def test_valid_looking_values_are_one_line_config_errors(
    demo: Workspace, yaml_text: str, field: str
) -> None:
    (demo.root / "prompts" / "demo.yaml").write_text(CAMPAIGN + yaml_text)
    code, _, err = invoke("prompt", "check", "demo")
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err
    assert err.strip().startswith("error: prompts/demo.yaml") and field in err


@pytest.mark.parametrize("flag", ["--finding", "--observation", "--root-cause"])
def test_a_blank_finding_is_refused_and_nothing_is_recorded(demo: Workspace, flag: str) -> None:
    engine.start(demo, "demo")
    before = record.entries(demo, "demo", 1)
    code, out, err = invoke(
        "record", "demo", "--phase", "baseline", "--finding", "real one", flag, "   ", "--json"
    )
    assert code == 2, out  # a bad flag value, like --phase lunch
    assert out == "" and err.strip() == (
        f"error: {flag}: blank; write it in one sentence, or leave {flag} out (nothing recorded)"
    )
    assert record.entries(demo, "demo", 1) == before  # no phase mark, no finding


def test_crlf_and_bom_survive_a_write(demo: Workspace) -> None:
    path = demo.root / "prompts" / "demo.yaml"
    path.write_bytes(("\ufeff" + CAMPAIGN.replace("title: Errors", "title: Errors  # keep"))
                     .replace("\n", "\r\n").encode())  # fmt: skip
    cf = store.load(demo, "demo")
    store.save(demo, cf)
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfschema: 1\r\nrevision: 2\r\n")
    assert b"title: Errors  # keep\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


def test_status_still_answers_while_a_close_is_stuck_on_a_read_only_folder(
    demo: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionctl.session.close import journal_path

    engine.start(demo, "demo", diagnostic=True)
    engine.record(demo, "demo", findings=["read_ts is fast"])
    real = tempfile.mkstemp

    def read_only_after_journal(*args: object, **kw: object) -> tuple[int, str]:
        if journal_path(demo, "demo").exists():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(kw.get("dir")))
        return real(*args, **kw)  # type: ignore[call-overload,no-any-return]

    with monkeypatch.context() as mp:
        mp.setattr(tempfile, "mkstemp", read_only_after_journal)
        code, _, err = invoke("close", "demo")
        assert code == 1 and "Read-only file system" in err and "internal error" not in err
        code, out, err = invoke("status", "demo", "--json")
        assert code == 0, err
        st = json.loads(out)
        assert st["pending_close"]["session"] == 1 and st["commands"] == ["sessionctl close demo"]
    code, _, err = invoke("close", "demo")
    assert code == 0, err
    assert record.current(demo, "demo") is None


def test_a_full_disk_during_an_atomic_write_names_the_file_and_leaves_no_temp(
    demo: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as mp:
        mp.setattr(os, "fsync", full)
        code, _, err = invoke("start", "demo")
    assert code == 1 and "internal error" not in err
    assert ".sessionctl/.gitignore: No space left on device; free some disk space" in err
    scratch = demo.root / ".sessionctl"
    assert not [p for p in scratch.rglob("*") if p.name.endswith(".sessionctl-tmp")]
    assert record.current(demo, "demo") is None
