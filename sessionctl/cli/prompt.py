"""CLI for prompts (``prompt render|check|import|show``) and ``template list|export``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from sessionctl import console
from sessionctl.cli.common import CampaignArg, JsonOpt, campaign, emit, workspace

prompt_app = typer.Typer(
    help="The campaign's handoff prompt: YAML source of truth, rendered markdown, import.",
    no_args_is_help=True,
)
template_app = typer.Typer(
    help="The jinja2 templates prompts are rendered with (packaged defaults, overrides).",
    no_args_is_help=True,
)


@prompt_app.command("render")
def render_cmd(
    name: CampaignArg = None,
    stdout: Annotated[
        bool,
        typer.Option("--stdout", help="Print the markdown instead of writing prompts/NAME.md."),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Write prompts/NAME.md from prompts/NAME.yaml."""
    from sessionctl import render
    from sessionctl.campaign import store

    ws, cname = campaign(name)
    if stdout:
        text = render.render_prompt(store.read(ws, cname), ws=ws)
        emit(
            json_output,
            {"campaign": cname, "markdown": text},
            lambda: console.out.out(text, end=""),
        )
        return
    path = store.write_prompt(ws, cname)
    shown = store.display_path(ws, path)
    emit(json_output, {"campaign": cname, "path": shown}, f"rendered {shown}")


def _check_one(ws: Any, cname: str) -> dict[str, Any]:
    from sessionctl.campaign import store

    drift = store.check_prompt(ws, cname)
    camp = store.read(ws, cname)  # check_prompt validated this very text: no second parse
    shown = store.display_path(ws, ws.rendered_path(cname))
    result: dict[str, Any] = {
        "campaign": cname,
        "yaml": store.display_path(ws, ws.campaign_path(cname)),
        "revision": camp.revision,
        "valid": True,
        "markdown": shown,
        "drift": drift is not None,
    }
    if drift is not None:
        result["missing"] = drift.missing
        result["message"] = drift.message(shown)
        result["diff"] = drift.diff
    return result


@prompt_app.command("check")
def check_cmd(name: CampaignArg = None, json_output: JsonOpt = False) -> None:
    """Validate the YAML and report drift of the rendered .md (exit 1 with a diff if so).

    Without a campaign name, checks every campaign in the workspace.
    """
    from sessionctl.errors import SessionctlError
    from sessionctl.workspace import ENV_CAMPAIGN

    ws = workspace()
    names = [campaign(name)[1]] if name or os.environ.get(ENV_CAMPAIGN) else ws.campaign_names()
    if not names:
        campaign(None)  # raises the usual "no campaigns" error
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    for cname in names:
        try:
            results.append(_check_one(ws, cname))
        except SessionctlError as exc:
            if len(names) == 1:
                raise
            errors.append(str(exc))
            results.append({"campaign": cname, "valid": False, "error": str(exc)})
    drifted = [r for r in results if r.get("drift")]
    if json_output:
        console.print_json(results[0] if name and len(results) == 1 else results)
    else:
        for r in results:
            if r.get("drift"):
                if r.get("diff"):
                    console.out.out(r["diff"], end="", highlight=False)
                console.error(r["message"])
            elif r.get("valid"):
                console.print_text(
                    f"ok: {r['yaml']} (revision {r['revision']}) is valid; "
                    f"{r['markdown']} is up to date"
                )
        for e in errors:
            console.error(e)
    if drifted or errors:
        raise typer.Exit(1)


@prompt_app.command("import")
def import_cmd(
    source: Annotated[Path, typer.Argument(help="The hand-written prompt (markdown) to import.")],
    name: Annotated[
        str,
        typer.Option("--campaign", "-C", help="Name of the new campaign (prompts/NAME.yaml)."),
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing prompts/NAME.yaml.")
    ] = False,
    no_render: Annotated[
        bool, typer.Option("--no-render", help="Only write the YAML, not prompts/NAME.md.")
    ] = False,
    keep_instructions: Annotated[
        bool,
        typer.Option(
            "--keep-instructions",
            help="Keep rendering instructions sessionctl now carries out (edit this prompt, "
            "jj new, another log file); by default they move to the YAML's superseded: list.",
        ),
    ] = False,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log",
            help="Adopt this existing perf log (kept byte for byte; sessions append to it).",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Turn a hand-written prompt into campaign YAML (and render it back).

    Prose is placed in context, goal, rules, workflow, target, status and profiling notes;
    instructions that contradict sessionctl are listed with what replaces them.
    """
    from sessionctl.campaign import importer, store
    from sessionctl.errors import CampaignNotFound, UsageError

    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{source}: cannot read ({exc.strerror or exc})") from None
    if not importer.valid_name(name):
        raise UsageError(
            f"--campaign {name!r}: use letters, digits, '-' and '_' (it names prompts/NAME.yaml)"
        )
    try:
        ws = workspace()
    except CampaignNotFound:  # no workspace yet: importing creates one here
        ws = workspace(here=True)
    result = importer.import_prompt(
        text, name=name, source=str(source), keep_instructions=keep_instructions
    )
    cf = store.create(ws, name, result.yaml, force=force)
    adopted = None
    if log is not None:
        adopted = _adopt_log(ws, name, log, force=force)
    md = None
    if not no_render:
        md = store.write_prompt(ws, name)
    summary = dict(result.summary)
    if adopted:  # the log's highest session may have raised it
        summary["last_session"] = adopted["next_session"] - 1
    info = {
        "campaign": name,
        "yaml": store.display_path(ws, cf.path),
        "markdown": store.display_path(ws, md) if md else None,
        **summary,
        "superseded": result.superseded,
        "instructions_kept": keep_instructions,
        **({"log": adopted} if adopted else {}),
    }

    def human() -> None:
        console.print_text(
            f"imported {source} -> {info['yaml']}"
            + (f" (rendered {info['markdown']})" if md else "")
        )
        console.kv(
            None,
            {k: ", ".join(v) if isinstance(v, list) else v for k, v in summary.items()},
        )
        where = "kept in the prompt (--keep-instructions)" if keep_instructions else (
            f"not rendered; kept under superseded: in {info['yaml']}")  # fmt: skip
        for item in result.superseded:
            console.warn(f"instruction {where}: {item['text']!r} -> {item['replaced_by']}")
        if adopted:
            console.print_text(
                f"log: {adopted['path']} (highest session {adopted['highest_session']}; "
                f"the next session is {adopted['next_session']})"
            )

    emit(json_output, info, human)


def _adopt_log(ws: Any, name: str, log: Path, *, force: bool) -> dict[str, Any]:
    """Point the new campaign at the users' log; number sessions on from its highest one."""
    from sessionctl import perflog
    from sessionctl.campaign import next_steps, store
    from sessionctl.workspace import default_log

    rel, highest = perflog.adopt(ws, name, log, force=force)
    with ws.lock(name):
        cf = store.load(ws, name)
        if rel != default_log(name):
            next_steps.set_log(cf.doc, rel)
        last = max(cf.campaign.last_session, highest)
        next_steps.set_last_session(cf.doc, last)
        store.save(ws, cf, bump=False, render=False)
    return {"path": rel, "highest_session": highest, "next_session": last + 1}


@prompt_app.command("show")
def show_cmd(name: CampaignArg = None, json_output: JsonOpt = False) -> None:
    """Print the campaign YAML (or, with --json, the validated model)."""
    from sessionctl import render
    from sessionctl.campaign import store

    ws, cname = campaign(name)
    cf = store.load(ws, cname)
    if json_output:
        console.print_json(_redacted(_to_json(cf.campaign)))
        return
    from rich.syntax import Syntax

    console.out.print(
        Syntax(render.redact(cf.text), "yaml", theme="ansi_dark", background_color="default")
    )


def _to_json(obj: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _to_json(v) for k, v in obj.items()}
    return obj


def _redacted(obj: Any) -> Any:
    from sessionctl.redaction import redact_data

    return redact_data(obj)  # URL passwords, and values such as target.env's PGPASSWORD


@template_app.command("list")
def template_list_cmd(
    name: Annotated[
        str | None,
        typer.Option("--campaign", "-C", help="Include this campaign's template folder."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """List the templates and which folder each one is taken from."""
    from sessionctl import render
    from sessionctl.campaign import store

    ws = workspace() if name else _maybe_workspace()
    camp = store.load(ws, campaign(name)[1]).campaign if name and ws else None
    rows = render.list_templates(ws, camp)
    emit(
        json_output,
        rows,
        lambda: console.table(
            None, ["template", "from", "path"], [[r["name"], r["source"], r["path"]] for r in rows]
        ),
    )


def _maybe_workspace() -> Any:
    from sessionctl.errors import SessionctlError

    try:
        return workspace()
    except SessionctlError:
        return None


@template_app.command("export")
def template_export_cmd(
    name: Annotated[
        str | None,
        typer.Argument(
            help="Template to export, e.g. prompt.md.j2 or partials/next_steps.md.j2. Default: all."
        ),
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Destination folder. Default: the workspace's templates/."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files that already exist.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Copy a packaged template out for editing (it then overrides the packaged one)."""
    from sessionctl import render

    dest = to if to is not None else workspace().templates_dir
    written = render.export_templates(name, to=dest, force=force)
    emit(
        json_output,
        {"written": [str(p) for p in written]},
        "\n".join(f"exported {p}" for p in written),
    )


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(prompt_app, name="prompt")
    app.add_typer(template_app, name="template")
