"""Run the command line with ``python -m sessionctl``."""

from __future__ import annotations

from sessionctl.cli import main

if __name__ == "__main__":
    main()
