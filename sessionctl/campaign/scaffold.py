"""A new campaign from a few answers: ``sessionctl init``.

:func:`campaign_yaml` writes a commented ``prompts/<name>.yaml`` a person can read and finish by
hand (every value the answers gave, every section to fill in named in a comment); it validates
as it stands, so ``prompt check`` accepts it and ``start`` opens session 1 on its first next step.
:func:`create` writes it with the empty perf log and the rendered prompt. User text goes into
the YAML as JSON strings (valid YAML double-quoted scalars), so quotes, colons and ``#`` in a
query or a URL stay data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sessionctl.errors import UsageError
from sessionctl.files import atomic_write
from sessionctl.workspace import Workspace

DRIVERS = ("builtin", "pgbench", "dbbench", "ddl")
DEFAULT_URL = "postgres://materialize@localhost:6875/materialize"
DEFAULT_QUERY = "select 1"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class Answers:
    """What ``init`` asks for (a missing headline: "<name> performance")."""

    name: str
    target_url: str = DEFAULT_URL
    driver: str = "builtin"
    query: str = DEFAULT_QUERY
    headline: str | None = None


@dataclass(frozen=True)
class Created:
    """The files ``init`` wrote, relative to the workspace root."""

    campaign: str
    yaml: str
    markdown: str
    log: str


def check_name(name: str) -> str:
    """A campaign name is a file name: lower-case letters, digits, ``.``, ``_`` and ``-``."""
    if not _NAME.match(name):
        raise UsageError(
            f"campaign name {name!r}: use lower-case letters, digits, '.', '_' and '-' "
            "(it names prompts/<name>.yaml)"
        )
    return name


def default_name(folder: Path) -> str:
    """The campaign name suggested for a folder (its name, made file-safe)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", folder.name.lower()).strip("-._")
    return slug or "perf"


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _benchmark(a: Answers) -> str:
    """The ``benchmarks:`` entry for the chosen driver."""
    head = f"  - name: {a.name}\n    driver: {a.driver}\n"
    if a.driver == "builtin":
        return (
            head
            + "    # The built-in psycopg closed loop: each client runs the query back to back.\n"
            f"    query: {_q(a.query)}\n"
            "    concurrency: [1, 4]\n    duration: 10s\n    warmup: 2s\n"
        )
    if a.driver == "pgbench":
        return (
            head + "    # pgbench runs this query as its script (or set `script:` to a file).\n"
            f"    query: {_q(a.query)}\n"
            "    concurrency: [1, 4]\n    duration: 10s\n"
        )
    if a.driver == "dbbench":
        return (
            head + "    # dbbench runs this query, one job per concurrency level (or set `config:`"
            " to its ini).\n"
            "    binary: dbbench\n"
            f"    query: {_q(a.query)}\n"
            "    concurrency: [1, 4]\n    duration: 10s\n"
        )
    probe = a.query if a.query != DEFAULT_QUERY else "CREATE TABLE probe_{n} (a int)"
    count = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
    return (
        head + "    # Per-statement DDL latency as the object count grows (docs/ddl-latency.md).\n"
        "    ddl:\n"
        f"      count_sql: {_q(count)}\n"
        "      filler: CREATE TABLE filler_{n} (a int)\n"
        "      levels: [0, 1000]\n"
        "      probes:\n"
        f"        table: {_q(probe)}\n"
        "      probes_per_level: 10\n"
    )


def campaign_yaml(a: Answers) -> str:
    """The commented YAML of a new campaign (validates as it stands)."""
    if a.driver not in DRIVERS:
        raise UsageError(f"--driver {a.driver!r}: use one of {', '.join(DRIVERS)}")
    title = a.headline or f"{a.name} performance"
    return (
        f"# The {a.name} campaign: sessionctl keeps this file as the source of truth (comments,\n"
        f"# key order and quoting survive every write); prompts/{a.name}.md is rendered from it.\n"
        "# Every key is in docs/configuration.md; `sessionctl prompt check` validates the file.\n"
        "schema: 1\n"
        "revision: 1\n"
        "# The rendered prompt's heading: what this campaign is about, in one line.\n"
        f"title: {_q(title)}\n"
        "# The next `sessionctl start` opens session last_session + 1.\n"
        "last_session: 0\n"
        "\n"
        "# What the project is and what the sessions try to achieve (prose for the agent).\n"
        "context: |\n"
        "  Describe the system under test and where its code lives.\n"
        "goal: |\n"
        f"  {title}: measure first, make exactly one change per session, log what it did.\n"
        "rules:\n"
        "  - One change per session, measured before and after.\n"
        "\n"
        "# The server under test. Add `start:` (an argv, never run through a shell) to have\n"
        "# sessionctl start and stop it around every measurement, and `metrics_url:` to scrape\n"
        "# Prometheus before and after each run.\n"
        "target:\n"
        f"  sql_url: {_q(a.target_url)}\n"
        "\n"
        "# What `sessionctl bench` runs (drivers: builtin | pgbench | dbbench | ddl).\n"
        "benchmarks:\n"
        f"{_benchmark(a)}"
        "\n"
        "# The ranked work list: `start` opens a session on the top one. Edit with\n"
        "# `sessionctl next add|edit|move|drop`.\n"
        "next_steps:\n"
        "  - id: first-look\n"
        f"    title: Measure and profile {a.name} to find the first change\n"
        "    body: |\n"
        "      Run `sessionctl bench --phase baseline` and `sessionctl profile run`, record where\n"
        "      the time goes, and add the changes worth trying as next steps.\n"
    )


def create(ws: Workspace, a: Answers, *, force: bool = False) -> Created:
    """Write the campaign YAML, its empty perf log and its rendered prompt."""
    from sessionctl import perflog
    from sessionctl.campaign import store

    name = check_name(a.name)
    text = campaign_yaml(a)
    log = ws.log_path(name)
    for path in (ws.campaign_path(name), log):  # refuse before writing anything
        if path.exists() and not force:
            shown = path.relative_to(ws.root).as_posix()
            raise UsageError(f"{shown}: already exists; pass --force to replace it")
    cf = store.create(ws, name, text, force=force)
    atomic_write(log, perflog.header(cf.campaign.title))
    md = store.write_prompt(ws, name)
    return Created(
        campaign=name,
        yaml=cf.path.relative_to(ws.root).as_posix(),
        markdown=md.relative_to(ws.root).as_posix(),
        log=log.relative_to(ws.root).as_posix(),
    )
