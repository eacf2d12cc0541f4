"""Per-test seeds: derived, replayable, and applied without importing numpy or torch."""

from __future__ import annotations

import json
import sys

import pytest

from mltest.repro import derive_seed, seed_everything

DRAWS = """
import random

def test_draw(ml_seed, ml_record):
    ml_record["draw"] = [ml_seed, random.random()]
"""


def _draw(pytester: pytest.Pytester, *args: str) -> tuple[list[float], pytest.RunResult]:
    result = pytester.runpytest("--ml-report", "r.json", *args)
    result.assert_outcomes(passed=1)
    data = json.loads((pytester.path / "r.json").read_text())
    (test,) = data["tests"]
    assert test["seed"] == test["data"]["draw"][0]
    return test["data"]["draw"], result


def test_same_seed_gives_same_numbers_and_different_seeds_differ(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(DRAWS)
    first, _ = _draw(pytester, "--ml-seed", "42")
    again, _ = _draw(pytester, "--ml-seed", "42")
    other, _ = _draw(pytester, "--ml-seed", "43")
    assert first == again
    assert first != other
    nodeid = "test_same_seed_gives_same_numbers_and_different_seeds_differ.py::test_draw"
    assert first[0] == derive_seed(42, nodeid)


def test_last_replays_previous_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(DRAWS)
    first, result = _draw(pytester)
    seed = next(line.split()[2] for line in result.outlines if line.startswith("mltest: seed "))
    replay, result = _draw(pytester, "--ml-seed", "last")
    result.stdout.fnmatch_lines([f"mltest: seed {seed} (replay with --ml-seed {seed})*"])
    assert first == replay


def test_last_without_history_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--ml-seed", "last", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --ml-seed last: no seed from a previous run in the pytest cache; run once*"]
    )


def test_seeding_does_not_import_numpy_or_torch() -> None:
    import subprocess

    code = (
        "import sys, mltest.repro as r; r.seed_everything(3);"
        "print('numpy' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_numpy_and_torch_are_seeded_when_loaded() -> None:
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    assert seed_everything(5) == ["random", "numpy", "torch"]
    a = (np.random.rand(), torch.rand(1).item())
    seed_everything(5)
    assert (np.random.rand(), torch.rand(1).item()) == a


def test_seeds_are_seeded_before_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import random
        import pytest

        @pytest.fixture
        def value():
            return random.random()

        def test_a(value, ml_seed):
            random.seed(ml_seed)
            assert value == random.random()
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_deterministic_fixture_sets_and_restores(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    pytester.makepyfile(
        """
        import os
        import torch

        def test_inside(deterministic):
            assert torch.are_deterministic_algorithms_enabled()
            assert torch.backends.cudnn.deterministic
            assert not torch.backends.cudnn.benchmark
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"

        def test_after():
            assert not torch.are_deterministic_algorithms_enabled()
            assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_report_seeds_match_derivation(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.ml
        def test_a(): pass
        """
    )
    pytester.runpytest("--ml", "--ml-seed", "7", "--ml-report", "r.json").assert_outcomes(passed=1)
    data = json.loads((pytester.path / "r.json").read_text())
    (test,) = data["tests"]
    assert test["seed"] == derive_seed(7, test["nodeid"])
