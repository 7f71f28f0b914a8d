"""Prometheus metrics: scrape, parse, diff, PromQL-exact quantiles and per-operation statistics.

``scrape``/``parse`` give a :class:`Snapshot`; ``diff(before, after)`` a :class:`Delta` with
counter resets handled once per histogram; ``summarize(delta, specs)`` turns a campaign's
MetricSpecs into ``Value`` s and a markdown table; ``histogram_quantile`` is PromQL's, bit for bit.
"""

from __future__ import annotations

from sessionctl.metrics.delta import Delta, GroupDelta, SeriesDelta, diff
from sessionctl.metrics.exposition import Family, Snapshot, label_key, parse
from sessionctl.metrics.quantile import QuantileResult, bucket_quantile, histogram_quantile

# Bind the function after its module: ``sessionctl.metrics.scrape`` is the function from here on.
from sessionctl.metrics.scrape import fetch, save, scrape
from sessionctl.metrics.summary import summarize

__all__ = [
    "Delta",
    "Family",
    "GroupDelta",
    "QuantileResult",
    "SeriesDelta",
    "Snapshot",
    "bucket_quantile",
    "diff",
    "fetch",
    "histogram_quantile",
    "label_key",
    "parse",
    "save",
    "scrape",
    "summarize",
]
