"""Data checks: expectation suites as tests, inline expectations, splits, drift, labels.

Importing this package is cheap: Great Expectations, pandas and scipy load
only when a check first runs. The names below resolve lazily.

* :func:`expect`, :func:`validate`: inline Great Expectations checks.
* :func:`check_no_leakage`, :func:`check_stratification`,
  :func:`check_label_coverage`, :func:`check_unseen_categories`,
  :func:`check_splits`: train/validation/test split checks.
* :func:`drift_report`, :func:`check_drift`: reference vs current window.
* :func:`find_label_issues`, :func:`check_label_issues`: confident learning.

Suite files (``*.expectations.yaml``/``.json``) are collected by the plugin
through :mod:`mltest.data.suites`.

Example:
    >>> from mltest.data import expect, check_drift  # imports nothing heavy
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mltest.data.drift import DriftReport, check_drift, drift_report
    from mltest.data.expect import expect, validate
    from mltest.data.labels import LabelIssues, check_label_issues, find_label_issues
    from mltest.data.splits import (
        check_label_coverage,
        check_no_leakage,
        check_splits,
        check_stratification,
        check_unseen_categories,
    )

_LAZY = {
    "expect": "mltest.data.expect",
    "validate": "mltest.data.expect",
    "check_no_leakage": "mltest.data.splits",
    "check_stratification": "mltest.data.splits",
    "check_label_coverage": "mltest.data.splits",
    "check_unseen_categories": "mltest.data.splits",
    "check_splits": "mltest.data.splits",
    "DriftReport": "mltest.data.drift",
    "drift_report": "mltest.data.drift",
    "check_drift": "mltest.data.drift",
    "LabelIssues": "mltest.data.labels",
    "find_label_issues": "mltest.data.labels",
    "check_label_issues": "mltest.data.labels",
}

__all__ = [
    "DriftReport",
    "LabelIssues",
    "check_drift",
    "check_label_coverage",
    "check_label_issues",
    "check_no_leakage",
    "check_splits",
    "check_stratification",
    "check_unseen_categories",
    "drift_report",
    "expect",
    "find_label_issues",
    "validate",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mltest.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
