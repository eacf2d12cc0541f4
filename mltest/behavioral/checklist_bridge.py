"""Bridge from CheckList (``checklist``) test objects to mltest tests.

CheckList is optional and never imported unless asked for. It is abandoned
(last release 2021) and needs a special install on Python 3.11 (see the
``checklist`` nox session). Conversion reads the public attributes every
CheckList test has (``data``, ``labels``, ``name``, ``capability``) and
chooses the mltest type by class name:

- ``MFT`` -> :class:`~mltest.behavioral.checks.MFT` with one expected label per
  example (nested example lists are flattened). Integer labels are mapped
  through ``label_names``.
- ``INV`` -> :class:`~mltest.behavioral.checks.INV` over the ready-made
  ``(original, perturbed)`` pairs. mltest requires the same label; CheckList's
  default also lets a changed label pass when the original class probability
  moved less than its threshold (0.1), so mltest is the stricter of the two.
- ``DIR`` -> :class:`~mltest.behavioral.checks.DIR` over the pairs. CheckList's
  DIR expectation is an opaque function, so pass the mltest one as ``expect``.

Example:
    >>> from checklist.test_types import MFT as CLMFT  # doctest: +SKIP
    >>> cl_test = CLMFT(["great"], labels=1)  # doctest: +SKIP
    >>> test = from_checklist(cl_test, label_names=["neg", "pos"])  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from mltest.behavioral.checks import DIR, INV, MFT, BehavioralTest, DirExpectation
from mltest.errors import MLUsageError

__all__ = ["checklist_available", "from_checklist", "from_checklist_suite"]


def checklist_available() -> bool:
    """Whether the ``checklist`` package can be imported (without importing it).

    Example:
        >>> isinstance(checklist_available(), bool)
        True
    """
    return importlib.util.find_spec("checklist") is not None


def _flatten(data: Any) -> list[Any]:
    out: list[Any] = []
    for d in data:
        if isinstance(d, (list, tuple)):
            out.extend(d)
        else:
            out.append(d)
    return out


def _label_name(label: Any, label_names: Sequence[str] | None, where: str) -> str:
    if isinstance(label, str):
        return label
    if isinstance(label, int) and not isinstance(label, bool):
        if label_names is None:
            raise MLUsageError(
                f"{where}: CheckList label {label} is a class index; pass label_names=[...]"
            )
        if not 0 <= label < len(label_names):
            raise MLUsageError(f"{where}: label index {label} is outside {list(label_names)}")
        return str(label_names[label])
    raise MLUsageError(f"{where}: cannot read CheckList label {label!r}")


def from_checklist(
    test: Any,
    *,
    name: str | None = None,
    capability: str | None = None,
    label_names: Sequence[str] | None = None,
    expect: DirExpectation | None = None,
    min_pass_rate: float = 1.0,
) -> BehavioralTest:
    """Convert one CheckList ``MFT``/``INV``/``DIR`` object into an mltest test.

    Args:
        test: The CheckList test object.
        name: Test name (default: the CheckList name, or the type).
        capability: Capability (default: the CheckList capability).
        label_names: Class names, needed when CheckList labels are indices.
        expect: The mltest expectation of a DIR test (required for DIR).
        min_pass_rate: Pass rate required.

    Raises:
        MLUsageError: For an object that is not a CheckList test, or a DIR
            test without ``expect``.

    Example:
        >>> inv = from_checklist(cl_inv, capability="Robustness")  # doctest: +SKIP
    """
    kind = type(test).__name__
    data = getattr(test, "data", None)
    if kind not in ("MFT", "INV", "DIR") or data is None:
        raise MLUsageError(
            f"{kind} is not a CheckList MFT, INV or DIR test (it needs a data attribute)"
        )
    test_name = name or getattr(test, "name", None) or kind
    cap = capability if capability is not None else (getattr(test, "capability", None) or "")
    where = f"CheckList {kind} {test_name!r}"
    if kind == "MFT":
        texts = [str(t) for t in _flatten(data)]
        raw = getattr(test, "labels", None)
        if raw is None:
            raise MLUsageError(f"{where}: only MFTs with labels can be converted")
        if isinstance(raw, (list, tuple)):
            per_example = []
            for d, lab in zip(data, raw, strict=False):
                n = len(d) if isinstance(d, (list, tuple)) else 1
                per_example.extend([_label_name(lab, label_names, where)] * n)
        else:
            per_example = [_label_name(raw, label_names, where)] * len(texts)
        return MFT(
            test_name, texts, labels=per_example, capability=cap, min_pass_rate=min_pass_rate
        )
    pairs: list[tuple[str, str]] = []
    for d in data:
        if not isinstance(d, (list, tuple)) or len(d) < 2:
            raise MLUsageError(f"{where}: each example must be [original, perturbed, ...]")
        pairs.extend((str(d[0]), str(p)) for p in d[1:])
    if kind == "INV":
        return INV(test_name, pairs, capability=cap, min_pass_rate=min_pass_rate)
    if expect is None:
        raise MLUsageError(
            f"{where}: CheckList DIR expectations are opaque functions; pass the mltest "
            "one, e.g. expect=ProbabilityDirection('business', 'not_decrease')"
        )
    return DIR(test_name, pairs, expect=expect, capability=cap, min_pass_rate=min_pass_rate)


def from_checklist_suite(suite: Any, **kwargs: Any) -> list[BehavioralTest]:
    """Convert every MFT and INV of a CheckList ``Suite`` (DIRs need ``expect``: skipped).

    Example:
        >>> tests = from_checklist_suite(suite, label_names=LABELS)  # doctest: +SKIP
    """
    tests = getattr(suite, "tests", None)
    if not isinstance(tests, dict):
        raise MLUsageError(f"{type(suite).__name__} is not a CheckList Suite (no tests dict)")
    out = []
    for name, test in tests.items():
        if type(test).__name__ == "DIR" and kwargs.get("expect") is None:
            continue
        out.append(from_checklist(test, name=name, **kwargs))
    return out
