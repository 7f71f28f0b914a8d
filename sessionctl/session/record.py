"""The open session's on-disk record: who is open, and the append-only list of what happened.

Layout under ``.sessionctl/sessions/<campaign>/``::

    current.json           the open session (absent when none is open)
    <N>/entries.jsonl      one JSON object per line: findings, measurements, files, notes
    <N>/files/             attachments copied in by ``record --file``

Entries are appended with O_APPEND + fsync under the campaign lock, so an agent and a person
recording at the same moment both keep their entry. Measurement commands call
:func:`record_measurement`; it is a no-op (returns None) when no session is open.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sessionctl.errors import NoOpenSession, SessionStateError
from sessionctl.files import append_line, atomic_write_json
from sessionctl.measurement import PHASES, Measurement, now_iso
from sessionctl.workspace import Workspace

ENV_SESSION = "SESSIONCTL_SESSION"


@dataclass(frozen=True)
class OpenSession:
    """The session currently open for a campaign."""

    campaign: str
    number: int
    step_id: str | None
    diagnostic: bool
    started_at: str
    start_revision: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpenSession:
        return cls(
            campaign=d["campaign"],
            number=int(d["number"]),
            step_id=d.get("step_id"),
            diagnostic=bool(d.get("diagnostic", False)),
            started_at=d.get("started_at", ""),
            start_revision=dict(d.get("start_revision") or {}),
            extra=dict(d.get("extra") or {}),
        )


def current_path(ws: Workspace, campaign: str) -> Path:
    return ws.session_dir(campaign) / "current.json"


def session_path(ws: Workspace, campaign: str, number: int) -> Path:
    return ws.session_dir(campaign) / str(number)


def entries_path(ws: Workspace, campaign: str, number: int) -> Path:
    return session_path(ws, campaign, number) / "entries.jsonl"


def journal_path(ws: Workspace, campaign: str) -> Path:
    """The journal of a close/abort in progress (see :mod:`sessionctl.session.close`)."""
    return ws.session_dir(campaign) / "close-journal.json"


def current(ws: Workspace, campaign: str) -> OpenSession | None:
    """Return the open session, or None."""
    path = current_path(ws, campaign)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise SessionStateError(
            f"{path}: unreadable session state ({exc}); "
            "fix or remove it, then run `sessionctl status`"
        ) from None
    return OpenSession.from_dict(data)


def require_open(ws: Workspace, campaign: str) -> OpenSession:
    """Return the open session or raise a one-line error saying how to open one."""
    s = current(ws, campaign)
    if s is None:
        raise no_open_session(campaign)
    want = os.environ.get(ENV_SESSION)
    if want and want.strip() != str(s.number):
        raise SessionStateError(
            f"{campaign}: {ENV_SESSION}={want} but session {s.number} is open; "
            "the session you were started for has ended"
        )
    return s


def no_open_session(campaign: str) -> NoOpenSession:
    """The error for a command that needs an open session when there is none (exit 2)."""
    return NoOpenSession(
        f"{campaign}: no open session; start one with `sessionctl start {campaign}`"
    )


def write_current(ws: Workspace, session: OpenSession) -> None:
    """Persist the open-session record (atomically)."""
    ws.ensure_scratch()
    atomic_write_json(current_path(ws, session.campaign), session.to_dict())
    session_path(ws, session.campaign, session.number).mkdir(parents=True, exist_ok=True)


def clear_current(ws: Workspace, campaign: str) -> None:
    """Forget the open session (its entries stay under ``<N>/``)."""
    with contextlib.suppress(FileNotFoundError):
        current_path(ws, campaign).unlink()


def append(ws: Workspace, campaign: str, entry: dict[str, Any]) -> OpenSession:
    """Append one entry to the open session, stamped with time and author."""
    with ws.lock(campaign):
        s = require_open(ws, campaign)
        if journal_path(ws, campaign).exists():
            # The close already planned its log entry: a late entry would silently miss it.
            raise SessionStateError(
                f"{campaign}: session {s.number} is being closed (an interrupted close is "
                f"pending); run `sessionctl close {campaign}` to finish it, then record into "
                "the next session"
            )
        record = {"at": now_iso(), "by": os.environ.get("SESSIONCTL_AUTHOR", "user"), **entry}
        if record.get("phase") is not None and record["phase"] not in PHASES:
            raise SessionStateError(
                f"phase {record['phase']!r}: unknown; use one of {', '.join(PHASES)}"
            )
        append_line(entries_path(ws, campaign, s.number), json.dumps(record, default=str))
        return s


def entries(ws: Workspace, campaign: str, number: int) -> list[dict[str, Any]]:
    """Read a session's entries in the order they were recorded (skips a torn last line)."""
    path = entries_path(ws, campaign, number)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    try:  # one decoder call for the whole file: a long session has 10k+ entries
        whole = json.loads("[" + ",".join(line for line in lines if line.strip()) + "]")
        if all(isinstance(e, dict) for e in whole):
            return whole
    except json.JSONDecodeError:
        pass  # a torn line somewhere: line by line below, skipping it
    out: list[dict[str, Any]] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a write torn by a crash: the rest of the record is intact
    return out


def measurements(ws: Workspace, campaign: str, number: int) -> list[Measurement]:
    """The session's measurement entries, oldest first."""
    return [
        Measurement.from_dict(e["measurement"])
        for e in entries(ws, campaign, number)
        if e.get("type") == "measurement"
    ]


ANY_SESSION = -1


def open_number(ws: Workspace, campaign: str) -> int | None:
    """The number of the open session, or None (what a measurement remembers when it starts)."""
    s = current(ws, campaign)
    return None if s is None else s.number


def unrecorded_reason(started_in: int | None, what: str) -> str:
    """Why a measurement that asked to be recorded was not, in a few words (for its report)."""
    if started_in is None:
        return "no session was open when it started (`sessionctl start` opens one)"
    return f"session {started_in} ended while {what}; rerun it in the open session"


def record_measurement(
    ws: Workspace,
    campaign: str,
    measurement: Measurement,
    *,
    phase: str | None = None,
    started_in: int | None = ANY_SESSION,
) -> int | None:
    """Record ``measurement`` into the open session; return its number, or None if none is open.

    ``started_in``: the session open when the measurement started (:func:`open_number`); a
    measurement belongs to that session only, so when it has ended meanwhile (or none was open
    then) nothing is recorded and None is returned.
    """
    if started_in is None:
        return None
    with ws.lock(campaign):
        s = current(ws, campaign)
        if s is None or started_in not in (ANY_SESSION, s.number):
            return None
        ph = phase or measurement.phase
        s = append(
            ws,
            campaign,
            {"type": "measurement", "phase": ph, "measurement": measurement.to_dict()},
        )
    return s.number
