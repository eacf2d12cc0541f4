"""metric_baseline: one-sided comparison, tolerances, the failure table, the layout."""

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

STORED = "test_m/test_f1.json"


def test_missing_baseline_fails_and_says_how_to_store_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_m=TEST.format(f1=0.9, loss=0.3))
    result = pytester.runpytest("--ml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * mltest.errors.MLCheckFailure: no baseline stored for metric 'macro_f1' in "
            "test_m/test_f1.json",
            "E * run `pytest --ml --ml-update-baselines` once to store the current value (0.9), "
            "then commit that file",
        ]
    )


def test_stored_beside_the_test_then_compared(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_m=TEST.format(f1=0.9, loss=0.3))
    pytester.runpytest("--ml", "--ml-update-baselines").assert_outcomes(passed=1)
    stored = json.loads((pytester.path / STORED).read_text())
    assert stored == {
        "loss": {"value": 0.3, "tolerance": 0.05, "higher_is_better": False},
        "macro_f1": {"value": 0.9, "tolerance": 0.01, "higher_is_better": True},
    }

    # An improvement passes, and the report says so.
    pytester.makepyfile(test_m=TEST.format(f1=0.95, loss=0.2))
    result = pytester.runpytest("--ml", "--ml-report", "r.json")
    result.assert_outcomes(passed=1)
    checks = json.loads((pytester.path / "r.json").read_text())["tests"][0]["checks"]
    by_name = {c["name"]: c for c in checks}
    assert by_name["baseline:macro_f1"]["passed"] is True
    assert by_name["baseline:macro_f1"]["headline"] == (
        "improved: 0.95 vs baseline 0.9 (+0.05); `pytest --ml --ml-update-baselines` keeps the gain"
    )
    assert by_name["baseline:loss"]["metrics"]["status"] == "improved"

    # A drop within the tolerance passes (0.89 is exactly 0.01 under: float noise is no drop).
    pytester.makepyfile(test_m=TEST.format(f1=0.89, loss=0.34))
    pytester.runpytest("--ml").assert_outcomes(passed=1)

    # A drop beyond it fails with the table and the way out.
    pytester.makepyfile(test_m=TEST.format(f1=0.85, loss=0.3))
    result = pytester.runpytest("--ml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * mltest.errors.MLCheckFailure: metric 'macro_f1' regressed past its tolerance "
            "(baseline test_m/test_f1.json)",
            "E *   metric    baseline  got   delta  tolerance  status",
            "E *   macro_f1  0.9       0.85  -0.05  0.01       regressed (higher is better)",
            "E * if the change is intended, run `pytest --ml --ml-update-baselines` "
            "and commit test_m/test_f1.json",
        ]
    )

    # Lower is better: a rise past the tolerance fails.
    pytester.makepyfile(test_m=TEST.format(f1=0.9, loss=0.4))
    result = pytester.runpytest("--ml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["E *   loss    0.3       0.4  +0.1   0.05       regressed (lower is better)"]
    )


def test_relative_tolerance_and_check_all_table(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_r="""
        import pytest

        VALUES = {VALUES}

        @pytest.mark.ml
        def test_many(metric_baseline):
            metric_baseline.check_all(
                VALUES,
                tolerance={"f1": 0.01},
                rel_tolerance={"latency_ms": 0.1},
                higher_is_better={"latency_ms": False},
            )
        """.replace("{VALUES}", "{'f1': 0.9, 'latency_ms': 100.0}")
    )
    pytester.runpytest("--ml", "--ml-update-baselines").assert_outcomes(passed=1)
    stored = json.loads((pytester.path / "test_r/test_many.json").read_text())
    assert stored["latency_ms"] == {
        "value": 100.0,
        "tolerance": 0.0,
        "higher_is_better": False,
        "rel_tolerance": 0.1,
    }
    source = (pytester.path / "test_r.py").read_text()
    # 10% of 100 ms = 10 ms allowed: 109 passes.
    (pytester.path / "test_r.py").write_text(source.replace("100.0}", "109.0}"))
    pytester.runpytest("--ml").assert_outcomes(passed=1)
    # Both regress: one failure lists both, then the fix.
    (pytester.path / "test_r.py").write_text(
        source.replace("100.0}", "125.0}").replace("'f1': 0.9", "'f1': 0.8")
    )
    result = pytester.runpytest("--ml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * metrics 'f1', 'latency_ms' regressed past their tolerances "
            "(baseline test_r/test_many.json)",
            "E *   metric      baseline  got  delta  tolerance    status",
            "E *   f1          0.9       0.8  -0.1   0.01         regressed (higher is better)",
            "E *   latency_ms  100       125  +25    10.00% (10)  regressed (lower is better)",
        ]
    )


def test_parametrized_and_class_tests_get_one_file_each(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_p="""
        import pytest

        @pytest.mark.parametrize("size", ["small", "large"])
        def test_f1(metric_baseline, size):
            metric_baseline.check("f1", 0.5)

        class TestModel:
            def test_loss(self, metric_baseline):
                metric_baseline.check("loss", 1.0, higher_is_better=False)
        """
    )
    pytester.runpytest("--ml-update-baselines").assert_outcomes(passed=3)
    assert sorted(p.name for p in (pytester.path / "test_p").iterdir()) == [
        "TestModel.test_loss.json",
        "test_f1_large_.json",
        "test_f1_small_.json",
    ]
    pytester.runpytest().assert_outcomes(passed=3)


def test_ini_baseline_dir_keeps_the_layout_under_one_folder(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nml_baseline_dir = quality/baselines\n")
    pytester.mkdir("tests")
    pytester.path.joinpath("tests", "test_m.py").write_text(TEST.format(f1=0.9, loss=0.3))
    pytester.runpytest("--ml", "--ml-update-baselines").assert_outcomes(passed=1)
    assert (pytester.path / "quality/baselines/tests/test_m/test_f1.json").is_file()
    assert not (pytester.path / "tests/test_m").exists()
    pytester.runpytest("--ml").assert_outcomes(passed=1)


@pytest.mark.parametrize("where", ["quality", "quality/baselines"])
def test_ini_baseline_dir_that_is_a_file_is_a_usage_error(
    pytester: pytest.Pytester, where: str
) -> None:
    # Issue 13: this was a NotADirectoryError inside the test under --ml-update-baselines.
    pytester.makeini(f"[pytest]\nml_baseline_dir = {where}\n")
    pytester.path.joinpath("quality").write_text("not a folder\n")
    pytester.makepyfile(test_m=TEST.format(f1=0.9, loss=0.3))
    result = pytester.runpytest("--ml", "--ml-update-baselines")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    part = "" if where == "quality" else f" (its part {pytester.path / 'quality'})"
    result.stderr.fnmatch_lines(
        [
            f"ERROR: ini ml_baseline_dir: {where}{part} is a regular file, not a folder: "
            "point it at a folder, or remove the key to keep baselines beside the tests"
        ]
    )
    assert "Traceback" not in result.stderr.str()
    assert pytester.path.joinpath("quality").read_text() == "not a folder\n"


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
            with pytest.raises(MLUsageError, match="rel_tolerance for 'f1' must be >= 0"):
                metric_baseline.check("f1", 0.5, rel_tolerance=-0.1)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_corrupt_baseline_file_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_m=TEST.format(f1=0.9, loss=0.3))
    target = pytester.path / STORED
    target.parent.mkdir(parents=True)
    target.write_text("{not json")
    result = pytester.runpytest("--ml")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*MLUsageError: baseline file *test_f1.json is unreadable:*"])
    assert target.read_text() == "{not json"


def test_a_file_where_the_baseline_folder_goes_is_one_clear_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_m=TEST.format(f1=0.9, loss=0.3))
    blocker = pytester.path / "test_m"
    blocker.write_text("notes\n")
    result = pytester.runpytest("--ml", "--ml-update-baselines")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            f"E * mltest.errors.MLUsageError: cannot write baseline file test_m/test_f1.json: "
            f"{blocker} is a regular file, not a folder (rename it, or set ini ml_baseline_dir)"
        ]
    )
    assert blocker.read_text() == "notes\n"
