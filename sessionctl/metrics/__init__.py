"""Prometheus metrics: scrape, parse, diff, PromQL-exact quantiles and per-operation statistics.

``scrape``/``parse`` give a :class:`Snapshot`; ``diff(before, after)`` a :class:`Delta` with
counter resets handled once per histogram; ``summarize(delta, specs)`` turns a campaign's
MetricSpecs into ``Value`` s and a markdown table; ``histogram_quantile`` is PromQL's, bit for bit.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sessionctl.metrics.delta import Delta, GroupDelta, SeriesDelta, diff
    from sessionctl.metrics.exposition import Family, Snapshot, label_key, parse
    from sessionctl.metrics.quantile import QuantileResult, bucket_quantile, histogram_quantile
    from sessionctl.metrics.summary import summarize

# Bound eagerly, after its module: ``sessionctl.metrics.scrape`` is the function from here on
# (a lazy binding would be replaced by the submodule the first time someone imports it).
from sessionctl.metrics.scrape import fetch, save, scrape

# Where each name lives: importing one submodule (``metrics.delta`` for a diff) must not pull in
# the others (``summary`` imports the campaign model).
_HOME = {
    "Delta": "delta",
    "GroupDelta": "delta",
    "SeriesDelta": "delta",
    "diff": "delta",
    "Family": "exposition",
    "Snapshot": "exposition",
    "label_key": "exposition",
    "parse": "exposition",
    "QuantileResult": "quantile",
    "bucket_quantile": "quantile",
    "histogram_quantile": "quantile",
    "summarize": "summary",
}


def __getattr__(name: str) -> Any:
    """Import the submodule holding ``name`` on first use (PEP 562)."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"sessionctl.metrics.{home}"), name)


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
