"""Calibration: ECE/MCE on worked examples, hypothesis properties, the check, temperature."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.eval import (
    calibration_report,
    check_calibration,
    expected_calibration_error,
    fit_temperature,
    max_calibration_error,
    reliability_table,
)

STRATEGY = st.sampled_from(["uniform", "quantile"])
FEW = settings(max_examples=25, deadline=None)


def test_worked_example_with_equal_width_bins() -> None:
    y = [0, 0, 1, 1]
    proba = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]]
    # Each row alone in its bin: |1-0.9| + |1-0.6| + |1-0.7| + |0-0.8| = 1.6, over 4 rows.
    assert expected_calibration_error(y, proba) == pytest.approx(0.4)
    assert max_calibration_error(y, proba) == pytest.approx(0.8)
    table = reliability_table(y, proba)
    assert [b["count"] for b in table] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0]
    assert table[7] == pytest.approx(
        {"lower": 0.7, "upper": 0.8, "count": 1, "confidence": 0.8, "accuracy": 0.0, "gap": 0.8}
    )
    # Upper edges are inclusive: 0.5 is in the first of two bins.
    two = reliability_table([0, 1], [[0.5, 0.5], [0.0, 1.0]], n_bins=2)
    assert [b["count"] for b in two] == [1, 1]


def test_equal_mass_bins_keep_ties_together() -> None:
    y = [0, 0, 0, 0, 1, 1]
    proba = [[0.6, 0.4]] * 3 + [[0.9, 0.1]] * 3
    cal = calibration_report(y, proba, n_bins=2, strategy="quantile")
    assert [b["count"] for b in cal.bins] == [3, 3]
    # Bin of 0.6: 3 right of 3 -> gap 0.4; bin of 0.9: 1 of 3 -> gap 0.9 - 1/3.
    assert cal.ece == pytest.approx(0.5 * 0.4 + 0.5 * (0.9 - 1 / 3))
    assert cal.mce == pytest.approx(0.9 - 1 / 3)


@st.composite
def calibrated(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Groups of rows sharing a confidence m/n with exactly m of the n right."""
    y: list[int] = []
    rows: list[list[float]] = []
    for _ in range(draw(st.integers(1, 6))):
        n = draw(st.integers(1, 12))
        m = draw(st.integers((n + 1) // 2, n))  # top-class confidence >= 0.5
        c = m / n
        for i in range(n):
            rows.append([c, 1 - c])
            y.append(0 if i < m else 1)  # argmax is class 0 (ties at 0.5 too)
    return np.array(y), np.array(rows)


@FEW
@given(calibrated(), st.integers(1, 20), STRATEGY)
def test_ece_is_zero_for_a_perfectly_calibrated_construction(
    data: tuple[np.ndarray, np.ndarray], n_bins: int, strategy: str
) -> None:
    y, proba = data
    assert expected_calibration_error(y, proba, n_bins=n_bins, strategy=strategy) < 1e-9


@st.composite
def predictions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    k = draw(st.integers(2, 5))
    n = draw(st.integers(1, 60))
    raw = np.array(
        draw(
            st.lists(st.lists(st.floats(0.01, 1.0), min_size=k, max_size=k), min_size=n, max_size=n)
        )
    )
    proba = raw / raw.sum(axis=1, keepdims=True)
    y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    return y, proba


@FEW
@given(predictions(), st.integers(1, 20), STRATEGY, st.integers(0, 2**32 - 1))
def test_ece_is_within_0_1_and_invariant_to_row_order(
    data: tuple[np.ndarray, np.ndarray], n_bins: int, strategy: str, seed: int
) -> None:
    y, proba = data
    ece = expected_calibration_error(y, proba, n_bins=n_bins, strategy=strategy)
    mce = max_calibration_error(y, proba, n_bins=n_bins, strategy=strategy)
    assert 0.0 <= ece <= mce <= 1.0
    order = np.random.default_rng(seed).permutation(len(y))
    shuffled = expected_calibration_error(y[order], proba[order], n_bins=n_bins, strategy=strategy)
    assert shuffled == pytest.approx(ece, abs=1e-12)


def test_check_fails_with_the_reliability_table(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_c="""
        import pytest
        from mltest.eval import check_calibration

        # 10 rows, all right, but half predicted with confidence 0.6: under-confident.
        PROBA = [[0.9, 0.1]] * 5 + [[0.6, 0.4]] * 5

        @pytest.mark.ml
        def test_calibrated():
            check_calibration([0] * 10, PROBA, max_ece=0.05)
        """
    )
    result = pytester.runpytest("--ml", "--ml-report", "r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * mltest.errors.MLCheckFailure: calibration: ECE 0.2500 > max 0.05 "
            "(10 rows, 10 uniform bins)",
            "E *   bin           rows  confidence  accuracy  gap",
            "E *   (0.50, 0.60]  5     0.600       1.000     0.400",
            "E *   (0.80, 0.90]  5     0.900       1.000     0.100",
            "E * The model is under-confident (accuracy above confidence): fit a temperature "
            "on validation data (mltest.eval.fit_temperature gives T < 1).",
        ]
    )
    test = json.loads((pytester.path / "r.json").read_text())["tests"][0]
    (check,) = test["checks"]
    assert check["metrics"]["ece"] == pytest.approx(0.25)
    assert check["examples"][0]["gap"] == pytest.approx(0.4)
    (figure,) = test["figures"]
    assert figure["kind"] == "bars"
    assert figure["data"]["series"]["accuracy"][5] == 1.0


def test_check_passes_a_calibrated_model_and_rejects_bad_limits() -> None:
    cal = check_calibration(
        [0, 0, 1, 1], [[0.5, 0.5], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], max_ece=0.0
    )
    assert cal.ece == 0.0
    with pytest.raises(MLCheckFailure, match=r"MCE 0.4000 > max 0.3"):
        check_calibration([0] * 10, [[0.9, 0.1]] * 5 + [[0.6, 0.4]] * 5, max_mce=0.3)
    with pytest.raises(MLUsageError, match="check_calibration: give max_ece and/or max_mce"):
        check_calibration([0], [[1.0, 0.0]])
    with pytest.raises(MLUsageError, match="strategy 'equal' is not one of 'uniform', 'quantile'"):
        expected_calibration_error([0], [[1.0, 0.0]], strategy="equal")
    with pytest.raises(MLUsageError, match=r"proba holds values outside \[0, 1\]"):
        expected_calibration_error([0], [[1.5, -0.5]])


def test_temperature_scaling_fixes_an_over_confident_model() -> None:
    rng = np.random.default_rng(0)
    n, k = 600, 4
    y = rng.integers(0, k, n)
    # True logits give calibrated probabilities; the model's are 3x too sharp.
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.5
    fit = fit_temperature(y, logits * 3.0)
    assert 1.5 < fit.temperature < 4.5
    assert fit.ece_after < fit.ece_before / 2
    assert fit.nll_after < fit.nll_before
    # The predicted class never changes.
    assert (fit.apply(logits * 3.0).argmax(axis=1) == logits.argmax(axis=1)).all()
    with pytest.raises(MLUsageError, match="give logits or proba"):
        fit_temperature(y)


def test_png_reliability_diagram_goes_into_the_report(pytester: pytest.Pytester) -> None:
    pytest.importorskip("matplotlib")
    pytester.makepyfile(
        test_png="""
        import pytest
        from mltest.eval import check_calibration

        @pytest.mark.ml
        def test_calibrated():
            check_calibration([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]], max_ece=0.5,
                              strategy="quantile", n_bins=2, png=True)
        """
    )
    result = pytester.runpytest("--ml", "--ml-report", "r.json")
    result.assert_outcomes(passed=1)
    figures = json.loads((pytester.path / "r.json").read_text())["tests"][0]["figures"]
    assert [f["kind"] for f in figures] == ["bars", "png"]
    import base64

    assert base64.b64decode(figures[1]["data"]["base64"])[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: expected_calibration_error(["a"], [[1.0, 0.0]]), "y_true must be class indices"),
        (lambda: expected_calibration_error([2], [[1.0, 0.0]]), r"outside \[0, 2\)"),
        (lambda: expected_calibration_error([0], [[1.0, 0.0]], n_bins=0), "n_bins must be"),
        (lambda: check_calibration([0], [[1.0, 0.0]], max_ece=2), r"max_ece must be in \[0, 1\]"),
        (lambda: fit_temperature([0], [[np.nan, 0.0]]), "logits hold NaN"),
        (lambda: fit_temperature([0], [[1.0, 0.0, 0.0]], proba=[[1.0, 0.0]]), "one of them"),
        (lambda: fit_temperature([], np.zeros((0, 2))), "nothing to fit"),
    ],
)
def test_calibration_usage_errors(call: object, message: str) -> None:
    with pytest.raises(MLUsageError, match=message):
        call()  # type: ignore[operator]


def test_temperature_from_probabilities_sharpens_an_under_confident_model() -> None:
    y = np.array([0, 1] * 50)
    proba = np.where(np.eye(2)[y] == 1, 0.6, 0.4)  # always right, only 60% sure
    fit = fit_temperature(y, proba=proba)
    assert fit.temperature < 1
    assert fit.ece_after < fit.ece_before


def test_an_over_confident_model_shows_its_most_confident_mistakes() -> None:
    proba = [[0.95, 0.05]] * 4 + [[0.9, 0.1]] * 2
    with pytest.raises(MLCheckFailure) as info:
        check_calibration([0, 1, 0, 1, 0, 0], proba, max_ece=0.1, inputs=list("abcdef"))
    text = str(info.value)
    assert text.splitlines()[0] == "calibration: ECE 0.3333 > max 0.1 (6 rows, 10 uniform bins)"
    assert "\n".join(text.splitlines()[6:9]) == (
        "most confident mistakes:\n"
        "  row  true  predicted  confidence  input\n"
        "  1    1     0          0.950       b"
    )
    assert text.endswith("or train with label smoothing.")
