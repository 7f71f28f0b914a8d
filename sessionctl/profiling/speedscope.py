"""Write folded stacks as a speedscope file ("sampled" profile; https://www.speedscope.app).

The format (speedscope's ``file-format-spec.ts``): a top-level object with ``$schema``,
``shared.frames`` (one ``{"name": ...}`` per distinct function) and ``profiles``; a sampled
profile has ``type``, ``name``, ``unit``, ``startValue``, ``endValue``, ``samples`` (each a
list of frame indices, root first) and ``weights`` (one per sample). Folded stacks are already
aggregated, so each distinct stack is one sample weighted by its count; with a known sample
period the weights are CPU time in nanoseconds, so speedscope shows real time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sessionctl import __version__
from sessionctl.files import atomic_write
from sessionctl.profiling.folded import Stack

SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def to_speedscope(
    stacks: dict[Stack, int], *, name: str = "profile", period_ns: float | None = None
) -> dict[str, Any]:
    """Build the speedscope document for ``stacks`` (weights in ns when ``period_ns`` is known)."""
    index: dict[str, int] = {}
    frames: list[dict[str, str]] = []
    samples: list[list[int]] = []
    weights: list[float] = []
    for stack, n in sorted(stacks.items(), key=lambda kv: kv[0]):
        ids = []
        for f in stack:
            i = index.get(f)
            if i is None:
                i = index[f] = len(frames)
                frames.append({"name": f})
            ids.append(i)
        samples.append(ids)
        weights.append(n * period_ns if period_ns else n)
    unit = "nanoseconds" if period_ns else "none"
    return {
        "$schema": SCHEMA,
        "shared": {"frames": frames},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": unit,
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        ],
        "name": name,
        "activeProfileIndex": 0,
        "exporter": f"sessionctl {__version__}",
    }


def write_speedscope(path: Path, stacks: dict[Stack, int], **kwargs: Any) -> Path:
    """Write the speedscope JSON for ``stacks`` to ``path`` (atomically)."""
    # Compact: a profile has tens of thousands of samples and nobody reads this file by eye.
    atomic_write(path, json.dumps(to_speedscope(stacks, **kwargs), separators=(",", ":")))
    return path
