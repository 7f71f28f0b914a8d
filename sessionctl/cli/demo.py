"""CLI for demo: placeholder until the owning work lands (registers no commands yet)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
