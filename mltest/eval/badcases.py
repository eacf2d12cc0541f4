"""Bad-case review: true positives, false positives and false negatives per class.

A confusion matrix says how many; the bad cases say which. For each class,
:func:`bad_cases` keeps up to ``k`` rows of each kind with their inputs, the
most confident first: a confident mistake is the one worth reading (a label
error, a shortcut the model learnt). Every failed :func:`~mltest.eval.check_metrics`
shows them; call it on its own to review a model.

Example:
    >>> from mltest.eval import bad_cases
    >>> cases = bad_cases(["a", "b"], ["b", "b"], inputs=["x", "y"])
    >>> [(c.kind, c.row, c.input) for c in cases.rows(kinds=("false_positive",))]
    [('false_positive', 0, 'x')]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mltest.eval._metrics import as_proba, encode_labels, predictions_from_proba

__all__ = ["KINDS", "BadCase", "BadCases", "bad_cases"]

#: The kinds of rows kept per class, in the order they are shown.
KINDS = ("false_positive", "false_negative", "true_positive")

_MAX_INPUT = 120


@dataclass(frozen=True)
class BadCase:
    """One reviewed row.

    Attributes:
        label: The class it is reviewed under.
        kind: ``"false_positive"``, ``"false_negative"`` or ``"true_positive"``.
        row: Its position in the evaluated arrays.
        true: Its true label.
        predicted: The predicted label.
        confidence: The probability of the predicted class (None without ``proba``).
        input: The input (cut to 120 characters), None when no inputs were given.
    """

    label: Any
    kind: str
    row: int
    true: Any
    predicted: Any
    confidence: float | None
    input: str | None

    def to_dict(self) -> dict[str, Any]:
        """The row as a plain dict (for the report)."""
        return asdict(self)


class BadCases:
    """The reviewed rows of every class; iterate, or show as a table.

    Example:
        >>> cases = bad_cases([0, 1], [1, 1], labels=["a", "b"])
        >>> cases["b"]["false_positive"][0].true
        'a'
    """

    def __init__(self, by_class: dict[Any, dict[str, list[BadCase]]]) -> None:
        self.by_class = by_class

    def __getitem__(self, label: Any) -> dict[str, list[BadCase]]:
        return self.by_class[label]

    def __iter__(self) -> Iterator[BadCase]:
        return iter(self.rows())

    def rows(
        self,
        kinds: Sequence[str] = ("false_positive", "false_negative"),
        classes: Any = None,
        *,
        unique: bool = False,
    ) -> list[BadCase]:
        """The kept rows of the given kinds, most confident first across classes.

        Args:
            kinds: Which kinds to list (default: the mistakes).
            classes: Only these classes (default: all).
            unique: List each row once: a mistake is a false positive of the
                predicted class and a false negative of the true one.

        Example:
            >>> [(c.label, c.kind) for c in bad_cases([0, 1], [1, 1], labels=["a", "b"]).rows()]
            [('a', 'false_negative'), ('b', 'false_positive')]
        """
        out = [
            case
            for label, by_kind in self.by_class.items()
            if classes is None or label in classes
            for kind in kinds
            for case in by_kind.get(kind, [])
        ]
        # Confident mistakes first, then row order (the only order without a confidence).
        out.sort(key=lambda c: (-(c.confidence if c.confidence is not None else 0.0), c.row))
        if unique:
            seen: set[int] = set()
            kept = []
            for case in out:
                if case.row not in seen:
                    seen.add(case.row)
                    kept.append(case)
            out = kept
        return out

    def table(
        self,
        *,
        kinds: Sequence[str] = ("false_positive", "false_negative"),
        classes: Any = None,
        limit: int = 10,
        indent: str = "  ",
    ) -> list[str]:
        """The rows as text lines (each row once): row, true, predicted, confidence, input.

        Example:
            >>> bad_cases([0], [1], labels=["a", "b"]).table()[0].split()
            ['row', 'true', 'predicted', 'confidence', 'input']
        """
        from mltest.report import format_table

        rows = self.rows(kinds, classes, unique=True)
        if not rows:
            return []
        return format_table(
            ["row", "true", "predicted", "confidence", "input"],
            [
                [
                    c.row,
                    c.true,
                    c.predicted,
                    "-" if c.confidence is None else f"{c.confidence:.3f}",
                    "-" if c.input is None else c.input,
                ]
                for c in rows
            ],
            limit=limit,
            indent=indent,
        )

    def examples(
        self, kinds: Sequence[str] = ("false_positive", "false_negative"), classes: Any = None
    ) -> list[Any]:
        """The rows as dicts (each row once), for ``record_check(examples=...)``."""
        return [c.to_dict() for c in self.rows(kinds, classes, unique=True)]


def _short(value: Any) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= _MAX_INPUT else text[: _MAX_INPUT - 3] + "..."


def bad_cases(
    y_true: Any,
    y_pred: Any = None,
    *,
    proba: Any = None,
    labels: Sequence[Any] | None = None,
    inputs: Sequence[Any] | None = None,
    k: int = 5,
    classes: Sequence[Any] | None = None,
) -> BadCases:
    """Up to ``k`` true positives, false positives and false negatives per class.

    A false positive of class ``c`` is a row predicted ``c`` whose true class is
    another; a false negative of ``c`` is a row of class ``c`` predicted as
    another. Each kind is ranked by the confidence of the prediction, most
    confident first (ties keep row order); without ``proba``, rows keep their
    order.

    Args:
        y_true: True labels (names, or indices into ``labels``).
        y_pred: Predicted labels; default: the argmax of ``proba``.
        proba: Class probabilities ``(n, k)`` (columns in ``labels`` order).
        labels: Class names in index order.
        inputs: The inputs, one per row, shown with each case.
        k: Rows kept per class and kind.
        classes: Review only these classes.

    Returns:
        A :class:`BadCases`.

    Raises:
        MLUsageError: Mismatched lengths or labels, neither ``y_pred`` nor ``proba``.

    Example:
        >>> cases = bad_cases([0, 0, 1], proba=[[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]],
        ...                   labels=["spam", "ham"])
        >>> [(c.row, c.confidence) for c in cases["ham"]["false_positive"]]
        [(1, 0.8)]
    """
    from mltest.errors import MLUsageError

    if y_pred is None and proba is None:
        raise MLUsageError("bad_cases: give y_pred or proba")
    n = np.asarray(y_true).reshape(-1).shape[0]
    prob = None if proba is None else as_proba(proba, n, what="bad_cases")
    if y_pred is None:
        assert prob is not None
        y_pred, labels = predictions_from_proba(prob, y_true, labels, what="bad_cases")
    true, pred, names = encode_labels(y_true, y_pred, labels, what="bad_cases")
    if inputs is not None and len(inputs) != n:
        raise MLUsageError(f"bad_cases: inputs has {len(inputs)} rows but y_true has {n}")
    if prob is not None and prob.shape[1] != len(names):
        raise MLUsageError(
            f"bad_cases: proba has {prob.shape[1]} columns but there are {len(names)} labels"
        )
    return _collect(true, pred, names, prob, inputs, k, classes)


def _top_rows(
    rows: np.ndarray, group: np.ndarray, conf: np.ndarray | None, n_groups: int, k: int
) -> list[np.ndarray]:
    """For each group, up to ``k`` of ``rows`` in it: most confident first, ties by row.

    One stable sort of the (small-integer) group keys splits the rows by group;
    each group then takes its top ``k`` with a partial sort, so the cost is a
    few passes over the rows whatever the class count.
    """
    keys = group[rows]
    keys = keys.astype(np.int16 if n_groups < 2**15 else np.int64)  # int16: radix sort
    order = rows[np.argsort(keys, kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=n_groups))])
    out = []
    for g in range(n_groups):
        segment = order[bounds[g] : bounds[g + 1]]  # ascending row order within a group
        if conf is None or segment.size == 0:
            out.append(segment[:k])
            continue
        c = conf[segment]
        if segment.size > k:
            # Keep every row tied with the k-th confidence, then order exactly.
            kth = np.partition(c, segment.size - k)[segment.size - k]
            keep = c >= kth
            segment, c = segment[keep], c[keep]
        out.append(segment[np.lexsort((segment, -c))][:k])
    return out


def _collect(
    true: np.ndarray,
    pred: np.ndarray,
    names: list[Any],
    prob: np.ndarray | None,
    inputs: Sequence[Any] | None,
    k: int,
    classes: Sequence[Any] | None,
) -> BadCases:
    conf = None if prob is None else prob[np.arange(pred.size), pred]
    n = len(names)
    wrong = np.flatnonzero(true != pred)
    right = np.flatnonzero(true == pred)
    tops = {
        "false_positive": _top_rows(wrong, pred, conf, n, k),
        "false_negative": _top_rows(wrong, true, conf, n, k),
        "true_positive": _top_rows(right, true, conf, n, k),
    }
    wanted = None if classes is None else set(classes)
    by_class: dict[Any, dict[str, list[BadCase]]] = {}
    for c, name in enumerate(names):
        if wanted is not None and name not in wanted:
            continue
        by_class[name] = {
            kind: [
                BadCase(
                    label=name,
                    kind=kind,
                    row=int(i),
                    true=names[int(true[i])],
                    predicted=names[int(pred[i])],
                    confidence=None if conf is None else round(float(conf[i]), 6),
                    input=None if inputs is None else _short(inputs[int(i)]),
                )
                for i in tops[kind][c]
            ]
            for kind in KINDS
        }
    return BadCases(by_class)
