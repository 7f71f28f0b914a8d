"""CLI for beginning a campaign: ``init``."""

from __future__ import annotations

from typing import Annotated

import typer

from sessionctl import console
from sessionctl.cli.common import JsonOpt, emit, option, workspace


def init_cmd(
    name: Annotated[
        str | None,
        typer.Argument(
            help="Campaign name (prompts/NAME.yaml). Default: the folder's name.",
            show_default=False,
        ),
    ] = None,
    target_url: Annotated[
        str | None,
        option("--target-url", help="The server's SQL URL (target.sql_url)."),
    ] = None,
    driver: Annotated[
        str | None,
        option("--driver", help="Benchmark driver: builtin, pgbench, dbbench or ddl."),
    ] = None,
    query: Annotated[
        str | None,
        option("--query", help="The benchmark's query (for ddl: the probe statement)."),
    ] = None,
    headline: Annotated[
        str | None,
        option(
            "--title",
            "--headline",
            help="The campaign's one-line title (the rendered prompt's heading; not the "
            "headline: metric the sessions are judged on, which the YAML names).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing campaign file and log.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Begin a campaign: a commented prompts/NAME.yaml that validates, its prompt, an empty log.

    Values not given as options are asked for when a terminal is attached, else defaulted.
    """
    from sessionctl.campaign import scaffold

    ws = workspace(here=True)
    ask = console.interactive() and not json_output
    if name is None:
        default = scaffold.default_name(ws.root)
        name = console.ask("Campaign name", default) if ask else default
    if target_url is None:
        url = scaffold.DEFAULT_URL
        target_url = console.ask("SQL URL of the server under test", url) if ask else url
    if driver is None:
        default = "builtin"
        driver = (
            console.ask("Benchmark driver", default, choices=scaffold.DRIVERS) if ask else default
        )
    if query is None and driver != "ddl":
        default = scaffold.DEFAULT_QUERY
        query = console.ask("Benchmark query", default) if ask else default
    if headline is None and ask:
        headline = console.ask("Title (one line: what this campaign is about)", "") or None
    answers = scaffold.Answers(
        name=name,
        target_url=target_url,
        driver=driver,
        query=query or scaffold.DEFAULT_QUERY,
        headline=headline,
    )
    created = scaffold.create(ws, answers, force=force)

    def human() -> None:
        console.print_text(
            f"created {created.yaml}, {created.markdown} and {created.log}; next: "
            f"`sessionctl prompt check {created.campaign}`, "
            f"then `sessionctl start {created.campaign}`"
        )

    emit(
        json_output,
        {
            "campaign": created.campaign,
            "yaml": created.yaml,
            "markdown": created.markdown,
            "log": created.log,
        },
        human,
    )


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("init")(init_cmd)
