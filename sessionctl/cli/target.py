"""CLI for the long-lived target (``target.restart: never``): start it, show it, stop it."""

from __future__ import annotations

from typing import Any

import typer

from sessionctl.cli.common import CampaignOpt, JsonOpt

target_app = typer.Typer(
    help="The long-lived target (target.restart: never): start, status, stop, restart.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(target_app, name="target")


def _load(campaign: str | None) -> tuple[Any, Any]:
    from sessionctl.bench.runner import load_campaign
    from sessionctl.cli import common

    ws, name = common.campaign(campaign)
    return ws, load_campaign(ws, name)


def _show(console: Any, d: dict[str, Any]) -> None:
    console.kv(
        "target",
        {
            "restart": d["restart"] + (" (long-lived)" if d["long_lived"] else ""),
            "pid": (
                "none recorded"
                if d["pid"] is None
                else d["pid"]
                if d["alive"]
                else f"{d['pid']} (exited)"
            ),
            "ready": "yes" if d["ready"] else f"no ({d['not_ready']})",
            "started at": d["started_at"] or "n/a",
            "log": d["log"] or "n/a",
        },
    )


@target_app.command("status")
def status(campaign: CampaignOpt = None, json_output: JsonOpt = False) -> None:
    """Show the long-lived server: its pid, whether it answers, its log."""
    from sessionctl import console
    from sessionctl.cli import common
    from sessionctl.target import control

    ws, camp = _load(campaign)
    d = control.status(ws, camp)
    common.emit(json_output, d, lambda: _show(console, d))


@target_app.command("start")
def start(campaign: CampaignOpt = None, json_output: JsonOpt = False) -> None:
    """Start the long-lived server unless it answers already (then reuse it)."""
    from sessionctl import console
    from sessionctl.cli import common
    from sessionctl.target import control

    ws, camp = _load(campaign)
    d = control.bring_up(ws, camp, reporter=common.reporter(json_output))
    common.emit(json_output, d, lambda: _show(console, d))


@target_app.command("stop")
def stop(campaign: CampaignOpt = None, json_output: JsonOpt = False) -> None:
    """Stop the long-lived server sessionctl started (its state is lost unless it persists it)."""
    from sessionctl import console
    from sessionctl.cli import common
    from sessionctl.errors import NothingToDo
    from sessionctl.target import control

    ws, camp = _load(campaign)
    st = control.stop_server(ws, camp)
    if st is None:
        raise NothingToDo(f"{camp.name}: no long-lived target recorded as running; nothing to stop")
    d = {"stopped": st.pid, "log": st.log}
    common.emit(json_output, d, lambda: console.print_text(f"stopped the target (pid {st.pid})"))


@target_app.command("restart")
def restart(campaign: CampaignOpt = None, json_output: JsonOpt = False) -> None:
    """Stop the long-lived server and start it again (e.g. to run a new build)."""
    from sessionctl import console
    from sessionctl.cli import common
    from sessionctl.target import control

    ws, camp = _load(campaign)
    control.stop_server(ws, camp)
    d = control.bring_up(ws, camp, reporter=common.reporter(json_output))
    common.emit(json_output, d, lambda: _show(console, d))
