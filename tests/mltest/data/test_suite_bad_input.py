"""Expectation suites that cannot run say why, at the suite's line; files stay as they were."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

RunPytest = Callable[..., pytest.RunResult]  # the run_pytest fixture of this folder's conftest

pytest.importorskip("yaml")


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts
    }


def test_empty_expectations_is_a_collection_error(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    (pytester.path / "e.expectations.yaml").write_text("data: x.csv\nexpectations: []\n")
    before = _tree(pytester.path)
    result = run_pytest("--ml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "e.expectations.yaml: 'expectations' is empty, so the suite has nothing to test: "
            "list at least one, e.g. '- expect_column_values_to_not_be_null: {column: id}'",
            "*= 1 error in *",
        ]
    )
    assert _tree(pytester.path) == before


def test_folder_named_like_a_suite_is_a_collection_error(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    folder = pytester.path / "x.expectations.yaml"
    folder.mkdir()
    (folder / "readme.txt").write_text("kept")
    result = run_pytest("--ml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "x.expectations.yaml is a folder, not a suite file: a suite is a YAML or JSON file "
            "with that name; rename the folder",
        ]
    )
    assert (folder / "readme.txt").read_text() == "kept"


def test_missing_data_fixture_is_reported_at_the_suite_line(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makeconftest("import pytest\n\n@pytest.fixture\ndef train_frame():\n    return None\n")
    suite = (
        "# training data\n"
        "fixture: train_fame\n"
        "expectations:\n"
        "  - expect_column_values_to_not_be_null: {column: id}\n"
        "  - expect_column_values_to_be_unique: {column: id}\n"
    )
    (pytester.path / "d.expectations.yaml").write_text(suite)
    result = run_pytest("--ml")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "d.expectations.yaml:2: fixture 'train_fame' not found (did you mean "
            "'train_frame'?): define it in a conftest.py beside the suite, returning a pandas "
            "DataFrame",
        ]
    )
    result.stdout.no_fnmatch_line("*suites.py*")
    assert (pytester.path / "d.expectations.yaml").read_text() == suite


def test_fixture_missing_inside_the_data_fixture_keeps_pytests_report(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture\ndef train_frame(raw_csv):\n    return None\n"
    )
    (pytester.path / "d.expectations.yaml").write_text(
        "fixture: train_frame\n"
        "expectations:\n"
        "  - expect_column_values_to_not_be_null: {column: id}\n"
    )
    result = run_pytest("--ml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*fixture 'raw_csv' not found*"])
