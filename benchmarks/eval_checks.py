"""Evaluation checks on 1M predictions vs scikit-learn's report, in the same run.

Run: python benchmarks/eval_checks.py [--rows 1000000] [--classes 20] [--slices 10] [--repeats 3]

Data: ``--rows`` predictions over ``--classes`` classes (softmax of noisy
logits, about 60% accuracy), and a categorical column with ``--slices``
values.

Timed, interleaved, after a warm-up, in CPU seconds of this process
(``time.process_time``; numpy and scikit-learn both run single-threaded here,
and on a shared machine wall time mostly measures the neighbours):

* mltest: every check of ``mltest.eval`` on the same arrays: ``check_metrics``
  with probabilities (overall and per-class scores, confusion matrix, ECE,
  MCE, log loss; per-class and overall thresholds), ``bad_cases`` (5 per class
  and kind, most confident first), ``slices_by_value`` + ``check_slices`` on
  the 10 slices, and ``check_calibration`` with equal-width and with
  equal-mass bins;
* scikit-learn: ``classification_report`` + ``confusion_matrix`` (the
  per-class and overall scores only).

Before timing, the per-class F1, macro/weighted F1 and the confusion matrix
are compared with scikit-learn's: the benchmark fails if they differ.

The last line is one JSON object: {"seconds", "sklearn_seconds",
"sklearn_ratio", ...} with medians over the repeats; target ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

# One thread for both sides, set before numpy loads its BLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402


def make_data(rows: int, classes: int, slices: int, seed: int = 0) -> dict[str, Any]:
    """Predictions whose accuracy varies by slice, as real ones do."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, classes, rows)
    group = rng.integers(0, slices, rows)
    logits = rng.normal(size=(rows, classes))
    logits[np.arange(rows), y_true] += 1.5 + 0.1 * group
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    return {"y_true": y_true, "proba": proba, "y_pred": proba.argmax(axis=1), "group": group}


def run_mltest(d: dict[str, Any]) -> None:
    """Every mltest.eval check on the arrays (thresholds set so that they pass)."""
    from mltest.eval import (
        bad_cases,
        check_calibration,
        check_metrics,
        check_slices,
        slices_by_value,
    )

    y, p, proba = d["y_true"], d["y_pred"], d["proba"]
    check_metrics(y, p, proba, min={"macro_f1": 0.1}, per_class_min={"f1": 0.1})
    bad_cases(y, p, proba=proba, k=5)
    check_slices(y, p, slices=slices_by_value(d["group"], name="group"), max_gap=0.5)
    check_calibration(y, proba, max_ece=1.0, strategy="uniform")
    check_calibration(y, proba, max_ece=1.0, strategy="quantile")


def run_sklearn(d: dict[str, Any]) -> None:
    """scikit-learn's classification_report and confusion_matrix on the same arrays."""
    from sklearn.metrics import classification_report, confusion_matrix

    classification_report(d["y_true"], d["y_pred"], zero_division=0)
    confusion_matrix(d["y_true"], d["y_pred"])


def same_numbers(d: dict[str, Any]) -> None:
    """Fail unless mltest's scores are scikit-learn's."""
    from sklearn.metrics import classification_report, confusion_matrix

    from mltest.eval import classification_metrics

    ours = classification_metrics(d["y_true"], d["y_pred"])
    theirs = classification_report(d["y_true"], d["y_pred"], zero_division=0, output_dict=True)
    for label in ours.labels:
        assert abs(ours.per_class[label]["f1"] - theirs[str(label)]["f1-score"]) < 1e-12, label
    assert abs(ours.overall["macro_f1"] - theirs["macro avg"]["f1-score"]) < 1e-12
    assert abs(ours.overall["weighted_f1"] - theirs["weighted avg"]["f1-score"]) < 1e-12
    assert (ours.confusion == confusion_matrix(d["y_true"], d["y_pred"])).all()


def _timed(fn: Any, d: dict[str, Any]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn(d)
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    """Time both sides and print the figures, the JSON object last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import sklearn.metrics  # noqa: F401 - import cost is not part of either side

    import mltest.eval.slices  # noqa: F401

    d = make_data(args.rows, args.classes, args.slices)
    same_numbers(d)
    run_mltest(d)  # warm-up
    run_sklearn(d)
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    for _ in range(args.repeats):
        ours.append(_timed(run_mltest, d))
        theirs.append(_timed(run_sklearn, d))
    seconds = statistics.median(c for c, _ in ours)
    sk_seconds = statistics.median(c for c, _ in theirs)
    wall_ratio = statistics.median(w for _, w in ours) / statistics.median(w for _, w in theirs)
    load = os.getloadavg()[0]
    print(
        f"{args.rows:,} predictions, {args.classes} classes, {args.slices} slices, "
        f"median of {args.repeats} (CPU seconds), load average {load:.2f}"
    )
    print(f"  mltest.eval, every check:                     {seconds:.3f} s")
    print(f"  sklearn classification_report + confusion:    {sk_seconds:.3f} s")
    print(f"  ratio {seconds / sk_seconds:.2f} (wall-clock ratio {wall_ratio:.2f}); target <= 1.5")
    print(
        json.dumps(
            {
                "seconds": round(seconds, 4),
                "sklearn_seconds": round(sk_seconds, 4),
                "sklearn_ratio": round(seconds / sk_seconds, 3),
                "wall_ratio": round(wall_ratio, 3),
                "rows": args.rows,
                "classes": args.classes,
                "slices": args.slices,
                "load_average": round(load, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
