"""The sequence zoo: transformer bugs caught and named, correct twins and size traps pass.

The failure text a user reads is pinned once through pytester (seed 0); the
verdicts are then checked in-process for seeds 0-9.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
SEEDS = range(10)


@pytest.fixture(scope="module")
def seq_zoo() -> Iterator[Any]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    try:
        import seq_zoo as module
    finally:
        sys.path.pop(0)
    yield module
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "name",
    [
        "gpt_b_equals_t",
        "gpt_b_equals_d_model",
        "gpt_b_equals_vocab",
        "classifier_b_equals_classes",
        "classifier_b_equals_t",
    ],
)
def test_batch_independence_holds_when_sizes_coincide(seq_zoo: Any, name: str) -> None:
    from mltest.model import check_batch_independence

    for seed in SEEDS:
        case = seq_zoo.build(name, seed=seed)
        result = check_batch_independence(case["model"], case["batch"], seed=seed)
        assert result is not None
        assert result.passed, result.message()
        assert "gradients at the embedding outputs" in result.headline


def test_position_embedding_is_not_taken_for_a_batch_output(seq_zoo: Any) -> None:
    import torch

    from mltest.model._core import Session
    from mltest.model._sequence import Probes

    case = seq_zoo.build("gpt_b_equals_t")
    x, _ = case["batch"]
    assert x.shape[0] == x.shape[1]  # B == T
    s = Session(case["model"], case["batch"])
    try:
        probes = Probes(s, x.shape[0])
        probes.forward()
        # wte(idx) is (B, T, d); wpe(arange(T)) is (T, d) and must be left out.
        assert [tuple(t.shape) for t in probes.tensors] == [(x.shape[0], x.shape[1], 16)]
    finally:
        s.close()
    assert torch.equal(case["batch"][0], x)
