"""The model interface: output validation, batching, wrappers, templates, lexicons."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mltest.behavioral import Model, Template, as_model, from_predictor, from_torch, load_lexicon
from mltest.behavioral.model import ModelOutputError
from mltest.errors import MLUsageError

LABELS = ["business", "sport"]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (
            [[0.5, 0.5, 0.0]] * 2,
            "model bad: returned shape (2, 3) for 2 texts; expected (2, 2) = (texts, labels "
            "['business', 'sport']) probabilities, or 2 labels",
        ),
        (
            [[0.5, 0.5]],
            "model bad: returned shape (1, 2) for 2 texts; expected (2, 2) = (texts, labels "
            "['business', 'sport']) probabilities, or 2 labels",
        ),
        (
            [[0.5, float("nan")], [0.5, 0.5]],
            "model bad: returned non-finite probabilities [0.5, nan] for text 'a'",
        ),
        (
            ["sport", "weather"],
            "model bad: returned label 'weather' for text 'b', which is not in the label "
            "list ['business', 'sport']",
        ),
        (["sport"], "model bad: returned 1 labels for 2 texts; return one label per text"),
        (
            np.array([0, 5]),
            "model bad: returned class index 5 for text 'b', outside the label list of 2 "
            "labels ['business', 'sport']",
        ),
        (
            "nonsense",
            "model bad: returned shape () (<U8) for 2 texts; expected (2, 2) = (texts, labels "
            "['business', 'sport']) probabilities, or 2 labels",
        ),
    ],
    ids=["columns", "rows", "nan", "label", "count", "index", "string"],
)
def test_bad_model_output_is_one_clear_error(output: object, message: str) -> None:
    model = Model(lambda texts: output, LABELS, name="bad")
    with pytest.raises(ModelOutputError) as info:
        model.predict(["a", "b"])
    assert str(info.value) == message


def test_labels_and_indices_become_one_hot_without_confidence() -> None:
    by_name = Model(lambda t: ["sport"] * len(t), LABELS).predict(["a"])
    by_index = Model(lambda t: np.ones(len(t), dtype=int), LABELS).predict(["a"])
    for preds in (by_name, by_index):
        assert preds.label_names() == ["sport"]
        assert preds.has_proba is False
        assert preds.probs.tolist() == [[0.0, 1.0]]


def test_torch_outputs_are_accepted() -> None:
    torch = pytest.importorskip("torch")
    model = Model(lambda t: torch.tensor([[0.1, 0.9]] * len(t)), LABELS)
    assert model.predict(["a", "b"]).confidence().tolist() == pytest.approx([0.9, 0.9])


def test_batching_and_dedup() -> None:
    seen: list[list[str]] = []

    def fn(texts: list[str]) -> list[list[float]]:
        seen.append(texts)
        return [[0.5, 0.5]] * len(texts)

    model = Model(fn, LABELS, batch_size=3)
    preds = model.predict(["a", "b", "a", "c", "d", "b", "e"])
    assert len(preds) == 7
    assert seen == [["a", "b", "c"], ["d", "e"]]
    model.predict(["e", "a"])
    assert model.calls == 2
    uncached = Model(fn, LABELS, cache=False)
    uncached.predict(["a"])
    uncached.predict(["a"])
    assert uncached.calls == 2
    assert len(Model(fn, LABELS).predict([])) == 0


def test_mixing_labels_and_probabilities_is_an_error() -> None:
    outputs = iter([["sport"], [[0.5, 0.5]]])
    model = Model(lambda t: next(outputs), LABELS, name="mixed")
    model.predict(["a"])
    with pytest.raises(ModelOutputError, match="returned probabilities for some batches"):
        model.predict(["b"])


class Predictor:
    labels = LABELS

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.tile([0.3, 0.7], (len(texts), 1))


def test_predictor_wrapper_and_as_model() -> None:
    model = from_predictor(Predictor())
    assert model.labels == ("business", "sport")
    assert model.name == "Predictor"
    assert as_model(Predictor()).predict(["x"]).label_names() == ["sport"]
    assert as_model(model) is model
    with pytest.raises(MLUsageError, match="Predictor is not a predictor"):
        from_predictor(type("Predictor", (), {})())
    with pytest.raises(MLUsageError, match="has no label list"):
        as_model(lambda t: t)
    with pytest.raises(MLUsageError, match="the model is a int"):
        as_model(3)
    with pytest.raises(MLUsageError, match="duplicates"):
        Model(lambda t: t, ["a", "a"])


def test_torch_wrapper() -> None:
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(1, 2)

        def forward(self, x: object) -> object:
            return self.linear(x)

    net = Net()
    with torch.no_grad():
        net.linear.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        net.linear.bias.zero_()

    def tokenize(texts: list[str]) -> object:
        return torch.tensor([[float("goal" in t) * 4 - 2] for t in texts])

    model = from_torch(net, tokenize, LABELS, device="cpu")
    preds = model.predict(["a goal", "shares"])
    assert preds.label_names() == ["sport", "business"]
    assert preds.probs.sum(axis=1).tolist() == pytest.approx([1.0, 1.0])

    def two(x: object) -> object:
        return torch.cat([x, -x], dim=1)

    as_dict = from_torch(two, lambda t: {"x": tokenize(t)}, LABELS, softmax=False)
    assert as_dict.predict(["goal"]).has_proba


def test_templates_cap_seed_and_errors() -> None:
    t = Template("{who} scored for {team}", who=["Ann", "Bo"], team=["Arsenal", "Celtic"])
    assert t.expand() == [
        "Ann scored for Arsenal",
        "Ann scored for Celtic",
        "Bo scored for Arsenal",
        "Bo scored for Celtic",
    ]
    big = Template("{first_name} {last_name} lives in {city}", max_cases=25, seed=3)
    sample = big.expand()
    assert len(sample) == len(set(sample)) == 25
    assert sample == big.expand()
    assert sample != big.expand(seed=4)
    assert Template("{x} and {x}", x=["a", "b"]).expand() == ["a and a", "b and b"]
    assert Template("{{literal}} {x}", x="y").expand() == ["{literal} y"]
    for text, message in [
        ("{club} won", "no lexicon for {club}"),
        ("{x!r}", "placeholder {x} must be a plain name"),
        ("{x", "is malformed"),
    ]:
        with pytest.raises(MLUsageError, match=message.replace("{", r"\{").replace("}", r"\}")):
            Template(text, x=["a"]).expand()
    with pytest.raises(MLUsageError, match="expands to no text: lexicon 'x' is empty"):
        Template("{x}", x=[]).expand()


def test_bundled_lexicons() -> None:
    assert "Paris" in load_lexicon("city")
    assert len(load_lexicon("first_names")) >= 50
    assert all(not e.startswith("#") for e in load_lexicon("countries"))
    with pytest.raises(MLUsageError, match="no bundled lexicon named 'planets'"):
        load_lexicon("planets")


def test_importing_the_package_is_cheap() -> None:
    code = (
        "import sys, mltest.behavioral as b; b.INV; b.Typos; b.load_lexicon; "
        "heavy = [m for m in ('numpy', 'torch', 'yaml') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
