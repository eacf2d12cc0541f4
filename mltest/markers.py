"""The markers mltest registers, in one table, and the taxonomy inference.

Each marker has one line of help text, shown by ``pytest --markers``. The test
taxonomy (unit, integration, system, acceptance, regression) is inferred from
a test's folder (``tests/unit/...``) or file name (``test_unit_*.py``) when the
test carries none of those markers, so ``-m unit`` selects them either way.

Example:
    >>> infer_taxonomy(("tests", "unit", "test_split.py"))
    'unit'
    >>> infer_taxonomy(("tests", "test_integration_cli.py"))
    'integration'
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DEVICE_MARKERS", "MARKERS", "ML_KINDS", "TAXONOMY", "infer_taxonomy"]

#: The test taxonomy: how much of the system a test exercises.
TAXONOMY: tuple[str, ...] = ("unit", "integration", "system", "acceptance", "regression")

#: The ML kinds: tests that need ``--ml`` to run.
ML_KINDS: tuple[str, ...] = ("ml", "data", "model", "behavioral")

#: Device requirement markers: the test is skipped when the device is absent.
DEVICE_MARKERS: tuple[str, ...] = ("cuda", "mps")

#: name(signature) -> help. The single source of truth for registration.
MARKERS: dict[str, str] = {
    "unit": "unit: tests one function or class in isolation (inferred from tests/unit/ "
    "or test_unit_*.py).",
    "integration": "integration: tests components working together (inferred from "
    "tests/integration/ or test_integration_*.py).",
    "system": "system: tests the whole system end to end (inferred from tests/system/ "
    "or test_system_*.py).",
    "acceptance": "acceptance: tests that the system meets its requirements, e.g. metric "
    "targets (inferred from tests/acceptance/ or test_acceptance_*.py).",
    "regression": "regression: guards a bug fixed once, or a result that must not drift "
    "(inferred from tests/regression/ or test_regression_*.py).",
    "ml": "ml: an ML test; skipped unless pytest runs with --ml.",
    "data": "data: a data test (expectations, splits, drift, labels); needs --ml.",
    "model": "model: a model test (shapes, training sanity, devices); needs --ml.",
    "behavioral": "behavioral: a behavioural test of a model (MFT, INV, DIR); needs --ml.",
    "cuda": "cuda: needs a CUDA device; skipped with the reason when none is available.",
    "mps": "mps: needs an Apple MPS device; skipped with the reason when none is available.",
    "limit_cuda_memory(limit)": "limit_cuda_memory(limit): fail when the test's peak CUDA "
    "memory (torch.cuda.max_memory_allocated) exceeds limit, e.g. '2 GB'; skipped without "
    "CUDA. For host memory use pytest-memray's limit_memory.",
}


def infer_taxonomy(parts: Sequence[str]) -> str | None:
    """Return the taxonomy kind a test path implies, or None.

    A folder named after a kind wins (the innermost one); otherwise a file
    named ``test_<kind>.py`` or ``test_<kind>_*.py``.

    Args:
        parts: The test file's path parts relative to the rootdir.

    Example:
        >>> infer_taxonomy(("tests", "system", "test_train.py"))
        'system'
        >>> infer_taxonomy(("tests", "test_helpers.py")) is None
        True
    """
    if not parts:
        return None
    for folder in reversed(parts[:-1]):
        if folder in TAXONOMY:
            return folder
    stem = parts[-1].rsplit(".", 1)[0]
    if stem.startswith("test_"):
        head = stem[len("test_") :].split("_", 1)[0]
        if head in TAXONOMY:
            return head
    return None
