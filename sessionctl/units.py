"""Parsing and formatting of durations, rates and sizes that appear in configs and output."""

from __future__ import annotations

import math
import re

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_FACTORS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# The longest duration any config or flag may give (a benchmark run, a wait, an agent's time
# limit): past a week it is a typo (an extra zero, a unit left out), and a 40-digit number of
# seconds would otherwise overflow whatever sleeps or schedules on it.
MAX_DURATION = 7 * 24 * 3600.0


def parse_duration(text: str | float | int) -> float:
    """Parse ``20s``, ``1m30s``, ``500ms`` or a bare number of seconds into seconds (at most
    :data:`MAX_DURATION`)."""
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like 20s, got {text!r}")
    if isinstance(text, (int, float)):
        try:
            seconds = float(text)
        except OverflowError:
            seconds = math.inf
        if not math.isfinite(seconds):
            raise ValueError(f"duration must be a finite number of seconds, got {_short(text)}")
        if seconds < 0:
            raise ValueError(f"duration must be >= 0, got {text}")
        return _bounded(seconds, f"{seconds:g}s")
    s = text.strip()
    if not s:
        raise ValueError("empty duration; use e.g. 20s, 1m30s, 500ms")
    try:
        number = float(s)
    except ValueError:
        pass
    else:
        return parse_duration(number)
    pos = 0
    total = 0.0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _FACTORS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError(f"bad duration {text!r}; use e.g. 20s, 1m30s, 500ms")
    if not math.isfinite(total):
        raise ValueError(f"duration {text!r} is out of range; use e.g. 20s, 1m30s, 500ms")
    return _bounded(total, s)


def _bounded(seconds: float, shown: str) -> float:
    if seconds > MAX_DURATION:
        if len(shown) > 24:  # 40 digits of seconds: say how many, not all of them
            shown = f"{seconds:.3g}s"
        raise ValueError(
            f"duration {shown} is over 7 days (168h), the longest a run, wait or timeout may "
            "be; use e.g. 20s, 5m, 2h"
        )
    return seconds


def _short(value: float) -> str:
    if isinstance(value, int):  # str() refuses past 4,300 digits
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return str(value)


def format_duration(seconds: float) -> str:
    """Format seconds the way configs write them (``20s``, ``1m30s``, ``250ms``)."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = round(seconds)
    if abs(seconds - whole) > 1e-9:
        return f"{seconds:g}s"
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s or not (h or m) else "")
    return out


def format_number(value: float, *, digits: int = 3) -> str:
    """Human-friendly number: ``307,123``, ``12.3``, ``0.000123``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    a = abs(value)
    if round(a, 1) >= 1000:  # 999.97 is "1,000", not "1000.0"
        return f"{value:,.0f}"
    if a >= 1 or a == 0:
        return f"{value:.{digits}g}" if a < 100 else f"{value:.1f}"
    return f"{value:.{digits}g}"


def format_percent(ratio: float) -> str:
    """Format a ratio (1.034) as a signed percent change (``+3.4%``)."""
    return f"{(ratio - 1) * 100:+.1f}%"
