"""The installed packages are the ones the lock (.ci/constraints.txt) says the suite ran with.

A fresh machine installs with ``-c .ci/constraints.txt`` (the README's commands), so a
difference here means an environment that was installed some other way or has aged: the test
names each package that drifted and how to fix it, instead of leaving a mysterious failure
somewhere else in the suite.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / ".ci" / "constraints.txt"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    """Package name (normalised) -> pinned version."""
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{LOCK}: {line!r} is not a name==version pin"
        pins[_norm(name)] = version.strip()
    return pins


def drift(pins: dict[str, str]) -> list[str]:
    """One line per installed package whose version is not the pinned one."""
    found: list[str] = []
    for dist in metadata.distributions():
        name = _norm(dist.metadata["Name"] or "")
        if name in pins and dist.version != pins[name]:
            found.append(f"{name} {dist.version} installed, {pins[name]} locked")
    return sorted(set(found))


def test_lock_pins_every_runtime_dependency() -> None:
    pins = locked()
    for name in ("click", "typer", "rich", "jinja2", "ruamel-yaml", "psycopg", "gitpython"):
        assert name in pins, f"{LOCK}: {name} is not pinned; rerun .ci/lock"


def test_installed_versions_match_the_lock() -> None:
    problems = drift(locked())
    assert not problems, (
        "the environment drifted from .ci/constraints.txt: "
        + "; ".join(problems)
        + " (fix: python -m pip install -c .ci/constraints.txt -e '.[test]')"
    )


def test_drift_is_named() -> None:
    # The check itself can fail: a pin that differs from what is installed is reported by name.
    pins = locked()
    pins["click"] = "0.0.1"
    assert any(line.startswith("click ") and "0.0.1 locked" in line for line in drift(pins))
