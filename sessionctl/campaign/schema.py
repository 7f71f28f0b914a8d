"""Validate a parsed campaign document into :mod:`sessionctl.campaign.model` records.

The model's dataclasses *are* the schema: field names are YAML keys, type hints say what each
value must be. Every problem is reported as ``file:line:col: path.to.field: message`` using the
positions ruamel.yaml records on round-trip nodes, so the user can jump straight to it.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from sessionctl.campaign import model
from sessionctl.errors import ConfigError
from sessionctl.units import parse_duration

T = TypeVar("T")


class Location:
    """Where a node sits in the source file (1-based line and column)."""

    def __init__(self, source: str, line: int | None = None, col: int | None = None) -> None:
        self.source = source
        self.line = line
        self.col = col

    def __str__(self) -> str:
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}:{self.col}"


def error(loc: Location, path: str, message: str) -> ConfigError:
    """Build the one-line error for a field."""
    where = f"{loc}: " if str(loc) else ""
    return ConfigError(f"{where}{path or '(top level)'}: {message}")


def _key_loc(container: Any, key: Any, source: str, fallback: Location) -> Location:
    lc = getattr(container, "lc", None)
    if lc is None:
        return fallback
    try:
        if isinstance(key, int):
            line, col = lc.item(key)
        else:
            line, col = lc.key(key)
    except (KeyError, IndexError, TypeError, AttributeError):
        return fallback
    return Location(source, line + 1, col + 1)


def _value_loc(container: Any, key: Any, source: str, fallback: Location) -> Location:
    lc = getattr(container, "lc", None)
    if lc is None or isinstance(key, int):
        return _key_loc(container, key, source, fallback)
    try:
        line, col = lc.value(key)
    except (KeyError, IndexError, TypeError, AttributeError):
        return _key_loc(container, key, source, fallback)
    return Location(source, line + 1, col + 1)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


class _Builder:
    def __init__(self, source: str) -> None:
        self.source = source

    def convert(
        self, value: Any, tp: Any, path: str, loc: Location, meta: Mapping[str, Any]
    ) -> Any:
        origin = get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if value is None:
                return None
            last: ConfigError | None = None
            for arg in args:
                try:
                    return self.convert(value, arg, path, loc, meta)
                except ConfigError as exc:
                    last = exc
            if len(args) == 1 and last is not None:
                raise last
            raise error(loc, path, f"expected {_type_name(tp)}, got {_describe(value)}")
        if value is None:
            raise error(loc, path, f"expected {_type_name(tp)}, got nothing (null)")
        if meta.get("duration"):
            try:
                return parse_duration(value)
            except ValueError as exc:
                raise error(loc, path, str(exc)) from None
        if origin is Literal:
            allowed = get_args(tp)
            if value not in allowed:
                raise error(
                    loc, path, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}"
                )
            return value
        if origin is tuple:
            (item_tp, *_rest) = get_args(tp)
            if meta.get("argv") and isinstance(value, str):
                try:
                    return tuple(shlex.split(value))
                except ValueError as exc:
                    raise error(loc, path, f"cannot split into arguments: {exc}") from None
            if not isinstance(value, list):
                raise error(loc, path, f"expected {_type_name(tp)}, got {_describe(value)}")
            return tuple(
                self.convert(
                    item,
                    item_tp,
                    f"{path}[{i}]",
                    _key_loc(value, i, self.source, loc),
                    {"duration": meta.get("duration")} if meta.get("duration") else {},
                )
                for i, item in enumerate(value)
            )
        if origin is dict:
            key_tp, val_tp = get_args(tp)
            if not isinstance(value, Mapping):
                raise error(loc, path, f"expected a mapping, got {_describe(value)}")
            out: dict[Any, Any] = {}
            for k, v in value.items():
                kloc = _value_loc(value, k, self.source, loc)
                out[self.convert(k, key_tp, f"{path}.{k}", kloc, {})] = self.convert(
                    v, val_tp, f"{path}.{k}", kloc, {}
                )
            return out
        if dataclasses.is_dataclass(tp):
            return self.record(value, tp, path, loc)
        if tp is bool:
            if not isinstance(value, bool):
                raise error(loc, path, f"expected true or false, got {_describe(value)}")
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise error(loc, path, f"expected an integer, got {_describe(value)}")
            if abs(value) >= 2**63:
                raise error(loc, path, f"{_describe(value)} is out of range (at most 19 digits)")
            return int(value)
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise error(loc, path, f"expected a number, got {_describe(value)}")
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                # .inf/.nan (or 400 digits) would crash or block later: a threshold never met.
                raise error(loc, path, f"expected a finite number, got {_describe(value)}")
            return number
        if tp is str:
            if isinstance(value, (bool, list, Mapping)):
                raise error(loc, path, f"expected a string, got {_describe(value)}")
            # Numbers written where text is expected (a title '2024') are taken as text.
            return str(value)
        raise error(loc, path, f"unsupported type {tp!r} (a sessionctl bug)")

    def record(self, value: Any, cls: Any, path: str, loc: Location) -> Any:
        if not isinstance(value, Mapping):
            raise error(loc, path, f"expected a mapping, got {_describe(value)}")
        hints = get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key in value:
            kpath = f"{path}.{key}" if path else str(key)
            f = fields.get(key) if isinstance(key, str) else None
            if f is None or f.metadata.get("derived"):
                known = ", ".join(n for n, fd in fields.items() if not fd.metadata.get("derived"))
                raise error(
                    _key_loc(value, key, self.source, loc),
                    kpath,
                    f"unknown key (known: {known})",
                )
            kwargs[key] = self.convert(
                value[key], hints[key], kpath, _value_loc(value, key, self.source, loc), f.metadata
            )
        for name, f in fields.items():
            if name in kwargs or f.metadata.get("derived"):
                continue
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                where = f"{path}.{name}" if path else name
                raise error(loc, where, "required key is missing")
        return cls(**kwargs)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        short = value if len(value) <= 40 else value[:37] + "..."
        return f"{short!r}"
    if isinstance(value, int) and abs(value) >= 10**24:  # str() refuses past 4,300 digits
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return repr(value)


def build(data: Any, *, name: str, source: str | Path) -> model.Campaign:
    """Validate the parsed YAML ``data`` and return the Campaign (raises ConfigError)."""
    src = str(source)
    builder = _Builder(src)
    top = Location(src, 1, 1)
    if not isinstance(data, Mapping):
        raise error(top, "", f"a campaign file must be a mapping, got {_describe(data)}")
    schema = data.get("schema")
    if schema is None:
        raise error(top, "schema", f"required key is missing; add `schema: {model.SCHEMA_VERSION}`")
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise error(_value_loc(data, "schema", src, top), "schema", "expected an integer")
    if schema > model.SCHEMA_VERSION:
        raise error(
            _value_loc(data, "schema", src, top),
            "schema",
            f"version {schema} is newer than this sessionctl understands "
            f"({model.SCHEMA_VERSION}); upgrade sessionctl",
        )
    campaign = builder.record(data, model.Campaign, "", top)
    campaign = dataclasses.replace(campaign, name=name)
    check_semantics(data, campaign, src)
    return campaign


def check_semantics(data: Any, c: model.Campaign, source: str) -> None:
    """Cross-field rules the types cannot express (unique ids, references, driver config)."""
    top = Location(source, 1, 1)

    def loc_of(section: str, index: int, key: str | None = None) -> Location:
        seq = data.get(section) if isinstance(data, Mapping) else None
        if seq is None:
            return top
        item_loc = _key_loc(seq, index, source, top)
        if key is not None:
            try:
                return _value_loc(seq[index], key, source, item_loc)
            except (IndexError, KeyError, TypeError):
                return item_loc
        return item_loc

    if c.revision < 0:
        raise error(_value_loc(data, "revision", source, top), "revision", "must be >= 0")
    _unique(
        [s.id for s in c.next_steps],
        lambda i: (loc_of("next_steps", i, "id"), f"next_steps[{i}].id"),
    )
    _unique(
        [g.id for g in c.next_step_groups],
        lambda i: (loc_of("next_step_groups", i, "id"), f"next_step_groups[{i}].id"),
    )
    _unique(
        [s.id for s in c.sections], lambda i: (loc_of("sections", i, "id"), f"sections[{i}].id")
    )
    _unique(
        [b.name for b in c.benchmarks],
        lambda i: (loc_of("benchmarks", i, "name"), f"benchmarks[{i}].name"),
    )
    _unique([s.id for s in c.retired], lambda i: (loc_of("retired", i, "id"), f"retired[{i}].id"))
    active = {s.id for s in c.next_steps}
    for i, r in enumerate(c.retired):
        if r.id in active:
            raise error(
                loc_of("retired", i, "id"),
                f"retired[{i}].id",
                f"{r.id!r} is also in next_steps; keep it in one list "
                f"(`sessionctl next unretire {r.id}` or `sessionctl next drop {r.id}`)",
            )
    if c.log is not None:
        log = Path(c.log)
        if not c.log.strip() or log.is_absolute() or ".." in log.parts:
            raise error(
                _value_loc(data, "log", source, top),
                "log",
                f"{c.log!r}: give a path inside the workspace, e.g. logs/{c.name}-perf-log.md",
            )
    if c.headline is not None and not c.headline.metric.strip():
        raise error(
            _value_loc(data.get("headline"), "metric", source, top),
            "headline.metric",
            "name a recorded value, e.g. qps@c64 or p50_ms",
        )
    groups = {g.id for g in c.next_step_groups}
    for i, s in enumerate(c.next_steps):
        if s.group is not None and s.group not in groups:
            raise error(
                loc_of("next_steps", i, "group"),
                f"next_steps[{i}].group",
                f"no group {s.group!r} in next_step_groups "
                f"(have: {', '.join(sorted(groups)) or 'none'})",
            )
        if not s.id.strip() or any(ch.isspace() for ch in s.id):
            raise error(
                loc_of("next_steps", i, "id"),
                f"next_steps[{i}].id",
                f"ids are single words, got {s.id!r}",
            )
    for i, b in enumerate(c.benchmarks):
        p = f"benchmarks[{i}]"
        if not b.concurrency or any(n < 1 for n in b.concurrency):
            raise error(
                loc_of("benchmarks", i, "concurrency"), f"{p}.concurrency", "levels must be >= 1"
            )
        if b.repeat < 1:
            raise error(loc_of("benchmarks", i, "repeat"), f"{p}.repeat", "must be >= 1")
        if b.rate is not None and not b.rate > 0:
            raise error(loc_of("benchmarks", i, "rate"), f"{p}.rate", "must be > 0 (queries/s)")
        if b.driver == "builtin" and not (b.query or b.queries):
            raise error(loc_of("benchmarks", i), p, "driver builtin needs `query` or `queries`")
        if b.driver == "pgbench" and not (b.script or b.query):
            raise error(loc_of("benchmarks", i), p, "driver pgbench needs `script` (or `query`)")
        if b.driver == "dbbench" and not (b.config or b.query):
            raise error(
                loc_of("benchmarks", i),
                p,
                "driver dbbench needs `config` (the ini text) or `query`",
            )
        if b.driver == "ddl" and b.ddl is None:
            raise error(loc_of("benchmarks", i), p, "driver ddl needs a `ddl:` mapping")
    if c.target.artifacts_keep < 1:
        where = _value_loc(data.get("target"), "artifacts_keep", source, top)
        raise error(where, "target.artifacts_keep", "must be >= 1 (the open session's own build)")
    cmp = c.compare
    limits = (
        ("pairs", cmp.pairs >= 2, "must be >= 2 (a pair's ratio needs another to vary against)"),
        ("warmup_runs", cmp.warmup_runs >= 0, "must be >= 0"),
        ("open_loop_load", 0 <= cmp.open_loop_load < 1,
         "must be in [0, 1): a fraction of the saturated throughput (0 turns it off)"),
    )  # fmt: skip
    for key, ok, message in limits:
        if not ok:
            raise error(_value_loc(data.get("compare"), key, source, top), f"compare.{key}",
                        message)  # fmt: skip
    _check_layout(data, c, source)


def _unique(ids: list[str], where: Any) -> None:
    seen: set[str] = set()
    for i, ident in enumerate(ids):
        if ident in seen:
            loc, path = where(i)
            raise error(loc, path, f"duplicate id {ident!r}")
        seen.add(ident)


# Render layout: built-in items (see sessionctl.render.BUILTIN), their ".<id>" forms, section ids.
LAYOUT_BUILTIN = (
    "context",
    "goal",
    "rules",
    "workflow",
    "target",
    "benchmarks",
    "metrics",
    "status",
    "completed",
    "profiling_notes",
    "next_steps",
    "retired",
    "sessionctl",
)


def _check_layout(data: Any, c: model.Campaign, source: str) -> None:
    """``layout`` and ``headings`` may only name things that exist."""
    top = Location(source, 1, 1)
    sections = {s.id for s in c.sections}
    for i, s in enumerate(c.sections):
        if s.id in LAYOUT_BUILTIN or "." in s.id:
            seq = data.get("sections")
            raise error(
                _value_loc(seq[i], "id", source, top) if seq else top,
                f"sections[{i}].id",
                f"{s.id!r} is reserved for a built-in section (or has a '.'); rename it",
            )
    subs = {
        "benchmarks": {b.name for b in c.benchmarks},
        "next_steps": {g.id for g in c.next_step_groups},
        "completed": {"optimizations", "diagnostics"},
    }
    known = set(LAYOUT_BUILTIN) | sections | {f"{k}.{v}" for k, vs in subs.items() for v in vs}

    def describe(item: str) -> str:
        base, dot, sub = item.partition(".")
        if dot and base in subs:
            what = base[:-1] if base != "completed" else "completed list"
            have = ", ".join(sorted(subs[base])) or "none"
            return f"no {what} {sub!r} (have: {have})"
        return f"unknown item {item!r} (built-in: {', '.join(LAYOUT_BUILTIN)}; or a section id)"

    seen: set[str] = set()
    for i, item in enumerate(c.layout):
        loc = _key_loc(data.get("layout"), i, source, top)
        if item not in known:
            raise error(loc, f"layout[{i}]", describe(item))
        if item in seen:
            raise error(loc, f"layout[{i}]", f"{item!r} is listed twice")
        seen.add(item)
    for key in c.headings:
        if key != "title" and key not in known:
            raise error(
                _value_loc(data.get("headings"), key, source, top), f"headings.{key}", describe(key)
            )
