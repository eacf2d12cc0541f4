"""Calibration: ECE and MCE, reliability tables and diagrams, temperature scaling.

A model is calibrated when, among the rows it predicts with confidence 0.8,
80% are right. The confidence of a row is its top-class probability. Rows are
put in bins by confidence; in each bin ``b`` the gap is
``|accuracy_b - confidence_b|``:

* ``ECE = sum_b (n_b / n) * gap_b`` (expected calibration error),
* ``MCE = max_b gap_b`` over non-empty bins (maximum calibration error).

Two binnings:

* ``"uniform"`` (equal width): bin ``b`` of ``n_bins`` holds
  ``b / n_bins < confidence <= (b + 1) / n_bins`` (bin 0 also holds 0);
* ``"quantile"`` (equal mass): the edges are the confidence quantiles, a row
  falls in the first bin whose upper edge is at or above its confidence, so
  tied confidences always share a bin and the result does not depend on
  row order.

Example:
    >>> from mltest.eval import expected_calibration_error
    >>> expected_calibration_error([0, 1], [[0.9, 0.1], [0.4, 0.6]], n_bins=10)
    0.25
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.eval._metrics import as_proba

__all__ = [
    "STRATEGIES",
    "Calibration",
    "TemperatureFit",
    "apply_temperature",
    "calibration_report",
    "check_calibration",
    "expected_calibration_error",
    "fit_temperature",
    "max_calibration_error",
    "reliability_table",
]

STRATEGIES = ("uniform", "quantile")


@dataclass
class Calibration:
    """ECE, MCE and the reliability table of one set of predictions.

    Attributes:
        ece: Expected calibration error.
        mce: Maximum calibration error (0 when there are no rows).
        n_bins: Bins asked for.
        strategy: ``"uniform"`` or ``"quantile"``.
        bins: One dict per bin: ``lower``, ``upper``, ``count``, ``confidence``,
            ``accuracy``, ``gap`` (the last three None for an empty bin).
        n: Rows.
    """

    ece: float
    mce: float
    n_bins: int
    strategy: str
    bins: list[dict[str, Any]]
    n: int

    def table(self, *, indent: str = "  ", only_filled: bool = True) -> list[str]:
        """The reliability table as text lines.

        Example:
            >>> calibration_report([0], [[0.9, 0.1]], n_bins=2).table()[0].split()
            ['bin', 'rows', 'confidence', 'accuracy', 'gap']
        """
        from mltest.report import format_table

        rows = [
            [
                f"({b['lower']:.2f}, {b['upper']:.2f}]",
                b["count"],
                "-" if b["confidence"] is None else f"{b['confidence']:.3f}",
                "-" if b["accuracy"] is None else f"{b['accuracy']:.3f}",
                "-" if b["gap"] is None else f"{b['gap']:.3f}",
            ]
            for b in self.bins
            if b["count"] or not only_filled
        ]
        return format_table(["bin", "rows", "confidence", "accuracy", "gap"], rows, indent=indent)


def _inputs(y_true: Any, proba: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(y_true).reshape(-1)
    prob = as_proba(proba, true.shape[0], what=what)
    if true.dtype.kind not in "iub":
        raise MLUsageError(f"{what}: y_true must be class indices (columns of proba)")
    true = true.astype(np.int64, copy=False)
    if true.size and (int(true.min()) < 0 or int(true.max()) >= prob.shape[1]):
        raise MLUsageError(f"{what}: y_true holds a class index outside [0, {prob.shape[1]})")
    return _conf_correct(prob, true)


def _check_bins(n_bins: int, strategy: str, what: str) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise MLUsageError(f"{what}: n_bins must be an integer >= 1, got {n_bins!r}")
    if strategy not in STRATEGIES:
        raise MLUsageError(
            f"{what}: strategy {strategy!r} is not one of {', '.join(map(repr, STRATEGIES))}"
        )


def _from_confidences(
    conf: np.ndarray, correct: np.ndarray, n_bins: int, strategy: str
) -> Calibration:
    n = conf.size
    if strategy == "uniform":
        edges = np.arange(n_bins + 1) / n_bins  # exact b / n_bins, as the docs say
        index = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    else:
        edges = (
            np.quantile(conf, np.linspace(0.0, 1.0, n_bins + 1))
            if n
            else np.linspace(0.0, 1.0, n_bins + 1)
        )
        # Value-based: ties share a bin (first bin whose upper edge >= confidence).
        index = np.clip(np.searchsorted(edges[1:-1], conf, side="left"), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=conf, minlength=n_bins)
    right = np.bincount(index, weights=correct.astype(np.float64), minlength=n_bins)
    bins: list[dict[str, Any]] = []
    ece = 0.0
    mce = 0.0
    for b in range(n_bins):
        count = int(counts[b])
        entry: dict[str, Any] = {
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "count": count,
            "confidence": None,
            "accuracy": None,
            "gap": None,
        }
        if count:
            mean_conf = float(conf_sum[b]) / count
            acc = float(right[b]) / count
            gap = abs(acc - mean_conf)
            entry.update(confidence=mean_conf, accuracy=acc, gap=gap)
            ece += count / n * gap
            mce = max(mce, gap)
        bins.append(entry)
    return Calibration(
        ece=round(ece, 12), mce=round(mce, 12), n_bins=n_bins, strategy=strategy, bins=bins, n=n
    )


def calibration_report(
    y_true: Any, proba: Any, *, n_bins: int = 10, strategy: str = "uniform"
) -> Calibration:
    """ECE, MCE and the reliability table (see the module docstring for the bins).

    Args:
        y_true: True class indices (columns of ``proba``), shape ``(n,)``.
        proba: Class probabilities ``(n, k)``, or ``(n,)`` for binary ``P(class 1)``.
        n_bins: Number of bins.
        strategy: ``"uniform"`` (equal width) or ``"quantile"`` (equal mass).

    Returns:
        A :class:`Calibration`.

    Raises:
        MLUsageError: Bad shapes, probabilities outside [0, 1], bad bins.

    Example:
        >>> calibration_report([0, 0], [[0.8, 0.2], [0.6, 0.4]], n_bins=5).ece
        0.3
    """
    _check_bins(n_bins, strategy, "calibration_report")
    conf, correct = _inputs(y_true, proba, "calibration_report")
    return _from_confidences(conf, correct, n_bins, strategy)


def expected_calibration_error(
    y_true: Any, proba: Any, *, n_bins: int = 10, strategy: str = "uniform"
) -> float:
    """Expected calibration error, in [0, 1].

    Example:
        >>> expected_calibration_error([0, 0], [[0.8, 0.2], [0.6, 0.4]], n_bins=5)
        0.3
    """
    return calibration_report(y_true, proba, n_bins=n_bins, strategy=strategy).ece


def max_calibration_error(
    y_true: Any, proba: Any, *, n_bins: int = 10, strategy: str = "uniform"
) -> float:
    """Maximum calibration error over the non-empty bins, in [0, 1].

    Example:
        >>> max_calibration_error([0, 0], [[0.8, 0.2], [0.6, 0.4]], n_bins=5)
        0.4
    """
    return calibration_report(y_true, proba, n_bins=n_bins, strategy=strategy).mce


def reliability_table(
    y_true: Any, proba: Any, *, n_bins: int = 10, strategy: str = "uniform"
) -> list[dict[str, Any]]:
    """The reliability diagram's data: one dict per bin (see :class:`Calibration`).

    Example:
        >>> reliability_table([0], [[0.9, 0.1]], n_bins=2)[1]["accuracy"]
        1.0
    """
    return calibration_report(y_true, proba, n_bins=n_bins, strategy=strategy).bins


def _png(cal: Calibration) -> str | None:
    """The reliability diagram as base64 PNG, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the pipeline extra
        return None
    fig, ax = plt.subplots(figsize=(4, 4))
    try:
        full = [b for b in cal.bins if b["count"]]
        ax.bar(
            [b["lower"] for b in full],
            [b["accuracy"] for b in full],
            width=[b["upper"] - b["lower"] for b in full],
            align="edge",
            edgecolor="black",
            label="accuracy",
        )
        ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_title(f"Reliability (ECE {cal.ece:.3f}, {cal.strategy} bins)")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72)
        return base64.b64encode(buf.getvalue()).decode("ascii")
    finally:
        plt.close(fig)


def record_reliability(cal: Calibration, *, name: str, check: str, png: bool = False) -> None:
    """Attach the reliability diagram to the running test's report (bars, optionally PNG).

    Example:
        >>> cal = calibration_report([0], [[0.9, 0.1]])
            >>> record_reliability(cal, name="rel", check="calibration")
    """
    from mltest.report import current_record, record_figure

    if current_record() is None:
        return
    labels = [f"{b['lower']:.2f}-{b['upper']:.2f}" for b in cal.bins]
    record_figure(
        f"{name}.reliability",
        "bars",
        {
            "labels": labels,
            "series": {
                "accuracy": [b["accuracy"] or 0.0 for b in cal.bins],
                "confidence": [b["confidence"] or 0.0 for b in cal.bins],
            },
            "counts": [b["count"] for b in cal.bins],
            "x_label": "confidence bin",
            "y_label": "accuracy",
        },
        title=f"Reliability diagram (ECE {cal.ece:.4f}, {cal.strategy} bins)",
        check=check,
        caption="accuracy against mean confidence per bin; a calibrated model is on the diagonal",
    )
    if png:
        encoded = _png(cal)
        if encoded is not None:
            record_figure(f"{name}.reliability_png", "png", {"base64": encoded}, check=check)


def check_calibration(
    y_true: Any,
    proba: Any,
    *,
    max_ece: float | None = None,
    max_mce: float | None = None,
    n_bins: int = 10,
    strategy: str = "uniform",
    name: str = "calibration",
    png: bool = False,
    inputs: Sequence[Any] | None = None,
    max_bad_cases: int = 5,
) -> Calibration:
    """Fail when the expected (or maximum) calibration error is over its limit.

    Records the check and the reliability diagram (bars; with ``png=True`` also a
    PNG when matplotlib is importable) in the mltest report.

    Args:
        y_true: True class indices, shape ``(n,)``.
        proba: Class probabilities ``(n, k)``, or ``(n,)`` for binary.
        max_ece: Largest allowed ECE.
        max_mce: Largest allowed MCE.
        n_bins: Number of bins.
        strategy: ``"uniform"`` (equal width) or ``"quantile"`` (equal mass).
        name: The check's name in the report.
        png: Also attach a PNG of the diagram.
        inputs: The inputs, one per row, shown with the most confident mistakes.
        max_bad_cases: Mistakes shown on failure.

    Returns:
        The :class:`Calibration`, when it passes.

    Raises:
        MLCheckFailure: Over a limit; the message holds the reliability table and
            the most confident mistakes.
        MLUsageError: No limit given, or bad inputs.

    Example:
        >>> check_calibration([0, 1], [[0.9, 0.1], [0.2, 0.8]], max_ece=0.2)  # doctest: +ELLIPSIS
        Calibration(ece=0.15...)
    """
    __tracebackhide__ = True
    from mltest.report import record_check

    if max_ece is None and max_mce is None:
        raise MLUsageError("check_calibration: give max_ece and/or max_mce")
    for limit, label in ((max_ece, "max_ece"), (max_mce, "max_mce")):
        if limit is not None and not 0.0 <= limit <= 1.0:
            raise MLUsageError(f"check_calibration: {label} must be in [0, 1], got {limit}")
    cal = calibration_report(y_true, proba, n_bins=n_bins, strategy=strategy)
    over = []
    if max_ece is not None and cal.ece > max_ece:
        over.append(f"ECE {cal.ece:.4f} > max {max_ece:g}")
    if max_mce is not None and cal.mce > max_mce:
        over.append(f"MCE {cal.mce:.4f} > max {max_mce:g}")
    where = f"{cal.n:,} rows, {n_bins} {strategy} bins"
    headline = (
        f"{'; '.join(over)} ({where})"
        if over
        else f"ECE {cal.ece:.4f}, MCE {cal.mce:.4f} within limits ({where})"
    )
    record_check(
        "eval",
        name,
        not over,
        headline=headline,
        metrics={"ece": cal.ece, "mce": cal.mce, "max_ece": max_ece, "max_mce": max_mce},
        examples=[b for b in sorted(cal.bins, key=lambda b: -(b["gap"] or 0.0)) if b["count"]][:5]
        if over
        else None,
    )
    record_reliability(cal, name=name, check=name, png=png)
    if over:
        lines = [f"{name}: {headline}", "", *cal.table()]
        mistakes = _mistakes(y_true, proba, inputs, max_bad_cases)
        if mistakes:
            lines.extend(["", "most confident mistakes:", *mistakes])
        lines.extend(["", _advice(cal)])
        raise MLCheckFailure("\n".join(lines))
    return cal


def _mistakes(y_true: Any, proba: Any, inputs: Sequence[Any] | None, k: int) -> list[str]:
    """The most confident wrong rows as table lines (an over-confident model's evidence)."""
    from mltest.eval.badcases import _collect

    true = np.asarray(y_true).reshape(-1).astype(np.int64)
    prob = as_proba(proba, true.shape[0], what="check_calibration")
    if inputs is not None and len(inputs) != true.shape[0]:
        raise MLUsageError(
            f"check_calibration: inputs has {len(inputs)} rows but y_true has {true.shape[0]}"
        )
    cases = _collect(true, prob.argmax(axis=1), list(range(prob.shape[1])), prob, inputs, k, None)
    return cases.table(limit=k)


def _advice(cal: Calibration) -> str:
    filled = [b for b in cal.bins if b["count"]]
    over = sum(b["count"] * (b["confidence"] - b["accuracy"]) for b in filled)
    if over > 0:
        return (
            "The model is over-confident (accuracy below confidence): fit a temperature on "
            "validation data (mltest.eval.fit_temperature gives T > 1), or train with label "
            "smoothing."
        )
    return (
        "The model is under-confident (accuracy above confidence): fit a temperature on "
        "validation data (mltest.eval.fit_temperature gives T < 1)."
    )


@dataclass
class TemperatureFit:
    """A fitted temperature and what it did on the data it was fitted on.

    Attributes:
        temperature: ``T``; probabilities are ``softmax(logits / T)``.
        ece_before: ECE of ``softmax(logits)``.
        ece_after: ECE of ``softmax(logits / T)``.
        nll_before: Mean negative log-likelihood before.
        nll_after: Mean negative log-likelihood after.
    """

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float

    def apply(self, logits: Any) -> np.ndarray:
        """Calibrated probabilities for new logits.

        Example:
            >>> TemperatureFit(2.0, 0, 0, 0, 0).apply([[0.0, 2.0]]).round(3).tolist()
            [[0.269, 0.731]]
        """
        return apply_temperature(logits, self.temperature)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def apply_temperature(logits: Any, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)``.

    Example:
        >>> apply_temperature([[0.0, 0.0]], 3.0).tolist()
        [[0.5, 0.5]]
    """
    if not temperature > 0:
        raise MLUsageError(f"apply_temperature: temperature must be > 0, got {temperature}")
    return _softmax(np.asarray(logits, dtype=np.float64) / temperature)


def _nll(z: np.ndarray, true: np.ndarray, temperature: float) -> float:
    s = z / temperature
    s = s - s.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(s).sum(axis=1))
    return float((log_norm - s[np.arange(true.size), true]).mean())


def fit_temperature(
    y_true: Any,
    logits: Any = None,
    *,
    proba: Any = None,
    n_bins: int = 10,
    strategy: str = "uniform",
    bounds: Sequence[float] = (0.05, 20.0),
) -> TemperatureFit:
    """Fit one temperature on validation data by minimising the negative log-likelihood.

    The fit (temperature, ECE and NLL before and after) also goes into the
    running test's report as the metric ``temperature_scaling``.

    Temperature scaling (Guo et al. 2017) divides the logits by ``T`` before the
    softmax: ``T > 1`` softens over-confident predictions, ``T < 1`` sharpens
    under-confident ones; the predicted class never changes. The search is a
    golden-section search on ``log T`` (the NLL is convex in ``1/T``).

    Args:
        y_true: True class indices of the validation rows.
        logits: Validation logits ``(n, k)``.
        proba: Or probabilities ``(n, k)``; their logs are used as logits.
        n_bins: Bins for the ECE reported before and after.
        strategy: Binning for that ECE.
        bounds: Search range of ``T``.

    Returns:
        A :class:`TemperatureFit` with ECE and NLL before and after.

    Raises:
        MLUsageError: Neither or both of ``logits`` and ``proba``; bad shapes.

    Example:
        >>> fit = fit_temperature([0, 1, 0, 1], [[4.0, 0.0], [0.0, 4.0], [0.0, 4.0], [0.0, 4.0]])
        >>> fit.temperature > 1 and fit.ece_after < fit.ece_before
        True
    """
    if (logits is None) == (proba is None):
        raise MLUsageError("fit_temperature: give logits or proba (one of them)")
    true = np.asarray(y_true).reshape(-1)
    if logits is None:
        p = as_proba(proba, true.shape[0], what="fit_temperature")
        z = np.log(np.clip(p, 1e-12, 1.0))
    else:
        z = np.asarray(logits, dtype=np.float64)
        if z.ndim != 2 or z.shape[0] != true.shape[0]:
            raise MLUsageError(
                f"fit_temperature: logits must be (n, k) with n = {true.shape[0]}, got {z.shape}"
            )
        if not np.isfinite(z).all():
            raise MLUsageError("fit_temperature: logits hold NaN or infinity")
    if true.size == 0:
        raise MLUsageError("fit_temperature: nothing to fit, y_true is empty")
    if true.dtype.kind not in "iu" or int(true.min()) < 0 or int(true.max()) >= z.shape[1]:
        raise MLUsageError(f"fit_temperature: y_true must be class indices in [0, {z.shape[1]})")
    true = true.astype(np.int64)
    low, high = np.log(bounds[0]), np.log(bounds[1])
    ratio = (np.sqrt(5.0) - 1) / 2
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = _nll(z, true, float(np.exp(c))), _nll(z, true, float(np.exp(d)))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = _nll(z, true, float(np.exp(c)))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = _nll(z, true, float(np.exp(d)))
    temperature = float(np.exp((a + b) / 2))
    before = _from_confidences(*_conf_correct(_softmax(z), true), n_bins, strategy)
    after = _from_confidences(
        *_conf_correct(apply_temperature(z, temperature), true), n_bins, strategy
    )
    fit = TemperatureFit(
        temperature=round(temperature, 6),
        ece_before=before.ece,
        ece_after=after.ece,
        nll_before=_nll(z, true, 1.0),
        nll_after=_nll(z, true, temperature),
    )
    from mltest.report import record_metric

    record_metric("temperature_scaling", {k: round(v, 4) for k, v in vars(fit).items()})
    return fit


def _conf_correct(prob: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-class confidence and correctness (one argmax and a gather, not max + argmax)."""
    top = prob.argmax(axis=1)
    return prob[np.arange(top.size), top], top == true
