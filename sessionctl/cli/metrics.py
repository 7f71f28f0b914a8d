"""CLI for ad-hoc Prometheus work: ``sessionctl metrics snapshot|diff|quantile|show``.

Every command takes a metrics URL (``http://localhost:6878/metrics``) or a saved snapshot file
wherever it takes a SOURCE, so ``snapshot`` before and after a run, then ``diff``, works offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sessionctl.cli.common import JsonOpt, emit

if TYPE_CHECKING:
    from sessionctl.metrics.delta import Delta, SeriesDelta
    from sessionctl.metrics.exposition import Labels, Snapshot
    from sessionctl.metrics.summary import AdHocSpec, Summary

metrics_app = typer.Typer(
    name="metrics",
    help="Scrape Prometheus metrics, diff two scrapes, compute PromQL-exact quantiles.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

SourceArg = Annotated[
    str,
    typer.Argument(
        metavar="SOURCE", help="A metrics URL (http://host:port/metrics) or a saved snapshot file."
    ),
]
MetricOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--metric", "-m", metavar="NAME", help="Metric family to keep (repeatable); default: all."
    ),
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--label",
        "-l",
        metavar="K=V",
        help="Keep series with this label value, as k=v (repeatable).",
    ),
]
ByOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--by",
        metavar="LABEL",
        help="Break statistics down by this label (repeatable); others are summed.",
    ),
]
# More rows than this are printed as plain text (a rich table lays out every cell first).
SCREENFUL = 200
# A summarised diff shows this many families and top movers at most.
TOP = 15
# Human output shows this many warnings of one kind at most (--json has them all).
WARN_CAP = 10

TimeoutOpt = Annotated[
    float, typer.Option("--timeout", metavar="SECONDS", help="Seconds to wait for a URL to answer.")
]


@metrics_app.command("snapshot")
def snapshot_cmd(
    source: SourceArg,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="Save the exposition here (with a provenance header).",
        ),
    ] = None,
    metric: MetricOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_output: JsonOpt = False,
) -> None:
    """Scrape a metrics URL (or read a file) once, optionally saving it for a later diff."""
    import time

    from sessionctl import console
    from sessionctl.metrics.exposition import parse
    from sessionctl.metrics.scrape import fetch, save

    text, taken_at, shown = fetch(source, timeout=timeout)
    t0 = time.perf_counter()
    snap = parse(text, source=shown, families=metric or None, taken_at=taken_at)
    parse_s = time.perf_counter() - t0
    if out is not None:
        save(out, snap)
    data: dict[str, Any] = snap.to_dict(samples=bool(metric))
    data.update(
        bytes=len(text.encode()),
        samples=snap.sample_count(),
        parse_s=parse_s,
        out=str(out) if out else None,
    )

    def show() -> None:
        where = f", saved to {out}" if out else ""
        console.print_text(
            f"{shown}: {len(snap.families):,} families, {snap.sample_count():,} samples, "
            f"{len(text) / 1e6:.2f} MB parsed in {parse_s * 1000:.0f} ms{where}"
        )
        if metric:
            _print_samples(snap, {})

    emit(json_output, data, show)


@metrics_app.command("show")
def show_cmd(
    source: SourceArg,
    metric: Annotated[
        list[str],
        typer.Option("--metric", "-m", metavar="NAME", help="Metric family to show (repeatable)."),
    ],
    label: LabelOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_output: JsonOpt = False,
) -> None:
    """Print the samples of some metric families, parsed (label escapes decoded)."""
    from sessionctl.metrics.scrape import scrape

    snap = scrape(source, timeout=timeout, families=metric)
    _require_families(snap, metric)
    want = _labels(label)
    fams = [f.to_dict() for f in snap.families.values() if f.name in metric]
    for fam in fams:
        fam["samples"] = [
            s for s in fam["samples"] if all(s["labels"].get(k) == v for k, v in want.items())
        ]
    emit(
        json_output,
        {"source": snap.source, "taken_at": snap.taken_at, "families": fams},
        lambda: _print_samples(snap, want, metric),
    )


@metrics_app.command("diff")
def diff_cmd(
    before: Annotated[
        str, typer.Argument(metavar="BEFORE", help="The earlier scrape: a snapshot file or URL.")
    ],
    after: Annotated[
        str, typer.Argument(metavar="AFTER", help="The later scrape: a snapshot file or URL.")
    ],
    metric: MetricOpt = None,
    label: LabelOpt = None,
    by: ByOpt = None,
    queries: Annotated[
        int | None,
        typer.Option(
            "--queries", metavar="N", help="Queries run between the scrapes: adds time per query."
        ),
    ] = None,
    window: Annotated[
        float | None,
        typer.Option(
            "--window",
            metavar="SECONDS",
            help="Seconds between the scrapes (default: from their times).",
        ),
    ] = None,
    show_all: Annotated[bool, typer.Option("--all", help="List unchanged series too.")] = False,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            metavar="N",
            help="List at most this many changed series, else summarise them (0: list all).",
        ),
    ] = 40,
    timeout: TimeoutOpt = 10.0,
    json_output: JsonOpt = False,
) -> None:
    """Show what changed between two scrapes: series deltas, resets, and per-metric statistics.

    When more series changed than --limit, the output is a summary: the families that changed
    and the top movers. --limit 0 lists every changed series; --json streams everything.
    """
    from sessionctl.metrics.delta import diff
    from sessionctl.metrics.scrape import scrape

    snaps = [scrape(s, timeout=timeout, families=metric or None) for s in (before, after)]
    if metric:
        for m in metric:
            if not any(m in s.families for s in snaps):
                _require_families(snaps[1], [m])
    delta = diff(snaps[0], snaps[1])
    want = _labels(label)
    stats = _stats(delta, metric or [], want, by or [], queries, window)
    rows = [
        s
        for s in delta.series
        if (show_all or s.delta != 0 or s.new or s.reset) and (not want or _has(s.labels, want))
    ]
    if json_output:
        _diff_json(delta, stats, rows, want)
    else:
        _diff_human(delta, stats, rows, limit, one_family=bool(metric))


def _stats(
    delta: Delta,
    names: list[str],
    want: dict[str, str],
    by: list[str],
    queries: int | None,
    window: float | None,
) -> Summary | None:
    """Per-metric statistics for ``--metric`` families (None without any: nothing to compute)."""
    if not names and not delta.restarted:
        return None
    from sessionctl.metrics.summary import summary

    return summary(delta, _specs(delta, names, want, by, queries), queries=queries, window_s=window)


def _diff_json(
    delta: Delta, stats: Summary | None, rows: list[SeriesDelta], want: dict[str, str]
) -> None:
    """Stream the diff as one JSON document: series and groups are written as they are encoded."""
    from sessionctl import console
    from sessionctl.metrics.overview import overview

    console.stream_json(
        {
            "before": {"source": delta.before_source, "taken_at": delta.before_at},
            "after": {"source": delta.after_source, "taken_at": delta.after_at},
            "window_s": delta.window_s,
            "restarted": delta.restarted,
            "families": dict(delta.families),
            "overview": overview(delta, rows).to_dict(),
            "values": [v.to_dict() for v in stats.values] if stats else [],
            "summary_md": stats.markdown() if stats else "",
            "missing": [{"name": n, "labels": dict(lb)} for n, lb in delta.missing],
            "warnings": list(delta.warnings),
            "groups": (g.to_dict() for g in delta.groups if not want or _has(g.labels, want)),
            "series": (s.to_dict() for s in rows),
        }
    )


def _diff_human(
    delta: Delta, stats: Summary | None, rows: list[SeriesDelta], limit: int, *, one_family: bool
) -> None:
    from sessionctl import console

    span = f"{delta.window_s:.1f}s apart" if delta.window_s else "times unknown"
    console.print_text(f"{delta.before_source} → {delta.after_source} ({span})")
    if stats is not None:
        _show_summary(stats)
        for note in stats.notes:
            console.warn(note)
    if not rows:
        console.print_text("no series changed (--all lists unchanged ones)")
    elif limit <= 0 or len(rows) <= limit:
        _series_rows(rows)
    else:
        _overview(delta, rows, limit, one_family=one_family)
    _capped_warnings([f"gone after: {n}{_fmt_labels(lb)}" for n, lb in delta.missing], limit)
    _capped_warnings(list(delta.warnings), limit)


def _series_rows(rows: list[SeriesDelta]) -> None:
    """Every row: a rich table for a screenful, plain aligned text beyond (fast for 100k)."""
    from sessionctl import console

    cells = [_series_cells(s) for s in rows]
    if len(cells) <= SCREENFUL:
        console.table(None, ["series", "before", "after", "Δ", ""], cells)
    else:
        console.columns(["series", "before", "after", "Δ", ""], cells)


def _series_cells(s: SeriesDelta) -> list[str]:
    return [
        s.name + _fmt_labels(s.labels),
        _num(s.before),
        _num(s.after),
        _num(s.delta),
        _flags(s.reset, s.new),
    ]


def _overview(delta: Delta, rows: list[SeriesDelta], limit: int, *, one_family: bool) -> None:
    """A large diff at a glance: counts, the families that changed, the top movers."""
    from sessionctl import console
    from sessionctl.metrics.overview import overview

    top = min(limit, TOP)
    ov = overview(delta, rows, top=top)
    extra = ", ".join(
        f"{n:,} {what}"
        for n, what in ((ov.resets, "reset"), (ov.new, "new"), (ov.missing, "gone"))
        if n
    )
    console.print_text(
        f"{ov.changed:,} of {ov.series:,} series changed in {ov.families_changed:,} of "
        f"{ov.families:,} families" + (f" ({extra})" if extra else "")
    )
    shown = ov.by_family[:top]
    console.table(
        "Families changed (most changed series first; Δ: summed, histograms by _count)",
        ["family", "type", "changed", "Δ"],
        [[f.family, f.kind, f"{f.changed:,} of {f.series:,}", _num(f.delta)] for f in shown],
    )
    if len(ov.by_family) > len(shown):
        console.print_text(f"… {len(ov.by_family) - len(shown):,} more families")
    console.table(
        "Top movers (largest |Δ|; buckets left out)",
        ["series", "before", "after", "Δ", ""],
        [_series_cells(s) for s in ov.movers],
    )
    one = "" if one_family else "--metric NAME shows one family; "
    console.print_text(
        f"--limit 0 lists all {ov.changed:,} changed series; {one}--json has everything"
    )


def _capped_warnings(lines: list[str], limit: int) -> None:
    """Warn with the first few lines and count the rest (they are all in --json)."""
    from sessionctl import console

    cap = len(lines) if limit <= 0 else min(limit, WARN_CAP)
    for line in lines[:cap]:
        console.warn(line)
    if len(lines) > cap:
        console.warn(f"… {len(lines) - cap:,} more like these (--limit 0 or --json lists all)")


@metrics_app.command("quantile")
def quantile_cmd(
    q: Annotated[
        float,
        typer.Argument(
            metavar="Q",
            help="The quantile, 0..1 (e.g. 0.99); outside that range gives ±Inf like PromQL.",
        ),
    ],
    source: SourceArg,
    metric: Annotated[
        str,
        typer.Option(
            "--metric", "-m", metavar="NAME", help="The histogram family (without _bucket)."
        ),
    ],
    label: LabelOpt = None,
    by: ByOpt = None,
    total: Annotated[
        bool, typer.Option("--sum", help="Sum all matching series first (sum by (le)).")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="SOURCE",
            help="An earlier scrape: compute over the bucket deltas since it.",
        ),
    ] = None,
    timeout: TimeoutOpt = 10.0,
    json_output: JsonOpt = False,
) -> None:
    """Compute histogram_quantile(Q, METRIC_bucket{labels}) exactly as PromQL would."""
    from sessionctl import console
    from sessionctl.errors import UsageError
    from sessionctl.metrics.delta import EMPTY, diff
    from sessionctl.metrics.quantile import bucket_quantile
    from sessionctl.metrics.scrape import scrape

    after = scrape(source, timeout=timeout, families=[metric])
    base = scrape(since, timeout=timeout, families=[metric]) if since else EMPTY
    fam = after.families.get(metric)
    if fam is None or fam.type != "histogram":
        _require_families(after, [metric])
        raise UsageError(
            f"{after.source}: {metric} is a {fam.type if fam else '?'}, not a histogram"
        )
    groups = diff(base, after).select(metric, _labels(label))
    if not groups:
        raise UsageError(
            f"{after.source}: no {metric} series match {_labels(label)}; drop or fix --label"
        )
    keys = list(by or [])
    merged: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
    for g in groups:
        have = dict(g.labels)
        key = () if total else (tuple((k, have.get(k, "")) for k in keys) if keys else g.labels)
        acc = merged.setdefault(key, {})
        for ub, c in g.bounds():
            acc[ub] = acc.get(ub, 0.0) + c
    results: list[dict[str, Any]] = []
    for key, buckets in merged.items():
        r = bucket_quantile(q, sorted(buckets.items()))
        count = buckets.get(float("inf"), 0.0)
        results.append(
            {
                "labels": dict(key),
                "quantile": q,
                "value": _jnum(r.value),
                "count": count,
                "forced_monotonic": r.forced_monotonic,
                "fixed_precision": r.fixed_precision,
            }
        )

    def show() -> None:
        console.table(
            f"histogram_quantile({q:g}, {metric}){' since ' + since if since else ''}",
            ["series", "value", "observations", "notes"],
            [
                [
                    _fmt_labels(tuple(r["labels"].items())) or "{}",
                    r["value"] if isinstance(r["value"], str) else f"{r['value']:.9g}",
                    _num(r["count"]),
                    "forced monotonic" if r["forced_monotonic"] else "",
                ]
                for r in results
            ],
        )

    emit(json_output, {"source": after.source, "metric": metric, "results": results}, show)


# --- helpers ----------------------------------------------------------------------------------


def _show_summary(stats: Summary) -> None:
    """One table per metric family, titled with the family and the labels every row shares; the
    first column holds only the labels that differ, so it is not squeezed to "mz_frontend_…"."""
    from sessionctl import console

    by_family: dict[str, list[tuple[dict[str, str], list[str]]]] = {}
    for label, *cells in stats.rows:
        family, _, inner = label.partition("{")
        pairs = (p.partition("=") for p in inner.removesuffix("}").split(",") if p)
        by_family.setdefault(family, []).append(({k: v for k, _, v in pairs}, cells))
    for family, rows in by_family.items():
        keys = list(dict.fromkeys(k for labels, _ in rows for k in labels))
        shared = {
            k: rows[0][0][k] for k in keys if all(lb.get(k) == rows[0][0].get(k) for lb, _ in rows)
        }
        varying = [k for k in keys if k not in shared]
        title = family + (
            "{" + ",".join(f"{k}={v}" for k, v in shared.items()) + "}" if shared else ""
        )
        columns = [",".join(varying) or "series", *stats.columns[1:]]
        table = [[",".join(lb.get(k, "") for k in varying) or "(all)", *c] for lb, c in rows]
        if not any(row[-1] for row in table):  # no notes: no empty column taking the width
            columns, table = columns[:-1], [row[:-1] for row in table]
        console.table(title, columns, table)


def _labels(items: list[str] | None) -> dict[str, str]:
    from sessionctl.errors import UsageError

    out: dict[str, str] = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise UsageError(
                f"--label {item!r}: expected NAME=VALUE, "
                "e.g. --label method=try_frontend_peek_cached"
            )
        out[k.strip()] = v.strip().strip('"')
    return out


def _specs(
    delta: Delta, names: list[str], labels: dict[str, str], by: list[str], queries: int | None
) -> list[AdHocSpec]:
    from sessionctl.metrics.summary import AdHocSpec

    stats: dict[str, tuple[str, ...]] = {
        "histogram": ("count", "rate", "mean", "p50", "p90", "p99"),
        "summary": ("count", "rate", "mean"),
        "counter": ("delta", "rate"),
        "gauge": ("value",),
    }
    specs = []
    for name in names:
        kind = delta.families.get(name, "histogram")
        kind = kind if kind in stats else "gauge"
        specs.append(
            AdHocSpec(
                name=name,
                kind=kind,
                labels=labels,
                by=tuple(by),
                stats=stats[kind],
                per_query=bool(queries),
            )
        )
    return specs


def _require_families(snap: Snapshot, names: list[str]) -> None:
    import difflib

    from sessionctl.errors import UsageError
    from sessionctl.metrics.scrape import fetch

    for name in names:
        if name not in snap.families:
            # A one-family scrape of a file keeps no text (it was never decoded): read it now.
            text = snap.text or fetch(snap.source)[0]
            known = sorted(
                {
                    p[2]
                    for line in text.splitlines()
                    if line.startswith("# TYPE ") and len(p := line.split()) > 2
                }
            )
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"{snap.source}: no metric family {name!r}{hint}")


def _print_samples(snap: Snapshot, want: dict[str, str], names: list[str] | None = None) -> None:
    from sessionctl import console
    from sessionctl.metrics.exposition import label_key

    rows = []
    for fam in snap.families.values():
        if names and fam.name not in names:
            continue
        for name, raw, value, _ts in fam.samples:
            lb = label_key(raw)
            if _has(lb, want):
                rows.append([name + _fmt_labels(lb), _num(value), fam.type])
    console.table(None, ["series", "value", "type"], rows)


def _has(labels: Labels, want: dict[str, str]) -> bool:
    have = dict(labels)
    return all(have.get(k) == v for k, v in want.items())


def _fmt_labels(labels: Labels) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}" if labels else ""


def _flags(reset: bool, new: bool) -> str:
    return ", ".join(f for f, on in (("reset", reset), ("new", new)) if on)


def _num(v: float | None) -> str:
    if v is None:
        return ""
    if v != v or v in (float("inf"), float("-inf")):
        return str(_jnum(v))
    return f"{v:.6g}" if abs(v) < 1e6 else f"{v:,.0f}"


def _jnum(v: float) -> float | str:
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    return v


def register(app: typer.Typer) -> None:
    """Add the ``metrics`` command group to the root app."""
    app.add_typer(metrics_app, name="metrics")
