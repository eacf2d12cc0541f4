"""CheckList bridge: structural conversion always; real CheckList objects when installed."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from mltest.behavioral import DIR, INV, MFT, Model, ProbabilityDirection
from mltest.behavioral.checklist_bridge import (
    checklist_available,
    from_checklist,
    from_checklist_suite,
)
from mltest.errors import MLUsageError

LABELS = ["negative", "positive"]


def sentiment(texts: list[str]) -> np.ndarray:
    return np.array([[0.1, 0.9] if "good" in t else [0.8, 0.2] for t in texts])


def fake(kind: str, **attrs: Any) -> Any:
    """An object shaped like a CheckList test (same class name and attributes)."""
    cls = type(kind, (), {})
    obj = cls()
    for k, v in {"labels": None, "name": None, "capability": None, **attrs}.items():
        setattr(obj, k, v)
    return obj


def test_mft_with_index_labels() -> None:
    cl = fake("MFT", data=["good film", ["a good plot", "bad acting"]], labels=[1, 1],
              name="praise", capability="Vocabulary")  # fmt: skip
    test = from_checklist(cl, label_names=LABELS)
    assert isinstance(test, MFT)
    assert (test.name, test.capability) == ("praise", "Vocabulary")
    result = test.run(Model(sentiment, LABELS))
    assert (result.cases, result.failed) == (3, 1)
    assert result.failures[0].input == "bad acting"
    single = from_checklist(fake("MFT", data=["good"], labels="positive"))
    assert single.run(sentiment, LABELS).passed


def test_inv_and_dir_become_pairs() -> None:
    inv = from_checklist(fake("INV", data=[["good film", "good movie", "bad movie"]]))
    assert isinstance(inv, INV)
    result = inv.run(sentiment, LABELS)
    assert (result.cases, result.failed) == (2, 1)
    direction = ProbabilityDirection("positive", "not_decrease")
    dir_test = from_checklist(fake("DIR", data=[["a film", "a good film"]]), expect=direction)
    assert isinstance(dir_test, DIR)
    assert dir_test.run(sentiment, LABELS).passed


def test_conversion_errors() -> None:
    with pytest.raises(MLUsageError, match="list is not a CheckList MFT, INV or DIR test"):
        from_checklist([])
    with pytest.raises(MLUsageError, match="class index; pass label_names"):
        from_checklist(fake("MFT", data=["x"], labels=0))
    with pytest.raises(MLUsageError, match="only MFTs with labels"):
        from_checklist(fake("MFT", data=["x"]))
    with pytest.raises(MLUsageError, match="opaque functions; pass the mltest one"):
        from_checklist(fake("DIR", data=[["a", "b"]]))
    with pytest.raises(MLUsageError, match=r"each example must be \[original, perturbed"):
        from_checklist(fake("INV", data=["a"]))


def test_suite_conversion_skips_dir_without_expect() -> None:
    suite = type("Suite", (), {})()
    suite.tests = {
        "a": fake("MFT", data=["good"], labels="positive"),
        "b": fake("DIR", data=[["a", "b"]]),
    }
    assert [t.name for t in from_checklist_suite(suite)] == ["a"]
    with pytest.raises(MLUsageError, match="not a CheckList Suite"):
        from_checklist_suite(object())


@pytest.mark.skipif(
    not checklist_available() and not os.environ.get("MLTEST_REQUIRE_CHECKLIST"),
    reason="checklist is not installed (run `nox -s checklist`)",
)
def test_real_checklist_objects() -> None:  # pragma: no cover - runs in the checklist session
    from checklist.test_types import DIR as CLDIR
    from checklist.test_types import INV as CLINV
    from checklist.test_types import MFT as CLMFT

    mft = from_checklist(CLMFT(["good film", "bad film"], labels=1, name="p"), label_names=LABELS)
    assert mft.run(sentiment, LABELS).failed == 1
    inv = from_checklist(CLINV([["good film", "good movie"]], name="syn"))
    assert inv.run(sentiment, LABELS).passed
    dir_test = from_checklist(
        CLDIR([["a film", "a good film"]], expect=None, name="more"),
        expect=ProbabilityDirection("positive", "increase"),
    )
    assert dir_test.run(sentiment, LABELS).passed
