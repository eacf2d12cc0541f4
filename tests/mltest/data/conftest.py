"""Helpers for the data-check tests.

Inner pytest runs load only mltest (``-p mltest.plugin`` with entry-point
autoload off): scanning every installed plugin costs about 2 s per in-process
run here, loading mltest alone about 0.1 s. Loading through the ``pytest11``
entry point, as users do, is covered by tests/mltest/core/test_adoption.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

RunPytest = Callable[..., pytest.RunResult]


@pytest.fixture
def run_pytest(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> RunPytest:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "mltest.plugin", *args)

    return run
