"""What ``sessionctl target`` does with a long-lived target: start it (or find it up), show it,
stop it. The rules a command follows to reuse the server are in
:mod:`sessionctl.target.long_lived` and :meth:`sessionctl.target.server.TargetHandle.__enter__`.
"""

from __future__ import annotations

import signal
from typing import Any

from sessionctl.target.long_lived import State, alive, read_state, stop
from sessionctl.workspace import Workspace


def _handle(ws: Workspace, campaign: Any, reporter: Any) -> Any:
    from sessionctl.errors import UsageError
    from sessionctl.target.server import TargetHandle

    if not campaign.target.start:
        raise UsageError(
            f"prompts/{campaign.name}.yaml: target.start: not set; sessionctl only probes a "
            "server it does not start (add target.start and target.restart: never)"
        )
    return TargetHandle(ws, campaign, reporter=reporter)


def status(ws: Workspace, campaign: Any) -> dict[str, Any]:
    """The recorded server (pid, command, log), whether it is alive and whether it answers."""
    from sessionctl.errors import TargetError
    from sessionctl.target.server import TargetHandle, redact

    handle = TargetHandle(ws, campaign)
    st = read_state(ws, campaign.name)  # a read: a dead server's record is shown, not removed
    try:
        ready, why = handle._probe()
    except TargetError as exc:  # e.g. no sql_url to probe
        ready, why = False, str(exc)
    return {
        "restart": campaign.target.restart,
        "long_lived": handle.long_lived,
        "pid": st.pid if st else None,
        "alive": st is not None and alive(st.pid),
        "ready": ready,
        "not_ready": None if ready else why,
        "started_at": st.started_at if st else None,
        "log": st.log if st else None,
        "sql_url": redact(handle.sql_url) if campaign.target.sql_url else None,
    }


def bring_up(ws: Workspace, campaign: Any, *, reporter: Any) -> dict[str, Any]:
    """Start the long-lived target unless it is up (the same rules as every command)."""
    from sessionctl.errors import UsageError

    handle = _handle(ws, campaign, reporter)
    if not handle.long_lived:
        raise UsageError(
            f"prompts/{campaign.name}.yaml: target.restart is {campaign.target.restart}: each "
            "command starts and stops the server; set target.restart: never to keep it up"
        )
    handle.__enter__()
    handle.stop()  # detaches: a long-lived server keeps running
    return status(ws, campaign)


def stop_server(ws: Workspace, campaign: Any) -> State | None:
    """Stop the long-lived server sessionctl started (None: none is recorded as running)."""
    spec = campaign.target
    return stop(ws, campaign.name, first_signal=signal.Signals[spec.stop_signal],
                grace=spec.stop_timeout)  # fmt: skip
