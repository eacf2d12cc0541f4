"""The README's adoption example behaves as its text says, from the first plain run on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[3] / "README.md"


def _adoption_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Adopting mltest in your repository", 1)[1]
    match = re.search(r"```python\n(# tests/model/test_classifier.py\n.*?)```", section, re.S)
    assert match is not None, "the README lost its adoption example"
    return match.group(1)


def test_readme_example_from_first_run_to_stored_baseline(pytester: pytest.Pytester) -> None:
    example = _adoption_example()
    pytester.mkdir("tests")
    pytester.mkdir("tests/model")
    (pytester.path / "tests/model/test_classifier.py").write_text(example)

    # Plain pytest: every ML test is skipped with the reason, nothing fails.
    plain = pytester.runpytest("-rs")
    plain.assert_outcomes(skipped=2)
    plain.stdout.fnmatch_lines(["*needs --ml*"])

    # First --ml run: no baseline yet, one clear failure that says what to run.
    gates = ["--ml", "-k", "quality_gates"]
    first = pytester.runpytest(*gates)
    first.assert_outcomes(failed=1, deselected=1)
    first.stdout.fnmatch_lines(
        [
            "E * no baseline stored for metric 'macro_f1' in "
            "tests/model/test_classifier/test_quality_gates.json",
            "E * run `pytest --ml --ml-update-baselines` once to store the current value (1), "
            "then commit that file",
        ]
    )
    pytester.runpytest(*gates, "--ml-update-baselines").assert_outcomes(passed=1, deselected=1)
    assert (pytester.path / "tests/model/test_classifier/test_quality_gates.json").is_file()
    pytester.runpytest(*gates).assert_outcomes(passed=1, deselected=1)
