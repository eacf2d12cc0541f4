"""Metric thresholds: overall and per-class minimums (and maximums) as one check.

Example:
    >>> from mltest.eval import check_metrics
    >>> result = check_metrics(["a", "b", "b"], ["a", "b", "b"], min={"macro_f1": 0.9})
    >>> result.overall["macro_f1"]
    1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.eval._metrics import (
    OVERALL_METRICS,
    ClassificationMetrics,
    as_proba,
    classification_metrics,
    predictions_from_proba,
)

__all__ = ["MetricsResult", "check_metrics"]

_PROBA_METRICS = ("ece", "mce", "log_loss")
_CLASS_METRICS = ("precision", "recall", "f1")

Threshold = float | Mapping[Any, float]


@dataclass
class MetricsResult:
    """What :func:`check_metrics` measured.

    Attributes:
        overall: Overall metrics (plus ``ece``, ``mce``, ``log_loss`` with ``proba``).
        per_class: ``{label: {"precision", "recall", "f1", "support"}}``.
        labels: Class names in index order.
        confusion: Counts, rows = true, columns = predicted.
        failures: One line per threshold not met (empty when it passed).
    """

    overall: dict[str, float]
    per_class: dict[Any, dict[str, float]]
    labels: list[Any]
    confusion: np.ndarray
    failures: list[str]


def _limits(kind: str, given: Mapping[str, Any] | None, known: Sequence[str]) -> dict[str, Any]:
    limits = dict(given or {})
    unknown = sorted(set(limits) - set(known))
    if unknown:
        raise MLUsageError(
            f"check_metrics: unknown metric {unknown[0]!r} in {kind}; known: {', '.join(known)}"
        )
    return limits


def _class_limit(limit: Threshold, label: Any, metric: str) -> float | None:
    if isinstance(limit, Mapping):
        value = limit.get(label, limit.get("*"))
        return None if value is None else float(value)
    return float(limit)


def _fmt(value: float) -> str:
    return f"{value:.4f}"


def record_confusion(metrics: ClassificationMetrics, *, name: str, check: str) -> None:
    """Attach the confusion matrix to the running test's report as a heatmap.

    Example:
        >>> from mltest.eval._metrics import classification_metrics
        >>> record_confusion(classification_metrics([0], [0]), name="m", check="metrics")
    """
    from mltest.report import current_record, record_figure

    if current_record() is None:
        return
    names = [str(n) for n in metrics.labels]
    record_figure(
        f"{name}.confusion",
        "heatmap",
        {
            "rows": names,
            "cols": names,
            "values": metrics.confusion.tolist(),
            "row_label": "true",
            "col_label": "predicted",
        },
        title="Confusion matrix (counts)",
        check=check,
    )


def check_metrics(
    y_true: Any,
    y_pred: Any = None,
    proba: Any = None,
    *,
    labels: Sequence[Any] | None = None,
    min: Mapping[str, float] | None = None,
    max: Mapping[str, float] | None = None,
    per_class_min: Mapping[str, Threshold] | None = None,
    inputs: Sequence[Any] | None = None,
    n_bins: int = 10,
    max_bad_cases: int = 10,
    name: str = "metrics",
) -> MetricsResult:
    """Fail when an overall or per-class metric misses its threshold.

    Overall metrics: ``accuracy``, ``macro_precision``, ``macro_recall``,
    ``macro_f1``, ``weighted_precision``, ``weighted_recall``, ``weighted_f1``,
    and with ``proba`` also ``ece``, ``mce`` (equal-width bins) and ``log_loss``.
    Per-class metrics: ``precision``, ``recall``, ``f1``; a limit is one number
    for every class or a mapping ``{label: limit}`` (``"*"`` for the rest).

    A failure lists every threshold missed, the classes below their minimum
    worst first with their support, and the bad cases: the most confident false
    positives and false negatives of those classes (of every class when only an
    overall metric failed), with their inputs. The check, its metrics, the bad
    cases and the confusion matrix (a heatmap) go into the mltest report.

    Args:
        y_true: True labels (names, or indices into ``labels``).
        y_pred: Predicted labels; default: the argmax of ``proba``.
        proba: Class probabilities ``(n, k)``, columns in ``labels`` order.
        labels: Class names in index order; default: the sorted labels seen.
        min: ``{metric: minimum}`` on overall metrics.
        max: ``{metric: maximum}`` on overall metrics (``ece``, ``log_loss``).
        per_class_min: ``{metric: minimum or {label: minimum}}``.
        inputs: The inputs, one per row, shown with the bad cases.
        n_bins: Bins of ``ece``/``mce``.
        max_bad_cases: Bad cases shown in the failure.
        name: The check's name in the report.

    Returns:
        A :class:`MetricsResult` when every threshold holds.

    Raises:
        MLCheckFailure: A threshold is missed (the message is the diagnosis).
        MLUsageError: Unknown metric names, bad shapes, no ``y_pred`` nor ``proba``.

    Example:
        >>> check_metrics([0, 1, 1], [0, 1, 0], labels=["cat", "dog"],
        ...               per_class_min={"recall": 0.9})  # doctest: +SKIP
    """
    __tracebackhide__ = True
    from mltest.eval.badcases import _collect
    from mltest.eval.calibration import _conf_correct, _from_confidences
    from mltest.report import format_table, record_check

    overall_names = OVERALL_METRICS + (_PROBA_METRICS if proba is not None else ())
    mins = _limits("min", min, overall_names)
    maxs = _limits("max", max, overall_names)
    class_mins = _limits("per_class_min", per_class_min, _CLASS_METRICS)
    if y_pred is None and proba is None:
        raise MLUsageError("check_metrics: give y_pred or proba")
    n = np.asarray(y_true).reshape(-1).shape[0]
    prob = None if proba is None else as_proba(proba, n, what="check_metrics")
    if y_pred is None:
        assert prob is not None
        y_pred, labels = predictions_from_proba(prob, y_true, labels, what="check_metrics")
    if inputs is not None and len(inputs) != n:
        raise MLUsageError(f"check_metrics: inputs has {len(inputs)} rows but y_true has {n}")
    m = classification_metrics(y_true, y_pred, labels, what="check_metrics")
    overall = dict(m.overall)
    if prob is not None:
        if prob.shape[1] != len(m.labels):
            raise MLUsageError(
                f"check_metrics: proba has {prob.shape[1]} columns but there are "
                f"{len(m.labels)} labels"
            )
        rows = np.arange(n)
        cal = _from_confidences(*_conf_correct(prob, m.true_index), n_bins, "uniform")
        overall["ece"] = cal.ece
        overall["mce"] = cal.mce
        p_true = np.clip(prob[rows, m.true_index], 1e-15, 1.0)
        overall["log_loss"] = float(-np.log(p_true).mean())

    failures: list[str] = []
    for metric, limit in mins.items():
        if overall[metric] < limit:
            failures.append(f"{metric} {_fmt(overall[metric])} < min {limit:g}")
    for metric, limit in maxs.items():
        if overall[metric] > limit:
            failures.append(f"{metric} {_fmt(overall[metric])} > max {limit:g}")
    # (gap below the limit, label, metric, value, limit) of every class under a minimum.
    weak: list[tuple[float, Any, str, float, float]] = []
    for metric, limit in class_mins.items():
        for label in m.labels:
            floor = _class_limit(limit, label, metric)
            value = m.per_class[label][metric]
            if floor is not None and value < floor:
                weak.append((value - floor, label, metric, value, floor))
    weak.sort(key=lambda t: (t[0], str(t[1])))
    if weak:
        metrics_missed = sorted({w[2] for w in weak})
        failures.append(
            f"per-class {'/'.join(metrics_missed)} below the minimum for "
            f"{len({w[1] for w in weak})} of {len(m.labels)} classes"
        )

    passed = not failures
    summary = ", ".join(
        f"{k} {_fmt(overall[k])}" for k in ("macro_f1", "accuracy", "ece") if k in overall
    )
    headline = (
        f"{'; '.join(failures)} ({n:,} rows)"
        if failures
        else f"{summary}: every threshold met ({n:,} rows, {len(m.labels)} classes)"
    )
    cases = None
    if not passed:
        focus = [w[1] for w in weak] or None
        cases = _collect(m.true_index, m.pred_index, m.labels, prob, inputs, max_bad_cases, focus)
    record_check(
        "eval",
        name,
        passed,
        headline=headline,
        metrics={
            **overall,
            **{f"f1[{label}]": v["f1"] for label, v in m.per_class.items()},
            "rows": n,
        },
        examples=None if cases is None else cases.examples(),
    )
    record_confusion(m, name=name, check=name)
    result = MetricsResult(
        overall=overall,
        per_class=m.per_class,
        labels=m.labels,
        confusion=m.confusion,
        failures=failures,
    )
    if passed:
        return result
    assert cases is not None
    lines = [f"{name}: {len(failures)} threshold(s) not met on {n:,} predictions"]
    lines.extend(f"  {f}" for f in failures)
    if weak:
        lines.extend(["", "classes below their minimum, worst first:"])
        lines.extend(
            format_table(
                ["class", "metric", "got", "min", "precision", "recall", "f1", "support"],
                [
                    [
                        label,
                        metric,
                        _fmt(value),
                        f"{floor:g}",
                        _fmt(m.per_class[label]["precision"]),
                        _fmt(m.per_class[label]["recall"]),
                        _fmt(m.per_class[label]["f1"]),
                        m.per_class[label]["support"],
                    ]
                    for _, label, metric, value, floor in weak
                ],
                limit=10,
                indent="  ",
            )
        )
    table = cases.table(limit=max_bad_cases)
    if table:
        order = "most confident first" if prob is not None else "in row order"
        lines.extend(["", f"bad cases ({order}):", *table])
    lines.extend(
        [
            "",
            "Read the bad cases: label errors, or a pattern the model misses "
            "(mltest.eval.bad_cases lists more).",
        ]
    )
    raise MLCheckFailure("\n".join(lines))
