"""Helpers for testing code that uses mltest, with pytest's ``pytester`` fixture.

Adopters who build their own checks on mltest (a team's shared fixtures, a
conftest plugin) can run an inner pytest session with ``--ml`` and read the
JSON report back in one call.

Example:
    >>> def test_my_check_fails_on_bad_model(pytester):  # doctest: +SKIP
    ...     pytester.makepyfile(TEST_SOURCE)
    ...     result, report = run_ml(pytester)
    ...     result.assert_outcomes(failed=1)
    ...     assert report["summary"]["checks"]["model"]["failed"] == 1
"""

from __future__ import annotations

import json
from typing import Any

import pytest

__all__ = ["ml_outcomes", "run_ml"]


def run_ml(
    pytester: pytest.Pytester, *args: str, report_name: str = "mltest-report.json"
) -> tuple[pytest.RunResult, dict[str, Any]]:
    """Run pytest in-process with ``--ml`` and a JSON report; return both.

    Args:
        pytester: The ``pytester`` fixture.
        *args: More command-line arguments (``"-k", "shape"``, ``"--ml-seed", "3"``).
        report_name: File name of the report inside ``pytester.path``.

    Returns:
        The run's result and the parsed report.

    Example:
        >>> result, report = run_ml(pytester, "--ml-seed", "1")  # doctest: +SKIP
    """
    target = pytester.path / report_name
    result = pytester.runpytest("--ml", "--ml-report", str(target), *args)
    report: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    return result, report


def ml_outcomes(report: dict[str, Any]) -> dict[str, str]:
    """Map each ML test's node id to its outcome in a parsed report.

    Example:
        >>> ml_outcomes({"tests": [{"nodeid": "t.py::a", "outcome": "passed"}]})
        {'t.py::a': 'passed'}
    """
    return {t["nodeid"]: t["outcome"] for t in report["tests"]}
