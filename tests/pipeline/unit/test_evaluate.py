"""Evaluation math on hand-made inputs whose answers are worked out by hand."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reference_pipeline import evaluate as ev

# Rows: true 0, 0, 1, 1, 2; predicted 0, 1, 1, 1, 0.
Y_TRUE = [0, 0, 1, 1, 2]
PROBS = np.array(
    [
        [0.9, 0.05, 0.05],  # correct, conf 0.9
        [0.3, 0.6, 0.1],  # wrong (pred 1), conf 0.6
        [0.2, 0.7, 0.1],  # correct, conf 0.7
        [0.1, 0.8, 0.1],  # correct, conf 0.8
        [0.5, 0.2, 0.3],  # wrong (pred 0), conf 0.5
    ]
)
LABELS = ["a", "b", "c"]


def test_per_class_scores_match_hand_computed_values() -> None:
    result = ev.evaluate_predictions(Y_TRUE, PROBS, LABELS)
    # a: tp 1, fp 1 (row 4), fn 1 (row 1); b: tp 2, fp 1, fn 0; c: tp 0, fn 1.
    assert result["per_class"]["a"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert result["per_class"]["b"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert result["per_class"]["c"] == pytest.approx(
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    )
    assert result["overall"]["accuracy"] == pytest.approx(3 / 5)
    assert result["overall"]["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert result["overall"]["weighted_f1"] == pytest.approx((2 * 0.5 + 2 * 0.8) / 5)
    assert result["n"] == 5


def test_confusion_matrix_rows_are_true_columns_predicted() -> None:
    result = ev.evaluate_predictions(Y_TRUE, PROBS, LABELS)
    assert result["confusion_matrix"] == {
        "labels": LABELS,
        "counts": [[1, 1, 0], [0, 2, 0], [1, 0, 0]],
    }


def test_ece_with_equal_width_bins() -> None:
    y_true = [0, 0, 1, 1]
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
    cal = ev.calibration(y_true, probs, n_bins=10)
    # Each row alone in its bin: |1-0.9| + |1-0.6| + |1-0.7| + |0-0.8| = 1.6, over 4 rows.
    assert cal["ece"] == pytest.approx(0.4)
    counts = [b["count"] for b in cal["bins"]]
    assert counts == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0]
    assert cal["bins"][7] == pytest.approx(
        {"lower": 0.7, "upper": 0.8, "count": 1, "confidence": 0.8, "accuracy": 0.0}
    )
    assert cal["bins"][0]["accuracy"] is None


def test_ece_bin_upper_edge_is_inclusive_and_a_perfect_model_scores_zero() -> None:
    # 0.5 falls in the first of two bins (0, 0.5]; 1.0 in the last.
    cal = ev.calibration([0, 1], np.array([[0.5, 0.5], [0.0, 1.0]]), n_bins=2)
    assert [b["count"] for b in cal["bins"]] == [1, 1]
    assert cal["ece"] == pytest.approx(0.5 * abs(1.0 - 0.5) + 0.5 * 0.0)
    perfect = ev.calibration([0, 1], np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert perfect["ece"] == 0.0


def test_calibration_rejects_zero_bins() -> None:
    with pytest.raises(ValueError, match="n_bins must be at least 1, got 0"):
        ev.calibration([0], np.array([[1.0]]), n_bins=0)


def test_slices_report_count_and_macro_f1_of_their_rows() -> None:
    texts = ["won 3-1", "no digits here", "2 goals", "a b c d e f", "7"]
    slices = {"has_number": ev.SLICES["has_number"], "nothing": lambda text: False}
    out = ev.slice_metrics(Y_TRUE, [0, 1, 1, 1, 0], texts, slices)
    # has_number rows 0, 2, 4: true 0, 1, 2; predicted 0, 1, 0.
    # a: tp 1 fp 1 -> f1 2/3; b: f1 1; c: f1 0 -> macro 5/9.
    assert out["has_number"] == pytest.approx({"n": 3, "accuracy": 2 / 3, "macro_f1": 5 / 9})
    assert out["nothing"] == {"n": 0, "accuracy": None, "macro_f1": None}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("short_text", "five words in this one", True),
        ("short_text", "word " * 250, False),
        ("long_text", "word " * 601, True),
        ("long_text", "word " * 600, False),
        ("has_number", "in 2004", True),
        ("no_number", "in two thousand four", True),
        ("mentions_money", "profits rose to £3bn", True),
        ("mentions_money", "a deal worth 12 million", True),
        ("mentions_money", "12 goals", False),
        ("has_quote", 'he said "no"', True),
    ],
)
def test_default_slices(name: str, text: str, expected: bool) -> None:
    assert ev.SLICES[name](text) is expected


def test_top_errors_are_ranked_by_confidence_with_their_text() -> None:
    y_true = [0, 0, 0, 1]
    probs = np.array([[0.4, 0.6], [0.1, 0.9], [0.2, 0.8], [0.7, 0.3]])
    texts = ["t0", "t1", "t2", "x" * 300]
    errs = ev.top_errors(y_true, probs, ["a", "b"], texts, k=2, max_chars=10)
    fp_b = errs["b"]["false_positives"]
    assert [e["index"] for e in fp_b] == [1, 2]  # 0.9 before 0.8; row 0 cut by k
    assert fp_b[0] == {
        "index": 1,
        "text": "t1",
        "true": "a",
        "predicted": "b",
        "confidence": 0.9,
    }
    assert [e["index"] for e in errs["a"]["false_negatives"]] == [1, 2]
    assert errs["a"]["false_positives"][0]["text"] == "xxxxxxx..."
    assert errs["b"]["false_negatives"] == errs["a"]["false_positives"]


@pytest.mark.parametrize(
    ("y_true", "probs", "message"),
    [
        ([0, 1], np.ones((3, 2)) / 2, "y_prob has 3 rows but y_true has 2 labels"),
        ([0], np.ones((1, 3)) / 3, "y_prob has 3 columns but there are 2 labels"),
        ([5], np.ones((1, 2)) / 2, r"y_true holds a class index outside \[0, 2\)"),
        ([0], np.ones(2) / 2, r"y_prob must be 2-D \(n, k\), got shape \(2,\)"),
        ([], np.ones((0, 2)), "nothing to evaluate: y_true is empty"),
    ],
)
def test_bad_shapes_are_named(y_true: list[int], probs: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ev.evaluate_predictions(y_true, probs, ["a", "b"])


class _Encoder:
    classes = ("business", "sport")

    def encode(self, tags: Sequence[str]) -> list[int]:
        return [self.classes.index(t) for t in tags]


class _Keyword:
    """Predicts sport when the text says 'match'."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([[0.1, 0.9] if "match" in t else [0.8, 0.2] for t in texts])


def test_evaluate_writes_metrics_and_plots_with_baselines_side_by_side(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "title": ["Shares up", "Cup match", "Bank deal", "Big match"],
            "description": ["profits rose 5%", "a late goal", "a match of minds", "won"],
            "tag": ["business", "sport", "business", "sport"],
        }
    )

    def majority(texts: Sequence[str]) -> np.ndarray:
        return np.tile([0.5, 0.5], (len(texts), 1)) + np.array([0.01, -0.01])

    metrics = ev.evaluate(
        _Keyword(),
        df,
        _Encoder(),
        tmp_path / "eval",
        baselines={"majority": majority},
        extra={"model": {"train_seconds": 1.5}},
    )
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert list(metrics["summary"]) == ["model", "majority"]
    # keyword model: rows 0, 1, 3 right, row 2 ("a match of minds") wrong.
    assert metrics["summary"]["model"]["accuracy"] == pytest.approx(0.75)
    assert metrics["summary"]["model"]["train_seconds"] == 1.5
    assert metrics["summary"]["majority"]["accuracy"] == pytest.approx(0.5)
    fp = metrics["models"]["model"]["top_errors"]["sport"]["false_positives"]
    assert fp[0]["text"] == "Bank deal a match of minds"
    for name in ("confusion", "reliability"):
        png = Path(metrics["plots"][name])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "eval").glob(".*tmp"))
