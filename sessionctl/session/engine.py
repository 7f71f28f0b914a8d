"""Opening a session, recording into it, looking at it, and aborting it.

A session is one pass of the workflow on one next step: baseline → profile → one change →
re-measure (an *optimization* session), or findings only (a *diagnostic* one). ``start`` opens
it on a clean working copy and remembers where the code stood; ``record`` logs work as it
happens; ``status`` shows what is done and what ``close`` will do; ``abort`` ends it without a
code change. Closing and aborting live in :mod:`sessionctl.session.close` and looking at a
session in :mod:`sessionctl.session.status` (``abort``, ``status`` and ``next_commands`` are
re-exported here).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sessionctl.errors import NothingToDo, SessionStateError, UsageError, VcsError
from sessionctl.files import atomic_copy, atomic_write
from sessionctl.measurement import PHASES, Measurement, Value, now_iso
from sessionctl.reporting import NULL, Reporter
from sessionctl.session import record as store_
from sessionctl.session.close import AbortResult, abort
from sessionctl.session.plan import text_sha
from sessionctl.session.record import OpenSession
from sessionctl.session.status import SessionStatus, next_commands, status
from sessionctl.workspace import Workspace

__all__ = [
    "AbortResult",
    "OpenSession",
    "SessionStatus",
    "abort",
    "next_commands",
    "parse_metric",
    "record",
    "start",
    "status",
]

_METRIC = re.compile(
    r"^(?P<name>[^=\s]+)\s*=\s*(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
    # A unit is letters, µ, % or / without digits: `1_000` and `0x10` are refused, not read as 1
    # and 0 with the units `_000` and `x10`.
    r"\s*(?P<unit>[A-Za-zµ%/][^\s=\d]*)?$"
)
_LOWER_UNITS = {"ns", "us", "µs", "ms", "s", "sec", "seconds", "min"}
_LOWER_NAMES = re.compile(
    r"(latency|p\d+|mean|median|avg|time|duration|_ms|_us|_s$|seconds)", re.IGNORECASE
)
_HIGHER_NAMES = re.compile(r"^(qps|tps|ops|rps|throughput)", re.IGNORECASE)


# --- start ------------------------------------------------------------------------------------


def start(
    ws: Workspace,
    campaign: str,
    *,
    step: str | None = None,
    diagnostic: bool = False,
    allow_dirty: bool = False,
    reporter: Reporter = NULL,
) -> OpenSession:
    """Open session N+1 on ``step`` (default: the top next step) on a clean working copy.

    The campaign's own edited files (YAML, rendered prompt, log) do not count as dirty: they
    are committed first as one prompt change (:mod:`sessionctl.session.carry`).
    """
    from sessionctl import render
    from sessionctl.campaign import store
    from sessionctl.session import carry
    from sessionctl.session.close import recover
    from sessionctl.vcs import detect, relpath

    done = recover(ws, campaign, reporter=reporter)
    if done:
        reporter.warn(done)
    with ws.lock(campaign):
        existing = store_.current(ws, campaign)
        if existing is not None:
            raise SessionStateError(
                f"{campaign}: session {existing.number} is already open"
                f"{f' on step {existing.step_id!r}' if existing.step_id else ''} "
                f"since {existing.started_at}; finish it with `sessionctl close {campaign}` "
                f"or `sessionctl abort {campaign} --reason TEXT`"
            )
        cf = store.load(ws, campaign)
        camp = cf.campaign
        chosen = None
        if step is not None:
            chosen = camp.step(step)
        elif camp.next_steps:
            chosen = camp.next_steps[0]
        elif not diagnostic:
            raise NothingToDo(
                f"prompts/{campaign}.yaml: next_steps: none left; "
                "add one with `sessionctl next add` "
                "or start a diagnostic session with `sessionctl start --diagnostic`"
            )
        vcs = detect(ws.root, prefer=camp.vcs)
        own = carry.own_paths(ws, vcs, campaign)
        changes = _sweep_stale_temp_files(vcs.root, vcs.working_changes(), reporter=reporter)
        edited, others = carry.split(changes, own)
        if others and not allow_dirty:
            listed = ", ".join(f"{c.status} {c.path}" for c in others[:10])
            more = f" (+{len(others) - 10} more)" if len(others) > 10 else ""
            what = "@ is not empty" if vcs.kind == "jj" else "the working tree is not clean"
            raise VcsError(
                f"{what}: {listed}{more}; commit, move or ignore these first "
                "(scratch files: add them to .git/info/exclude), or pass --allow-dirty"
            )
        number, numbering_note = numbering(ws, campaign, camp.last_session)
        if numbering_note:
            reporter.warn(numbering_note)
        # Re-render the prompt so the agent reads what the YAML says right now; then the
        # campaign's own edited files become one prompt change and the session starts clean.
        md = ws.rendered_path(campaign)
        text = render.render_prompt(camp, ws=ws)
        previous = md.read_text(encoding="utf-8") if md.exists() else None
        if previous != text:
            atomic_write(md, text)
            reporter.info(f"re-rendered {md.relative_to(ws.root)}")
        carried_paths: list[str] = []
        carried = None
        checkpoint = None
        if edited:  # a clean start leaves a re-rendered prompt for close's prompt change
            checkpoint = vcs.checkpoint()
            carried_paths, _ = carry.split(vcs.working_changes(), own)
            carried = carry.carry(ws, vcs, campaign, number, carried_paths, camp.revision)
            reporter.info(f"committed the campaign's own edits first: {', '.join(carried_paths)}")
        rev = vcs.revision()
        if carried is not None:
            dirty = carry.dirty_hashes(vcs)
        else:  # what was dirty before, and the prompt if start re-rendered it (no VCS query)
            rerendered = [relpath(vcs, md)] if previous != text else []
            dirty = carry.hashes(vcs.root, [c.path for c in others] + rerendered)
        _set_aside_stale(ws, campaign, number)
        session = OpenSession(
            campaign=campaign,
            number=number,
            step_id=chosen.id if chosen else None,
            diagnostic=diagnostic,
            started_at=now_iso(),
            start_revision=rev.to_dict(),
            extra={
                "step_title": chosen.title if chosen else "diagnostic session",
                "vcs": vcs.kind,
                "dirty_at_start": [c.path for c in others],
                "carried": carried_paths,
                "undo": carry.undo_record(checkpoint, carried, carried_paths, dirty),
            },
        )
        if numbering_note:
            session.extra["numbering"] = numbering_note
        session.extra.update(prompt_revision=camp.revision, prompt_sha=text_sha(text))
        if camp.target.artifacts:
            session.extra["artifacts"] = _preserve_baseline(ws, camp, number, reporter=reporter)
        store_.write_current(ws, session)
        if previous != text:
            carry.save_prompt(ws, session, previous)
    reporter.info(f"session {number} open" + (f" on {session.step_id}" if session.step_id else ""))
    return session


def _sweep_stale_temp_files(root: Path, changes: list[Any], *, reporter: Reporter) -> list[Any]:
    """Delete the atomic-write temp files a killed sessionctl left, and forget them as changes."""
    from sessionctl.files import stale_temp_file
    from sessionctl.vcs.base import UNTRACKED

    kept = []
    for c in changes:
        path = root / c.path
        if c.status == UNTRACKED and stale_temp_file(path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            reporter.info(f"removed {c.path} (a temp file left by an interrupted sessionctl)")
        else:
            kept.append(c)
    return kept


def next_number(ws: Workspace, campaign: str, last_session: int, *, reporter: Reporter) -> int:
    """The new session's number: one past both ``last_session`` and the log's highest session.

    Users' logs run ahead of the prompt (a hand-written ``## Session 25`` the prompt never
    mentioned); numbering from the log too means a session number is never used twice.
    """
    number, note = numbering(ws, campaign, last_session)
    if note:
        reporter.warn(note)
    return number


def numbering(ws: Workspace, campaign: str, last_session: int) -> tuple[int, str | None]:
    """The new session's number, and a note when the campaign and its log disagree."""
    from sessionctl import perflog

    in_log = perflog.highest_session(perflog.read(ws, campaign))
    number = max(in_log, last_session) + 1
    if not in_log or in_log == last_session:
        return number, None
    log = ws.log_path(campaign).relative_to(ws.root).as_posix()
    return number, (
        f"prompts/{campaign}.yaml says last_session: {last_session} but {log} has "
        f"Session {in_log}; opening session {number}"
    )


def _preserve_baseline(ws: Workspace, camp: Any, number: int, *, reporter: Reporter) -> str:
    """Copy the built ``target.artifacts`` aside (side A of a paired compare); return the folder.

    Runs before the session opens: a missing artefact stops ``start`` with one error naming
    ``target.artifacts[i]`` (build first, or fix the path), and no session is left open.
    """
    from sessionctl.verdict.sides import preserve_artifacts, prune_artifacts

    keep = camp.target.artifacts_keep
    pruned = prune_artifacts(ws, camp.name, keep=keep - 1, before=number)
    if pruned:
        listed = ", ".join(map(str, pruned))
        reporter.info(f"deleted the preserved builds of session(s) {listed} "
                      f"(target.artifacts_keep: {keep})")  # fmt: skip
    reporter.info(f"preserving the baseline build ({', '.join(camp.target.artifacts)})")
    folder = preserve_artifacts(ws, camp, number).relative_to(ws.root).as_posix()
    reporter.info(f"baseline build preserved in {folder}")
    return folder


def _set_aside_stale(ws: Workspace, campaign: str, number: int) -> None:
    """Move a leftover folder for session ``number`` (from a lost session record) out of the way."""
    folder = store_.session_path(ws, campaign, number)
    if not folder.exists() or not any(folder.iterdir()):
        return
    k = 1
    while folder.with_name(f"{number}.stale-{k}").exists():
        k += 1
    folder.rename(folder.with_name(f"{number}.stale-{k}"))


# --- record -----------------------------------------------------------------------------------


def parse_metric(text: str) -> Value:
    """Parse ``name=value[unit]`` (``qps=1234``, ``p99=3.2ms``) into a Value."""
    m = _METRIC.match(text.strip())
    if not m:
        raise UsageError(
            f"--metric {text!r}: expected name=value[unit], e.g. qps=1234 or p99=3.2ms"
        )
    name, unit = m.group("name"), m.group("unit") or ""
    better: str | None = None
    if _HIGHER_NAMES.match(name) or unit.lower() in ("qps", "tps", "ops/s", "/s"):
        better = "higher"
    elif unit.lower() in _LOWER_UNITS or _LOWER_NAMES.search(name):
        better = "lower"
    value = float(m.group("value"))
    if not math.isfinite(value):
        raise UsageError(
            f"--metric {text!r}: {m.group('value')} is out of range; give a finite number"
        )
    if value < 0 and better is not None:
        kind = "a rate" if better == "higher" else "a time"
        raise UsageError(f"--metric {text!r}: {name} is {kind} and cannot be negative")
    return Value(name=name, value=value, unit=unit, better=better)  # type: ignore[arg-type]


def record(
    ws: Workspace,
    campaign: str,
    *,
    phase: str | None = None,
    findings: Sequence[str] = (),
    files: Sequence[Path] = (),
    metrics: Sequence[str] = (),
    observations: Sequence[str] = (),
    root_causes: Sequence[str] = (),
) -> OpenSession:
    """Record a phase mark, findings, observations, root causes, files and/or metrics."""
    if phase is not None and phase not in PHASES:
        raise UsageError(f"--phase {phase!r}: unknown; use one of {', '.join(PHASES)}")
    values = [parse_metric(m) for m in metrics]
    from sessionctl.redaction import redact

    # A blank text is a slip (an empty shell variable, a stray quote), not a finding: refused
    # before anything is written. A password typed into one is never stored (or committed).
    for flag, texts in (("--finding", findings), ("--observation", observations),
                        ("--root-cause", root_causes)):  # fmt: skip
        if any(not t.strip() for t in texts):
            raise UsageError(
                f"{flag}: blank; write it in one sentence, or leave {flag} out (nothing recorded)"
            )
    findings = [redact(f.strip()) for f in findings]
    observations = [redact(o.strip()) for o in observations]
    root_causes = [redact(r.strip()) for r in root_causes]
    if values and phase is None:
        raise UsageError(
            "--metric needs --phase (baseline or remeasure): which side of the change is it?"
        )
    paths = [Path(f).expanduser() for f in files]
    for p in paths:
        _check_attachment(p)
    texts = [*findings, *observations, *root_causes]
    if not (values or paths or texts) and phase is None:
        raise UsageError(
            "nothing to record: pass --phase, --finding, --observation, --root-cause, --file "
            "or --metric"
        )
    session = store_.require_open(ws, campaign)
    if phase is not None and not (values or paths or texts):
        session = store_.append(ws, campaign, {"type": "phase", "phase": phase})
    for kind, items in (("finding", findings), ("observation", observations),
                        ("root_cause", root_causes)):  # fmt: skip
        for text in items:
            session = store_.append(ws, campaign, {"type": kind, "phase": phase, "text": text})
    for p in paths:
        with ws.lock(campaign):
            session = store_.require_open(ws, campaign)
            dest = _attachment_name(
                store_.session_path(ws, campaign, session.number) / "files", p.name
            )
            atomic_copy(p, dest)  # streamed, and as private as the original
            store_.append(
                ws,
                campaign,
                {"type": "file", "phase": phase, "name": f"files/{dest.name}", "source": str(p)},
            )
    if values:
        values = runs_of(values)
        m = Measurement(source="manual", name="record", phase=phase, values=tuple(values))
        session = store_.append(
            ws, campaign, {"type": "measurement", "phase": phase, "measurement": m.to_dict()}
        )
    return session


def _check_attachment(p: Path) -> None:
    """Refuse, with the right reason, what ``record --file`` cannot attach."""
    import stat

    try:
        st = p.stat()
    except FileNotFoundError:
        raise UsageError(f"--file {p}: no such file") from None
    except PermissionError:
        raise UsageError(f"--file {p}: permission denied; check the file's permissions") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"--file {p}: is a folder; attach its files one by one (or an archive)")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(
            f"--file {p}: not a regular file (a FIFO, socket or device); save its output to a "
            "file first"
        )
    if not os.access(p, os.R_OK):
        raise UsageError(f"--file {p}: not readable; check the file's permissions")


def runs_of(values: Sequence[Value]) -> list[Value]:
    """One Value per name: a name given several times (``--metric p50_ms=10 --metric
    p50_ms=10.4``) is one value measured in several runs, its samples (value: their mean)."""
    from statistics import fmean

    by_name: dict[str, list[Value]] = {}
    for v in values:
        by_name.setdefault(v.name, []).append(v)
    out = []
    for name, vs in by_name.items():
        if len(vs) == 1:
            out.append(vs[0])
            continue
        samples = tuple(v.value for v in vs)
        unit = next((v.unit for v in vs if v.unit), "")
        out.append(Value(name=name, value=fmean(samples), unit=unit, better=vs[0].better,
                         samples=samples))  # fmt: skip
    return out


def _attachment_name(folder: Path, name: str) -> Path:
    """A free name in ``folder`` (``perf.txt``, ``perf-2.txt``...)."""
    dest = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    k = 2
    while dest.exists():
        dest = folder / f"{stem}-{k}{suffix}"
        k += 1
    return dest


# --- notes and archives ---------------------------------------------------------------------


def write_note(ws: Workspace, campaign: str, text: str) -> None:
    """Record a free-form note into the open session (used by the orchestrator's audit)."""
    store_.append(ws, campaign, {"type": "finding", "phase": "note", "text": text})


def archive_path(ws: Workspace, campaign: str, number: int) -> Path:
    """Where session ``number``'s entries and attachments are kept."""
    return store_.session_path(ws, campaign, number)
