"""Render campaigns (and other areas' documents) to markdown through jinja2 templates.

Templates are looked up in the campaign's ``templates:`` folder, then the workspace's
``templates/`` folder, then the copies shipped with sessionctl, so a user overrides one file by
exporting it (:func:`export_templates`) and editing it. The environment is sandboxed with
StrictUndefined; campaign content is passed as *data* and never compiled as a template, so a
``{{`` in a status paragraph prints as ``{{``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sessionctl.campaign.schema import LAYOUT_BUILTIN
from sessionctl.errors import ConfigError, InternalError, UsageError
from sessionctl.files import atomic_write
from sessionctl.workspace import Workspace, default_log

if TYPE_CHECKING:
    import jinja2

    from sessionctl.campaign.model import Campaign, CompletedWork, NextStep, StepGroup

PROMPT_TEMPLATE = "prompt.md.j2"
# Layout items with a template of their own ("partials/<name>.md.j2"), in default order.
BUILTIN = LAYOUT_BUILTIN
# Built-in items that also take a ".<id>" suffix: one benchmark / step group / completed list.
SUBITEMS = ("benchmarks", "next_steps", "completed")
COMPLETED_KINDS = ("optimizations", "diagnostics")
_CUSTOM_AT = BUILTIN.index("next_steps")  # custom sections default to just before next steps


def redact(text: str) -> str:
    """Hide passwords in URLs and keyword DSNs (the one rule: ``sessionctl.redaction.redact``)."""
    from sessionctl.redaction import redact as redact_secrets

    return redact_secrets(text)


# --- template lookup ------------------------------------------------------------------------


def packaged_templates_dir() -> Path:
    """The default templates: ``sessionctl/_templates`` in a wheel, ``<repo>/templates`` in dev."""
    pkg = Path(__file__).resolve().parent
    for candidate in (pkg / "_templates", pkg.parent / "templates"):
        if (candidate / PROMPT_TEMPLATE).is_file():
            return candidate
    raise InternalError(f"{pkg}: packaged templates are missing (reinstall sessionctl)")


def search_path(ws: Workspace | None, campaign: Campaign | None = None) -> list[tuple[str, Path]]:
    """Template folders in lookup order, each with a label (campaign, workspace, packaged)."""
    folders: list[tuple[str, Path]] = []
    if campaign is not None and campaign.templates:
        folder = Path(campaign.templates).expanduser()
        if not folder.is_absolute() and ws is not None:
            folder = ws.root / folder
        folders.append(("campaign", folder))
    if ws is not None and ws.templates_dir.is_dir():
        folders.append(("workspace", ws.templates_dir))
    packaged = packaged_templates_dir()
    folders = [(label, f) for label, f in folders if f.resolve() != packaged.resolve()]
    folders.append(("packaged", packaged))
    return folders


def template_env(ws: Workspace | None, campaign: Campaign | None = None) -> jinja2.Environment:
    """A sandboxed, StrictUndefined environment over the template search path."""
    return _env_for(tuple(str(folder) for _label, folder in search_path(ws, campaign)))


@functools.lru_cache(maxsize=32)
def _env_for(folders: tuple[str, ...]) -> jinja2.Environment:
    """One environment per search path: compiled templates are reused (and reloaded on edit)."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder) for folder in folders])
    env = SandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(
        fence=fence,
        lead=lead,
        redact=redact,
        sessions=sessions_text,
        code_list=code_list,
        hashes=hashes,
        shell=shell_join,
        url_user=url_user,
        sql_statement=sql_statement,
    )
    env.filters["render_part"] = _render_part_filter()
    env.globals.update(
        heading=heading, mentions_sessions=mentions_sessions, fill_sessions=fill_sessions
    )
    return env


def _template_error(exc: Exception, name: str) -> ConfigError:
    """Name the innermost template (a partial, not the prompt that included it) and its line."""
    import traceback

    where = getattr(exc, "filename", None)
    line = getattr(exc, "lineno", None)
    if where is None:
        # jinja rewrites tracebacks so template frames carry the template's file and line.
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
        if frames:
            where, line = frames[-1].filename, frames[-1].lineno
    loc = f"{where or name}:{line}" if line else (where or name)
    message = " ".join(str(getattr(exc, "message", None) or exc).split())
    return ConfigError(f"{loc}: template error: {message}")


def render_template(
    name: str,
    context: Mapping[str, Any],
    *,
    ws: Workspace | None = None,
    campaign: Campaign | None = None,
) -> str:
    """Render template ``name`` with ``context`` (ConfigError naming the template on failure)."""
    import jinja2

    env = template_env(ws, campaign)
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        folders = ", ".join(str(f) for _label, f in search_path(ws, campaign))
        raise ConfigError(f"{exc.name or name}: template not found (looked in {folders})") from None
    except (jinja2.TemplateError, TypeError, ValueError) as exc:
        raise _template_error(exc, name) from None


# --- filters and helpers the templates use ------------------------------------------------


def fence(text: str, info: str = "") -> str:
    """Wrap ``text`` in a code fence longer than any backtick run inside it."""
    runs = [len(m) for m in re.findall(r"`{3,}", text)]
    marks = "`" * max(3, max(runs, default=0) + 1)
    return f"{marks}{info}\n{text.rstrip(chr(10))}\n{marks}"


_BLOCK_START = re.compile(r"^\s*(?:[-*+]\s|\d{1,9}[.)]\s|```|~~~|#{1,6}\s|>|\|)")


def lead(title: str, rest: str | None = None, suffix: str = "", *, bold: bool = True) -> str:
    """``**title**`` then ``rest``: on the same line after ': ' (or ' ' after punctuation)."""
    head = f"**{title}**" if bold and title and "**" not in title else title
    head += suffix
    if not rest or not rest.strip():
        return head
    if rest.startswith("\n"):  # the rest is a new paragraph
        return f"{head}\n\n{rest.strip(chr(10))}"
    rest = rest.rstrip("\n")
    first = rest.splitlines()[0]
    if not first.strip() or _BLOCK_START.match(first):
        return f"{head}\n{rest}"
    sep = " " if title.rstrip()[-1:] in ".:!?;,—–" else ": "
    return f"{head}{sep}{rest}"


def sessions_text(numbers: Sequence[int]) -> str:
    """'Session 46' / 'Sessions 12, 14'."""
    if not numbers:
        return ""
    word = "Session" if len(numbers) == 1 else "Sessions"
    return f"{word} {', '.join(str(n) for n in numbers)}"


def mentions_sessions(text: str | None, numbers: Sequence[int]) -> bool:
    """True when ``text`` already names every one of these session numbers."""
    if not numbers:
        return True
    found = {int(n) for n in re.findall(r"\b(\d+)\b", text or "")}
    return all(n in found for n in numbers) and bool(
        re.search(r"(?i)\bsessions?\b|\bS\d", text or "")
    )


def code_list(items: Sequence[str]) -> str:
    """'`a`, `b`'."""
    return ", ".join(f"`{i}`" for i in items)


def shell_join(argv: Sequence[str]) -> str:
    """An argv as one copy-pasteable shell line."""
    import shlex

    return shlex.join(argv)


def url_user(url: str) -> str:
    """The user name in a connection URL ('mz_system'), or the URL itself when it has none."""
    from urllib.parse import urlsplit

    return urlsplit(url).username or redact(url)


def sql_statement(sql: str) -> str:
    """One SQL statement, terminated by ';'."""
    sql = sql.strip()
    return sql if sql.endswith(";") else f"{sql};"


def hashes(level: int) -> str:
    """'##' for level 2."""
    return "#" * max(1, min(6, int(level)))


def heading(part: Part, default: str) -> str:
    """The heading line for a layout item: the campaign's override, else the default.

    ``{sessions}`` in a completed list's heading is computed from the list ('7-9, 11').
    """
    if part.heading is not None:
        return fill_sessions(part.heading, part.extra.get("sessions", ()))
    return "" if part.sub and part.kind != "completed" and not part.opens else default


def fill_sessions(text: str, numbers: Sequence[int]) -> str:
    """Replace ``{sessions}`` with the numbers as ranges (a heading that never goes stale)."""
    if "{sessions}" not in text:
        return text
    from sessionctl.campaign.titles import range_text

    return text.replace("{sessions}", range_text(tuple(numbers)) or "none yet")


# --- the prompt -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Consecutive next steps of one group (``group`` None: ungrouped), with their ranks."""

    group: StepGroup | None
    steps: tuple[tuple[int, NextStep], ...]


@dataclass(frozen=True)
class Part:
    """One resolved layout item, handed to ``partials/<kind>.md.j2`` as ``part``."""

    key: str
    kind: str
    heading: str | None = None
    sub: bool = False
    section: Any = None
    benchmarks: tuple[Any, ...] = ()
    runs: tuple[Run, ...] = ()
    completed: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # The first benchmarks.NAME / next_steps.GROUP item: it gets its field's heading, so the
    # text before it (under a heading of its own, e.g. "## Rules") does not swallow it.
    opens: bool = False


def _runs(c: Campaign, only: str | None, include_ungrouped: bool) -> tuple[Run, ...]:
    groups = {g.id: g for g in c.next_step_groups}
    runs: list[Run] = []
    current: list[tuple[int, NextStep]] = []
    current_group: str | None = None
    for rank, step in enumerate(c.next_steps, start=1):
        keep = step.group == only or (step.group is None and include_ungrouped)
        if only is None:
            keep = True
        if not keep:
            continue
        if current and step.group != current_group:
            runs.append(Run(groups.get(current_group or ""), tuple(current)))
            current = []
        current_group = step.group
        current.append((rank, step))
    if current:
        runs.append(Run(groups.get(current_group or ""), tuple(current)))
    return tuple(runs)


def default_layout(c: Campaign) -> tuple[str, ...]:
    """Built-in sections in reading order, custom sections just before the next steps."""
    custom = tuple(s.id for s in c.sections)
    return BUILTIN[:_CUSTOM_AT] + custom + BUILTIN[_CUSTOM_AT:]


def _has_content(c: Campaign, item: str) -> bool:
    t = c.target
    return {
        "context": bool(c.context),
        "goal": bool(c.goal),
        "rules": bool(c.rules),
        "workflow": bool(c.workflow),
        "target": bool(t.notes or t.start or t.sql_url or t.system_sql_url or t.metrics_url),
        "benchmarks": bool(c.benchmarks),
        "metrics": bool(c.metrics),
        "status": bool(c.status),
        "completed": bool(c.completed.optimizations or c.completed.diagnostics),
        "profiling_notes": bool(c.profiling_notes),
        "next_steps": bool(c.next_steps),
        "retired": bool(c.retired),
    }.get(item, False)


def complete_layout(c: Campaign) -> tuple[str, ...]:
    """The layout with every configured built-in in it, even when the layout predates it.

    An imported ``layout`` lists what the prompt had; a target, benchmark, metric, status (or
    any built-in) configured later is placed after the built-in that precedes it by default.
    Benchmarks, completed lists and step groups the layout does not name follow the last one
    it does.
    """
    if not c.layout:
        return default_layout(c)
    layout = list(c.layout)
    present = {k.partition(".")[0] for k in layout}
    for item in BUILTIN:
        if item in present or not _has_content(c, item):
            continue
        at = None
        for earlier in reversed(BUILTIN[: BUILTIN.index(item)]):
            hits = [i for i, k in enumerate(layout) if k.partition(".")[0] == earlier]
            if hits:
                at = hits[-1] + 1
                break
        if at is None:
            later = [i for i, k in enumerate(layout) if k.partition(".")[0] in BUILTIN]
            at = later[0] if later else len(layout)
        layout.insert(at, item)
        present.add(item)
    subs = {
        "benchmarks": [b.name for b in c.benchmarks],
        "completed": [k for k in COMPLETED_KINDS if getattr(c.completed, k)],
        "next_steps": [
            g.id for g in c.next_step_groups if any(s.group == g.id for s in c.next_steps)
        ],
    }
    for base, names in subs.items():
        if base in layout:
            continue
        listed = [i for i, k in enumerate(layout) if k.partition(".")[0] == base]
        if not listed:
            continue
        missing = [n for n in names if f"{base}.{n}" not in layout]
        at = listed[-1] + 1
        for n in missing:
            layout.insert(at, f"{base}.{n}")
            at += 1
    return tuple(layout)


def layout_parts(c: Campaign) -> list[Part]:
    """Resolve ``layout`` (or the default order) into the parts to render."""
    layout = complete_layout(c)
    sections = {s.id: s for s in c.sections}
    step_items = [k for k in layout if k.startswith("next_steps.")]
    first_step_item = step_items[0] if step_items and "next_steps" not in layout else None
    parts: list[Part] = []
    seen: set[str] = set()
    for key in layout:
        head = c.headings.get(key)
        if key in sections:
            parts.append(Part(key=key, kind="section", heading=head, section=sections[key]))
            continue
        base, _, sub = key.partition(".")
        opens = bool(sub) and head is None and base not in seen and not _heading_only(parts)
        seen.add(base)
        if base == "benchmarks":
            chosen = tuple(b for b in c.benchmarks if not sub or b.name == sub)
            parts.append(
                Part(key=key, kind=base, heading=head, sub=bool(sub), benchmarks=chosen,
                     opens=opens)
            )  # fmt: skip
        elif base == "next_steps":
            runs = _runs(c, sub or None, include_ungrouped=key == first_step_item)
            group = runs[0].group if runs else None
            if opens and group and group.title:
                if not group.level:  # "Remaining directions:" becomes the heading, not a 2nd
                    title = group.title.rstrip().removesuffix(":").rstrip() or group.title
                    runs = (replace(runs[0], group=replace(group, level=2, title=title)), *runs[1:])
                opens = False
            parts.append(
                Part(key=key, kind=base, heading=head, sub=bool(sub), runs=runs, opens=opens)
            )
        elif base == "completed":
            kinds = tuple(
                k for k in ((sub,) if sub else COMPLETED_KINDS) if getattr(c.completed, k)
            )
            numbers = sorted(
                {n for k in kinds for e in getattr(c.completed, k) for n in e.sessions}
            )
            parts.append(
                Part(key=key, kind=base, heading=head, sub=bool(sub), completed=kinds,
                     extra={"sessions": numbers})
            )  # fmt: skip
        else:
            parts.append(Part(key=key, kind=base, heading=head))
    return parts


def _heading_only(parts: Sequence[Part]) -> bool:
    """The part before is a section with a title and no text (it heads what follows)."""
    last = parts[-1] if parts else None
    if last is None or last.kind != "section":
        return False
    return bool(last.section.title) and not (last.section.body or "").strip()


def _render_part_filter() -> Any:
    import jinja2

    @jinja2.pass_context
    def render_part(ctx: Any, part: Part) -> str:
        template = ctx.environment.get_template(f"partials/{part.kind}.md.j2")
        return str(template.render({**ctx.get_all(), "part": part})).strip("\n")

    return render_part


def prompt_context(c: Campaign, ws: Workspace | None = None) -> dict[str, Any]:
    """The variables ``prompt.md.j2`` and its partials see."""
    return {
        "c": c,
        "parts": layout_parts(c),
        "next_session": c.last_session + 1,
        "yaml_path": f"prompts/{c.name}.yaml",
        "md_path": f"prompts/{c.name}.md",
        "log_path": c.log or default_log(c.name),
        "completed_lists": _completed_lists(c.completed),
        "completed_sessions": {
            kind: sorted({n for e in entries for n in e.sessions})
            for kind, entries in _completed_lists(c.completed).items()
        },
    }


def _completed_lists(done: CompletedWork) -> dict[str, Any]:
    return {"optimizations": done.optimizations, "diagnostics": done.diagnostics}


def render_prompt(campaign: Campaign, *, ws: Workspace | None = None) -> str:
    """Render the campaign's prompt markdown (passwords in URLs redacted)."""
    text = render_template(PROMPT_TEMPLATE, prompt_context(campaign, ws), ws=ws, campaign=campaign)
    return redact(text.rstrip("\n") + "\n")


# --- exporting the defaults -------------------------------------------------------------------


def list_templates(ws: Workspace | None, campaign: Campaign | None = None) -> list[dict[str, str]]:
    """Every template name with the folder it is taken from (first match wins)."""
    seen: dict[str, dict[str, str]] = {}
    for label, folder in search_path(ws, campaign):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.j2")):
            rel = path.relative_to(folder).as_posix()
            seen.setdefault(rel, {"name": rel, "source": label, "path": str(path)})
    return sorted(seen.values(), key=lambda d: d["name"])


def export_templates(name: str | None, *, to: Path, force: bool = False) -> list[Path]:
    """Copy a packaged template (or all of them) into ``to`` for editing."""
    src_root = packaged_templates_dir()
    if name is None:
        names = sorted(p.relative_to(src_root).as_posix() for p in src_root.rglob("*.j2"))
    else:
        names = [name if name.endswith(".j2") else f"{name}.j2"]
        parts = PurePosixPath(names[0].replace("\\", "/")).parts
        if not parts or names[0].startswith("/") or ".." in parts:
            # Only the packaged names: `../../x.j2` would read and write outside both folders.
            raise UsageError(
                f"template {name!r}: not a template name; use a name from `sessionctl template "
                "list`, e.g. prompt.md.j2 or partials/next_steps.md.j2"
            )
        if not (src_root / names[0]).is_file():
            for guess in (
                f"partials/{names[0]}",
                f"{names[0][:-3]}.md.j2",
                f"partials/{names[0][:-3]}.md.j2",
            ):
                if (src_root / guess).is_file():
                    names = [guess]
                    break
            else:
                have = ", ".join(
                    sorted(p.relative_to(src_root).as_posix() for p in src_root.rglob("*.j2"))
                )
                raise UsageError(f"template {name!r}: no such packaged template (have: {have})")
    if to.resolve() == src_root.resolve():
        raise UsageError(f"{to}: that is the packaged template folder itself; choose another --to")
    targets = [(src_root / n, to / n) for n in names]
    for src, dst in targets:  # a symlink planted in either folder must not lead outside it
        for path, root in ((src, src_root), (dst, to)):
            if not path.resolve().is_relative_to(root.resolve()):
                raise UsageError(f"{path}: leads outside {root} (a symlink?); remove it")
    clashes = [str(dst) for _src, dst in targets if dst.exists()]
    if clashes and not force:
        raise UsageError(f"{clashes[0]}: already exists; pass --force to overwrite")
    for src, dst in targets:
        atomic_write(dst, src.read_text(encoding="utf-8"))
    return [dst for _src, dst in targets]
