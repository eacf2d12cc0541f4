"""The sequence zoo: transformer bugs caught and named, correct twins and size traps pass.

The failure text a user reads is pinned through pytester on seed 0, where the
whole battery runs on every bug, twin and trap. Seeds 1-9 run in-process:
each bug, and its correct twin, with the check that names it; each trap with
the checks it is a trap for. Set
``MLTEST_SEQ_ZOO_FULL=1`` to run the whole battery on seeds 0-9 (about a
minute on two cores).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
SEQ_ZOO = (HERE / "seq_zoo.py").read_text(encoding="utf-8")
ARGS = ("--ml", "-p", "no:hydra_pytest", "-p", "no:anyio")
FULL = os.environ.get("MLTEST_SEQ_ZOO_FULL") == "1"
SEEDS = range(10) if FULL else range(1, 10)
#: The checks that train for a long time; seed 0 runs them on every case.
LONG = ["loss_decreases", "overfit_batch", "weight_symmetry", "training_determinism"]

BUGS_TEST = """
import pytest
import seq_zoo
from mltest.model import check_model


@pytest.mark.model
@pytest.mark.parametrize("name", sorted(seq_zoo.BUGS))
def test_bug(name):
    check_model(**seq_zoo.build(name, buggy=True))
"""

TWIN_TEST = """
import pytest
import seq_zoo
from mltest.model import check_model


@pytest.mark.model
@pytest.mark.parametrize("name", sorted(seq_zoo.BUGS) + sorted(seq_zoo.TRAPS))
def test_twin(name):
    report = check_model(**seq_zoo.build(name, buggy=False))
    assert report.passed
"""


def lit(text: str) -> str:
    """An fnmatch pattern for a line containing ``text`` (``*`` stays a wildcard)."""
    return "*" + text.replace("[", "[[]") + "*"


#: bug -> (the check that names it, the lines its failure must show, in order).
EXPECTED: dict[str, tuple[str, list[str]]] = {
    "no_causal_mask": (
        "causality",
        [
            "[causality] causality broken: position 0 reads positions 1-7: no causal mask?",
            "output      reads later positions  max |gradient|",
            "position 0  1-7  *",
            "position 6  7  *",
            "7 of 7 positions read later ones (gradients at the embedding outputs)",
            "likely cause: the causal mask is missing or not applied*",
        ],
    ),
    "mask_off_by_one": (
        "causality",
        [
            "[causality] causality broken: position 0 reads position 1: causal mask off by one?",
            "position 3  4  *",
            "likely cause: torch.tril(..., diagonal=1) or a mask built with <= where < was meant*",
        ],
    ),
    "zero_grad_under_clipping": (
        "zero_grad",
        [
            "[zero_grad] forgotten zero_grad: gradients accumulate across steps in train_step "
            "(18 parameters)",
            "parameter  *|grad| of this step  |grad| at optimizer.step()",
            "at optimizer.step() the gradients differed from a clean step's: the previous step's "
            "gradients were still in .grad and were added in before clipping/scaling",
            "fix: call optimizer.zero_grad() before loss.backward() in train_step",
        ],
    ),
    "zero_grad_under_clip_value": (
        "zero_grad",
        [
            "[zero_grad] forgotten zero_grad: gradients accumulate across steps in train_step "
            "(* parameters)",
            "fix: call optimizer.zero_grad() before loss.backward() in train_step",
        ],
    ),
    "zero_grad_under_grad_scaler": (
        "zero_grad",
        [
            "[zero_grad] forgotten zero_grad: gradients accumulate across steps in train_step "
            "(18 parameters)",
            "fix: call optimizer.zero_grad() before loss.backward() in train_step",
        ],
    ),
    "functional_double_softmax": (
        "loss_inputs",
        [
            "[loss_inputs] softmax before cross_entropy: what reaches F.cross_entropy is already "
            "probabilities (each row in [0, 1] and summing to 1)",
            "fix: drop the softmax (in forward or in loss_fn) before the loss",
            "[overfit_batch] cannot overfit one batch: loss * -> * after * steps (goal <= *)",
            "the loss is stuck at 2.247 = log(e + C - 1) - 1 (C = 24), the lowest cross-entropy "
            "of probabilities fed as logits: softmax before the loss",
        ],
    ),
    "unshifted_targets": (
        "loss_inputs",
        [
            "[loss_inputs] the targets are the input tokens themselves: did you forget to shift "
            "the targets?",
            "a language model predicts token t + 1 from tokens <= t: inputs ids[:, :-1], targets "
            "ids[:, 1:]*",
        ],
    ),
    "ignore_index_minus_one": (
        "loss_inputs",
        [
            "[loss_inputs] targets hold -1 at 12 positions, and cross_entropy's ignore_index is "
            "-100: pass ignore_index=-1",
            "fix: F.cross_entropy(..., ignore_index=-1) (or nn.CrossEntropyLoss(ignore_index=-1))"
            ", or mark ignored positions with -100, the default",
            "[loss] loss_fn(outputs, targets) raised IndexError: Target -1 is out of bounds.",
        ],
    ),
    "functional_dropout_in_eval": (
        "eval_determinism",
        [
            "[eval_determinism] F.dropout without training=self.training: dropout runs in eval "
            "mode in blocks.0 (Block) (p=0.1)",
            "F.dropout's training argument defaults to True, so model.eval() cannot turn it off",
            "fix: F.dropout(x, p, training=self.training), or an nn.Dropout module",
        ],
    ),
    "padding_ignored": (
        "padding",
        [
            "[padding] padding leaks into the outputs: * moved the pooled output by up to * "
            "(* of 6 examples)",
            "padding change  * max change  outputs moved",
            "changing the content of padded positions  *",
            "appending 2 padding positions  *",
            "likely cause: the attention mask is not applied (attention over pad tokens*",
        ],
    ),
}


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


@pytest.fixture
def unrecorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the hundreds of in-process verdicts of the seed loops out of the mltest report."""
    monkeypatch.setattr("mltest.model._core.record_check", lambda *args, **kwargs: None)
    monkeypatch.setattr("mltest.report.record_figure", lambda *args, **kwargs: None)


def test_every_bug_has_expected_text(seq_zoo: Any) -> None:
    assert sorted(EXPECTED) == sorted(seq_zoo.BUGS)


_SECTIONS: dict[str, list[str]] = {}
_HEADER = re.compile(r"^_+ test_bug\[(\w+)\] _+$")


def _bug_sections(pytester: pytest.Pytester) -> dict[str, list[str]]:
    if not _SECTIONS:
        pytester.makepyfile(seq_zoo=SEQ_ZOO, test_seq_bugs=BUGS_TEST)
        result = pytester.runpytest(*ARGS)
        result.assert_outcomes(failed=len(EXPECTED))
        current: list[str] | None = None
        for line in result.outlines:
            match = _HEADER.match(line)
            if match:
                current = _SECTIONS.setdefault(match.group(1), [])
            elif current is not None:
                current.append(line)
    return _SECTIONS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seq_bug_is_caught_and_named(pytester: pytest.Pytester, name: str) -> None:
    sections = _bug_sections(pytester)
    pytest.LineMatcher(sections[name]).fnmatch_lines([lit(line) for line in EXPECTED[name][1]])


def test_seq_twins_and_traps_pass_every_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(seq_zoo=SEQ_ZOO, test_seq_twins=TWIN_TEST)
    result = pytester.runpytest(*ARGS, "--ml-report", "report.json")
    result.assert_outcomes(passed=23)
    result.stdout.fnmatch_lines(["*= mltest =*", "checks  model: * passed, 0 failed"])
    report = json.loads((pytester.path / "report.json").read_text())
    by_test = {t["nodeid"].split("::")[-1]: t for t in report["tests"]}
    # The minGPT-style trap still falls at the budget's end: the overfit check goes on.
    trap = by_test["test_twin[gpt_dropout_module]"]
    overfit = next(c for c in trap["checks"] if c["name"] == "overfit_batch")
    assert overfit["passed"]
    assert overfit["metrics"]["extended_steps"] > 0
    # Every run records its loss curves as figures for the HTML report.
    figures = {f["check"]: f for f in trap["figures"]}
    assert set(figures) >= {"overfit_batch", "loss_decreases"}
    curve = figures["overfit_batch"]["data"]
    assert curve["x_label"] == "step"
    assert curve["series"]["loss"][0] > curve["series"]["loss"][-1]
    # The sequence checks ran where they apply.
    names = {c["name"] for c in by_test["test_twin[mask_off_by_one]"]["checks"]}
    assert {"causality", "batch_independence"} <= names
    names = {c["name"] for c in by_test["test_twin[padding_ignored]"]["checks"]}
    assert "padding" in names


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.usefixtures("unrecorded")
def test_seq_bug_is_caught_for_every_seed(seq_zoo: Any, name: str) -> None:
    from mltest.model import CHECKS, ModelCheckFailure, check_model

    check, lines = EXPECTED[name]
    headline = lines[0].split("] ", 1)[1]
    pattern = re.compile(re.escape(headline).replace(r"\*", ".*"))
    keep = {check, "loss_inputs", "finite"}
    for seed in SEEDS:
        case = seq_zoo.build(name, buggy=True, seed=seed)
        if not FULL:
            case["skip"] = [c for c in CHECKS if c not in keep]
        with pytest.raises(ModelCheckFailure) as caught:
            check_model(**case)
        failed = {f.name: f for f in caught.value.failures}
        assert check in failed, f"seed {seed}: {sorted(failed)}"
        assert pattern.fullmatch(failed[check].headline), (seed, failed[check].headline)


#: trap -> the checks it is a trap for (besides finite and loss_inputs).
TRAP_CHECKS: dict[str, set[str]] = {
    "gpt_b_equals_t": {"batch_independence", "causality"},
    "gpt_b_equals_d_model": {"batch_independence", "causality"},
    "gpt_b_equals_vocab": {"batch_independence", "causality"},
    "classifier_b_equals_classes": {"batch_independence", "padding"},
    "classifier_b_equals_t": {"batch_independence", "padding"},
    "gpt_loss_inside_tuple": {"gradient_flow", "causality", "eval_determinism"},
    "gpt_hf_dict_output": {"gradient_flow", "causality", "eval_determinism"},
    "gpt_dataclass_output": {"gradient_flow", "causality"},
    "classifier_loss_inside": {"gradient_flow", "padding", "batch_independence"},
    "classifier_pad_id": {"padding"},
    "gpt_grad_accumulation": {"zero_grad", "parameters_update"},
    "torch_encoder_layer": {"padding", "eval_determinism", "batch_independence"},
}


def test_every_trap_says_what_it_traps(seq_zoo: Any) -> None:
    assert sorted(TRAP_CHECKS) == sorted(set(seq_zoo.TRAPS) - {"gpt_dropout_module"})


@pytest.mark.parametrize("group", ["twins", "traps"])
@pytest.mark.usefixtures("unrecorded")
def test_seq_twins_and_traps_pass_for_every_seed(seq_zoo: Any, group: str) -> None:
    from mltest.model import CHECKS, check_model

    if group == "twins":
        cases = {name: {EXPECTED[name][0]} for name in seq_zoo.BUGS}
    else:
        cases = dict(TRAP_CHECKS)
        if FULL:
            cases["gpt_dropout_module"] = {"overfit_batch"}
    for name, checks in sorted(cases.items()):
        keep = checks | {"finite", "loss_inputs"}
        for seed in SEEDS:
            case = seq_zoo.build(name, buggy=False, seed=seed)
            if not FULL:
                case["skip"] = [c for c in CHECKS if c not in keep]
            report = check_model(**case)
            assert report.passed, (name, seed)
            assert checks <= set(report.passed), (name, seed, report.summary())


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

    case = seq_zoo.build(name)
    result = check_batch_independence(case["model"], case["batch"])
    assert result is not None
    assert result.passed, result.message()
    assert "gradients at the embedding outputs" in result.headline


def test_position_embedding_is_not_taken_for_a_batch_output(seq_zoo: Any) -> None:
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


def test_batch_mixing_in_a_transformer_is_still_caught(seq_zoo: Any) -> None:
    import torch

    from mltest.model import ModelCheckFailure, check_batch_independence

    case = seq_zoo.build("gpt_b_equals_t")
    model = case["model"]
    real = model.blocks[0].attn.forward

    def mixing(x: torch.Tensor, key_mask: Any = None) -> torch.Tensor:
        return real(x.transpose(0, 1).reshape(x.shape))  # (B, T) read as (T, B)

    model.blocks[0].attn.forward = mixing
    with pytest.raises(ModelCheckFailure, match=r"batch mixing: output 0 depends on \d+ other"):
        check_batch_independence(model, case["batch"])


def test_causality_by_perturbation_when_ids_reach_no_embedding(seq_zoo: Any) -> None:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from mltest.model import ModelCheckFailure, check_causality

    class OneHotConv(nn.Module):
        """Token ids one-hot encoded, then a convolution over time (no nn.Embedding)."""

        def __init__(self, left_padded: bool) -> None:
            super().__init__()
            self.conv = nn.Conv1d(seq_zoo.VOCAB, 8, 2)
            self.left_padded = left_padded

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x = F.one_hot(ids, seq_zoo.VOCAB).float().transpose(1, 2)
            x = F.pad(x, (1, 0) if self.left_padded else (0, 1))  # right: sees t + 1
            return self.conv(x).transpose(1, 2)

    ids = seq_zoo.lm_data(0)
    ok = check_causality(OneHotConv(left_padded=True), (ids[:, :-1], ids[:, 1:]))
    assert ok is not None
    assert ok.passed
    assert "changing one token at a time" in ok.headline
    with pytest.raises(ModelCheckFailure) as caught:
        check_causality(OneHotConv(left_padded=False), (ids[:, :-1], ids[:, 1:]))
    assert "position 0 reads position 1: causal mask off by one?" in str(caught.value)
    assert "max |change|" in str(caught.value)


def test_last_position_logits_cannot_be_checked_for_causality(seq_zoo: Any) -> None:
    from mltest.errors import MLUsageError
    from mltest.model import check_causality

    case = seq_zoo.build("gpt_loss_inside_tuple")
    x, _ = case["batch"]
    with pytest.raises(MLUsageError, match=r"has no position axis of length 8 at dim 1"):
        check_causality(case["model"], x)  # model(x) gives logits[:, [-1]] only


def test_zero_grad_with_declared_accumulation(seq_zoo: Any) -> None:
    from mltest.model import ModelCheckFailure, check_zero_grad

    case = seq_zoo.build("gpt_grad_accumulation")
    args = (case["model"], case["batch"], case["loss_fn"], case["optimizer_factory"])
    result = check_zero_grad(*args, seq_zoo._accumulating_step(2, zero=True), accumulation_steps=2)
    assert result is not None
    assert result.passed
    assert "an accumulation cycle of 2 calls" in result.headline
    with pytest.raises(ModelCheckFailure) as caught:
        check_zero_grad(*args, seq_zoo._accumulating_step(2, zero=False), accumulation_steps=2)
    text = str(caught.value)
    assert "forgotten zero_grad: gradients accumulate across steps in train_step (an " in text
    assert "fix: call optimizer.zero_grad() right after optimizer.step() in the accumulation " in (
        text
    )
    with pytest.raises(ModelCheckFailure, match=r"optimizer.step\(\) ran 3 times in 3 calls"):
        check_zero_grad(*args, seq_zoo.step_clip, accumulation_steps=3)


def test_real_hugging_face_model_output(seq_zoo: Any) -> None:
    utils = pytest.importorskip("transformers.utils")
    from dataclasses import dataclass

    import torch

    from mltest.model import check_model

    @dataclass
    class Output(utils.ModelOutput):  # type: ignore[misc,name-defined]
        loss: torch.Tensor | None = None
        logits: torch.Tensor | None = None

    class Classifier(seq_zoo.TinyEncoderClassifier):  # type: ignore[misc,name-defined]
        def forward(self, input_ids: Any, attention_mask: Any, labels: Any = None) -> Any:
            out = super().forward(input_ids, attention_mask, labels)
            return Output(loss=out.get("loss"), logits=out["logits"])

    case = seq_zoo.build("classifier_loss_inside")
    torch.manual_seed(0)
    case["model"] = Classifier(loss_inside=True)
    report = check_model(**case, skip=LONG)
    assert {"padding", "batch_independence", "loss_inputs"} <= set(report.passed)


def test_model_loss_without_labels_is_one_clear_line(seq_zoo: Any) -> None:
    from mltest.errors import MLUsageError
    from mltest.model import check_model

    case = seq_zoo.build("classifier_loss_inside")
    del case["batch"]["labels"]
    with pytest.raises(MLUsageError, match=r"loss_fn=None, but the model's output \(ModelOutput\)"):
        check_model(**case)


def test_output_key_picks_the_checked_tensor(seq_zoo: Any) -> None:
    from mltest.errors import MLUsageError
    from mltest.model import check_model, check_output_spec

    case = seq_zoo.build("padding_ignored")
    check_output_spec(case["model"], case["batch"], shape=(None, seq_zoo.CLASSES))
    with pytest.raises(MLUsageError, match=r"output_key='scores': the model's output"):
        check_model(**case, output_key="scores")


def test_threads_are_restored(seq_zoo: Any) -> None:
    import torch

    from mltest.model import check_model

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: list[int] = []
        case = seq_zoo.build("gpt_b_equals_t")
        loss_fn = case["loss_fn"]

        def counting(out: Any, y: Any) -> Any:
            seen.append(torch.get_num_threads())
            return loss_fn(out, y)

        case["loss_fn"] = counting
        check_model(**case, skip=LONG)
        assert set(seen) == {1}
        assert torch.get_num_threads() == 2
        seen.clear()
        check_model(**case, skip=LONG, num_threads=None)
        assert set(seen) == {2}
    finally:
        torch.set_num_threads(before)


def test_overfit_says_still_falling_when_the_budget_is_too_small(seq_zoo: Any) -> None:
    from mltest.model import ModelCheckFailure, check_overfit_batch

    case = seq_zoo.build("gpt_b_equals_t")
    with pytest.raises(ModelCheckFailure) as caught:
        check_overfit_batch(
            case["model"],
            case["batch"],
            case["loss_fn"],
            seq_zoo.adamw(3e-4),
            max_steps=50,
            extend=1.0,
        )
    text = str(caught.value)
    assert "the loss is still falling when the budget ran out (50 steps, 0 past " in text
    assert "raise lr=0.0003 or overfit_steps" in text


def test_one_check_functions_take_the_models_own_loss(seq_zoo: Any) -> None:
    from mltest.model import check_gradient_flow, check_loss_decreases, check_loss_inputs

    case = seq_zoo.build("classifier_loss_inside")
    model, batch, make_opt = case["model"], case["batch"], case["optimizer_factory"]
    decreases = check_loss_decreases(model, batch, None, make_opt)
    assert decreases is not None
    assert decreases.passed
    flow = check_gradient_flow(model, batch, None)
    assert flow is not None
    assert flow.passed
    inputs = check_loss_inputs(model, batch, None)
    assert inputs is not None
    assert inputs.headline == "the model's own loss gets inputs of the shape and kind it expects"


def test_last_position_logits_get_a_hint_in_the_output_spec(seq_zoo: Any) -> None:
    from mltest.model import ModelCheckFailure, check_output_spec

    case = seq_zoo.build("gpt_loss_inside_tuple")
    x, _ = case["batch"]
    with pytest.raises(ModelCheckFailure) as caught:
        check_output_spec(case["model"], x, shape=(None, seq_zoo.T, seq_zoo.VOCAB))
    assert "the output has 1 position where the inputs have 8: last-position logits" in str(
        caught.value
    )


def test_padding_of_per_position_outputs(seq_zoo: Any) -> None:
    import torch
    from torch import nn

    from mltest.model import ModelCheckFailure, check_padding

    class Tagger(nn.Module):
        """One label per token (NER-style), bidirectional attention."""

        def __init__(self, use_mask: bool) -> None:
            super().__init__()
            self.wte = nn.Embedding(seq_zoo.VOCAB, seq_zoo.D_MODEL)
            self.block = seq_zoo.Block(seq_zoo.D_MODEL, seq_zoo.HEADS, "none", 0.0, "")
            self.head = nn.Linear(seq_zoo.D_MODEL, seq_zoo.CLASSES)
            self.use_mask = use_mask

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            mask = attention_mask if self.use_mask else None
            return self.head(self.block(self.wte(input_ids), mask))

    torch.manual_seed(0)
    batch = seq_zoo.classifier_batch(0)
    batch["labels"] = batch["input_ids"] % seq_zoo.CLASSES
    ok = check_padding(Tagger(use_mask=True), batch)
    assert ok is not None
    assert ok.passed
    assert ok.headline.startswith("padding does not move the real-position outputs")
    with pytest.raises(ModelCheckFailure) as caught:
        check_padding(Tagger(use_mask=False), batch)
    assert "moved the real-position outputs by up to " in str(caught.value)
    assert "(example 0 position 0, example 0 position 1, " in str(caught.value)


def test_padding_that_cannot_be_appended_is_not_applicable(seq_zoo: Any) -> None:
    from mltest.model import check_padding

    case = seq_zoo.build("gpt_b_equals_t")  # 8 position embeddings for 8 tokens
    x, _ = case["batch"]
    assert check_padding(case["model"], x, pad_id=0) is None


def test_overfit_names_the_uniform_floor_and_a_flat_curve(seq_zoo: Any) -> None:
    import torch
    from torch import nn

    from mltest.model import ModelCheckFailure, check_overfit_batch

    class Prior(nn.Module):
        """Scores that ignore the input: at best the label frequencies."""

        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bias.expand(x.shape[0], 4)

    batch = (torch.randn(8, 3, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 4)
    with pytest.raises(ModelCheckFailure) as caught:
        check_overfit_batch(Prior(), batch, nn.CrossEntropyLoss(), seq_zoo.adamw(1e-2))
    assert "the loss is stuck at 1.386 = log(4), the loss of a uniform prediction" in str(
        caught.value
    )
    # Large initial weights: the starting loss is far from log(4), so a curve that
    # does not move reads as flat (a default init can start within 2% of log(4),
    # where "stuck at the uniform loss" is the diagnosis, and the hint then says
    # to raise the lr as well).
    flat = nn.Linear(3, 4)
    with torch.no_grad():
        flat.weight.copy_(torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0], [-3.0, 0, 0]]))
        flat.bias.zero_()
    with pytest.raises(ModelCheckFailure) as caught:
        check_overfit_batch(flat, batch, nn.CrossEntropyLoss(), seq_zoo.adamw(1e-7), max_steps=50)
    assert "the loss is flat: it barely moved from its start" in str(caught.value)
    assert "lr=1e-07 too low, or nothing trains" in str(caught.value)


def test_output_and_loss_keys_by_index_and_callable(seq_zoo: Any) -> None:
    from mltest.errors import MLUsageError
    from mltest.model import check_model

    for output_key in (0, lambda out: out[0]):
        case = seq_zoo.build("gpt_loss_inside_tuple")
        report = check_model(**case, output_key=output_key, loss_key=1, skip=LONG)
        assert {"causality", "output_spec", "gradient_flow"} <= set(report.passed)
    case = seq_zoo.build("gpt_loss_inside_tuple")
    with pytest.raises(MLUsageError, match=r"has no loss at \[5\]"):
        check_model(**case, loss_key=5, skip=LONG)
