"""Label issues by confident learning (Northcutt, Jiang and Chuang, JAIR 2021).

From out-of-sample predicted probabilities (cross-validated, or from a model
that never saw the row) and the given labels:

1. per-class thresholds ``t_j``: the mean predicted probability of class ``j``
   over the rows labelled ``j``;
2. the confident joint ``C[i][j]``: rows labelled ``i`` whose probability of
   ``j`` reaches ``t_j`` (the largest such ``j`` when several do);
3. ``C`` calibrated to the given label counts and normalised into the joint
   ``Q`` of given and true labels; the estimated noise rate is ``1 - trace(Q)``;
4. prune by noise rate: for each off-diagonal cell, the ``n * Q[i][j]`` rows
   labelled ``i`` with the largest margin ``p_j - p_i`` are suspects;
5. suspects are ranked by self-confidence (the probability of the given label),
   lowest first.

Written from the paper for mltest (cleanlab, the reference implementation, is
AGPL).

Example:
    >>> from mltest.data import check_label_issues
    >>> check_label_issues(y, oof_probs, class_names=TAGS, max_noise_rate=0.05)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.report import record_check

__all__ = ["LabelIssues", "check_label_issues", "find_label_issues"]

Method = Literal["prune_by_noise_rate", "confident_joint", "both"]


@dataclass
class LabelIssues:
    """What confident learning found.

    Attributes:
        rows: Positions of the suspected mislabeled rows, most suspicious first.
        given: Their given labels.
        suspected: The label the model believes instead.
        self_confidence: The predicted probability of the given label.
        suspected_confidence: The predicted probability of the suspected label.
        noise_rate: Estimated fraction of rows whose given label is wrong.
        thresholds: Per-class thresholds ``t_j``.
        confident_joint: ``C[given][suspected]`` counts.
        class_names: Names of the classes, in index order.
        n: Rows looked at.

    Example:
        >>> issues = find_label_issues(y, oof_probs)  # doctest: +SKIP
        >>> issues.noise_rate, issues.rows[:3]  # doctest: +SKIP
        (0.11, [431, 17, 988])
    """

    rows: list[int]
    given: list[Any]
    suspected: list[Any]
    self_confidence: list[float]
    suspected_confidence: list[float]
    noise_rate: float
    thresholds: list[float]
    confident_joint: list[list[int]]
    class_names: list[Any] = field(default_factory=list)
    n: int = 0

    def table(
        self, top: int = 10, texts: Sequence[Any] | None = None, index: Sequence[Any] | None = None
    ) -> str:
        """The ``top`` suspects as a table (row, given, suspected, confidences, text).

        Example:
            >>> print(find_label_issues(y, probs).table(top=5))  # doctest: +SKIP
        """
        lines = [
            f"{'row':>7}  {'given':<14}{'suspected':<14}{'p(given)':>9}{'p(susp.)':>9}"
            + ("  text" if texts is not None else "")
        ]
        for k in range(min(top, len(self.rows))):
            pos = self.rows[k]
            row = index[pos] if index is not None else pos
            line = (
                f"{row!s:>7}  {_cut(self.given[k], 12):<14}{_cut(self.suspected[k], 12):<14}"
                f"{self.self_confidence[k]:>9.3f}{self.suspected_confidence[k]:>9.3f}"
            )
            if texts is not None:
                line += f"  {_cut(texts[pos], 60)}"
            lines.append(line)
        if len(self.rows) > top:
            lines.append(f"... and {len(self.rows) - top} more")
        return "\n".join(lines)


def _cut(value: Any, width: int) -> str:
    text = repr(value) if not isinstance(value, int) else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _inputs(
    labels: Any, pred_probs: Any, class_names: Sequence[Any] | None
) -> tuple[Any, Any, list[Any]]:
    import numpy as np

    probs = np.asarray(pred_probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise MLUsageError(
            f"pred_probs has shape {probs.shape}: give one row per example and one column "
            "per class (at least 2)"
        )
    n, k = probs.shape
    raw = np.asarray(labels)
    if raw.shape != (n,):
        raise MLUsageError(f"labels has shape {raw.shape} but pred_probs has {n} rows")
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise MLUsageError("pred_probs has negative, NaN or infinite values")
    sums = probs.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        worst = int(np.argmax(np.abs(sums - 1)))
        raise MLUsageError(
            f"pred_probs rows must sum to 1 (row {worst} sums to {sums[worst]:.4f}): "
            "pass softmax probabilities, not logits"
        )
    names = list(class_names) if class_names is not None else list(range(k))
    if len(names) != k:
        raise MLUsageError(f"class_names has {len(names)} names but pred_probs has {k} columns")
    if raw.dtype.kind in "iu":
        y = raw.astype(int)
        bad = (y < 0) | (y >= k)
        if bad.any():
            pos = int(np.argmax(bad))
            raise MLUsageError(f"label {y[pos]} at row {pos} is not a class index in [0, {k})")
    else:
        lookup = {name: i for i, name in enumerate(names)}
        try:
            y = np.fromiter((lookup[v] for v in raw.tolist()), dtype=int, count=n)
        except KeyError as exc:
            raise MLUsageError(f"label {exc.args[0]!r} is not in class_names {names}") from None
    return y, probs, names


def find_label_issues(
    labels: Any,
    pred_probs: Any,
    *,
    class_names: Sequence[Any] | None = None,
    method: Method = "prune_by_noise_rate",
) -> LabelIssues:
    """Find rows whose given label is probably wrong, by confident learning.

    Args:
        labels: Given labels, ``n`` class indices (or names, with ``class_names``).
        pred_probs: ``(n, k)`` out-of-sample predicted probabilities.
        class_names: Class names in column order (default: the indices).
        method: ``"prune_by_noise_rate"`` (the paper's default), ``"confident_joint"``
            (every off-diagonal row of the confident joint) or ``"both"`` (rows
            both methods flag: fewer, surer suspects).

    Returns:
        The suspects, ranked, with the estimated noise rate.

    Raises:
        MLUsageError: For shapes that do not match, labels outside the classes
            or probabilities that do not sum to one.

    Example:
        >>> issues = find_label_issues([0, 1, 1], [[.9, .1], [.2, .8], [.95, .05]])
        >>> issues.rows, round(issues.noise_rate, 2)
        ([2], 0.33)
    """
    import numpy as np

    if method not in ("prune_by_noise_rate", "confident_joint", "both"):
        raise MLUsageError(
            f"method {method!r} is not 'prune_by_noise_rate', 'confident_joint' or 'both'"
        )
    y, probs, names = _inputs(labels, pred_probs, class_names)
    n, k = probs.shape
    counts = np.bincount(y, minlength=k)
    # 1. per-class thresholds (a class nobody has is never "confidently" predicted)
    thresholds = np.array(
        [probs[y == j, j].mean() if counts[j] else np.inf for j in range(k)], dtype=float
    )
    # 2. confident joint
    above = probs >= thresholds[None, :]
    masked = np.where(above, probs, -1.0)
    best = masked.argmax(axis=1)
    confident = above.any(axis=1)
    joint = np.zeros((k, k), dtype=np.int64)
    np.add.at(joint, (y[confident], best[confident]), 1)
    # 3. calibrate rows to the given label counts, normalise to the joint Q
    row_sums = joint.sum(axis=1, keepdims=True)
    calibrated = np.divide(joint, np.maximum(row_sums, 1)) * counts[:, None]
    total = calibrated.sum()
    q = calibrated / total if total > 0 else np.eye(k) / k
    noise_rate = float(max(0.0, 1.0 - np.trace(q)))
    # 4. suspects
    flagged_cj = np.zeros(n, dtype=bool)
    flagged_cj[confident] = best[confident] != y[confident]
    flagged_pbnr = np.zeros(n, dtype=bool)
    suspected = np.where(flagged_cj, best, -1)
    if method in ("prune_by_noise_rate", "both"):
        for i in range(k):
            rows_i = np.flatnonzero(y == i)
            if rows_i.size == 0:
                continue
            for j in range(k):
                if i == j:
                    continue
                num = round(float(n * q[i, j]))
                if num <= 0:
                    continue
                margin = probs[rows_i, j] - probs[rows_i, i]
                take = rows_i[np.argsort(-margin, kind="stable")[:num]]
                new = take[~flagged_pbnr[take]]
                flagged_pbnr[new] = True
                keep = suspected[new] < 0
                suspected[new[keep]] = j
    if method == "confident_joint":
        flagged = flagged_cj
    elif method == "prune_by_noise_rate":
        flagged = flagged_pbnr
    else:
        flagged = flagged_cj & flagged_pbnr
    rows = np.flatnonzero(flagged)
    # where suspected is still unset (pruned, not in the joint), take the best other class
    others = probs.copy()
    others[np.arange(n), y] = -1.0
    unset = suspected[rows] < 0
    suspected[rows[unset]] = others[rows[unset]].argmax(axis=1)
    self_conf = probs[rows, y[rows]]
    order = np.argsort(self_conf, kind="stable")
    rows = rows[order]
    return LabelIssues(
        rows=[int(r) for r in rows],
        given=[names[int(y[r])] for r in rows],
        suspected=[names[int(suspected[r])] for r in rows],
        self_confidence=[float(probs[r, y[r]]) for r in rows],
        suspected_confidence=[float(probs[r, suspected[r]]) for r in rows],
        noise_rate=noise_rate,
        thresholds=[float(t) for t in thresholds],
        confident_joint=joint.tolist(),
        class_names=names,
        n=n,
    )


def check_label_issues(
    labels: Any,
    pred_probs: Any,
    *,
    max_noise_rate: float = 0.05,
    class_names: Sequence[Any] | None = None,
    texts: Sequence[Any] | None = None,
    index: Sequence[Any] | None = None,
    top: int = 10,
    method: Method = "prune_by_noise_rate",
) -> LabelIssues:
    """Fail when the estimated label noise rate exceeds ``max_noise_rate``.

    Args:
        labels: Given labels (indices, or names with ``class_names``).
        pred_probs: ``(n, k)`` out-of-sample predicted probabilities.
        max_noise_rate: Largest tolerated estimated fraction of wrong labels.
        class_names: Class names in column order.
        texts: Row contents to show next to each suspect (e.g. the titles).
        index: Row labels to show instead of positions (e.g. ``df.index``).
        top: Suspects listed in the failure.
        method: See :func:`find_label_issues`.

    Returns:
        The issues found, when the noise rate is within the limit.

    Raises:
        MLCheckFailure: With the noise rate and the top suspects: row, given
            label, suspected label and both probabilities.

    Example:
        >>> check_label_issues(df.tag, oof_probs, class_names=TAGS,  # doctest: +SKIP
        ...                    texts=df.title, index=df.index, max_noise_rate=0.03)
    """
    __tracebackhide__ = True
    if not 0 <= max_noise_rate <= 1:
        raise MLUsageError(f"max_noise_rate {max_noise_rate} is not in [0, 1]")
    issues = find_label_issues(labels, pred_probs, class_names=class_names, method=method)
    texts_seq = list(texts) if texts is not None else None
    index_seq = list(index) if index is not None else None
    passed = issues.noise_rate <= max_noise_rate
    verdict = "exceeds" if not passed else "is within"
    headline = (
        f"estimated label noise {issues.noise_rate:.1%} {verdict} the limit {max_noise_rate:.1%} "
        f"(confident learning: {len(issues.rows):,} of {issues.n:,} rows look mislabeled)"
    )
    record_check(
        "data",
        "label_issues",
        passed,
        headline=headline,
        metrics={"cases": issues.n, "failed": len(issues.rows), "noise_rate": issues.noise_rate},
        examples=[
            {"row": (index_seq[r] if index_seq else r), "given": g, "suspected": s, "p_given": c}
            for r, g, s, c in zip(
                issues.rows[:top],
                issues.given,
                issues.suspected,
                issues.self_confidence,
                strict=False,
            )
        ],
        group={"check": "label_issues"},
    )
    if not passed:
        raise MLCheckFailure(
            f"{headline}\n\n{issues.table(top, texts_seq, index_seq)}\n\n"
            "Review the top suspects and relabel or drop them; raise max_noise_rate only "
            "if this level of noise is known and accepted."
        )
    return issues
