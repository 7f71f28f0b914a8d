"""sessionctl: a disciplined, measured loop for optimize-and-log performance sessions."""

from __future__ import annotations

__version__ = "0.1.0"
