"""The documentation stays true: help texts, docs coverage, the schema list, --json, CI.

The manual is the MkDocs site in ``docs/`` (every ``docs/*.md`` page, whoever adds it); the
README is its front page. In the spirit of sqlite-utils' ``tests/test_docs.py``: a command
without help text, a command no page mentions, a command line on any page that no longer
parses, or a campaign key missing from the schema list in ``docs/configuration.md`` fails the
suite. ``python tests/test_docs.py`` prints the generated part of that list (between the
``schema:begin``/``schema:end`` markers) so it can be pasted back after model.py changes; the
descriptions are hand-written.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import shlex
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import typer.main
from typer.testing import CliRunner

from sessionctl.campaign import model
from sessionctl.cli import app

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
MKDOCS = REPO / "mkdocs.yml"
BENCH_README = REPO / "benchmarks" / "README.md"
CI = REPO / ".ci" / "run"

# The README's fresh-machine commands, verbatim: the first installs and runs the demo, the second
# installs and runs the tests (and .ci/run runs exactly that second one).
FRESH_MACHINE = (
    "python -m pip install -c .ci/constraints.txt -e '.[demo]' && sessionctl demo",
    "python -m pip install -c .ci/constraints.txt -e '.[test]' && python -m pytest",
)

# Commands that show data but have no --json, each with the reason. Empty today: every command
# prints something a script may want. Add an entry only with a reason a reviewer would accept.
NO_JSON: dict[str, str] = {}


# --- walking the command tree ---------------------------------------------------------------


def walk(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    """Yield ('sessionctl prompt render', command) for every command and group, depth first."""
    name = " ".join(("sessionctl", *path))
    yield name, cmd
    if isinstance(cmd, click.Group):
        for sub_name, sub in sorted(cmd.commands.items()):
            if not sub.hidden:
                yield from walk(sub, (*path, sub_name))


def root() -> click.Group:
    cmd = typer.main.get_command(app)
    assert isinstance(cmd, click.Group)
    return cmd


COMMANDS = dict(walk(root()))
LEAVES = {n: c for n, c in COMMANDS.items() if not isinstance(c, click.Group)}
TOP_LEVEL = sorted(root().commands)


def test_the_tree_is_what_we_think() -> None:
    # Guards the walk itself: if it found nothing, every other test here would pass vacuously.
    assert len(LEAVES) >= 25
    assert {"sessionctl prompt render", "sessionctl next resolve", "sessionctl bench"} <= set(
        LEAVES
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name: str) -> None:
    cmd = COMMANDS[name]
    text = (cmd.help or cmd.short_help or "").strip()
    assert text, f"{name}: no help text (add a docstring or help=)"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_and_argument_has_help(name: str) -> None:
    cmd = COMMANDS[name]
    missing = [
        p.name
        for p in cmd.params
        if not getattr(p, "hidden", False) and not (getattr(p, "help", None) or "").strip()
    ]
    assert not missing, f"{name}: parameters without help=: {missing}"


def has_json(cmd: click.Command) -> bool:
    return any("--json" in p.opts for p in cmd.params if isinstance(p, click.Option))


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_every_command_offers_json(name: str) -> None:
    if name in NO_JSON:
        pytest.skip(NO_JSON[name])
    assert has_json(LEAVES[name]), f"{name}: no --json (or add it to NO_JSON with a reason)"


def test_json_allow_list_is_not_stale() -> None:
    for name, reason in NO_JSON.items():
        assert reason.strip(), f"NO_JSON[{name!r}]: give a reason"
        assert name in LEAVES, f"NO_JSON[{name!r}]: no such command any more"
        assert not has_json(LEAVES[name]), f"NO_JSON[{name!r}]: it has --json now; drop the entry"


# --- the pages: the README and every docs/*.md -------------------------------------------------


def pages() -> dict[str, str]:
    """Every page a reader sees, by its path in the repository: the README, then docs/*.md."""
    paths = [README, *sorted(DOCS.glob("*.md"))]
    return {p.relative_to(REPO).as_posix(): p.read_text(encoding="utf-8") for p in paths}


def page(name: str) -> str:
    path = DOCS / name
    assert path.is_file(), f"docs/{name}: missing (the test looks for this topic there)"
    return path.read_text(encoding="utf-8")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def all_pages() -> str:
    return "\n\n".join(pages().values())


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every ``` fenced block."""
    return [
        (m[1].strip(), m[2]) for m in re.finditer(r"^```([^\n]*)\n(.*?)^```", text, re.M | re.S)
    ]


def inline_spans(text: str) -> list[str]:
    """Inline `code spans` outside fenced blocks."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.findall(r"`([^`\n]+)`", prose)


def section(text: str, heading: str) -> str:
    """The body of the markdown section with this heading (up to the next of the same level)."""
    m = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.M)
    assert m, f"no section {heading!r}"
    level = len(m[1])
    rest = text[m.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def mentions(spans: list[str], command: str) -> bool:
    pattern = re.compile(rf"(^|\s){re.escape(command)}(\s|$)")
    return any(pattern.search(s) for s in spans)


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_every_top_level_command_is_in_a_docs_code_span(name: str) -> None:
    assert mentions(inline_spans(all_pages()), f"sessionctl {name}"), (
        f"docs/: no page has a `sessionctl {name}` code span; add it to its topic's page"
    )


@pytest.mark.parametrize("name", sorted(n for n in COMMANDS if n.count(" ") >= 2))
def test_every_subcommand_is_shown_in_docs_code(name: str) -> None:
    text = all_pages()
    code = inline_spans(text) + [
        line.removeprefix("$ ") for _, body in fenced_blocks(text) for line in body.splitlines()
    ]
    assert mentions(code, name), f"docs/: `{name}` never appears in code on any page; show it"


def command_lines(text: str) -> list[str]:
    """Every `sessionctl ...` command line in a page's fenced shell/console blocks."""
    lines = []
    for info, body in fenced_blocks(text):
        if info not in ("sh", "console", "shell", "bash"):
            continue
        for line in body.splitlines():
            line = line.strip().removeprefix("$ ")
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("sessionctl "):
                    lines.append(part)
    return lines


def docs_command_lines() -> list[tuple[str, str]]:
    """(page, command line) for every page."""
    return [(name, line) for name, text in pages().items() for line in command_lines(text)]


@functools.cache
def inert_root() -> click.Group:
    """A fresh copy of the command tree whose commands do nothing (for parsing only)."""
    group = root()
    for cmd in dict(walk(group)).values():
        if not isinstance(cmd, click.Group):
            cmd.callback = lambda **_: None
    return group


def parse_only(argv: list[str]) -> None:
    """Parse argv with the real command tree, calling no command (raises click.UsageError)."""
    inert_root().main(argv, prog_name="sessionctl", standalone_mode=False)


def test_the_pages_have_command_lines() -> None:
    # Guards the collection: the pages moved out of the README must still be found.
    assert len(docs_command_lines()) >= 30
    assert len(command_lines(readme())) >= 9  # the loop in ten lines
    assert {name for name, _ in docs_command_lines()} >= {"README.md", "docs/index.md"}


@pytest.mark.parametrize(("name", "line"), docs_command_lines())
def test_every_command_line_on_every_page_parses(name: str, line: str) -> None:
    argv = shlex.split(line, comments=True)[1:]
    try:
        parse_only(argv)
    except click.UsageError as exc:
        pytest.fail(f"{name}: `{line}` does not parse: {exc.format_message()}")


def test_parse_only_rejects_what_the_cli_rejects() -> None:
    # The check above must be able to fail.
    with pytest.raises(click.UsageError):
        parse_only(["bench", "--no-such-option"])
    with pytest.raises(click.UsageError):
        parse_only(["next", "resolve", "some-step"])  # --as is required


def test_yaml_excerpts_on_every_page_are_valid_campaigns() -> None:
    from sessionctl.campaign import store

    blocks = [
        (name, body)
        for name, text in pages().items()
        for info, body in fenced_blocks(text)
        if info == "yaml"
    ]
    assert blocks, "docs/: no yaml example"
    for name, body in blocks:
        if not re.search(r"^schema:", body, re.M):
            # An excerpt (`benchmarks:` ...) is checked inside the smallest whole campaign.
            body = f"schema: 1\nrevision: 1\ntitle: excerpt\n{body}"
        store.loads(body, name="docs", source=name)  # raises ConfigError with line:col


def test_an_invalid_excerpt_fails() -> None:
    from sessionctl.campaign import store
    from sessionctl.errors import ConfigError

    with pytest.raises(ConfigError):
        store.loads(
            "schema: 1\nrevision: 1\ntitle: excerpt\nbenchmarks:\n  - name: x\n    driver: nope\n",
            name="docs",
            source="x",
        )


def test_yaml_check_can_fail() -> None:
    from sessionctl.campaign import store
    from sessionctl.errors import ConfigError

    with pytest.raises(ConfigError):
        store.loads("schema: 1\nrevision: 1\ntitle: t\nlast_sesion: 3\n", name="x", source="x")


# --- the fresh-machine commands and CI ------------------------------------------------------


@pytest.mark.parametrize("path", [README, DOCS / "index.md"], ids=["README.md", "docs/index.md"])
def test_the_two_fresh_machine_commands_are_exactly_these(path: Path) -> None:
    body = section(path.read_text(encoding="utf-8"), "Fresh machine: two commands")
    blocks = [b.strip() for _, b in fenced_blocks(body)]
    assert blocks == list(FRESH_MACHINE), f"{path.name}: the two fresh-machine commands changed"


def commands_of(line: str) -> list[list[str]]:
    """The argv of each ``&&``-joined command in a shell line, pip's ``-q`` dropped."""
    return [
        [w for w in shlex.split(part) if w not in ("-q", "--quiet")] for part in line.split("&&")
    ]


def test_ci_runs_the_readme_test_command() -> None:
    wanted = commands_of(FRESH_MACHINE[1])
    script = CI.read_text(encoding="utf-8").splitlines()
    # Only the lines that run pytest: other lines (`repo="$(cd "$(dirname …)" && pwd)"`) split
    # on `&&` into halves shlex cannot read.
    lines = [commands_of(ln) for ln in script if "pytest" in ln and not ln.lstrip().startswith("#")]
    assert wanted in lines, f".ci/run: does not run the README's test command {FRESH_MACHINE[1]!r}"


def test_ci_comparison_can_fail() -> None:
    assert commands_of(
        "python -m pip install -q -c .ci/constraints.txt -e '.[test]' && python -m pytest"
    ) == commands_of(FRESH_MACHINE[1])
    assert commands_of("python -m pip install -e '.[test]' && python -m pytest") != (
        commands_of(FRESH_MACHINE[1])
    )


def test_ci_runs_in_a_fresh_clone_and_venv_before_the_tests() -> None:
    # Nothing installed on the machine may make CI pass: the test command runs in a new venv on
    # a new clone, so the clone and the venv must both come before it.
    script = [ln.strip() for ln in CI.read_text(encoding="utf-8").splitlines()]
    test_line = next(i for i, ln in enumerate(script) if "python -m pytest" in ln)
    clone = next(i for i, ln in enumerate(script) if ln.startswith("git clone"))
    venv = next(i for i, ln in enumerate(script) if ln.startswith("python3 -m venv"))
    activate = next(i for i, ln in enumerate(script) if ln.startswith(". ") and "activate" in ln)
    assert clone < venv < activate < test_line


def test_the_extras_the_commands_install_exist() -> None:
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for command in FRESH_MACHINE:
        for extra in re.findall(r"\.\[(\w+)\]", command):
            assert extra in extras, f"pyproject.toml: no [{extra}] extra for `{command}`"


# --- the docs site ---------------------------------------------------------------------------


def mkdocs_config() -> dict[str, Any]:
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(MKDOCS.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "mkdocs.yml: not a mapping"
    return data


def nav_pages(nav: Any) -> set[str]:
    """Every page file a mkdocs `nav:` names, however nested."""
    if isinstance(nav, str):
        return {nav} if nav.endswith(".md") else set()
    if isinstance(nav, dict):
        return set().union(*(nav_pages(v) for v in nav.values()))
    if isinstance(nav, list):
        return set().union(*(nav_pages(v) for v in nav))
    return set()


def test_the_site_is_mkdocs_material_built_from_docs() -> None:
    config = mkdocs_config()
    assert config.get("docs_dir", "docs") == "docs"
    assert config["theme"]["name"] == "material"
    assert (DOCS / "index.md").is_file()


def test_every_docs_page_is_in_the_site() -> None:
    # No `nav:` means MkDocs shows every page; a `nav:` someone adds must then list them all, so
    # a page another engineer drops into docs/ never silently goes missing from the site.
    nav = mkdocs_config().get("nav")
    if nav is None:
        return
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    missing = on_disk - nav_pages(nav)
    assert not missing, f"mkdocs.yml: nav: leaves out {sorted(missing)}; add them"


def test_nav_check_can_fail() -> None:
    assert nav_pages(["index.md", {"Guide": [{"Sessions": "sessions.md"}]}]) == {
        "index.md",
        "sessions.md",
    }
    assert "demo.md" not in nav_pages(["index.md"])


def relative_links(text: str) -> list[str]:
    """Link targets of [text](target) that are files in this repository (no URL, no anchor)."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    targets = re.findall(r"\]\(([^)\s]+)\)", prose)
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:|#", t)]


@pytest.mark.parametrize("name", sorted(pages()))
def test_links_between_pages_resolve(name: str) -> None:
    base = (REPO / name).parent
    broken = [t for t in relative_links(pages()[name]) if not (base / t).exists()]
    assert not broken, f"{name}: links to missing files {broken}"


def test_docs_pages_link_only_docs_pages() -> None:
    # The site holds docs/ alone: a link from a page to a repository file breaks the strict build.
    for name, text in pages().items():
        if name.startswith("docs/"):
            outside = [t for t in relative_links(text) if not t.endswith(".md") or "../" in t]
            assert not outside, f"{name}: links outside docs/ {outside}; quote the path instead"


def test_readme_is_a_front_page() -> None:
    lines = readme().splitlines()
    assert len(lines) <= 150, f"README.md: {len(lines)} lines; move the manual into docs/"
    # It points into the manual (the site lists every page, so a new page needs no README edit).
    assert "docs/index.md" in relative_links(readme()), "README.md: no link to docs/index.md"


def test_the_docs_extra_has_lower_bounds_and_is_locked() -> None:
    # Ranges stay open upwards (an upper bound only where a known release breaks us, with a
    # comment in pyproject.toml); the exact versions CI builds with come from the lock.
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {re.match(r"[\w.-]+", req)[0]: req for req in extras["docs"]}  # type: ignore[index]
    assert set(names) >= {"mkdocs", "mkdocs-material"}
    lock = (REPO / ".ci" / "constraints.txt").read_text().lower()
    for name, req in names.items():
        assert ">=" in req, f"[docs] {req!r}: give a lower bound"
        assert "<" not in req.replace("<=", ""), f"[docs] {req!r}: no upper bound without a reason"
        assert f"\n{name.lower()}==" in lock, f".ci/constraints.txt: {name} is not locked"


def test_ci_builds_the_docs_strictly_after_the_type_check() -> None:
    script = [ln.strip() for ln in CI.read_text(encoding="utf-8").splitlines()]
    mypy = script.index("python -m mypy sessionctl")
    install = script.index("python -m pip install -c .ci/constraints.txt -e '.[docs]'")
    build = script.index('python -m mkdocs build --strict -d "$work/site"')
    assert mypy < install < build


# --- the campaign schema list -----------------------------------------------------------------


def describe(tp: Any) -> str:
    """A reader's name for a field type: int, text, list of text, a | b, mapping..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return " or ".join(describe(a) for a in rest)
    if origin is tuple:
        inner = describe(args[0])
        return "list of mappings" if inner == "mapping" else f"list of {inner}"
    if origin is dict:
        return "map of text"
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return {int: "int", float: "number", str: "text", bool: "bool"}[tp]


def nested_class(tp: Any) -> type | None:
    """The dataclass a field holds (directly or as a list), if any."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        tp = args[0]
    elif origin in (typing.Union, types.UnionType):
        tp = next(a for a in args if a is not type(None))
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def schema_keys() -> list[tuple[str, str, str]]:
    """(key, line prefix, keys suffix) for every top-level campaign key, in model order."""
    hints = typing.get_type_hints(model.Campaign)
    out = []
    for f in dataclasses.fields(model.Campaign):
        if f.metadata.get("derived"):
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        bits = [describe(hints[f.name])]
        if required:
            bits.append("required")
        elif isinstance(f.default, int | float | str) and f.default != "":
            bits.append(f"default {f.default}")
        prefix = f"- `{f.name}` ({', '.join(bits)}):"
        nested = nested_class(hints[f.name])
        suffix = ""
        if nested is not None:
            keys = ", ".join(f"`{g.name}`" for g in dataclasses.fields(nested))
            suffix = f"Keys: {keys}."
        out.append((f.name, prefix, suffix))
    return out


def schema_lines() -> list[str]:
    text = page("configuration.md")
    m = re.search(r"<!-- schema:begin -->\n(.*?)<!-- schema:end -->", text, re.S)
    assert m, "docs/configuration.md: no <!-- schema:begin --> ... <!-- schema:end --> list"
    return [ln for ln in m[1].splitlines() if ln.startswith("- ")]


def test_schema_list_matches_the_model() -> None:
    lines = schema_lines()
    expected = schema_keys()
    got_keys = [re.match(r"- `([^`]+)`", ln)[1] for ln in lines]  # type: ignore[index]
    assert got_keys == [k for k, _, _ in expected], (
        "docs/configuration.md schema list: keys differ from sessionctl/campaign/model.py "
        "(run `python tests/test_docs.py` for the generated list)"
    )
    for line, (key, prefix, suffix) in zip(lines, expected, strict=True):
        where = f"docs/configuration.md schema list: {key}"
        assert line.startswith(prefix + " "), f"{where}: expected {prefix!r}"
        assert line.endswith(suffix), f"{where}: should end with {suffix!r}"
        assert len(line) > len(prefix) + len(suffix) + 10, f"{key}: describe it in a few words"


def test_schema_generator_sees_every_key() -> None:
    keys = [k for k, _, _ in schema_keys()]
    assert keys[:3] == ["schema", "revision", "title"]
    assert {"target", "benchmarks", "next_steps", "compare"} <= set(keys)
    assert "name" not in keys  # derived from the file name, not a YAML key


# --- other lists the pages keep ----------------------------------------------------------------


def test_exit_code_table_matches_errors() -> None:
    from sessionctl import errors

    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    table = section(page("configuration.md"), "Exit codes")
    listed = {int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert listed == codes


def test_verdict_words_are_explained() -> None:
    from sessionctl.verdict.session import VERDICTS

    table = page("verdicts.md")
    for word in VERDICTS:
        assert word in table, f"docs/verdicts.md: verdict {word!r} is not explained"


def test_layout_map_covers_the_package() -> None:
    pkg = REPO / "sessionctl"
    entries = {
        p.stem if p.is_file() else f"{p.name}/"
        for p in pkg.iterdir()
        if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    table = page("code-layout.md")
    listed = set(re.findall(r"^\| `([^`]+)` \|", table, re.M))
    assert entries - listed == set(), f"docs/code-layout.md: missing {sorted(entries - listed)}"
    assert listed - entries == set(), f"docs/code-layout.md: stale {sorted(listed - entries)}"


def test_benchmarks_readme_indexes_every_script() -> None:
    text = BENCH_README.read_text(encoding="utf-8")
    scripts = {p.name for p in (REPO / "benchmarks").glob("*.py")}
    listed = set(re.findall(r"`([\w-]+\.py)`", text))
    assert scripts - listed == set(), f"benchmarks/README.md: not indexed: {scripts - listed}"
    assert listed - scripts == set(), f"benchmarks/README.md: no such script: {listed - scripts}"
    for script in scripts:
        assert f"python benchmarks/{script}" in text, f"benchmarks/README.md: how to run {script}?"


# --- --json really is one JSON document ----------------------------------------------------------

JSON_SMOKE = [
    ["next", "list", "--json"],
    ["prompt", "show", "--json"],
    ["prompt", "check", "--json"],
    ["template", "list", "--json"],
    ["status", "--json"],
    ["run", "--dry-run", "--json"],
    ["metrics", "snapshot", "{data}/mz_after.prom", "--json"],
    ["metrics", "diff", "{data}/mz_before.prom", "{data}/mz_after.prom", "--json"],
    [
        "metrics",
        "quantile",
        "0.99",
        "{data}/mz_after.prom",
        "-m",
        "mz_frontend_peek_seconds",
        "--json",
    ],
]


@pytest.fixture
def example_ws(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The git_repo holding the example pgwire campaign (git instead of jj), rendered."""
    text = (REPO / "prompts" / "pgwire-throughput.yaml").read_text(encoding="utf-8")
    (git_repo / "prompts" / "pgwire.yaml").write_text(text.replace("vcs: jj", "vcs: git"))
    monkeypatch.chdir(git_repo)
    result = CliRunner().invoke(app, ["prompt", "render"])
    assert result.exit_code == 0, result.output
    return git_repo


@pytest.mark.parametrize("argv", JSON_SMOKE, ids=lambda a: " ".join(a[:2]))
def test_json_output_is_one_document(example_ws: Path, argv: list[str]) -> None:
    data = str(REPO / "tests" / "data" / "metrics")
    result = CliRunner().invoke(app, [a.replace("{data}", data) for a in argv])
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)


if __name__ == "__main__":
    for _key, prefix, suffix in schema_keys():
        print(f"{prefix} … {suffix}".rstrip())
