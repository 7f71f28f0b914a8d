"""CLI for the ranked next-step list: ``next list|add|edit|move|resolve|drop|retire|unretire``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from sessionctl import console
from sessionctl.cli.common import CampaignArg, CampaignOpt, JsonOpt, campaign, emit

next_app = typer.Typer(
    help="The campaign's ranked next steps (rank = position; every change re-renders the prompt).",
    no_args_is_help=True,
)

StepId = Annotated[str, typer.Argument(help="The step's id (see `sessionctl next list`).")]


def _step_json(rank: int, s: Any) -> dict[str, Any]:
    return {
        "rank": rank,
        "id": s.id,
        "title": s.title,
        "body": s.body,
        "effect": s.effect,
        "paths": list(s.paths),
        "added_in": s.added_in,
        "group": s.group,
    }


def _retired_json(r: Any) -> dict[str, Any]:
    return {"id": r.id, "title": r.title, "why": r.why, "sessions": list(r.sessions)}


def _edit(name: str | None, change: Any, done: str, json_output: bool) -> None:
    """Apply ``change(doc)`` under the lock, save (bump + re-render) and report."""
    from sessionctl.campaign import store

    ws, cname = campaign(name)
    with store.edit(ws, cname) as cf:
        change(cf.doc)
    for notice in cf.notices:
        console.warn(notice)
    c = cf.campaign
    emit(
        json_output,
        {
            "campaign": cname,
            "revision": c.revision,
            "steps": [_step_json(i, s) for i, s in enumerate(c.next_steps, 1)],
            "retired": [_retired_json(r) for r in c.retired],
        },
        f"{done} (revision {c.revision})",
    )


@next_app.command("list")
def list_cmd(
    name: CampaignArg = None,
    show_retired: Annotated[
        bool, typer.Option("--retired", help="Show the retired steps (tried, did not help).")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Show the next steps in rank order (--json also lists the retired ones)."""
    from sessionctl.campaign import store

    ws, cname = campaign(name)
    c = store.read(ws, cname)
    steps = [_step_json(i, s) for i, s in enumerate(c.next_steps, 1)]
    retired = [_retired_json(r) for r in c.retired]
    if json_output:
        groups = [{"id": g.id, "title": g.title} for g in c.next_step_groups]
        console.print_json(
            {
                "campaign": cname,
                "revision": c.revision,
                "groups": groups,
                "steps": steps,
                "retired": retired,
            }
        )
        return
    if show_retired:
        if not retired:
            console.print_text(f"{cname}: no retired steps")
            return
        console.table(
            f"{cname}: tried, did not help",
            ["id", "title", "sessions", "why"],
            [[r["id"], r["title"], ", ".join(map(str, r["sessions"])), r["why"]] for r in retired],
        )
        return
    if not steps:
        console.print_text(
            f"{cname}: no next steps; add one with `sessionctl next add --id ID --title TEXT`"
        )
        return
    from rich.table import Table
    from rich.text import Text

    titles = {g.id: g.title for g in c.next_step_groups}
    table = Table(title=f"{cname}: next steps (revision {c.revision})", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("id", no_wrap=True)  # ids are typed back into commands: never cut them
    table.add_column("title", ratio=3)
    table.add_column("effect", ratio=2)
    group: str | None = None
    for s in steps:
        if s["group"] != group and s["group"] is not None:
            table.add_row("", "", Text(titles.get(s["group"], s["group"]), style="bold"), "")
        group = s["group"]
        table.add_row(str(s["rank"]), Text(s["id"]), Text(s["title"]), Text(s["effect"] or ""))
    console.out.print(table)


@next_app.command("add")
def add_cmd(
    step_id: Annotated[
        str, typer.Option("--id", help="A new, unique one-word id (e.g. row-encoding).")
    ],
    title: Annotated[str, typer.Option("--title", help="One-line title.")],
    body: Annotated[
        str | None, typer.Option("--body", help="Details: what to try and why (markdown).")
    ] = None,
    effect: Annotated[
        str | None, typer.Option("--effect", help="Estimated effect, e.g. '~5% QPS'.")
    ] = None,
    paths: Annotated[
        list[str] | None, typer.Option("--path", help="A code path involved (repeatable).")
    ] = None,
    added_in: Annotated[
        int | None, typer.Option("--added-in", help="Session that found it.")
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Group id (from next_step_groups).")
    ] = None,
    rank: Annotated[
        int | None, typer.Option("--rank", help="Position, 1 = first. Default: last.")
    ] = None,
    name: CampaignOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Add a next step."""
    from sessionctl.campaign import next_steps

    def change(doc: Any) -> None:
        next_steps.add_step(
            doc,
            id=step_id,
            title=title,
            body=body,
            effect=effect,
            paths=paths or (),
            added_in=added_in,
            group=group,
            rank=rank,
        )

    _edit(name, change, f"added {step_id}", json_output)


@next_app.command("edit")
def edit_cmd(
    step_id: StepId,
    new_id: Annotated[str | None, typer.Option("--id", help="Rename the step.")] = None,
    title: Annotated[str | None, typer.Option("--title", help="New title.")] = None,
    body: Annotated[
        str | None, typer.Option("--body", help="New details ('' clears them).")
    ] = None,
    effect: Annotated[
        str | None, typer.Option("--effect", help="New estimated effect ('' clears it).")
    ] = None,
    paths: Annotated[
        list[str] | None, typer.Option("--path", help="Replace the code paths (repeatable).")
    ] = None,
    clear_paths: Annotated[
        bool, typer.Option("--clear-paths", help="Remove all code paths.")
    ] = False,
    added_in: Annotated[
        int | None, typer.Option("--added-in", help="Session that found it.")
    ] = None,
    group: Annotated[str | None, typer.Option("--group", help="Group id ('' ungroups it).")] = None,
    name: CampaignOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Change a step's fields."""
    from sessionctl.campaign import next_steps
    from sessionctl.errors import UsageError

    fields: dict[str, Any] = {}
    for key, value in (("id", new_id), ("title", title), ("added_in", added_in)):
        if value is not None:
            fields[key] = value
    for key, value in (("body", body), ("effect", effect), ("group", group)):
        if value is not None:
            fields[key] = value or None
    if clear_paths:
        fields["paths"] = None
    elif paths:
        fields["paths"] = list(paths)
    if not fields:
        raise UsageError(
            "next edit: nothing to change; pass --title, --body, --effect, --path, --group..."
        )

    _edit(
        name,
        lambda doc: next_steps.edit_step(doc, step_id, **fields),
        f"edited {step_id}",
        json_output,
    )


@next_app.command("move")
def move_cmd(
    step_id: StepId,
    rank: Annotated[int, typer.Argument(help="New position, 1 = first.")],
    name: CampaignOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Move a step to another rank (the others shift; ranks stay dense)."""
    from sessionctl.campaign import next_steps

    _edit(
        name,
        lambda doc: next_steps.move_step(doc, step_id, rank),
        f"moved {step_id} to #{rank}",
        json_output,
    )


@next_app.command("resolve")
def resolve_cmd(
    step_id: StepId,
    as_kind: Annotated[
        str,
        typer.Option(
            "--as",
            help="optimization (it made things faster) or diagnostic (it explained something).",
        ),
    ],
    session: Annotated[
        int | None,
        typer.Option(
            "--session", help="Session that did it. Default: the open session, else the last one."
        ),
    ] = None,
    summary: Annotated[
        str | None, typer.Option("--summary", help="What it achieved, one or two lines.")
    ] = None,
    name: CampaignOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Mark a step done: move it into the completed optimizations or diagnostics."""
    from sessionctl.campaign import next_steps, store
    from sessionctl.errors import UsageError

    if as_kind not in ("optimization", "diagnostic"):
        raise UsageError(f"--as {as_kind!r}: use optimization or diagnostic")
    number = session
    if number is None:
        from sessionctl.session import record

        ws, cname = campaign(name)
        open_session = record.current(ws, cname)
        last = store.load(ws, cname).campaign.last_session
        number = open_session.number if open_session else last or None
        if number is None:
            raise UsageError(
                "next resolve: no session open and none finished yet; pass --session N"
            )
    kind: Literal["optimization", "diagnostic"] = (
        "optimization" if as_kind == "optimization" else "diagnostic"
    )

    def change(doc: Any) -> None:
        next_steps.resolve_step(doc, step_id, session=number, kind=kind, summary=summary)

    _edit(name, change, f"resolved {step_id} as {kind} of Session {number}", json_output)


@next_app.command("drop")
def drop_cmd(step_id: StepId, name: CampaignOpt = None, json_output: JsonOpt = False) -> None:
    """Remove a step without recording it as done."""
    from sessionctl.campaign import next_steps

    _edit(name, lambda doc: next_steps.drop_step(doc, step_id), f"dropped {step_id}", json_output)


@next_app.command("retire")
def retire_cmd(
    step_id: StepId,
    why: Annotated[
        str, typer.Option("--why", help="What was tried and why it did not help (agents read it).")
    ],
    session: Annotated[
        int | None,
        typer.Option("--session", help="The session that tried it. Default: the open one, if any."),
    ] = None,
    name: CampaignOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Move a step to "tried, did not help": shown in the prompt, never picked by start/run."""
    from sessionctl.campaign import next_steps

    number = session
    if number is None:
        from sessionctl.session import record

        ws, cname = campaign(name)
        open_session = record.current(ws, cname)
        number = open_session.number if open_session else None

    def change(doc: Any) -> None:
        next_steps.retire_step(doc, step_id, why=why, session=number)

    _edit(name, change, f"retired {step_id}", json_output)


@next_app.command("unretire")
def unretire_cmd(
    step_id: StepId,
    rank: Annotated[
        int | None, typer.Option("--rank", help="Position, 1 = first. Default: last.")
    ] = None,
    name: CampaignOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Bring a retired step back into the next steps."""
    from sessionctl.campaign import next_steps

    _edit(
        name,
        lambda doc: next_steps.unretire_step(doc, step_id, rank=rank),
        f"unretired {step_id}",
        json_output,
    )


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(next_app, name="next")
