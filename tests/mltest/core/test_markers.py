"""Marker registration, taxonomy inference, and --ml gating."""

from __future__ import annotations

import pytest

from mltest.markers import MARKERS, ML_KINDS, TAXONOMY, infer_taxonomy


def test_every_marker_is_registered_with_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    lines = [f"@pytest.mark.{help_text}" for help_text in MARKERS.values()]
    result.stdout.fnmatch_lines([line.replace("[", "[[]") for line in lines], consecutive=False)


def test_strict_markers_accepts_all_of_them(pytester: pytest.Pytester) -> None:
    decorators = "\n".join(f"@pytest.mark.{name}" for name in (*TAXONOMY, *ML_KINDS, "cuda"))
    pytester.makepyfile(
        f"""
        import pytest

        {decorators}
        def test_marked(): pass
        """.replace("\n        ", "\n")
    )
    result = pytester.runpytest("--strict-markers", "--ml")
    # Passes where CUDA exists; elsewhere the cuda marker skips it, never an error.
    outcomes = result.parseoutcomes()
    assert outcomes in ({"passed": 1}, {"skipped": 1}), outcomes
    result.stdout.no_fnmatch_line("*not found in `markers` configuration option*")


@pytest.mark.parametrize(
    ("parts", "kind"),
    [
        (("tests", "unit", "test_a.py"), "unit"),
        (("tests", "pipeline", "integration", "deep", "test_a.py"), "integration"),
        (("tests", "system", "unit", "test_a.py"), "unit"),
        (("tests", "test_regression_resume.py"), "regression"),
        (("tests", "test_acceptance.py"), "acceptance"),
        (("tests", "test_units.py"), None),
        (("tests", "test_helpers.py"), None),
        (("unit.py",), None),
        ((), None),
    ],
)
def test_infer_taxonomy(parts: tuple[str, ...], kind: str | None) -> None:
    assert infer_taxonomy(parts) == kind


def test_taxonomy_inferred_from_folder_and_file_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **{
            "tests/unit/test_split.py": "def test_a(): pass",
            "tests/test_integration_cli.py": "def test_b(): pass",
            "tests/system/test_e2e.py": (
                "import pytest\n@pytest.mark.regression\ndef test_c(): pass\n"
            ),
            "tests/test_other.py": "def test_d(): pass",
        }
    )
    assert pytester.runpytest("-m", "unit").parseoutcomes() == {"passed": 1, "deselected": 3}
    pytester.runpytest("-m", "integration").assert_outcomes(passed=1, deselected=3)
    # An explicit taxonomy marker wins over the folder.
    pytester.runpytest("-m", "system").assert_outcomes(deselected=4)
    pytester.runpytest("-m", "regression").assert_outcomes(passed=1, deselected=3)
    pytester.runpytest("-m", "not (unit or integration or system or regression)").assert_outcomes(
        passed=1, deselected=3
    )


def test_ml_kinds_skip_without_ml_and_run_with_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.ml
        def test_ml(): pass

        @pytest.mark.data
        def test_data(): pass

        @pytest.mark.model
        def test_model(): pass

        @pytest.mark.behavioral
        def test_behavioral(): pass

        def test_plain(): pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=4)
    result.stdout.fnmatch_lines(["SKIPPED [[]1] test_ml_kinds_*.py:3: needs --ml"])
    assert result.stdout.str().count(": needs --ml") == 4
    pytester.runpytest("--ml").assert_outcomes(passed=5)


def test_module_level_pytestmark_is_honoured(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.data

        def test_a(): pass
        """
    )
    pytester.runpytest().assert_outcomes(skipped=1)
    pytester.runpytest("--ml").assert_outcomes(passed=1)


def test_cuda_marker_skips_with_reason_when_absent(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():  # pragma: no cover - GPU machines only
        pytest.skip("this test checks the CPU-only behaviour")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.cuda
        def test_gpu(): pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1] test_cuda_marker_skips_with_reason_when_absent.py:3: "
            "device cuda is not available (torch.cuda.is_available() is False)"
        ]
    )
