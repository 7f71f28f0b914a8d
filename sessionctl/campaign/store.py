"""Read and write campaign files as ruamel round-trip documents.

The document (``CampaignFile.doc``) is what gets edited and written back, so a user's comments,
key order, quoting and block scalars survive every write; ``CampaignFile.campaign`` is the
validated, typed view of it. Every write re-validates the text it is about to write, bumps
``revision``, upgrades an older ``schema``, goes through :func:`sessionctl.files.atomic_write`,
and re-renders ``prompts/<name>.md`` when that file exists.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionctl.campaign import cache, migrate
from sessionctl.campaign.cache import fingerprint
from sessionctl.campaign.model import SCHEMA_VERSION, Campaign
from sessionctl.errors import CampaignNotFound, ConfigError, SessionctlError, UsageError
from sessionctl.files import atomic_write
from sessionctl.workspace import Workspace

if TYPE_CHECKING:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

# Our own files: keys indented by 2, list dashes indented by 2 under their key.
DEFAULT_INDENT = (2, 4, 2)
_WIDTH = 4096  # never re-wrap a user's long one-line strings


@dataclass
class CampaignFile:
    """A loaded campaign file: the live round-trip document and its validated view."""

    path: Path
    name: str
    doc: CommentedMap
    campaign: Campaign
    text: str = ""
    migrated_from: int | None = None
    indent: tuple[int, int, int] = DEFAULT_INDENT
    explicit_start: bool = False
    notices: list[str] = field(default_factory=list)


def yaml_rt(indent: tuple[int, int, int] = DEFAULT_INDENT, *, explicit_start: bool = False) -> YAML:
    """A round-trip YAML instance configured the way sessionctl reads and writes campaigns."""
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = _WIDTH
    mapping, sequence, offset = indent
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    y.explicit_start = explicit_start
    return y


_KEY_LINE = re.compile(r"^(?P<ind> *)(?:- +)?[^\s#-][^:#]*:\s*(?:#.*)?$")
_DASH_LINE = re.compile(r"^(?P<ind> *)-( +)\S")
_ANY_KEY = re.compile(r"^(?P<ind> *)[^\s#-][^:]*:(\s|$)")


def detect_indent(text: str) -> tuple[int, int, int]:
    """Guess (mapping, sequence, offset) indentation from a document so rewrites keep it."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    mapping: int | None = None
    offset: int | None = None
    dash_gap = 1
    for prev, nxt in itertools.pairwise(lines):
        m = _KEY_LINE.match(prev)
        if not m or prev.lstrip().startswith("- "):
            continue
        base = len(m.group("ind"))
        d = _DASH_LINE.match(nxt)
        if d and offset is None:
            offset = len(d.group("ind")) - base
            dash_gap = len(d.group(2))
        k = _ANY_KEY.match(nxt)
        if k and not d and mapping is None and len(k.group("ind")) > base:
            mapping = len(k.group("ind")) - base
        if mapping is not None and offset is not None:
            break
    if offset is None:
        return (
            DEFAULT_INDENT
            if mapping in (None, 2)
            else (mapping or 2, (mapping or 2) + 2, mapping or 2)
        )
    return (mapping or 2, offset + 1 + dash_gap, offset)


def _yaml_error(exc: Exception, source: str) -> ConfigError:
    """Turn a ruamel parser/scanner/constructor error into one ``file:line:col: message`` line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    message = " ".join(str(problem).split())
    if context and "duplicate" not in message:
        message = f"{message} ({' '.join(str(context).split())})"
    if mark is not None:
        return ConfigError(f"{source}:{mark.line + 1}:{mark.column + 1}: {message}")
    return ConfigError(f"{source}: {message}")


def parse(text: str, *, source: str) -> tuple[Any, tuple[int, int, int], bool]:
    """Parse YAML text into a round-trip document (ConfigError with file:line:col on failure)."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    indent = detect_indent(text)
    explicit = text.lstrip().startswith("---")
    try:
        doc = yaml_rt(indent, explicit_start=explicit).load(text)
    except MarkedYAMLError as exc:
        raise _yaml_error(exc, source) from None
    except YAMLError as exc:
        raise ConfigError(f"{source}: {' '.join(str(exc).split())}") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise ConfigError(f"{source}: {' '.join(str(exc).split()[:8])}...; shorten it") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read; flatten it") from None
    return doc, indent, explicit


def validate(doc: Any, *, name: str, source: str) -> Campaign:
    """Validate a parsed document (schema, types, ids, layout references)."""
    from sessionctl.campaign import schema

    try:
        return schema.build(doc, name=name, source=source)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to validate; flatten it") from None


def loads(text: str, *, name: str, source: str) -> CampaignFile:
    """Parse and validate campaign YAML text (older schemas are upgraded in memory)."""
    doc, indent, explicit = parse(text, source=source)
    if doc is None:
        raise ConfigError(
            f"{source}:1:1: (top level): the file is empty; add `schema: {SCHEMA_VERSION}`"
        )
    migrated_from = migrate.upgrade(doc)
    campaign = validate(doc, name=name, source=source)
    return CampaignFile(
        path=Path(source),
        name=name,
        doc=doc,
        campaign=campaign,
        text=text,
        migrated_from=migrated_from,
        indent=indent,
        explicit_start=explicit,
    )


def display_path(ws: Workspace, path: Path) -> str:
    """The path as shown in messages: relative to the workspace root when inside it."""
    try:
        return str(path.relative_to(ws.root))
    except ValueError:
        return str(path)


def load(ws: Workspace, name: str) -> CampaignFile:
    """Load ``prompts/<name>.yaml`` (ConfigError with file:line:col on any problem)."""
    path = ws.campaign_path(name)
    try:
        with open(path, encoding="utf-8", newline="") as fh:  # keep CRLF: writes keep it too
            text = fh.read()
    except FileNotFoundError:
        have = ", ".join(ws.campaign_names()) or "none"
        raise CampaignNotFound(
            f"{display_path(ws, path)}: no such campaign (have: {have})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{display_path(ws, path)}: cannot read ({exc})") from None
    cf = loads(text, name=name, source=display_path(ws, path))
    cf.path = path
    return cf


def dumps(cf: CampaignFile) -> str:
    """The round-trip YAML text of ``cf.doc`` (in the file's own indentation, line endings and
    byte-order mark)."""
    buf = io.StringIO()
    yaml_rt(cf.indent, explicit_start=cf.explicit_start).dump(cf.doc, buf)
    text = buf.getvalue()
    if "\r\n" in cf.text:
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    if cf.text.startswith("\ufeff") and not text.startswith("\ufeff"):
        text = "\ufeff" + text
    return text


def dump_new(doc: Any) -> str:
    """YAML text for a document sessionctl created itself (default style)."""
    buf = io.StringIO()
    yaml_rt().dump(doc, buf)
    return buf.getvalue()


def save(ws: Workspace, cf: CampaignFile, *, bump: bool = True, render: bool = True) -> Campaign:
    """Validate, bump ``revision``, write atomically, refresh ``cf`` and re-render the .md."""
    migrate.upgrade(cf.doc)
    path = ws.campaign_path(cf.name)
    source = display_path(ws, path)
    if bump:
        rev = cf.doc.get("revision")
        new_rev = rev + 1 if isinstance(rev, int) and not isinstance(rev, bool) else 1
        if "revision" in cf.doc:
            cf.doc["revision"] = new_rev
        else:
            migrate._set_after(cf.doc, "schema", "revision", new_rev)
    text = dumps(cf)
    # Validate the exact text about to be written: positions in errors then match that text,
    # and a document ruamel cannot read back never reaches disk.
    try:
        doc, _indent, _explicit = parse(text, source=source)
        campaign = validate(doc, name=cf.name, source=source)
    except ConfigError as exc:
        # Positions refer to the text that would have been written; the file is untouched.
        raise ConfigError(f"{exc} (change not saved; {source} is unchanged)") from None
    old_campaign = cf.campaign
    atomic_write(path, text)
    cf.path = path
    cf.text = text
    cf.campaign = campaign
    cf.migrated_from = None
    if render:
        _rerender(ws, cf, old_campaign)
    return campaign


def _rerender(ws: Workspace, cf: CampaignFile, old: Campaign) -> None:
    """Refresh ``prompts/<name>.md`` if it exists; keep a copy first if it was hand-edited."""
    from sessionctl import render

    md = ws.rendered_path(cf.name)
    if not md.exists():
        return
    current = md.read_text(encoding="utf-8")
    try:
        previous: str | None = render.render_prompt(old, ws=ws)
    except SessionctlError:
        previous = None  # cannot tell whether it was hand-edited: keep a copy to be safe
    if current != previous:
        backup = ws.scratch / "backups" / f"{cf.name}.md.r{old.revision}"
        ws.ensure_scratch()
        atomic_write(backup, current)
        cf.notices.append(
            f"{display_path(ws, md)} had hand edits; kept them in {display_path(ws, backup)} "
            "and re-rendered it from the YAML"
        )
    atomic_write(md, render.render_prompt(cf.campaign, ws=ws))


@contextlib.contextmanager
def edit(ws: Workspace, name: str) -> Iterator[CampaignFile]:
    """Under the campaign lock: load, yield the file for editing, save (bumping) on success."""
    with ws.lock(name):
        cf = load(ws, name)
        try:
            yield cf
        except UsageError as exc:
            shown = display_path(ws, cf.path)
            if str(exc).startswith(shown):
                raise
            # Name the file: the edit helpers only know the document.
            raise type(exc)(f"{shown}: {exc}") from None
        save(ws, cf)


def create(ws: Workspace, name: str, text: str, *, force: bool = False) -> CampaignFile:
    """Write a brand-new campaign file from YAML text (validated first)."""
    path = ws.campaign_path(name)
    source = display_path(ws, path)
    cf = loads(text, name=name, source=source)
    with ws.lock(name):
        if path.exists() and not force:
            raise UsageError(f"{source}: already exists; pass --force to replace it")
        atomic_write(path, text)
    cf.path = path
    return cf


# --- the rendered prompt (prompts/<name>.md): written and checked from the YAML ----------------


def write_prompt(ws: Workspace, name: str) -> Path:
    """Render ``prompts/<name>.yaml`` and atomically write ``prompts/<name>.md``."""
    from sessionctl import render

    with ws.lock(name):
        text = render.render_prompt(read(ws, name), ws=ws)
        path = ws.rendered_path(name)
        atomic_write(path, text)
    return path


@dataclass(frozen=True)
class Drift:
    """The rendered .md does not match what the YAML renders to."""

    path: Path
    missing: bool
    diff: str
    changed_lines: int

    def message(self, shown: str) -> str:
        if self.missing:
            return f"{shown}: not rendered yet; run `sessionctl prompt render`"
        return (
            f"{shown}: differs from the YAML rendering ({self.changed_lines} changed line(s)); "
            "edit the YAML (or use `sessionctl next ...`) and run `sessionctl prompt render`"
        )


def check_prompt(ws: Workspace, name: str) -> Drift | None:
    """Validate the campaign and compare its rendering with ``prompts/<name>.md``."""
    from sessionctl import render

    expected = render.render_prompt(read(ws, name), ws=ws)
    path = ws.rendered_path(name)
    try:
        actual = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Drift(path=path, missing=True, diff="", changed_lines=0)
    if actual == expected:
        return None
    shown = display_path(ws, path)
    lines = list(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"{shown} (rendered from the YAML)",
            tofile=f"{shown} (on disk)",
        )
    )
    changed = sum(1 for ln in lines if ln[:1] in "+-" and not ln.startswith(("+++", "---")))
    return Drift(path=path, missing=False, diff="".join(lines), changed_lines=changed)


# --- read-only loads, cached ------------------------------------------------------------------
# Parsing the round-trip YAML (ruamel) costs about 0.4 ms per next step: most of what `next list`
# or `prompt render` spend on a long campaign. A successful `read` keeps the document as plain
# JSON data in .sessionctl/cache/<name>.campaign.json (see sessionctl.campaign.cache); the next
# `read` of the same text validates that data again (the typed model is rebuilt, so every rule
# still runs) without the parse. Any other text, a broken one included, goes through `load`, so
# errors are reported exactly as before. Commands that edit the YAML use `load`/`edit`.


def read(ws: Workspace, name: str) -> Campaign:
    """The validated campaign ``prompts/<name>.yaml`` (read-only), parsed at most once per text."""
    from sessionctl.campaign import schema

    source = display_path(ws, ws.campaign_path(name))
    key = fingerprint()
    hit = cache.lookup(
        ws, name, "campaign", key, lambda data: schema.build(data, name=name, source=source)
    )
    if hit is not None:
        return hit
    cf = load(ws, name)
    data = _plain(cf.doc)
    # Cache only what validates to the very same campaign from plain data (a YAML timestamp,
    # say, would not survive JSON): otherwise every read parses, as before.
    if data is not None and schema.build(data, name=name, source=source) == cf.campaign:
        cache.save(ws, name, "campaign", key, cf.text, data)
    return cf.campaign


def _plain(doc: Any) -> Any:
    """The round-trip document as plain JSON data, or None when it does not fit JSON."""
    import json

    try:
        return json.loads(json.dumps(doc, allow_nan=False))
    except (TypeError, ValueError):
        return None
