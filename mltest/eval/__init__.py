"""Evaluation gates: thresholds, bad cases, slices, calibration (numpy only).

The names below resolve lazily; each check records itself (and its figures)
in the mltest report, and raises :class:`~mltest.errors.MLCheckFailure` with a
diagnosis when it fails.

* :func:`check_metrics`: overall and per-class minimums, worst classes and bad
  cases on failure.
* :func:`bad_cases`: true positives, false positives, false negatives per
  class, most confident first.
* :func:`slice`, :func:`slices_by_value`, :func:`slices_by_quantile`,
  :func:`check_slices`: metrics per slice with a minimum and a maximum gap.
* :func:`expected_calibration_error`, :func:`max_calibration_error`,
  :func:`reliability_table`, :func:`calibration_report`, :func:`check_calibration`,
  :func:`fit_temperature`: calibration.
* :func:`classification_metrics`: the numbers themselves (numpy only, usable
  at run time outside pytest).

Metric baselines (``metric_baseline`` fixture) live in :mod:`mltest.baselines`.

Example:
    >>> from mltest.eval import check_metrics, check_slices, check_calibration
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mltest.eval._metrics import ClassificationMetrics, classification_metrics
    from mltest.eval.badcases import BadCase, BadCases, bad_cases
    from mltest.eval.calibration import (
        Calibration,
        TemperatureFit,
        apply_temperature,
        calibration_report,
        check_calibration,
        expected_calibration_error,
        fit_temperature,
        max_calibration_error,
        reliability_table,
    )
    from mltest.eval.slices import (
        Slice,
        SliceReport,
        SliceResult,
        check_slices,
        slice,
        slices_by_quantile,
        slices_by_value,
    )
    from mltest.eval.thresholds import MetricsResult, check_metrics

_LAZY = {
    "ClassificationMetrics": "mltest.eval._metrics",
    "classification_metrics": "mltest.eval._metrics",
    "BadCase": "mltest.eval.badcases",
    "BadCases": "mltest.eval.badcases",
    "bad_cases": "mltest.eval.badcases",
    "Calibration": "mltest.eval.calibration",
    "TemperatureFit": "mltest.eval.calibration",
    "apply_temperature": "mltest.eval.calibration",
    "calibration_report": "mltest.eval.calibration",
    "check_calibration": "mltest.eval.calibration",
    "expected_calibration_error": "mltest.eval.calibration",
    "fit_temperature": "mltest.eval.calibration",
    "max_calibration_error": "mltest.eval.calibration",
    "reliability_table": "mltest.eval.calibration",
    "Slice": "mltest.eval.slices",
    "SliceReport": "mltest.eval.slices",
    "SliceResult": "mltest.eval.slices",
    "check_slices": "mltest.eval.slices",
    "slice": "mltest.eval.slices",
    "slices_by_quantile": "mltest.eval.slices",
    "slices_by_value": "mltest.eval.slices",
    "MetricsResult": "mltest.eval.thresholds",
    "check_metrics": "mltest.eval.thresholds",
}

__all__ = [
    "BadCase",
    "BadCases",
    "Calibration",
    "ClassificationMetrics",
    "MetricsResult",
    "Slice",
    "SliceReport",
    "SliceResult",
    "TemperatureFit",
    "apply_temperature",
    "bad_cases",
    "calibration_report",
    "check_calibration",
    "check_metrics",
    "check_slices",
    "classification_metrics",
    "expected_calibration_error",
    "fit_temperature",
    "max_calibration_error",
    "reliability_table",
    "slice",
    "slices_by_quantile",
    "slices_by_value",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mltest.eval' has no attribute {name!r}")
    from mltest.errors import require

    require("numpy", "eval", purpose="mltest.eval")  # one clear line when numpy is absent
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
