"""The numpy core of mltest.eval: label encoding, confusion matrices, scores.

Everything here is a pure function of arrays and imports numpy only, so the
reference pipeline (or any project) can use it at run time without the test
plugin. Confusion matrices are counted with one ``np.bincount`` over
``true * k + predicted``: one pass over the rows, whatever the class count.

Example:
    >>> import numpy as np
    >>> from mltest.eval._metrics import classification_metrics
    >>> m = classification_metrics([0, 1, 1], [0, 1, 0], labels=["a", "b"])
    >>> m.overall["accuracy"], m.per_class["b"]["recall"]
    (0.6666666666666666, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mltest.errors import MLUsageError

__all__ = [
    "ClassificationMetrics",
    "as_proba",
    "classification_metrics",
    "confusion_matrix",
    "encode_labels",
    "predictions_from_proba",
    "scores_from_confusion",
]

#: Overall metric names :func:`classification_metrics` computes.
OVERALL_METRICS = (
    "accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "weighted_precision",
    "weighted_recall",
    "weighted_f1",
)
#: Per-class metric names.
PER_CLASS_METRICS = ("precision", "recall", "f1", "support")


def _is_integer(a: np.ndarray) -> bool:
    return a.dtype.kind in "iub"


def encode_labels(
    y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None, *, what: str = "check"
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Turn true and predicted labels into class indices ``0..k-1``.

    With ``labels`` given and integer ``y``, the integers index ``labels`` (class
    names in index order, as a label encoder gives them). Otherwise ``y`` holds
    the labels themselves and ``labels`` (when given) fixes their order. Without
    ``labels`` the classes are the sorted union of the values seen, as
    scikit-learn does.

    Args:
        y_true: True labels, shape ``(n,)``.
        y_pred: Predicted labels, shape ``(n,)``.
        labels: Class names in index order, or None.
        what: The calling check's name, for messages.

    Returns:
        ``(true_index, pred_index, labels)``, indices as int64 arrays.

    Raises:
        MLUsageError: Mismatched lengths, or a label missing from ``labels``.

    Example:
        >>> t, p, names = encode_labels(["b", "a"], ["b", "b"])
        >>> t.tolist(), p.tolist(), names
        ([1, 0], [1, 1], ['a', 'b'])
    """
    true = np.asarray(y_true).reshape(-1)
    pred = np.asarray(y_pred).reshape(-1)
    if true.shape[0] != pred.shape[0]:
        raise MLUsageError(
            f"{what}: y_true has {true.shape[0]} rows but y_pred has {pred.shape[0]}"
        )
    if labels is not None:
        names = list(labels)
        if not names:
            raise MLUsageError(f"{what}: labels is empty")
        if _is_integer(true) and _is_integer(pred) and not _is_integer(np.asarray(names)):
            k = len(names)
            for arr, side in ((true, "y_true"), (pred, "y_pred")):
                if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= k):
                    raise MLUsageError(
                        f"{what}: {side} holds a class index outside [0, {k}) ({k} labels given)"
                    )
            return true.astype(np.int64, copy=False), pred.astype(np.int64, copy=False), names
        return (*_lookup(true, pred, names, what), names)
    if _is_integer(true) and _is_integer(pred) and true.size:
        low = min(int(true.min()), int(pred.min()))
        high = max(int(true.max()), int(pred.max()))
        if low >= 0 and high < 1 << 20:
            seen = np.bincount(true, minlength=high + 1) + np.bincount(pred, minlength=high + 1)
            present = np.flatnonzero(seen)
            table = np.full(high + 1, -1, dtype=np.int64)
            table[present] = np.arange(present.size)
            return table[true], table[pred], present.tolist()
    both = np.concatenate([true, pred])
    uniq, inverse = np.unique(both, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    return inverse[: true.size], inverse[true.size :], uniq.tolist()


def _lookup(
    true: np.ndarray, pred: np.ndarray, names: list[Any], what: str
) -> tuple[np.ndarray, np.ndarray]:
    index = {name: i for i, name in enumerate(names)}
    out = []
    for arr, side in ((true, "y_true"), (pred, "y_pred")):
        uniq, inverse = np.unique(arr, return_inverse=True)
        codes = np.empty(uniq.size, dtype=np.int64)
        for j, value in enumerate(uniq.tolist()):
            if value not in index:
                raise MLUsageError(f"{what}: {side} holds {value!r}, which is not in labels")
            codes[j] = index[value]
        out.append(codes[inverse.reshape(-1)])
    return out[0], out[1]


def confusion_matrix(true_index: np.ndarray, pred_index: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class (one bincount).

    Example:
        >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2).tolist()
        [[1, 0], [1, 1]]
    """
    code = true_index * n_classes + pred_index
    return np.bincount(code, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def scores_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix.

    A zero denominator gives 0, as scikit-learn's ``zero_division=0``.

    Example:
        >>> s = scores_from_confusion(np.array([[1, 0], [1, 1]]))
        >>> s["precision"].tolist(), s["recall"].tolist()
        ([0.5, 1.0], [1.0, 0.5])
    """
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def overall_from_confusion(cm: np.ndarray) -> dict[str, float]:
    """Accuracy and macro/weighted precision, recall and F1 from a confusion matrix.

    Macro averages run over the matrix's classes (all of ``labels``).

    Example:
        >>> overall_from_confusion(np.array([[1, 0], [1, 1]]))["accuracy"]
        0.6666666666666666
    """
    s = scores_from_confusion(cm)
    total = float(cm.sum())
    support = s["support"]
    out = {"accuracy": float(np.trace(cm)) / total if total else 0.0}
    for metric in ("precision", "recall", "f1"):
        values = s[metric]
        out[f"macro_{metric}"] = float(values.mean()) if values.size else 0.0
        out[f"weighted_{metric}"] = float((values * support).sum() / total) if total else 0.0
    return out


def macro_f1_present(cm: np.ndarray) -> float:
    """Macro-F1 over the classes that occur in ``cm`` (as true or predicted labels).

    The slice metric: a slice without some class is not punished for it.

    Example:
        >>> macro_f1_present(np.array([[2, 0, 0], [0, 0, 0], [0, 0, 0]]))
        1.0
    """
    s = scores_from_confusion(cm)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    return float(s["f1"][present].mean()) if present.any() else 0.0


@dataclass
class ClassificationMetrics:
    """Overall and per-class scores of one set of predictions.

    Attributes:
        labels: Class names in index order.
        confusion: Counts, rows = true, columns = predicted.
        overall: ``accuracy``, ``macro_*`` and ``weighted_*`` precision, recall, F1.
        per_class: ``{label: {"precision", "recall", "f1", "support"}}``.
        true_index: True class indices.
        pred_index: Predicted class indices.
    """

    labels: list[Any]
    confusion: np.ndarray
    overall: dict[str, float]
    per_class: dict[Any, dict[str, float]]
    true_index: np.ndarray
    pred_index: np.ndarray


def classification_metrics(
    y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None, *, what: str = "check"
) -> ClassificationMetrics:
    """Overall and per-class precision, recall, F1 and support, numpy only.

    The same numbers as scikit-learn's ``classification_report`` (with
    ``zero_division=0``), from one bincount.

    Args:
        y_true: True labels (names, or indices into ``labels``).
        y_pred: Predicted labels, the same way.
        labels: Class names in index order; default: the sorted labels seen.
        what: The calling check's name, for messages.

    Returns:
        A :class:`ClassificationMetrics`.

    Raises:
        MLUsageError: Empty or mismatched inputs, unknown labels.

    Example:
        >>> classification_metrics(["a", "b"], ["a", "a"]).per_class["a"]["precision"]
        0.5
    """
    true, pred, names = encode_labels(y_true, y_pred, labels, what=what)
    if true.size == 0:
        raise MLUsageError(f"{what}: nothing to evaluate, y_true is empty")
    cm = confusion_matrix(true, pred, len(names))
    s = scores_from_confusion(cm)
    per_class = {
        name: {
            "precision": float(s["precision"][i]),
            "recall": float(s["recall"][i]),
            "f1": float(s["f1"][i]),
            "support": int(s["support"][i]),
        }
        for i, name in enumerate(names)
    }
    return ClassificationMetrics(
        labels=names,
        confusion=cm,
        overall=overall_from_confusion(cm),
        per_class=per_class,
        true_index=true,
        pred_index=pred,
    )


def predictions_from_proba(
    prob: np.ndarray, y_true: Any, labels: Sequence[Any] | None, *, what: str = "check"
) -> tuple[np.ndarray, list[Any]]:
    """The argmax of ``prob``, spelled like ``y_true`` (indices, or names from ``labels``).

    Returns:
        ``(y_pred, labels)``; ``labels`` defaults to the column indices.

    Example:
        >>> predictions_from_proba(np.array([[0.2, 0.8]]), ["b"], ["a", "b"])[0].tolist()
        ['b']
    """
    top = prob.argmax(axis=1)
    if labels is None:
        return top, list(range(prob.shape[1]))
    names = list(labels)
    if len(names) != prob.shape[1]:
        raise MLUsageError(
            f"{what}: proba has {prob.shape[1]} columns but there are {len(names)} labels"
        )
    if _is_integer(np.asarray(y_true).reshape(-1)) and not _is_integer(np.asarray(names)):
        return top, names
    return np.asarray(names, dtype=object)[top], names


def as_proba(proba: Any, n_rows: int, *, what: str = "check") -> np.ndarray:
    """Class probabilities as a float ``(n, k)`` array; a 1-D array is binary ``P(class 1)``.

    Raises:
        MLUsageError: Wrong shape, or values outside [0, 1] or not finite.

    Example:
        >>> as_proba([0.2, 0.9], 2).tolist()
        [[0.8, 0.2], [0.09999999999999998, 0.9]]
    """
    prob = np.asarray(proba, dtype=np.float64)
    if prob.ndim == 1:
        prob = np.stack([1.0 - prob, prob], axis=1)
    if prob.ndim != 2:
        raise MLUsageError(f"{what}: proba must be (n, k) or (n,), got shape {prob.shape}")
    if prob.shape[0] != n_rows:
        raise MLUsageError(f"{what}: proba has {prob.shape[0]} rows but y_true has {n_rows}")
    # min and max catch NaN (they propagate it) and infinities (out of range).
    if prob.size and not (float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0):
        raise MLUsageError(
            f"{what}: proba holds values outside [0, 1] (or NaN): pass probabilities"
        )
    return prob
