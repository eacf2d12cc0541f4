"""The bug zoo through pytest, as a user meets it: every bug caught and named, no false alarms.

Each buggy case runs ``check_model`` in a pytester project and the failure
text the user reads is pinned; the correct twins all pass in one run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ZOO = Path(__file__).with_name("zoo.py").read_text(encoding="utf-8")

#: The project's own addopts leave these plugins out; inner runs do the same
#: (re-importing hydra in every in-process run costs seconds).
ARGS = ("--ml", "-p", "no:hydra_pytest", "-p", "no:anyio")

BUGS_TEST = """
import pytest
import zoo
from mltest.model import check_model


@pytest.mark.model
@pytest.mark.parametrize("name", sorted(zoo.BUGS))
def test_bug(name):
    check_model(**zoo.build(name, buggy=True))
"""

TWIN_TEST = """
import pytest
import zoo
from mltest.model import check_model


@pytest.mark.model
@pytest.mark.parametrize("name", sorted(zoo.BUGS) + sorted(zoo.EXTRA))
def test_twin(name):
    report = check_model(**zoo.build(name, buggy=False))
    assert report.passed
"""


def lit(text: str) -> str:
    """An fnmatch pattern for a line containing ``text`` (``*`` stays a wildcard)."""
    return "*" + text.replace("[", "[[]") + "*"


#: bug -> lines its failure must show, in order.
EXPECTED: dict[str, list[str]] = {
    "zero_grad": [
        "check_model: 1 of 11 model checks failed",
        "[zero_grad] forgotten zero_grad: gradients accumulate across steps in train_step "
        "(4 parameters)",
        "parameter   |grad| of this step  |grad| at optimizer.step()",
        "fix: call optimizer.zero_grad() before loss.backward() in train_step",
    ],
    "softmax_before_ce": [
        "[loss_inputs] softmax before CrossEntropyLoss: the outputs are already probabilities "
        "(each row in [0, 1] and summing to 1)",
        "fix: return the logits from forward and apply softmax only at inference",
        "[overfit_batch] cannot overfit one batch: loss * -> * after * steps (goal <= *)",
        "- the outputs are already probabilities (rows sum to 1): softmax before a loss that "
        "expects logits (CrossEntropyLoss)",
    ],
    "frozen_layer": [
        "[parameters_update] 2 of 4 parameters misbehaved after one optimizer step (frozen layer)",
        "fc1.weight  requires_grad=False  frozen by mistake? (declare intended ones with "
        "frozen=[...])",
        "next: remove the stray requires_grad_(False), or pass frozen=['name'] if freezing is "
        "intended",
    ],
    "missing_from_optimizer": [
        "[parameters_update] 2 of 4 parameters misbehaved after one optimizer step "
        "(missing from optimizer)",
        "fc1.weight  unchanged after one step  not in the optimizer "
        "(optimizer_factory left it out)",
        "fc1.bias    unchanged after one step  not in the optimizer "
        "(optimizer_factory left it out)",
    ],
    "view_vs_permute": [
        "[batch_independence] batch mixing: output 0 depends on 4 other examples of the batch",
        "output 0   3, 6, 9, 12*",
        "gradients taken at the inputs",
        "likely cause: a view/reshape where permute/transpose was needed (e.g. (N, T, D) -> "
        "(T, N, D))*",
    ],
    "detach_in_forward": [
        "[gradient_flow] 2 of 4 trainable parameters get no usable gradient",
        "fc1.weight  (32, 8)  None",
        "fc1.bias    (32,)    None",
        "no gradient (None): the path from the loss to them is cut: .detach(), torch.no_grad()*",
        "[parameters_update] 2 of 4 parameters misbehaved after one optimizer step (no gradient)",
    ],
    "lr_zero": [
        "[parameters_update] 4 of 4 parameters misbehaved after one optimizer step "
        "(learning rate 0)",
        "fc1.weight  unchanged after one step  its param group has lr=0",
        "[loss_decreases] loss did not decrease after 5 steps: * -> *",
        "the loss did not move at all: nothing was updated (learning rate 0, optimizer.step() "
        "not called, gradients cut): see parameters_update",
    ],
    "step_never_called": [
        "[parameters_update] 4 of 4 parameters misbehaved after one optimizer step "
        "(step never called)",
        "fc1.weight  unchanged after one step  optimizer.step() was never called",
        "next: train_step never calls optimizer.step(): add it after loss.backward()",
    ],
    "nan_log_softmax": [
        "[finite] non-finite output: first produced by <root> (LogProbs)",
        "module (in call order)  nan  inf",
        "the inputs of <root> (LogProbs) were finite: the NaN/Inf arises in the model's own "
        "forward()",
        "likely cause: log(softmax(x)) underflowing to log(0) on large logits (use log_softmax)*",
        "not run: loss_decreases, overfit_batch, weight_symmetry, training_determinism",
    ],
    "wrong_output_dim": [
        "[output_spec] output does not match the spec (shape)",
        "shape     (*, 4)    (16, 3)",
        "[loss_inputs] wrong output dimension: targets go up to class 3 but the model outputs 3 "
        "scores per example (output (16, 3))",
        "likely cause: the last layer's out_features is 3; it needs at least 4 (one per class)",
        "[loss] loss_fn(outputs, targets) raised IndexError: Target 3 is out of bounds.",
    ],
    "dropout_at_inference": [
        "[eval_determinism] dropout left on at inference: 1 dropout/batchnorm modules ran in "
        "training mode inside predict()",
        "drop (Dropout)  Dropout",
        "fix: call model.eval() (and use torch.inference_mode()) inside predict",
    ],
    "randomness_in_forward": [
        "[eval_determinism] randomness in forward: two forward passes in eval mode differ "
        "(max |diff| *); first module whose output differs: noise (Noise)",
        "fix: gate it with `if self.training:`*",
    ],
    "shuffled_labels": [
        "[overfit_batch] cannot overfit the batches from `batches` (* -> * after * steps) "
        "although it overfits the fixed batch: the data pipeline breaks the input-label pairing",
        "loss curve on `batches`: step 0: *",
        "- labels shuffled independently of inputs (inputs and labels indexed by different "
        "permutations)",
    ],
    "target_broadcasting": [
        "[loss_inputs] target-shape broadcasting bug: MSELoss gets outputs (16, 1) and targets "
        "(16,), which broadcast to (16, 16)",
        "fix: make the shapes equal (output.squeeze(-1), or targets.unsqueeze(-1))",
    ],
    "zero_init": [
        "[gradient_flow] 3 of 4 trainable parameters get no usable gradient",
        "[weight_symmetry] zero-init symmetry: all units of 2 weight matrices are identical and "
        "stay identical after 3 steps",
        "fc1.weight  (32, 8)  32     0",
        "likely cause: zero or constant initialisation*",
    ],
}


def test_every_bug_in_the_zoo_has_expected_text() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import zoo
    finally:
        sys.path.pop(0)
    assert sorted(EXPECTED) == sorted(zoo.BUGS)
    assert len(zoo.BUGS) >= 12


#: One pytester run serves every bug (a run costs about a second of start-up):
#: bug name -> the lines of its own section of the failure report.
_SECTIONS: dict[str, list[str]] = {}
_SUMMARY: list[str] = []
_HEADER = re.compile(r"^_+ test_bug\[(\w+)\] _+$")


def _bug_sections(pytester: pytest.Pytester) -> dict[str, list[str]]:
    if not _SECTIONS:
        pytester.makepyfile(zoo=ZOO, test_bugs=BUGS_TEST)
        # -v: the mltest summary lists every failed check, not the first 20.
        result = pytester.runpytest(*ARGS, "-v")
        result.assert_outcomes(failed=len(EXPECTED))
        current: list[str] | None = None
        for line in result.outlines:
            match = _HEADER.match(line)
            if match:
                current = _SECTIONS.setdefault(match.group(1), [])
            elif current is not None:
                current.append(line)
        _SUMMARY.extend(result.outlines)
    return _SECTIONS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bug_is_caught_and_named(pytester: pytest.Pytester, name: str) -> None:
    sections = _bug_sections(pytester)
    pytest.LineMatcher(sections[name]).fnmatch_lines([lit(line) for line in EXPECTED[name]])
    # ...and the mltest summary lists the failed check against the test.
    pytest.LineMatcher(_SUMMARY).fnmatch_lines(
        [f"  model/* in test_bugs.py::test_bug[[]{name}[]]: *"]
    )


def test_correct_twins_pass_every_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(zoo=ZOO, test_twins=TWIN_TEST)
    result = pytester.runpytest(*ARGS)
    result.assert_outcomes(passed=19)
    result.stdout.fnmatch_lines(["*= mltest =*", "checks  model: * passed, 0 failed"])
