"""check_metrics and bad_cases on constructed predictions whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.eval import bad_cases, check_metrics, classification_metrics

# 10 rows, 3 classes. a: 6 rows, 5 right (row 5 -> b); b: 3 rows, 2 right (row 8 -> a);
# c: 1 row, predicted a (row 9, the most confident mistake).
Y = ["a"] * 6 + ["b"] * 3 + ["c"]
P = ["a"] * 5 + ["b", "b", "b", "a", "a"]
PROBA = [[0.9, 0.05, 0.05]] * 5 + [[0.2, 0.7, 0.1]] + [[0.1, 0.8, 0.1]] * 2
PROBA += [[0.6, 0.3, 0.1], [0.95, 0.03, 0.02]]
TEXTS = [f"text {i}" for i in range(10)]

CASE = f"""
import pytest
from mltest.eval import check_metrics

Y = {Y!r}
P = {P!r}
PROBA = {PROBA!r}
TEXTS = {TEXTS!r}

@pytest.mark.ml
def test_gate():
    check_metrics(Y, P, PROBA, labels=["a", "b", "c"], min={{"macro_f1": MIN}},
                  per_class_min={{"f1": PER_CLASS}}, inputs=TEXTS)
"""


def test_scores_match_hand_computed_values() -> None:
    m = classification_metrics(Y, P)
    # a: tp 5, fp 2 (rows 8, 9), fn 1 -> p 5/7, r 5/6; b: tp 2, fp 1, fn 1; c: 0.
    assert m.per_class["a"] == pytest.approx(
        {"precision": 5 / 7, "recall": 5 / 6, "f1": 10 / 13, "support": 6}
    )
    assert m.per_class["b"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    assert m.per_class["c"]["f1"] == 0.0
    assert m.overall["accuracy"] == pytest.approx(0.7)
    assert m.overall["macro_f1"] == pytest.approx((10 / 13 + 2 / 3) / 3)
    assert m.confusion.tolist() == [[5, 1, 0], [1, 2, 0], [1, 0, 0]]


def test_same_numbers_as_scikit_learn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    t = rng.integers(0, 7, 500)
    p = np.where(rng.random(500) < 0.6, t, rng.integers(0, 7, 500))
    p[p == 3] = 2  # a class never predicted: precision 0 by zero_division=0
    report = sk.classification_report(t, p, output_dict=True, zero_division=0)
    m = classification_metrics(t, p)
    for label in m.labels:
        assert m.per_class[label]["f1"] == pytest.approx(report[str(label)]["f1-score"])
        assert m.per_class[label]["precision"] == pytest.approx(report[str(label)]["precision"])
    assert m.overall["macro_f1"] == pytest.approx(report["macro avg"]["f1-score"])
    assert m.overall["weighted_f1"] == pytest.approx(report["weighted avg"]["f1-score"])
    assert (m.confusion == sk.confusion_matrix(t, p)).all()


def test_integer_predictions_index_the_labels() -> None:
    m = classification_metrics([0, 1, 1], [0, 1, 0], labels=["cat", "dog"])
    assert m.labels == ["cat", "dog"]
    assert m.per_class["dog"]["recall"] == 0.5
    with pytest.raises(MLUsageError, match=r"y_pred holds a class index outside \[0, 2\)"):
        classification_metrics([0, 1], [0, 2], labels=["cat", "dog"])
    with pytest.raises(MLUsageError, match="y_true holds 'cow', which is not in labels"):
        classification_metrics(["cow"], ["cat"], labels=["cat", "dog"])


def test_failure_lists_worst_classes_with_support_and_bad_cases(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_gate=CASE.replace("MIN", "0.9").replace("PER_CLASS", "0.7"))
    result = pytester.runpytest("--ml", "--ml-report", "r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * mltest.errors.MLCheckFailure: metrics: 2 threshold(s) not met on 10 predictions",
            "E *   macro_f1 0.4786 < min 0.9",
            "E *   per-class f1 below the minimum for 2 of 3 classes",
            "E * classes below their minimum, worst first:",
            "E *   class  metric  got     min  precision  recall  f1      support",
            "E *   c      f1      0.0000  0.7  0.0000     0.0000  0.0000  1",
            "E *   b      f1      0.6667  0.7  0.6667     0.6667  0.6667  3",
            "E * bad cases (most confident first):",
            "E *   row  true  predicted  confidence  input",
            "E *   9    c     a          0.950       text 9",
            "E *   5    a     b          0.700       text 5",
            "E *   8    b     a          0.600       text 8",
        ]
    )
    test = json.loads((pytester.path / "r.json").read_text())["tests"][0]
    (check,) = test["checks"]
    assert check["name"] == "metrics"
    assert check["passed"] is False
    assert [e["row"] for e in check["examples"]] == [9, 5, 8]
    assert check["metrics"]["f1[c]"] == 0.0
    (figure,) = test["figures"]
    assert figure["kind"] == "heatmap"
    assert figure["data"]["values"] == [[5, 1, 0], [1, 2, 0], [1, 0, 0]]


def test_correct_twin_passes_and_is_recorded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gate=CASE.replace("MIN", "0.47").replace("PER_CLASS", "0.0"))
    result = pytester.runpytest("--ml", "--ml-report", "r.json")
    result.assert_outcomes(passed=1)
    (check,) = json.loads((pytester.path / "r.json").read_text())["tests"][0]["checks"]
    assert check["passed"] is True
    assert check["headline"] == (
        "macro_f1 0.4786, accuracy 0.7000, ece 0.3150: every threshold met (10 rows, 3 classes)"
    )


def test_per_class_limits_by_label_and_maximums() -> None:
    result = check_metrics(Y, P, labels=["a", "b", "c"], per_class_min={"f1": {"a": 0.75}})
    assert result.failures == []
    with pytest.raises(MLCheckFailure) as info:
        check_metrics(Y, P, PROBA, labels=["a", "b", "c"], max={"ece": 0.1, "log_loss": 5.0})
    first = str(info.value).splitlines()[:2]
    assert first == [
        "metrics: 1 threshold(s) not met on 10 predictions",
        "  ece 0.3150 > max 0.1",
    ]
    with pytest.raises(MLUsageError, match="unknown metric 'f2' in min; known: accuracy"):
        check_metrics(Y, P, min={"f2": 0.5})
    with pytest.raises(MLUsageError, match="unknown metric 'ece' in max"):
        check_metrics(Y, P, max={"ece": 0.5})  # no proba, no ece


def test_bad_cases_per_class_most_confident_first() -> None:
    cases = bad_cases(Y, P, proba=PROBA, labels=["a", "b", "c"], inputs=TEXTS, k=2)
    a = cases["a"]
    assert [c.row for c in a["false_positive"]] == [9, 8]
    assert [c.row for c in a["false_negative"]] == [5]
    assert [c.row for c in a["true_positive"]] == [0, 1]  # ties keep row order, k=2
    assert cases["c"]["false_negative"][0].to_dict() == {
        "label": "c",
        "kind": "false_negative",
        "row": 9,
        "true": "c",
        "predicted": "a",
        "confidence": 0.95,
        "input": "text 9",
    }
    # Without probabilities: y_pred from proba's argmax gives the same rows.
    same = bad_cases(Y, proba=PROBA, labels=["a", "b", "c"], k=2)
    assert [c.row for c in same["a"]["false_positive"]] == [9, 8]
    with pytest.raises(MLUsageError, match="bad_cases: give y_pred or proba"):
        bad_cases(Y)


def test_bad_cases_match_a_naive_ranking_with_ties() -> None:
    rng = np.random.default_rng(1)
    n, k = 400, 4
    y = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n).round(1)  # rounding makes many ties
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    conf = proba[np.arange(n), pred]
    cases = bad_cases(y, pred, proba=proba, k=3)
    for c in range(k):
        for kind, mask in (
            ("false_positive", (pred == c) & (y != pred)),
            ("false_negative", (y == c) & (y != pred)),
            ("true_positive", (y == c) & (y == pred)),
        ):
            naive = sorted(np.flatnonzero(mask).tolist(), key=lambda i: (-conf[i], i))[:3]
            assert [case.row for case in cases[c][kind]] == naive, (c, kind)
