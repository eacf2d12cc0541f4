"""Bad input to the model checks gets one clear line (MLUsageError), not a diagnosis."""

from __future__ import annotations

import pytest

INNER = """
import pytest
import torch
from torch import nn
from mltest.model import check_model


def adam(m):
    return torch.optim.Adam(m.parameters(), lr=1e-2)


def batch(n=4):
    return torch.randn(n, 8), torch.arange(n) % 3


@pytest.mark.model
def test_no_trainable_parameters():
    model = nn.Linear(8, 3).requires_grad_(False)
    check_model(model, batch(), nn.CrossEntropyLoss(), adam)


@pytest.mark.model
def test_empty_batch():
    check_model(nn.Linear(8, 3), batch(0), nn.CrossEntropyLoss(), adam)


@pytest.mark.model
def test_loss_not_scalar():
    check_model(nn.Linear(8, 3), batch(), nn.CrossEntropyLoss(reduction="none"), adam)


@pytest.mark.model
def test_batch_on_wrong_device():
    x, y = batch()
    check_model(nn.Linear(8, 3), (x.to("meta"), y), nn.CrossEntropyLoss(), adam)


@pytest.mark.model
def test_factory_returns_no_optimizer():
    check_model(nn.Linear(8, 3), batch(), nn.CrossEntropyLoss(), lambda m: m.parameters())


@pytest.mark.model
def test_unknown_check_to_skip():
    check_model(nn.Linear(8, 3), batch(), nn.CrossEntropyLoss(), adam, skip=["overfit"])


@pytest.mark.model
def test_batch_of_wrong_type():
    check_model(nn.Linear(8, 3), "not a batch", nn.CrossEntropyLoss(), adam)
"""

ARGS = ("--ml", "-p", "no:hydra_pytest", "-p", "no:anyio")


def test_each_usage_error_is_one_clear_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_errors=INNER)
    result = pytester.runpytest(*ARGS, "--tb=line")
    result.assert_outcomes(failed=7)
    result.stdout.fnmatch_lines(
        [
            "*mltest.errors.MLUsageError: model has no trainable parameters (all 2 have "
            "requires_grad=False): nothing to check",
            "*mltest.errors.MLUsageError: batch is empty: batch[[]0[]] has shape (0, 8), "
            "0 examples",
            "*mltest.errors.MLUsageError: loss_fn returned a tensor of shape (4,), not a scalar: "
            "reduce it (reduction='mean' or .mean())",
            "*mltest.errors.MLUsageError: batch[[]0[]] is on meta but the model is on cpu: move "
            "the batch with .to('cpu')",
            "*mltest.errors.MLUsageError: optimizer_factory(model) returned a generator, not a "
            "torch.optim.Optimizer",
            "*mltest.errors.MLUsageError: skip: unknown check 'overfit'; known: output_spec, *",
            "*mltest.errors.MLUsageError: batch is a str: give a tensor, a tuple (inputs, targets) "
            "or a dict of tensors",
        ]
    )
    # A usage error is not a check failure: nothing is recorded as a failed model check.
    result.stdout.no_fnmatch_line("*model/* in test_errors.py*")
