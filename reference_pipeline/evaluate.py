"""Evaluation: overall, per class, slices, calibration, confusion samples and plots.

Everything here is a pure function of predictions except :func:`evaluate`,
which runs one or more models on a test frame and writes ``metrics.json`` and
the plots. The neural model and the baselines go through the same code, so
their numbers are comparable side by side.

Calibration uses the expected calibration error (ECE) with **equal-width
bins** on the confidence (the highest class probability of each row):
``n_bins`` bins split ``[0, 1]``; bin ``b`` (0-based) holds the rows with
``b / n_bins < confidence <= (b + 1) / n_bins`` (bin 0 also holds confidence
0). ``ECE = sum_b (n_b / n) * |accuracy_b - confidence_b|``, where
``accuracy_b`` is the fraction of correct predictions in the bin and
``confidence_b`` their mean confidence. Empty bins contribute nothing.

Example:
    >>> import numpy as np
    >>> result = evaluate_predictions([0, 1], np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"])
    >>> result["overall"]["accuracy"]
    1.0
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_N_BINS",
    "DEFAULT_TOP_K",
    "SLICES",
    "ProbaModel",
    "calibration",
    "evaluate",
    "evaluate_predictions",
    "plot_confusion",
    "plot_reliability",
    "slice_metrics",
    "top_errors",
    "write_json_atomic",
]

DEFAULT_N_BINS = 10
DEFAULT_TOP_K = 5

#: Word-count bounds of the length slices. BBC articles have a median of about
#: 330 words; roughly the shortest and the longest tenth fall in these slices.
SHORT_TEXT_WORDS = 200
LONG_TEXT_WORDS = 600

_NUMBER = re.compile(r"\d")
_MONEY = re.compile(r"[£$€]|\b\d+(?:\.\d+)?\s*(?:m|bn|million|billion)\b", re.IGNORECASE)
_QUOTE = re.compile(r"[\"“”]")


def _words(text: str) -> int:
    return len(text.split())


#: Slices as named predicates over one input text. Each slice reports its row
#: count and macro-F1 over the rows for which the predicate is true.
SLICES: dict[str, Callable[[str], bool]] = {
    "short_text": lambda text: _words(text) < SHORT_TEXT_WORDS,
    "long_text": lambda text: _words(text) > LONG_TEXT_WORDS,
    "has_number": lambda text: _NUMBER.search(text) is not None,
    "no_number": lambda text: _NUMBER.search(text) is None,
    "mentions_money": lambda text: _MONEY.search(text) is not None,
    "has_quote": lambda text: _QUOTE.search(text) is not None,
}


class ProbaModel(Protocol):
    """Anything with ``predict_proba(texts) -> (n, k)`` (Predictor, baselines)."""

    def predict_proba(self, texts: Sequence[str]) -> Any:
        """Return class probabilities, one row per text."""


ProbaSource = ProbaModel | Callable[[Sequence[str]], Any]


# ---------------------------------------------------------------------------
# Pure metrics
# ---------------------------------------------------------------------------


def _as_inputs(
    y_true: Sequence[int] | np.ndarray, y_prob: Any, labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    prob = np.asarray(y_prob, dtype=np.float64)
    if prob.ndim != 2:
        raise ValueError(f"y_prob must be 2-D (n, k), got shape {prob.shape}")
    if prob.shape[0] != true.shape[0]:
        raise ValueError(f"y_prob has {prob.shape[0]} rows but y_true has {true.shape[0]} labels")
    if prob.shape[1] != len(labels):
        raise ValueError(f"y_prob has {prob.shape[1]} columns but there are {len(labels)} labels")
    if true.size and (true.min() < 0 or true.max() >= len(labels)):
        raise ValueError(f"y_true holds a class index outside [0, {len(labels)})")
    return true, prob


def calibration(
    y_true: Sequence[int] | np.ndarray, y_prob: Any, *, n_bins: int = DEFAULT_N_BINS
) -> dict[str, Any]:
    """Expected calibration error and the reliability-diagram data.

    Uses equal-width confidence bins over ``[0, 1]`` (see the module docstring),
    computed by :func:`mltest.eval.calibration_report` (numpy only).

    Args:
        y_true: True class indices, shape ``(n,)``.
        y_prob: Class probabilities, shape ``(n, k)``.
        n_bins: Number of equal-width bins.

    Returns:
        ``{"ece", "n_bins", "binning", "bins": [{"lower", "upper", "count",
        "confidence", "accuracy"}, ...]}``; ``confidence`` and ``accuracy`` are
        ``None`` for an empty bin.

    Example:
        >>> calibration([0, 0], np.array([[0.8, 0.2], [0.6, 0.4]]), n_bins=5)["ece"]
        0.3
    """
    from mltest.eval import calibration_report

    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    cal = calibration_report(np.asarray(y_true, dtype=np.int64).reshape(-1), y_prob, n_bins=n_bins)
    keys = ("lower", "upper", "count", "confidence", "accuracy")
    return {
        "ece": cal.ece,
        "n_bins": n_bins,
        "binning": "equal-width bins of the top-class confidence over [0, 1]",
        "bins": [{key: b[key] for key in keys} for b in cal.bins],
    }


def slice_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    texts: Sequence[str],
    slices: Mapping[str, Callable[[str], bool]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Row count, accuracy and macro-F1 of each slice.

    Macro-F1 in a slice averages over the classes that occur in it (as true or
    predicted labels), so a slice without a class is not punished for it.

    Args:
        y_true: True class indices.
        y_pred: Predicted class indices.
        texts: The input texts the slice predicates look at.
        slices: Name -> predicate; defaults to :data:`SLICES`.

    Returns:
        ``{name: {"n", "accuracy", "macro_f1"}}``; the metrics are ``None`` for
        an empty slice.

    Example:
        >>> slice_metrics([0, 1], [0, 0], ["1 goal", "no digits"])["has_number"]
        {'n': 1, 'accuracy': 1.0, 'macro_f1': 1.0}
    """
    from mltest.eval._metrics import confusion_matrix, macro_f1_present

    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if len(texts) != len(true):
        raise ValueError(f"texts has {len(texts)} rows but y_true has {len(true)}")
    k = int(max(true.max(initial=0), pred.max(initial=0))) + 1
    out: dict[str, dict[str, Any]] = {}
    for name, predicate in (SLICES if slices is None else slices).items():
        mask = np.fromiter((bool(predicate(t)) for t in texts), dtype=bool, count=len(texts))
        n = int(mask.sum())
        if n == 0:
            out[name] = {"n": 0, "accuracy": None, "macro_f1": None}
            continue
        cm = confusion_matrix(true[mask], pred[mask], k)
        out[name] = {
            "n": n,
            "accuracy": float(np.trace(cm)) / n,
            "macro_f1": macro_f1_present(cm),
        }
    return out


def top_errors(
    y_true: Sequence[int] | np.ndarray,
    y_prob: Any,
    labels: Sequence[str],
    texts: Sequence[str] | None = None,
    *,
    k: int = DEFAULT_TOP_K,
    max_chars: int = 200,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The most confident false positives and false negatives of each class.

    A false positive of class ``c`` is a row predicted ``c`` whose true class
    is another; a false negative of ``c`` is a row of class ``c`` predicted as
    another. Both are ranked by the confidence of the (wrong) prediction, most
    confident first: those are the errors worth reading. The ranking is
    :func:`mltest.eval.bad_cases`.

    Args:
        y_true: True class indices.
        y_prob: Class probabilities, shape ``(n, k)``.
        labels: Class names, in index order.
        texts: Input texts, shown (cut to ``max_chars``) with each error.
        k: Errors kept per class and kind.
        max_chars: Longest text shown.

    Returns:
        ``{label: {"false_positives": [...], "false_negatives": [...]}}``, each
        error as ``{"index", "text", "true", "predicted", "confidence"}``.

    Example:
        >>> errs = top_errors([0], np.array([[0.3, 0.7]]), ["a", "b"], ["x"])
        >>> errs["b"]["false_positives"][0]["true"]
        'a'
    """
    from mltest.eval import bad_cases

    true, prob = _as_inputs(y_true, y_prob, labels)
    cases = bad_cases(true, proba=prob, labels=list(labels), k=k)

    def row(case: Any) -> dict[str, Any]:
        text = None if texts is None else str(texts[case.row])
        if text is not None and len(text) > max_chars:
            text = text[: max_chars - 3] + "..."
        return {
            "index": case.row,
            "text": text,
            "true": case.true,
            "predicted": case.predicted,
            "confidence": float(prob[case.row].max()),
        }

    return {
        label: {
            "false_positives": [row(c) for c in cases[label]["false_positive"]],
            "false_negatives": [row(c) for c in cases[label]["false_negative"]],
        }
        for label in labels
    }


def evaluate_predictions(
    y_true: Sequence[int] | np.ndarray,
    y_prob: Any,
    labels: Sequence[str],
    texts: Sequence[str] | None = None,
    slices: Mapping[str, Callable[[str], bool]] | None = None,
    *,
    n_bins: int = DEFAULT_N_BINS,
    top_k: int = DEFAULT_TOP_K,
) -> dict[str, Any]:
    """All metrics of one model's predictions on one labelled set.

    Args:
        y_true: True class indices, shape ``(n,)``.
        y_prob: Class probabilities, shape ``(n, k)``; the prediction is the argmax.
        labels: Class names in index order (``k`` of them).
        texts: The input texts; needed for slices and shown with the top errors.
        slices: Name -> predicate over a text; defaults to :data:`SLICES`.
            Ignored without ``texts``.
        n_bins: Calibration bins (see :func:`calibration`).
        top_k: False positives and negatives kept per class.

    Returns:
        A JSON-ready dict with ``n``, ``overall`` (accuracy, macro and weighted
        precision/recall/F1), ``per_class``, ``confusion_matrix`` (rows = true,
        columns = predicted, counts), ``calibration``, ``slices`` and
        ``top_errors``.

    Raises:
        ValueError: When shapes or class indices do not match.

    Example:
        >>> probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
        >>> evaluate_predictions([0, 1, 1], probs, ["a", "b"])["per_class"]["b"]["recall"]
        0.5
    """
    from mltest.eval import classification_metrics

    true, prob = _as_inputs(y_true, y_prob, labels)
    if len(true) == 0:
        raise ValueError("nothing to evaluate: y_true is empty")
    pred = prob.argmax(axis=1)
    # The same numbers as scikit-learn's classification_report (zero_division=0),
    # from one bincount: mltest.eval's numpy core, not the test plugin.
    scores = classification_metrics(true, pred, labels=[str(label) for label in labels])
    overall: dict[str, float] = {
        key: scores.overall[key]
        for key in (
            "accuracy",
            "macro_precision",
            "macro_recall",
            "macro_f1",
            "weighted_precision",
            "weighted_recall",
            "weighted_f1",
        )
    }
    per_class = {label: dict(scores.per_class[str(label)]) for label in labels}
    cal = calibration(true, prob, n_bins=n_bins)
    overall["ece"] = cal["ece"]
    result: dict[str, Any] = {
        "n": len(true),
        "overall": overall,
        "per_class": per_class,
        "confusion_matrix": {
            "labels": list(labels),
            "counts": scores.confusion.tolist(),
        },
        "calibration": cal,
        "slices": {} if texts is None else slice_metrics(true, pred, texts, slices),
        "top_errors": top_errors(true, prob, labels, texts, k=top_k),
    }
    return result


# ---------------------------------------------------------------------------
# Plots (matplotlib imported lazily, Agg backend: no display needed)
# ---------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(
    counts: Sequence[Sequence[int]], labels: Sequence[str], path: str | os.PathLike[str]
) -> Path:
    """Draw a confusion matrix (counts; rows true, columns predicted) to a PNG.

    Args:
        counts: Square matrix of counts.
        labels: Class names in index order.
        path: Where to write the PNG (parent folders are created).

    Returns:
        The written path.

    Example:
        >>> plot_confusion([[3, 1], [0, 4]], ["a", "b"], "cm.png")  # doctest: +SKIP
    """
    plt = _pyplot()
    matrix = np.asarray(counts)
    size = max(4.0, 0.8 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels=list(labels), rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels=list(labels))
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("Confusion matrix (counts)")
        high = matrix.max() if matrix.size else 0
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                color = "white" if high and matrix[i, j] > high / 2 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color)
        fig.tight_layout()
        return _save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_reliability(
    bins: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, ece: float | None = None
) -> Path:
    """Draw a reliability diagram (accuracy against confidence per bin) to a PNG.

    Args:
        bins: The ``bins`` list of :func:`calibration`.
        path: Where to write the PNG (parent folders are created).
        ece: Shown in the title when given.

    Returns:
        The written path.

    Example:
        >>> cal = calibration([0, 1], np.array([[0.9, 0.1], [0.3, 0.7]]))
        >>> plot_reliability(cal["bins"], "rel.png", ece=cal["ece"])  # doctest: +SKIP
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    try:
        full = [b for b in bins if b["count"]]
        width = (bins[0]["upper"] - bins[0]["lower"]) if bins else 0.1
        ax.bar(
            [b["lower"] for b in full],
            [b["accuracy"] for b in full],
            width=width,
            align="edge",
            edgecolor="black",
            label="accuracy",
        )
        ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        ax.plot(
            [b["confidence"] for b in full],
            [b["accuracy"] for b in full],
            "o",
            color="C1",
            label="accuracy at the bin's mean confidence",
        )
        for b in full:
            ax.annotate(
                f"n={b['count']}",
                (b["lower"] + width / 2, b["accuracy"] + 0.02),
                ha="center",
                fontsize=7,
            )
        ax.set_xlim(0, 1)
        # Headroom above 1.0 for the legend, so it never hides a bar.
        ax.set_ylim(0, 1.3)
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        title = "Reliability diagram"
        if ece is not None:
            title += f" (ECE {ece:.3f})"
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
        fig.tight_layout()
        return _save_figure(fig, path)
    finally:
        plt.close(fig)


def _save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".png", dir=target.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# ---------------------------------------------------------------------------
# Driver: run models on a test frame, write metrics.json and plots
# ---------------------------------------------------------------------------


def write_json_atomic(data: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``data`` as indented JSON through a temp file and a rename.

    Args:
        data: JSON-serialisable object.
        path: Target file; its folder is created.

    Returns:
        The written path.

    Example:
        >>> write_json_atomic({"f1": 0.9}, "metrics.json")  # doctest: +SKIP
    """
    from reference_pipeline.data import atomic_write_text

    target = Path(path)
    atomic_write_text(target, json.dumps(data, indent=2) + "\n")
    return target


def _proba_fn(source: ProbaSource) -> Callable[[Sequence[str]], Any]:
    method = getattr(source, "predict_proba", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    if callable(source):
        return source
    raise TypeError(f"{type(source).__name__} has no predict_proba and is not callable")


def model_texts(df: pd.DataFrame) -> list[str]:
    """The model input of each row: the ``text`` column, else title + " " + description.

    ``data.clean`` adds ``text`` (cleaned title and description); raw frames
    without it are joined here the same way.

    Example:
        >>> import pandas as pd
        >>> model_texts(pd.DataFrame({"title": ["A"], "description": ["b c"]}))
        ['A b c']
    """
    if "text" in df.columns:
        return [str(t) for t in df["text"].fillna("")]
    titles = df["title"].fillna("").astype(str)
    descriptions = df["description"].fillna("").astype(str)
    return [f"{t} {d}".strip() for t, d in zip(titles, descriptions, strict=True)]


def _label_names(encoder: Any) -> list[str]:
    for attr in ("classes", "classes_", "labels"):
        value = getattr(encoder, attr, None)
        if value is not None and not callable(value):
            return [str(v) for v in value]
    raise TypeError(f"cannot read class names from {type(encoder).__name__}")


def _encode(encoder: Any, tags: Sequence[str]) -> np.ndarray:
    for attr in ("encode", "transform"):
        method = getattr(encoder, attr, None)
        if callable(method):
            return np.asarray(method(list(tags)), dtype=np.int64)
    index = {name: i for i, name in enumerate(_label_names(encoder))}
    return np.asarray([index[t] for t in tags], dtype=np.int64)


def evaluate(
    predictor_or_proba_fn: ProbaSource | Mapping[str, ProbaSource],
    test_df: pd.DataFrame,
    encoder: Any,
    out_dir: str | os.PathLike[str],
    *,
    baselines: Mapping[str, ProbaSource] | None = None,
    texts_fn: Callable[[pd.DataFrame], list[str]] = model_texts,
    slices: Mapping[str, Callable[[str], bool]] | None = None,
    n_bins: int = DEFAULT_N_BINS,
    top_k: int = DEFAULT_TOP_K,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Evaluate the model (and baselines) on a test frame; write metrics and plots.

    Writes ``out_dir/metrics.json`` (atomically) and, for the model,
    ``out_dir/plots/confusion.png`` and ``out_dir/plots/reliability.png``.

    Args:
        predictor_or_proba_fn: The model: an object with ``predict_proba`` or a
            function ``texts -> (n, k)`` probabilities. A mapping
            ``name -> model`` evaluates several, the first being "the model".
        test_df: Frame with ``title``, ``description`` and ``tag`` columns.
        encoder: The label encoder (``classes`` in index order, ``encode``).
        out_dir: Folder for ``metrics.json`` and ``plots/``.
        baselines: ``name -> model`` evaluated by the same code, side by side.
        texts_fn: Turns the frame into model inputs.
        slices: Slice predicates; defaults to :data:`SLICES`.
        n_bins: Calibration bins.
        top_k: Top errors kept per class.
        extra: ``name -> {metric: value}`` merged into the summary row of that
            model (e.g. ``{"model": {"train_seconds": 12.3}}``).

    Returns:
        ``{"summary": {name: {macro_f1, accuracy, ece, predict_seconds, ...}},
        "models": {name: evaluate_predictions(...)}, "plots": {...}}``, the
        content of ``metrics.json``.

    Example:
        >>> metrics = evaluate(predictor, test_df, encoder, "artifacts/eval",
        ...                    baselines=baselines)  # doctest: +SKIP
        >>> metrics["summary"]["model"]["macro_f1"]  # doctest: +SKIP
        0.97
    """
    if isinstance(predictor_or_proba_fn, Mapping):
        models: dict[str, ProbaSource] = dict(predictor_or_proba_fn)
    else:
        models = {"model": predictor_or_proba_fn}
    for name, model in (baselines or {}).items():
        models.setdefault(name, model)
    if not models:
        raise ValueError("nothing to evaluate: no model given")
    labels = _label_names(encoder)
    texts = texts_fn(test_df)
    y_true = _encode(encoder, [str(t) for t in test_df["tag"]])

    results: dict[str, Any] = {}
    summary: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        start = time.perf_counter()
        prob = np.asarray(_proba_fn(model)(texts), dtype=np.float64)
        seconds = time.perf_counter() - start
        res = evaluate_predictions(y_true, prob, labels, texts, slices, n_bins=n_bins, top_k=top_k)
        results[name] = res
        summary[name] = {
            "macro_f1": res["overall"]["macro_f1"],
            "accuracy": res["overall"]["accuracy"],
            "ece": res["overall"]["ece"],
            "predict_seconds": round(seconds, 4),
            **dict((extra or {}).get(name, {})),
        }

    out = Path(out_dir)
    first = next(iter(results))
    plots = {
        "confusion": str(
            plot_confusion(
                results[first]["confusion_matrix"]["counts"],
                labels,
                out / "plots" / "confusion.png",
            )
        ),
        "reliability": str(
            plot_reliability(
                results[first]["calibration"]["bins"],
                out / "plots" / "reliability.png",
                ece=results[first]["overall"]["ece"],
            )
        ),
    }
    metrics = {"summary": summary, "models": results, "plots": plots}
    write_json_atomic(metrics, out / "metrics.json")
    return metrics
