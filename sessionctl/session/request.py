"""Close and abort *requests*: what ``sessionctl close``/``abort`` do inside ``sessionctl run``.

An agent launched by ``sessionctl run`` gets ``SESSIONCTL_RUN`` in its environment. Its own
``sessionctl close`` then does not close: the log entry and the commits must come after the
agent has exited and been audited, so that the entry carries the agent's summary and the
audit's verdict. The arguments are validated exactly as ``close`` validates them (the
workflow's requirements, ``--resolve``, ``--add-step``, ``--force``) and recorded as one
``close_request`` (or ``abort_request``) entry in the session. The loop carries out the latest
request once the agent is gone (:mod:`sessionctl.agent.settle`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

from sessionctl.errors import SessionStateError, UsageError
from sessionctl.session import record
from sessionctl.session.workflow import (
    CloseArgs,
    NewStep,
    check_requirements,
    missing_requirements,
    require_reason,
)
from sessionctl.workspace import Workspace

ENV_RUN = "SESSIONCTL_RUN"
CLOSE_REQUEST = "close_request"
ABORT_REQUEST = "abort_request"
TYPES = (CLOSE_REQUEST, ABORT_REQUEST)


def deferred() -> bool:
    """True inside an agent that ``sessionctl run`` launched: close and abort become requests."""
    return bool(os.environ.get(ENV_RUN, "").strip())


@dataclass(frozen=True)
class Request:
    """An agent's request to close (``kind="close"``) or abort (``kind="abort"``) its session."""

    kind: str
    campaign: str
    session: int
    resolve: str | None = None
    add_steps: tuple[NewStep, ...] = ()
    status: str | None = None
    summary: str | None = None
    force: str | None = None
    include: tuple[str, ...] = ()
    reason: str | None = None
    discard: bool = False
    at: str | None = None
    metric: str | None = None  # close --metric
    retire: bool = False  # abort --retire

    @property
    def message(self) -> str:
        """The line the agent sees: nothing is closed until it exits."""
        if self.kind == "abort":
            return (
                f"abort requested: sessionctl run aborts session {self.session} after the agent "
                "exits (its edits are set aside)"
            )
        return (
            f"close requested: sessionctl run closes session {self.session} after the agent "
            "exits and the audit passes"
        )

    def to_entry(self) -> dict[str, Any]:
        """The session entry recording this request."""
        if self.kind == "abort":
            return {
                "type": ABORT_REQUEST,
                "reason": self.reason,
                "status": self.status,
                "discard": self.discard,
                "retire": self.retire,
            }
        return {
            "type": CLOSE_REQUEST,
            "resolve": self.resolve,
            "add_steps": [{"id": s.id, "title": s.title} for s in self.add_steps],
            "status": self.status,
            "summary": self.summary,
            "force": self.force,
            "include": list(self.include),
            "metric": self.metric,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "deferred": True,
            "kind": self.kind,
            "campaign": self.campaign,
            "session": self.session,
            "request": self.to_entry(),
            "message": self.message,
        }

    @classmethod
    def from_entry(cls, campaign: str, session: int, e: Mapping[str, Any]) -> Request:
        steps = tuple(
            NewStep(id=str(s["id"]), title=str(s["title"])) for s in e.get("add_steps") or ()
        )
        return cls(
            kind="abort" if e.get("type") == ABORT_REQUEST else "close",
            campaign=campaign,
            session=session,
            resolve=e.get("resolve"),
            add_steps=steps,
            status=e.get("status"),
            summary=e.get("summary"),
            force=e.get("force"),
            include=tuple(str(p) for p in e.get("include") or ()),
            reason=e.get("reason"),
            discard=bool(e.get("discard")),
            at=e.get("at"),
            metric=e.get("metric"),
            retire=bool(e.get("retire")),
        )


def latest(campaign: str, session: int, entries: Sequence[Mapping[str, Any]]) -> Request | None:
    """The session's most recent close or abort request (the latest one wins), or None."""
    for e in reversed(entries):
        if e.get("type") in TYPES:
            return Request.from_entry(campaign, session, e)
    return None


def request_close(ws: Workspace, campaign: str, **args: Unpack[CloseArgs]) -> Request:
    """Validate a close exactly as ``close`` would, then record it as a request."""
    from sessionctl.session.plan import updated_campaign

    with ws.lock(campaign):
        session = _open(ws, campaign)
        entries = record.entries(ws, campaign, session.number)
        force_reason = args.get("force_reason")
        check_requirements(
            campaign,
            session.number,
            missing_requirements(session, entries),
            force_reason=force_reason,
        )
        # The same YAML edits close makes: an unknown --resolve id or a duplicate --add-step
        # fails here, while the agent can still fix it, not after it has exited.
        updated_campaign(
            ws,
            campaign,
            session,
            resolve=args.get("resolve"),
            add_steps=args.get("add_steps", ()),
            status_text=args.get("status_text"),
            summary=args.get("summary"),
        )
        req = Request(
            kind="close",
            campaign=campaign,
            session=session.number,
            resolve=args.get("resolve"),
            add_steps=tuple(args.get("add_steps", ())),
            status=args.get("status_text"),
            summary=args.get("summary"),
            force=force_reason,
            include=tuple(_rel(ws, p) for p in args.get("include", ())),
            metric=args.get("metric"),
        )
        record.append(ws, campaign, req.to_entry())
    return req


def request_abort(
    ws: Workspace,
    campaign: str,
    *,
    reason: str,
    status_text: str | None = None,
    discard: bool = False,
    retire: bool = False,
) -> Request:
    """Validate an abort exactly as ``abort`` would, then record it as a request."""
    reason = require_reason(reason)
    from sessionctl.campaign import next_steps, store

    with ws.lock(campaign):
        session = _open(ws, campaign)
        if retire and not session.step_id:
            raise UsageError(
                f"session {session.number} is on no step: there is nothing to retire; drop --retire"
            )
        if status_text:
            next_steps.set_status(store.load(ws, campaign).doc, status_text)
        req = Request(
            kind="abort",
            campaign=campaign,
            session=session.number,
            status=status_text,
            reason=reason,
            discard=discard,
            retire=retire,
        )
        record.append(ws, campaign, req.to_entry())
    return req


def _open(ws: Workspace, campaign: str) -> record.OpenSession:
    if record.journal_path(ws, campaign).exists():
        # A close of this session already started: the loop (or `close`) finishes it.
        raise SessionStateError(
            f"{campaign}: a close of the open session is already under way; "
            f"`sessionctl status {campaign}` shows it"
        )
    return record.require_open(ws, campaign)


def _rel(ws: Workspace, path: str | Path) -> str:
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.resolve().relative_to(ws.root.resolve()).as_posix()
    except ValueError:
        return str(p)
