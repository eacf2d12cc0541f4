"""Bad behavioural suites: one line at the YAML line that caused it, the file left alone."""

from __future__ import annotations

from typing import Any

import pytest

from mltest.behavioral.suites import load_suite
from mltest.errors import MLUsageError

pytest.importorskip("yaml")

SUITE = "tests:\n  - name: goals\n    type: MFT\n    examples: [a goal]\n    expect: sport\n"


def test_missing_default_model_fixture_points_at_the_test_line(
    pytester: pytest.Pytester, run: Any
) -> None:
    pytester.makeconftest("")  # no behavioral_model anywhere
    suite = pytester.path / "m.behavioral.yaml"
    suite.write_text(SUITE)
    result = run()
    result.assert_outcomes(errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "m.behavioral.yaml:2: fixture 'behavioral_model' not found: the suite names no "
            "'model:', so its tests use this default; define it in a conftest.py, returning "
            "the model or a predict function"
        ]
    )
    result.stdout.no_fnmatch_line("*suites.py*")
    assert suite.read_text() == SUITE


def test_misspelt_model_fixture_gets_a_suggestion(model_project: pytest.Pytester, run: Any) -> None:
    (model_project.path / "m.behavioral.yaml").write_text("model: behavioral_mdel\n" + SUITE)
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "m.behavioral.yaml:1: fixture 'behavioral_mdel' (the suite's 'model:') not found "
            "(did you mean 'behavioral_model'?): define it in a conftest.py, *"
        ]
    )


def test_a_fixture_missing_inside_the_model_fixture_keeps_pytests_report(
    pytester: pytest.Pytester, run: Any
) -> None:
    """Not the model's name that is wrong: pytest's own report, which names the chain."""
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture\ndef behavioral_model(weights):\n    return None\n"
    )
    (pytester.path / "m.behavioral.yaml").write_text(SUITE)
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'weights' not found*"])


def test_check_errors_name_the_test_once(tmp_path: Any) -> None:
    path = tmp_path / "s.behavioral.yaml"
    path.write_text(SUITE.replace("expect: sport", "expect: sport\n    min_pass_rate: 2"))
    with pytest.raises(MLUsageError) as caught:
        load_suite(path)
    assert str(caught.value) == (
        "s.behavioral.yaml:2: test 'goals': min_pass_rate must be in [0, 1], got 2"
    )


def test_folder_named_like_a_suite_is_a_collection_error(
    pytester: pytest.Pytester, run: Any
) -> None:
    folder = pytester.path / "x.behavioral.yaml"
    folder.mkdir()
    (folder / "notes.md").write_text("kept")
    result = run()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "x.behavioral.yaml is a folder, not a suite file: a suite is a YAML or JSON file "
            "with that name; rename the folder"
        ]
    )
    assert (folder / "notes.md").read_text() == "kept"
