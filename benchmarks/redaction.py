"""Redaction stays linear: time to redact N and 2N bytes of hostile text against a reference.

The old URL pattern backtracked over long words (200 KB took 67 s), so the test suite only checks
that megabytes of such text are redacted correctly; the speed is measured here. For each shape of
text (one long word, ``password`` repeated, ``x://a:`` repeated) the script times
``sessionctl.redaction.redact`` and a named linear reference, ``re.sub`` of a literal over the
same text, interleaved, at N and 2N bytes, and prints:

- the growth: time at 2N / time at N (target <= 2.2: linear; quadratic would be ~4);
- the ratio to the reference at 2N (information: Python-level scanning against C).

Exit 1 when a growth misses its target.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sessionctl.redaction import redact

SHAPES: dict[str, Callable[[int], str]] = {
    "long word": lambda n: "a" * n,
    "password repeated": lambda n: ("password" * (n // 8 + 1))[:n],
    "x://a: repeated": lambda n: ("x://a:" * (n // 6 + 1))[:n],
}
_LITERAL = re.compile("zzzz")


def reference(text: str) -> str:
    """A linear pass in C over the whole text."""
    return _LITERAL.sub("", text)


def best_of(fn: Callable[[str], str], text: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", type=int, default=1_000_000, help="N (default 1,000,000)")
    ap.add_argument("--repeat", type=int, default=5, help="timings per size (median)")
    ap.add_argument("--target", type=float, default=2.2, help="largest allowed growth")
    args = ap.parse_args()
    ok = True
    print(f"{'shape':20} {'N s':>8} {'2N s':>8} {'growth':>7} {'ref 2N s':>9} {'x ref':>7}")
    for name, make in SHAPES.items():
        small, large = make(args.bytes), make(2 * args.bytes)
        t_small = best_of(redact, small, args.repeat)
        t_large = best_of(redact, large, args.repeat)
        t_ref = best_of(reference, large, args.repeat)
        growth = t_large / t_small
        ok &= growth <= args.target
        print(
            f"{name:20} {t_small:8.3f} {t_large:8.3f} {growth:6.2f}x {t_ref:9.4f} "
            f"{t_large / t_ref:6.0f}x"
        )
    print("PASS" if ok else f"FAIL: a growth over {args.target}x (not linear)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
