"""A throwaway foreign project uses the installed plugin with no configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_foreign_project_with_no_configuration(tmp_path: Path) -> None:
    project = tmp_path / "someones_repo"
    (project / "tests" / "unit").mkdir(parents=True)
    (project / "tests" / "unit" / "test_features.py").write_text(
        "def test_scaling(ml_seed):\n    assert isinstance(ml_seed, int)\n"
    )
    (project / "tests" / "test_model_quality.py").write_text(
        "import pytest\n"
        "from mltest.report import record_check\n\n"
        "@pytest.mark.model\n"
        "def test_accuracy(ml_record):\n"
        "    ml_record.metric('accuracy', 0.91)\n"
        "    record_check('model', 'accuracy_floor', True, metrics={'accuracy': 0.91})\n"
    )
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs"]

    fast = subprocess.run(base, cwd=project, capture_output=True, text=True)
    assert fast.returncode == 0, fast.stdout + fast.stderr
    assert "1 passed, 1 skipped" in fast.stdout
    assert "needs --ml" in fast.stdout

    unit = subprocess.run([*base, "-m", "unit"], cwd=project, capture_output=True, text=True)
    assert "1 passed, 1 deselected" in unit.stdout, unit.stdout

    ml = subprocess.run(
        [*base, "--ml", "--ml-report", "report.json"], cwd=project, capture_output=True, text=True
    )
    assert ml.returncode == 0, ml.stdout + ml.stderr
    assert "2 passed" in ml.stdout
    assert "checks  model: 1 passed, 0 failed" in ml.stdout
    assert (project / "report.json").is_file()


def test_pytester_helpers_for_adopters(pytester: pytest.Pytester) -> None:
    from mltest.testing import ml_outcomes, run_ml

    pytester.makepyfile(
        """
        import pytest
        from mltest.report import record_check

        @pytest.mark.model
        def test_a():
            record_check("model", "shape", False, headline="wrong shape")
        """
    )
    result, report = run_ml(pytester)
    result.assert_outcomes(passed=1)
    assert ml_outcomes(report) == {"test_pytester_helpers_for_adopters.py::test_a": "passed"}
    assert report["summary"]["checks"] == {"model": {"passed": 0, "failed": 1}}
