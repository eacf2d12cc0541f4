"""The one-check functions, the model_checker fixture, the report, and state restoration."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

ZOO = Path(__file__).with_name("zoo.py").read_text(encoding="utf-8")
ARGS = ("--ml", "-p", "no:hydra_pytest", "-p", "no:anyio")

INNER = """
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import zoo
from mltest.model import (
    check_gradient_flow,
    check_loss_inputs,
    check_output_spec,
    check_parameters_update,
    check_training_determinism,
)


@pytest.mark.model
def test_fixture_passes_a_correct_model(model_checker):
    case = zoo.build("embedding_bag")
    report = model_checker(case.pop("model"), case.pop("batch"), case.pop("loss_fn"),
                           case.pop("optimizer_factory"))
    assert "overfit_batch" in report.passed


@pytest.mark.model
def test_fixture_fails_a_buggy_model(model_checker):
    case = zoo.build("detach_in_forward", buggy=True)
    model_checker(**case)


@pytest.mark.model
def test_probabilities_spec():
    check_output_spec(nn.Linear(8, 3), torch.randn(4, 8), shape=(None, 3), probabilities=True)


@pytest.mark.model
def test_nll_on_raw_logits():
    check_loss_inputs(nn.Linear(8, zoo.C), zoo.classification_data(), nn.NLLLoss())


@pytest.mark.model
def test_broadcasting_in_a_hand_written_loss():
    x, y = torch.randn(6, 8), torch.randn(6)
    check_loss_inputs(nn.Linear(8, 1), (x, y), lambda out, t: F.mse_loss(out, t))


@pytest.mark.model
def test_declared_frozen_layer_passes():
    model = zoo.MLP()
    model.fc1.requires_grad_(False)
    check_parameters_update(model, zoo.classification_data(), nn.CrossEntropyLoss(),
                            zoo.adam(), frozen=["fc1"])


@pytest.mark.model
def test_declared_frozen_layer_that_trains():
    check_parameters_update(zoo.MLP(), zoo.classification_data(), nn.CrossEntropyLoss(),
                            zoo.adam(), frozen=["fc1"])


@pytest.mark.model
def test_unused_layer_can_be_ignored():
    class WithSpare(zoo.MLP):
        def __init__(self):
            super().__init__()
            self.spare = nn.Linear(2, 2)

    check_gradient_flow(WithSpare(), zoo.classification_data(), nn.CrossEntropyLoss(),
                        ignore=["spare"])


class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1  # state kept between calls
        return self.fc(x) * (1 + 0.01 * self.calls)


@pytest.mark.model
def test_state_between_calls_breaks_training_determinism():
    x = zoo.classification_data(n=8)[0]
    check_training_determinism(Counting(), (x, torch.arange(8) % 3),
                               nn.CrossEntropyLoss(), zoo.adam())


@pytest.mark.model
def test_a_raising_train_step_is_reported(model_checker):
    def step(model, opt, batch, loss_fn):
        raise ValueError("boom in train_step")

    model_checker(zoo.MLP(), zoo.classification_data(), nn.CrossEntropyLoss(), zoo.adam(),
                  train_step=step, skip=["overfit_batch"])
"""


def test_checks_as_users_meet_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(zoo=ZOO, test_user_checks=INNER)
    result = pytester.runpytest(*ARGS, "--ml-report", "report.json")
    result.assert_outcomes(passed=3, failed=7)
    lines = result.stdout
    lines.fnmatch_lines(
        [
            "*_ test_fixture_fails_a_buggy_model _*",
            "*check_model: 2 of 10 model checks failed",
            "*[[]gradient_flow[]] 2 of 4 trainable parameters get no usable gradient",
        ]
    )
    lines.fnmatch_lines(
        [
            "*_ test_probabilities_spec _*",
            "*[[]output_spec[]] output does not match the spec (probabilities)",
            "*property  *expected  *got",
            "*probabilities  values in [[]0, 1[]]*",
            "*probabilities  sum to 1 along dim -1  4 rows do not (row 0: *",
            "*likely cause: no softmax/sigmoid at the end, or softmax over the wrong dim",
        ]
    )
    lines.fnmatch_lines(
        [
            "*_ test_nll_on_raw_logits _*",
            "*[[]loss_inputs[]] NLLLoss expects log-probabilities, and the outputs are not (exp of "
            "a row does not sum to 1)",
        ]
    )
    lines.fnmatch_lines(
        [
            "*_ test_broadcasting_in_a_hand_written_loss _*",
            "*[[]loss_inputs[]] target-shape broadcasting bug: the loss warned: Using a target "
            "size (torch.Size([[]6[]])) that is different to the input size "
            "(torch.Size([[]6, 1[]]))*",
        ]
    )
    lines.fnmatch_lines(
        [
            "*_ test_declared_frozen_layer_that_trains _*",
            "*[[]parameters_update[]] 2 of 4 parameters misbehaved after one optimizer step",
            "*fc1.weight  declared frozen but changed  still requires_grad=True and is in the "
            "optimizer",
        ]
    )
    lines.fnmatch_lines(
        [
            "*_ test_state_between_calls_breaks_training_determinism _*",
            "*[[]training_determinism[]] two seeded runs of 3 steps differ in 2 parameters",
            "*likely cause: randomness the seed does not reach*",
        ]
    )
    lines.fnmatch_lines(
        [
            "*_ test_a_raising_train_step_is_reported _*",
            "*[[]parameters_update[]] raised ValueError: boom in train_step",
            "*run mltest.model.check_parameters_update(...) alone to see the traceback",
        ]
    )
    report = json.loads((pytester.path / "report.json").read_text())
    by_test = {t["nodeid"].split("::")[-1]: t for t in report["tests"]}
    passing = by_test["test_fixture_passes_a_correct_model"]["checks"]
    assert {c["name"] for c in passing} >= {"finite", "overfit_batch", "batch_independence"}
    assert all(c["kind"] == "model" and c["passed"] for c in passing)
    overfit = next(c for c in passing if c["name"] == "overfit_batch")
    assert overfit["metrics"]["loss_final"] < overfit["metrics"]["loss_start"]
    failing = by_test["test_fixture_fails_a_buggy_model"]["checks"]
    dead = next(c for c in failing if c["name"] == "gradient_flow")
    assert not dead["passed"]
    assert [e["parameter"] for e in dead["examples"]] == ["fc1.weight", "fc1.bias"]


# ---------------------------------------------------------------------------
# Behaviour that is easier to see directly
# ---------------------------------------------------------------------------


def test_batchnorm_mixing_is_reported_as_intentional() -> None:
    import torch
    import zoo

    from mltest.model import check_batch_independence

    result = check_batch_independence(zoo.BatchNormNet(), torch.randn(8, 8))
    assert result is not None
    assert result.passed
    assert "BatchNorm layers (bn) mix the examples of a batch in train mode by design" in (
        result.headline
    )


def test_predict_returning_plain_python_values() -> None:
    import numpy as np
    import torch
    import zoo

    from mltest.model import ModelCheckFailure, check_eval_determinism

    names = ["a", "b", "c", "d"]

    def predict_names(model: torch.nn.Module, x: torch.Tensor) -> list[str]:
        model.eval()
        with torch.inference_mode():
            return [names[i] for i in model(x).argmax(1).tolist()]

    def predict_array(model: torch.nn.Module, x: torch.Tensor) -> object:
        model.eval()
        with torch.inference_mode():
            return np.asarray(model(x).argmax(1))

    x, _ = zoo.classification_data()
    for predict in (predict_names, predict_array):
        result = check_eval_determinism(zoo.MLP(dropout=0.5), x, predict=predict)
        assert result is not None
        assert result.passed, result.message()

    def predict_noisy(model: torch.nn.Module, x: torch.Tensor) -> list[str]:
        return [names[i] for i in model(x).argmax(1).tolist()]  # dropout on

    with pytest.raises(ModelCheckFailure, match=r"dropout left on at inference"):
        check_eval_determinism(zoo.MLP(dropout=0.5), x, predict=predict_noisy)


def test_batch_of_one_is_not_applicable() -> None:
    import torch

    from mltest.model import check_batch_independence

    assert check_batch_independence(torch.nn.Linear(8, 2), torch.randn(1, 8)) is None


def test_model_optimizer_and_rng_are_left_as_found() -> None:
    import numpy as np
    import torch
    import zoo

    from mltest.model import ModelCheckFailure, check_model

    model = zoo.BatchNormNet()
    model.fc2.eval()  # an odd mix of modes, which must survive
    model.fc1.bias.requires_grad_(False)
    x, y = zoo.classification_data()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    users_opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    opt_state = json.dumps(users_opt.state_dict(), default=str)
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)

    with pytest.raises(ModelCheckFailure):  # fc1.bias is frozen but not declared so
        check_model(model, (x, y), torch.nn.CrossEntropyLoss(), lambda m: users_opt)

    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    for n, p in model.named_parameters():
        assert (p.grad is None) == (grads[n] is None)
        if p.grad is not None:
            assert torch.equal(p.grad, grads[n])
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert not model.fc1.bias.requires_grad
    assert json.dumps(users_opt.state_dict(), default=str) == opt_state


def test_one_shot_generator_of_batches_is_cycled() -> None:
    import zoo

    from mltest.model import check_overfit_batch

    x, y = zoo.classification_data(n=32, seed=9)
    gen = ((x[i : i + 16], y[i : i + 16]) for i in (0, 16))
    result = check_overfit_batch(
        zoo.MLP(), (x[:16], y[:16]), zoo.torch.nn.CrossEntropyLoss(), zoo.adam(), batches=gen
    )
    assert result is not None
    assert result.passed
    assert result.metrics["source"] == "batches"


def test_parity_comparison_names_the_first_diverging_module() -> None:
    import copy

    import torch
    import zoo

    from mltest.model._core import Session
    from mltest.model.checks import compare_models

    model = zoo.MLP()
    other, twin = copy.deepcopy(model), copy.deepcopy(model)
    with torch.no_grad():
        other.fc2.weight.add_(0.1)
    batch = zoo.classification_data()
    session = Session(model, batch, torch.nn.CrossEntropyLoss(), zoo.adam())
    try:
        problems = compare_models(session, other, batch, "the copy", rtol=1e-3, atol=1e-5)
        same = compare_models(session, twin, batch, "a twin", rtol=1e-3, atol=1e-5)
    finally:
        session.close()
    assert problems[0].startswith("forward: outputs differ on the copy (max |diff| ")
    assert problems[0].endswith("first module: fc2 (Linear)")
    assert any(p.startswith("training step: ") for p in problems)
    assert same == []


def test_device_parity_needs_a_second_device() -> None:
    import torch

    from mltest.model import check_device_parity

    assert check_device_parity(torch.nn.Linear(8, 2), torch.randn(4, 8), devices=["cpu"]) is None


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs CUDA")
def test_cpu_and_cuda_agree() -> None:
    import torch
    import zoo

    from mltest.model import check_device_parity

    for name in ("embedding_bag", "batchnorm"):
        case = zoo.build(name)
        result = check_device_parity(
            case["model"],
            case["batch"],
            case["loss_fn"],
            case["optimizer_factory"],
            devices=["cuda"],
        )
        assert result is not None
        assert result.passed, result.message()
    result = check_device_parity(torch.nn.Linear(8, 2), torch.randn(4, 8), devices=["cuda"])
    assert result is not None
    assert result.passed


CUDA_MEMORY = """
import pytest
import torch


@pytest.mark.model
@pytest.mark.limit_cuda_memory("1 MB")
def test_over_the_limit():
    x = torch.empty(4 * 2**20, dtype=torch.uint8, device="cuda")
    del x


@pytest.mark.model
@pytest.mark.limit_cuda_memory("1 MB")
def test_under_the_limit():
    x = torch.empty(1024, dtype=torch.uint8, device="cuda")
    del x
"""


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs CUDA")
def test_limit_cuda_memory_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_memory=CUDA_MEMORY)
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*peak CUDA memory * MiB exceeds the limit of 976.6 KiB "
            "[[]torch.cuda.max_memory_allocated() = * bytes[]]*"
        ]
    )
