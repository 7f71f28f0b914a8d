"""The campaign: one optimization effort's handoff prompt, as typed, validated records.

The YAML file (``prompts/<name>.yaml``) is the source of truth; these frozen dataclasses are the
validated view of it (built by :func:`sessionctl.campaign.schema.build`). Field names are the YAML
keys. Writes never go through these records: they edit the round-trip YAML document so the user's
comments, key order and quoting survive (see :mod:`sessionctl.campaign.store`).

Field metadata understood by the schema builder:
``duration`` (accepts ``20s``/``1m30s``/numbers, stored as seconds), ``argv`` (a list, or a
string split with shlex, never run through a shell), ``help`` (one line, shown in errors/docs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SCHEMA_VERSION = 1

Driver = Literal["builtin", "pgbench", "dbbench", "ddl"]
MetricKind = Literal["histogram", "counter", "gauge", "summary"]
StopSignal = Literal["SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP"]
VcsKind = Literal["auto", "git", "jj"]
Restart = Literal["per_command", "never", "per_run", "per_benchmark"]


def _dur(help: str = "") -> dict[str, object]:
    return {"duration": True, "help": help}


# --- the target server ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReadyProbe:
    """How to tell the target is ready: an HTTP URL answering 200, or a SQL query succeeding."""

    url: str | None = None
    sql: str | None = None
    timeout: float = field(default=300.0, metadata=_dur("give up waiting after this long"))
    interval: float = field(default=0.5, metadata=_dur())


@dataclass(frozen=True)
class Preflight:
    """A SQL check that must hold before any benchmark runs (e.g. ``>= 100000`` objects)."""

    name: str
    sql: str
    expect: str = field(default="true", metadata={"help": "'>= 100000', '== 1', 'true', '~ regex'"})
    system: bool = field(default=False, metadata={"help": "run as the system user"})
    fix: str | None = field(default=None, metadata={"help": "what to tell the user when it fails"})


@dataclass(frozen=True)
class Target:
    """The server under test: how to start, probe, prepare and stop it."""

    start: tuple[str, ...] | None = field(default=None, metadata={"argv": True})
    notes: str | None = field(
        default=None, metadata={"help": "what to know about the target, in prose (rendered first)"}
    )
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    log: str | None = field(default=None, metadata={"help": "file for the server's output"})
    ready: ReadyProbe | None = None
    stop_signal: StopSignal = "SIGINT"
    stop_timeout: float = field(default=30.0, metadata=_dur())
    sql_url: str | None = None
    system_sql_url: str | None = None
    setup_sql: tuple[str, ...] = ()
    metrics_url: str | None = None
    preflight: tuple[Preflight, ...] = ()
    artifacts: tuple[str, ...] = field(
        default=(), metadata={"help": "built files preserved at start for A/B runs"}
    )
    artifacts_param: str | None = field(
        default=None,
        metadata={
            "help": "placeholder in start (e.g. '{artifacts}') replaced by the artefact folder"
        },
    )
    artifacts_keep: int = field(
        default=2,
        metadata={"help": "sessions whose preserved artefacts are kept; start deletes older ones"},
    )
    restart: Restart = field(
        default="per_command",
        metadata={
            "help": "per_command: start/stop with each command; never: start once, reuse, never "
            "stop (sessionctl target stop); per_run: restart before every run"
        },
    )
    processes: str | None = field(
        default=None,
        metadata={"help": "regex on process names to profile, e.g. 'environmentd|clusterd'"},
    )
    pid: int | None = None


# --- benchmarks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightedQuery:
    """One query of a built-in driver mix, chosen with probability proportional to weight."""

    sql: str
    weight: float = 1.0
    name: str | None = None


@dataclass(frozen=True)
class DdlSpec:
    """Per-statement DDL latency as the object count grows (``driver: ddl``)."""

    count_sql: str
    filler: str = field(metadata={"help": "bulk-create template, {n} = sequence number"})
    filler_prefix: str | None = field(
        default=None, metadata={"help": "name prefix of filler objects (found to resume growth)"}
    )
    levels: tuple[int, ...] = (0,)
    probes: dict[str, str] = field(default_factory=dict)
    cleanup: dict[str, str] = field(default_factory=dict)
    probes_per_level: int = 10
    batch_size: int = 100
    txn_batches: tuple[int, ...] = ()
    names_sql: str | None = field(
        default=None,
        metadata={"help": "query listing existing object names (default: pg_class / mz_objects)"},
    )
    batch_txn: bool = field(
        default=True, metadata={"help": "one transaction per growth batch (false: autocommit)"}
    )
    txn_kinds: tuple[str, ...] = field(
        default=(), metadata={"help": "probe kinds run in txn_batches (default: the first probe)"}
    )


@dataclass(frozen=True)
class Benchmark:
    """A named benchmark: its driver and that driver's configuration."""

    name: str
    driver: Driver = "builtin"
    description: str | None = None
    concurrency: tuple[int, ...] = (1,)
    duration: float = field(default=20.0, metadata=_dur())
    warmup: float = field(default=0.0, metadata=_dur("run before measuring, not counted"))
    repeat: int = 1
    rate: float | None = field(default=None, metadata={"help": "open-loop target rate (queries/s)"})
    setup_sql: tuple[str, ...] = ()
    # builtin
    query: str | None = None
    queries: tuple[WeightedQuery, ...] = ()
    # pgbench
    script: str | None = None
    # pgbench / dbbench
    binary: str | None = None
    args: tuple[str, ...] = field(default=(), metadata={"argv": True})
    # dbbench: the ini text, run line for line but for duration, level, rate and warm-up
    config: str | None = None
    # ddl
    ddl: DdlSpec | None = None


@dataclass(frozen=True)
class MetricSpec:
    """A Prometheus metric family worth watching, and which statistics to report for it."""

    name: str
    kind: MetricKind = "histogram"
    labels: dict[str, str] = field(default_factory=dict)
    by: tuple[str, ...] = field(default=(), metadata={"help": "labels to break the delta down by"})
    stats: tuple[str, ...] = ("mean", "p50", "p99")
    per_query: bool = False
    description: str | None = None


# --- the handoff prose and the work list --------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A free-form prose section, kept in place (imported prompts keep every paragraph)."""

    id: str
    body: str
    title: str | None = None
    level: int = field(default=2, metadata={"help": "markdown heading level of the title"})


@dataclass(frozen=True)
class Completed:
    """A finished optimization or diagnostic, with the sessions that did it."""

    id: str
    title: str
    sessions: tuple[int, ...] = ()
    summary: str | None = None


@dataclass(frozen=True)
class CompletedWork:
    optimizations: tuple[Completed, ...] = ()
    diagnostics: tuple[Completed, ...] = ()
    intro: str | None = None


@dataclass(frozen=True)
class StepGroup:
    """A heading for a run of next steps (e.g. 'Previously identified next steps')."""

    id: str
    title: str
    intro: str | None = None
    level: int = field(
        default=3, metadata={"help": "heading level of the title; 0 renders it as a plain line"}
    )


@dataclass(frozen=True)
class NextStep:
    """A ranked candidate for a future session; its rank is its position in the list."""

    id: str
    title: str
    body: str | None = None
    effect: str | None = field(default=None, metadata={"help": "estimated effect, e.g. '~5% QPS'"})
    paths: tuple[str, ...] = ()
    added_in: int | None = field(default=None, metadata={"help": "session that added it"})
    group: str | None = None


@dataclass(frozen=True)
class Superseded:
    """An imported instruction sessionctl now carries out itself (kept, never rendered)."""

    text: str
    replaced_by: str


@dataclass(frozen=True)
class RetiredStep:
    """A next step that was tried and did not help: shown to agents, never picked again."""

    id: str
    title: str
    why: str = field(metadata={"help": "what was tried and why it did not help"})
    sessions: tuple[int, ...] = field(default=(), metadata={"help": "sessions that tried it"})
    body: str | None = None
    effect: str | None = None
    paths: tuple[str, ...] = ()
    added_in: int | None = None
    group: str | None = None


@dataclass(frozen=True)
class Headline:
    """The one recorded value a campaign is about: it drives verdicts, history and the report."""

    metric: str = field(
        metadata={"help": "a recorded value's name, e.g. 'qps@c64' or 'ddl:table.median_ms@n3k'"}
    )
    better: Literal["higher", "lower"] | None = field(
        default=None, metadata={"help": "higher | lower (default: inferred from the name)"}
    )


# --- running the agent, auditing, profiling, comparing ----------------------------------


@dataclass(frozen=True)
class AgentSpec:
    """How to launch the agent for a session: a preset or an argv template."""

    preset: Literal["claude", "codex", "command"] = "claude"
    argv: tuple[str, ...] = field(
        default=(), metadata={"argv": True, "help": "template; {prompt}, {prompt_file}, {session}"}
    )
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = field(default=3600.0, metadata=_dur("wall clock per session"))
    grace: float = field(default=30.0, metadata=_dur("after SIGINT, before SIGTERM"))
    budget_usd: float | None = None
    max_turns: int | None = None
    args: tuple[str, ...] = field(
        default=(),
        metadata={
            "argv": True,
            "help": "extra arguments for agent.preset only (not for another --agent)",
        },
    )
    claude_args: tuple[str, ...] = field(
        default=(),
        metadata={"argv": True, "help": "extra arguments whenever the claude preset runs"},
    )
    codex_args: tuple[str, ...] = field(
        default=(),
        metadata={"argv": True, "help": "extra arguments whenever the codex preset runs"},
    )
    token_prices: dict[str, float] = field(
        default_factory=dict,
        metadata={
            "help": "USD per million tokens (input, cached_input, output) to price token usage"
        },
    )


@dataclass(frozen=True)
class ForbiddenPattern:
    pattern: str
    message: str


@dataclass(frozen=True)
class RunPolicy:
    """When the loop stops and how much it may spend."""

    budget_usd: float | None = None
    max_without_improvement: int | None = 3
    stop_file: str = ".sessionctl/STOP"
    max_infra_failures: int | None = field(
        default=2,
        metadata={
            "help": "stop after this many sessions in a row whose agent never reached its model"
        },
    )


@dataclass(frozen=True)
class AuditSpec:
    forbidden: tuple[ForbiddenPattern, ...] = ()
    max_files: int | None = None
    require_measurements: bool = True
    max_areas: int | None = field(
        default=1,
        metadata={
            "help": (
                "top-level folders one change may touch (tests/ aside; a step's paths count as one)"
            )
        },
    )


@dataclass(frozen=True)
class ProfileSpec:
    tool: Literal["perf", "py-spy", "command"] = "perf"
    command: tuple[str, ...] = field(default=(), metadata={"argv": True})
    event: str | None = field(default=None, metadata={"help": "perf event; default cpu-clock"})
    frequency: int = 999
    focus: tuple[str, ...] = ()
    groups: dict[str, str] = field(default_factory=dict)
    call_graph: Literal["auto", "fp", "dwarf", "lbr", "none"] = field(
        default="auto",
        metadata={"help": "perf call graphs; auto picks fp when the binary keeps frame pointers"},
    )


@dataclass(frozen=True)
class CompareSpec:
    pairs: int = 6
    order: Literal["abba", "random"] = "abba"
    warmup_runs: int = 1
    threshold_throughput: float = 0.02
    threshold_median: float = 0.02
    threshold_tail: float = 0.05
    # Without a benchmark `rate`, latency comes from a fixed-rate open-loop run at this fraction
    # of the slower side's warm-up throughput (0: read it off the saturated run instead).
    open_loop_load: float = 0.5


# --- the campaign ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    """A validated campaign file. ``name`` comes from the file name, not the YAML."""

    schema: int
    revision: int
    title: str
    name: str = field(default="", metadata={"derived": True})
    last_session: int = 0
    headline: Headline | None = None
    log: str | None = field(
        default=None,
        metadata={
            "help": "the perf log, relative to the workspace (default: logs/NAME-perf-log.md)"
        },
    )
    vcs: VcsKind = "auto"
    context: str | None = None
    goal: str | None = None
    rules: tuple[str, ...] = ()
    workflow: str | None = None
    target: Target = field(default_factory=Target)
    benchmarks: tuple[Benchmark, ...] = ()
    metrics: tuple[MetricSpec, ...] = ()
    status: str | None = None
    completed: CompletedWork = field(default_factory=CompletedWork)
    profiling_notes: str | None = None
    next_steps: tuple[NextStep, ...] = ()
    next_step_groups: tuple[StepGroup, ...] = ()
    retired: tuple[RetiredStep, ...] = ()
    sections: tuple[Section, ...] = ()
    superseded: tuple[Superseded, ...] = field(
        default=(), metadata={"help": "imported instructions sessionctl replaced (not rendered)"}
    )
    log_detail: Literal["compact", "full"] = field(
        default="compact",
        metadata={"help": "log entries: compact (one table, counted warnings) or full (every row)"},
    )
    layout: tuple[str, ...] = field(
        default=(), metadata={"help": "render order: built-in section names and section ids"}
    )
    templates: str | None = field(default=None, metadata={"help": "template override folder"})
    headings: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "heading line per layout item (e.g. rules: '## Constraints'); '' = none"},
    )
    agent: AgentSpec = field(default_factory=AgentSpec)
    run: RunPolicy = field(default_factory=RunPolicy)
    audit: AuditSpec = field(default_factory=AuditSpec)
    profile: ProfileSpec = field(default_factory=ProfileSpec)
    compare: CompareSpec = field(default_factory=CompareSpec)

    def benchmark(self, name: str | None) -> Benchmark:
        """Return the named benchmark, or the first one when ``name`` is None."""
        from sessionctl.errors import UsageError

        if not self.benchmarks:
            raise UsageError(f"prompts/{self.name}.yaml: benchmarks: none defined; add one")
        if name is None:
            return self.benchmarks[0]
        for b in self.benchmarks:
            if b.name == name:
                return b
        have = ", ".join(b.name for b in self.benchmarks)
        raise UsageError(
            f"prompts/{self.name}.yaml: benchmarks: no benchmark {name!r} (have: {have})"
        )

    def step(self, step_id: str) -> NextStep:
        """Return the next step with this id."""
        from sessionctl.errors import UsageError

        for s in self.next_steps:
            if s.id == step_id:
                return s
        for r in self.retired:
            if r.id == step_id:
                raise UsageError(
                    f"prompts/{self.name}.yaml: retired: step {step_id!r} was tried and did not "
                    f"help ({r.why}); bring it back with `sessionctl next unretire {step_id}`"
                )
        have = ", ".join(s.id for s in self.next_steps) or "none"
        raise UsageError(
            f"prompts/{self.name}.yaml: next_steps: no step {step_id!r} (have: {have})"
        )
