"""check_slices: hand-made slices, generated slices, too-small slices, pinned text."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.eval import check_slices, slice, slices_by_quantile, slices_by_value

# 40 rows. Short texts (rows 0-9, 2 words) are 50% right; long ones (10-39) all right.
TEXTS = ["short one"] * 10 + ["a much longer text with many words"] * 30
Y = [i % 2 for i in range(40)]
P = [(i % 2) if i >= 10 or i % 4 < 2 else 1 - i % 2 for i in range(40)]
SOURCES = ["web"] * 20 + ["app"] * 18 + ["fax"] * 2

CASE = f"""
import pytest
from mltest.eval import check_slices, slice, slices_by_value

TEXTS = {TEXTS!r}
Y = {Y!r}
P = {P!r}
SOURCES = {SOURCES!r}

@slice("short_text", rowwise=True)
def short_text(text):
    return len(text.split()) < 5

@pytest.mark.ml
def test_slices():
    check_slices(Y, P, data=TEXTS, labels=["neg", "pos"], min_size=5, max_gap=GAP,
                 slices=[short_text, slices_by_value(SOURCES, name="source")])
"""


def test_weakest_slice_first_with_sizes_and_too_small_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s=CASE.replace("GAP", "0.2"))
    result = pytester.runpytest("--ml", "--ml-report", "r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * mltest.errors.MLCheckFailure: slices: 1 of 4 slices fail on accuracy "
            "(max gap 0.2); weakest 'short_text' 0.6000 on 10 rows vs overall 0.9000; "
            "1 too small to measure (< 5 rows)",
            "E * slices, weakest first:",
            "E *   slice       rows  accuracy  macro_f1  gap      status",
            "E *   short_text  10    0.6000    0.6000    +0.3000  gap",
            "E *   source=web  20    0.8000    0.8000    +0.1000  ok",
            "E *   source=app  18    1.0000    1.0000    -0.1000  ok",
            "E *   source=fax  2     -         -         -        too small (< 5 rows)",
            "E * bad cases in 'short_text':",
            "E *   row  true  predicted  confidence  input",
            "E *   2    neg   pos        -           short one",
            "E *   3    pos   neg        -           short one",
            "E *   6    neg   pos        -           short one",
            "E *   7    pos   neg        -           short one",
        ]
    )
    test = json.loads((pytester.path / "r.json").read_text())["tests"][0]
    (check,) = test["checks"]
    assert check["metrics"]["too_small"] == 1
    assert check["examples"][:2] == [
        {"slice": "short_text", "rows": 10, "accuracy": 0.6, "gap": 0.3, "status": "gap"},
        {
            "slice": "source=fax",
            "rows": 2,
            "accuracy": None,
            "gap": None,
            "status": "too small (< 5 rows)",
        },
    ]
    assert test["figures"][0]["kind"] == "bars"


def test_too_small_alone_fails_and_warn_mode_reports_it(pytester: pytest.Pytester) -> None:
    # The gap limit holds everywhere; only the 2-row slice is left, and it is never passed.
    pytester.makepyfile(test_s=CASE.replace("GAP", "0.5"))
    result = pytester.runpytest("--ml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["E * mltest.errors.MLCheckFailure: slices: 1 too small to measure (< 5 rows)"]
    )
    pytester.makepyfile(
        test_s=CASE.replace("GAP", "0.5").replace(
            "max_gap=0.5,", "max_gap=0.5, on_too_small='warn',"
        )
    )
    result = pytester.runpytest("--ml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*UserWarning: slices: 1 slice(s) too small to measure: 'source=fax' (2 rows)"]
    )


def test_quantile_slices_find_hidden_stratification() -> None:
    # A numeric column (here the row's position) that lines up with the weak rows.
    slices = slices_by_quantile(np.arange(40), q=4, name="words")
    assert list(slices) == [
        "words q1/4 [0, 9.75)",
        "words q2/4 [9.75, 19.5)",
        "words q3/4 [19.5, 29.25)",
        "words q4/4 [29.25, 39]",
    ]
    assert [int(s.mask.sum()) for s in slices.values()] == [10, 10, 10, 10]
    with pytest.raises(MLCheckFailure, match=r"weakest 'words q1/4 \[0, 9.75\)' 0.6000"):
        check_slices(Y, P, slices=slices, min_size=5, max_gap=0.2)
    # Correct twin: the same slices on perfect predictions pass.
    report = check_slices(Y, Y, slices=slices, min_size=5, max_gap=0.0)
    assert [r.status for r in report] == ["ok"] * 4


def test_vectorised_predicates_masks_and_min_metric() -> None:
    data = {"length": np.array([len(t.split()) for t in TEXTS])}

    @slice
    def long_text(d: dict[str, np.ndarray]) -> np.ndarray:
        return d["length"] > 4

    report = check_slices(
        Y,
        P,
        data=data,
        slices={"long": long_text, "all": np.ones(40, dtype=bool)},
        min_metric=0.8,
        min_size=1,
    )
    assert report["long"].value == 1.0
    assert report["all"].value == report.overall == 0.9
    with pytest.raises(MLCheckFailure, match=r"1 of 1 slices fail on macro_f1 \(min 0.9\)"):
        check_slices(
            Y,
            P,
            slices={"short": np.arange(40) < 10},
            metric="macro_f1",
            min_metric=0.9,
            min_size=1,
        )


def test_usage_errors_are_one_line() -> None:
    with pytest.raises(MLUsageError, match="check_slices: give min_metric and/or max_gap"):
        check_slices(Y, P, slices={"x": np.ones(40, dtype=bool)})
    with pytest.raises(MLUsageError, match="slice 'x': mask has 3 rows, expected 40"):
        check_slices(Y, P, slices={"x": np.ones(3, dtype=bool)}, max_gap=0.1)
    with pytest.raises(MLUsageError, match="per-row predicate needs rowwise=True"):
        check_slices(Y, P, data=TEXTS, slices={"x": lambda t: 1}, max_gap=0.1)
    with pytest.raises(MLUsageError, match="has 3 distinct values \\(max_values 2\\)"):
        slices_by_value(SOURCES, max_values=2)


def test_data_frames_integer_codes_and_proba_predictions() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"text": TEXTS, "shard": [i % 3 + 7 for i in range(40)]})

    @slice("short", rowwise=True, min_size=5)
    def short(row: dict[str, object]) -> bool:
        return len(str(row["text"]).split()) < 5

    by_shard = slices_by_value(frame["shard"])
    assert list(by_shard) == ["shard=7", "shard=8", "shard=9"]
    proba = np.array([[1.0, 0.0] if p == 0 else [0.2, 0.8] for p in P])
    report = check_slices(
        ["neg", "pos"] * 20,
        proba=proba,
        labels=["neg", "pos"],
        data=frame,
        slices={"short": short, **by_shard},
        max_gap=0.5,
        min_size=10,
    )
    assert report["short"].size == 10
    assert report["short"].accuracy == 0.6
    assert short({"text": "a b"}) is True  # still callable as the function


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "f1"}, "metric 'f1' is not one of accuracy, macro_f1"),
        ({"on_too_small": "skip"}, "on_too_small must be 'fail' or 'warn', not 'skip'"),
        ({"slices": {}}, "check_slices: no slices given"),
        ({"slices": [slice("x")(lambda d: d), slice("x")(lambda d: d)]}, "two slices are named"),
        ({"slices": {"x": lambda d: d}}, "slice 'x' needs data: pass data= to check_slices"),
        ({"data": TEXTS[:3]}, "check_slices: data has 3 rows but y_true has 40"),
    ],
)
def test_more_usage_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"slices": {"all": np.ones(40, dtype=bool)}, "max_gap": 0.1}
    args.update(kwargs)
    with pytest.raises(MLUsageError, match=message):
        check_slices(Y, P, **args)  # type: ignore[arg-type]
    with pytest.raises(MLUsageError, match="is empty or holds NaN"):
        slices_by_quantile([1.0, float("nan")])
    with pytest.raises(MLUsageError, match="q must be >= 1"):
        slices_by_quantile([1.0], q=0)
