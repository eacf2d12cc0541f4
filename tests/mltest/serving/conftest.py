"""Fixtures of the serving kit's tests: the tiny server's command line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tiny_server import APP


@pytest.fixture
def app_command(tmp_path: Path) -> list[str]:
    """The command line of the tiny server (``{port}`` filled in by the kit).

    Example:
        >>> def test_start(app_command):  # doctest: +SKIP
        ...     with serve(app_command, ready_path="/ready") as server: ...
    """
    script = tmp_path / "tiny_app.py"
    script.write_text(APP, encoding="utf-8")
    return [sys.executable, str(script), "{port}"]
