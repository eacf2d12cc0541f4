"""metric_baseline: one-sided comparison, update mode, clear failures."""

from __future__ import annotations

import json

import pytest

TEST = """
import pytest

@pytest.mark.ml
def test_f1(metric_baseline):
    metric_baseline.check("macro_f1", {f1}, tolerance=0.01)
    metric_baseline.check("loss", {loss}, tolerance=0.05, higher_is_better=False)
"""


def test_missing_baseline_fails_and_says_how_to_store_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_m=TEST.format(f1=0.9, loss=0.3))
    result = pytester.runpytest("--ml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * mltest.errors.MLCheckFailure: no baseline stored for metric 'macro_f1' in "
            "tests/baselines/test_m.py/test_f1.json",
            "E * run `pytest --ml --ml-update-baselines` once to store the current value (0.9)",
        ]
    )


def test_update_then_compare(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_m=TEST.format(f1=0.9, loss=0.3))
    pytester.runpytest("--ml", "--ml-update-baselines").assert_outcomes(passed=1)
    stored = json.loads((pytester.path / "tests/baselines/test_m.py/test_f1.json").read_text())
    assert stored["macro_f1"] == {"value": 0.9, "tolerance": 0.01, "higher_is_better": True}

    # Better and within tolerance pass.
    pytester.makepyfile(test_m=TEST.format(f1=0.95, loss=0.34))
    pytester.runpytest("--ml").assert_outcomes(passed=1)

    # Worse than the tolerance fails, with both numbers and the way out.
    pytester.makepyfile(test_m=TEST.format(f1=0.85, loss=0.3))
    result = pytester.runpytest("--ml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * mltest.errors.MLCheckFailure: metric 'macro_f1' regressed: 0.85 vs baseline 0.9 "
            "(higher is better), past the tolerance of 0.01 by 0.04",
            "E * if the change is intended, run `pytest --ml --ml-update-baselines` "
            "and commit tests/baselines/test_m.py/test_f1.json",
        ]
    )

    pytester.makepyfile(test_m=TEST.format(f1=0.9, loss=0.4))
    result = pytester.runpytest("--ml")
    result.stdout.fnmatch_lines(
        ["*metric 'loss' regressed: 0.4 vs baseline 0.3 (lower is better)*"]
    )


def test_ini_baseline_dir(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nml_baseline_dir = quality/baselines\n")
    pytester.makepyfile(test_m=TEST.format(f1=0.9, loss=0.3))
    pytester.runpytest("--ml", "--ml-update-baselines").assert_outcomes(passed=1)
    assert (pytester.path / "quality/baselines/test_m.py/test_f1.json").is_file()


def test_bad_values(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from mltest.errors import MLUsageError

        def test_nan(metric_baseline):
            with pytest.raises(MLUsageError, match="'f1' is nan: a baseline needs a finite"):
                metric_baseline.check("f1", float("nan"))
            with pytest.raises(MLUsageError, match="tolerance for 'f1' must be >= 0, got -1"):
                metric_baseline.check("f1", 0.5, tolerance=-1)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_corrupt_baseline_file_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_m=TEST.format(f1=0.9, loss=0.3))
    target = pytester.path / "tests/baselines/test_m.py/test_f1.json"
    target.parent.mkdir(parents=True)
    target.write_text("{not json")
    result = pytester.runpytest("--ml")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*MLUsageError: baseline file *test_f1.json is unreadable:*"])
