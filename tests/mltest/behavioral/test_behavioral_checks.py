"""MFT, INV and DIR written in Python: pass, fail, and the exact text a user reads."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mltest.behavioral import (
    DIR,
    INV,
    MFT,
    AddText,
    Case,
    LabelBecomes,
    LabelIn,
    LabelIsNot,
    Model,
    Predicate,
    ProbabilityAtLeast,
    ProbabilityDirection,
    Typos,
)
from mltest.errors import MLCheckFailure, MLUsageError

LABELS = ["business", "sport"]


def keyword(texts: list[str]) -> np.ndarray:
    return np.array([[0.2, 0.8] if "goal" in t else [0.7, 0.3] for t in texts])


def test_mft_passes_and_fails_with_pinned_text(model_project: pytest.Pytester, run: Any) -> None:
    model_project.makepyfile(
        """
        import pytest
        from mltest.behavioral import MFT

        @pytest.mark.behavioral
        def test_goals_are_sport(behavioral_model):
            MFT("goals", ["a goal today", "what a match"], expect="sport",
                capability="Vocabulary").check(behavioral_model, labels=["business", "sport"])

        @pytest.mark.behavioral
        def test_shares_are_sport(behavioral_model):
            MFT("shares", ["a goal today", "shares fell"], expect="sport",
                capability="Vocabulary").check(behavioral_model, labels=["business", "sport"])
        """
    )
    result = run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   *MLCheckFailure: MFT 'shares' (Vocabulary) failed: 1 of 2 cases failed "
            "(fail rate 50.0%, pass rate 50.0% < required 100.0%)",
            "E   *expectation: label is sport",
            "E   *  #  input        expected  got",
            "E   *  1  shares fell  sport     business (0.70)",
            "E   *showing 1 of 1 failing cases",
            "E   *next: if the model should handle these inputs, add similar examples *",
        ]
    )


def test_mft_skipped_without_ml(model_project: pytest.Pytester, run: Any) -> None:
    model_project.makepyfile(
        """
        from mltest.behavioral import MFT, behavioral_test

        @behavioral_test()
        def test_goals():
            return MFT("goals", ["a goal"], expect="sport")
        """
    )
    result = run("-rs", ml=False)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs --ml*"])


def test_inv_fails_with_table_of_perturbed_cases(model_project: pytest.Pytester, run: Any) -> None:
    model_project.makepyfile(
        """
        from mltest.behavioral import INV, Model, Typos, behavioral_test
        from conftest import LABELS

        @behavioral_test()
        def test_typos():
            return INV("typos", ["goal goal", "goal", "shares"],
                       perturbation=Typos(n=1, kinds=("drop",)), capability="Robustness")
        """
    )
    model_project.makeini("[pytest]\nml = true\n")
    # labels come from the callable's missing attribute: give them through the fixture instead
    model_project.makeconftest(
        model_project.path.joinpath("conftest.py").read_text() + "\nkeyword_model.labels = LABELS\n"
    )
    result = run(ml=False)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "INV 'typos' (Robustness) failed: 1 of 3 cases failed "
            "(fail rate 33.3%, pass rate 66.7% < required 100.0%)",
            "perturbation: typos(n=1, kinds=['drop']); expectation: same label",
            "  #  input  perturbed  edits    before        after",
            "  1  goal   *  *->''  sport (0.80)  business (0.70)",
            "showing 1 of 1 failing cases",
            "next: the prediction should not depend on this change; *",
        ]
    )


def test_dir_probability_direction_fails_with_moved_column(
    model_project: pytest.Pytester, run: Any
) -> None:
    model_project.makepyfile(
        """
        from mltest.behavioral import DIR, AddText, Model, ProbabilityDirection, behavioral_test

        @behavioral_test()
        def test_bad_news(behavioral_model):
            return DIR("bad news", ["shares fell", "profits rose"], AddText("goal"),
                       expect=ProbabilityDirection("business", "not_decrease"),
                       capability="Taxonomy", min_pass_rate=0.5)

        @behavioral_test(labels=["business", "sport"])
        def test_strict():
            return DIR("strict", ["shares fell"], AddText("goal"),
                       expect=ProbabilityDirection("business", "not_decrease"))
        """
    )
    model_project.makeconftest(
        model_project.path.joinpath("conftest.py").read_text() + "\nkeyword_model.labels = LABELS\n"
    )
    result = run()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "DIR 'bad news' (Taxonomy) failed: 2 of 2 cases failed "
            "(fail rate 100.0%, pass rate 0.0% < required 50.0%)",
            "perturbation: add_text(text=['goal'], position='end'); "
            "expectation: P(business) must not decrease",
            "  #  input         perturbed          edits        expected"
            "                       before           after         moved",
            "  1  shares fell   shares fell goal   ''->' goal'  P(business) must not decrease"
            "  business (0.70)  sport (0.80)  P(business) 0.70->0.20",
        ]
    )


def test_summary_table_by_capability_and_type(model_project: pytest.Pytester, run: Any) -> None:
    model_project.makepyfile(
        """
        from mltest.behavioral import DIR, INV, MFT, AddText, LabelBecomes, behavioral_test

        @behavioral_test(labels=["business", "sport"])
        def test_all():
            return [
                MFT("goals", ["a goal", "a match"], expect="sport", capability="Vocabulary"),
                INV("case", ["a goal", "shares"], perturbation={"name": "case", "mode": "upper"},
                    capability="Robustness"),
                DIR("becomes", ["shares", "profits"], AddText("goal"),
                    expect=LabelBecomes("sport"), capability="Taxonomy"),
            ]
        """
    )
    result = run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= mltest =*",
            "checks  behavioral: 3 passed, 0 failed",
            "behavioral:",
            "  capability  test_type  cases  failed  fail rate",
            "  Robustness  INV        2      0       0.0%",
            "  Taxonomy    DIR        2      0       0.0%",
            "  Vocabulary  MFT        2      0       0.0%",
        ]
    )


def test_json_report_has_counts_and_failing_cases(model_project: pytest.Pytester, run: Any) -> None:
    import json

    model_project.makepyfile(
        """
        from mltest.behavioral import MFT, behavioral_test

        @behavioral_test(labels=["business", "sport"])
        def test_goals():
            return MFT("goals", ["a goal", "shares fell"], expect="sport", capability="Vocab")
        """
    )
    result = run("--ml-report", "report.json")
    result.assert_outcomes(failed=1)
    report = json.loads((model_project.path / "report.json").read_text())
    (check,) = report["tests"][0]["checks"]
    assert check["kind"] == "behavioral"
    assert check["group"] == {"capability": "Vocab", "test_type": "MFT"}
    assert check["metrics"]["cases"] == 2
    assert check["metrics"]["failed"] == 1
    assert check["metrics"]["not_perturbed"] == 0
    assert check["examples"] == [
        {"input": "shares fell", "expected": "sport", "got": "business (0.70)"}
    ]


# ---------------------------------------------------------------------------
# The same machinery, called directly
# ---------------------------------------------------------------------------


def test_not_perturbed_cases_are_never_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mltest.report._current", None)  # keep this run's report clean
    model = Model(keyword, LABELS)
    test = INV("names", ["a goal", "John scored a goal"], perturbation="names")
    result = test.run(model)
    assert (result.cases, result.failed, result.not_perturbed) == (1, 0, 1)
    all_unchanged = INV("names", ["a goal", "shares"], perturbation="names")
    with pytest.raises(MLCheckFailure) as info:
        all_unchanged.check(model)
    assert str(info.value).splitlines()[0] == (
        "INV 'names' failed: no case was tested (all 2 examples were not perturbed)"
    )


def test_min_pass_rate_threshold() -> None:
    model = Model(keyword, LABELS)
    texts = ["a goal", "a goal!", "shares", "goal"]
    assert MFT("t", texts, expect="sport", min_pass_rate=0.75).run(model).passed
    assert not MFT("t", texts, expect="sport", min_pass_rate=0.76).run(model).passed


def test_inv_confidence_tolerance() -> None:
    def model(texts: list[str]) -> np.ndarray:
        return np.array([[0.4, 0.6] if t.islower() else [0.45, 0.55] for t in texts])

    texts = ["a goal", "the match"]
    loose = INV("c", texts, perturbation=Case("upper"), max_confidence_change=0.1)
    tight = INV("c", texts, perturbation=Case("upper"), max_confidence_change=0.01)
    assert loose.run(model, LABELS).passed is True
    result = tight.run(model, LABELS)
    assert (result.cases, result.failed) == (2, 2)
    assert result.expectation == "same label, confidence within 0.01"


def test_dir_expectations() -> None:
    model = Model(keyword, LABELS)
    add = AddText("goal")
    assert DIR("b", ["shares"], add, expect=LabelBecomes("sport")).run(model).passed
    up = DIR("u", ["shares"], add, expect=ProbabilityDirection("sport", "increase"))
    assert up.run(model).passed
    down = DIR("d", ["shares"], add, expect=ProbabilityDirection("sport", "decrease"))
    assert not down.run(model).passed
    flat = DIR("f", ["goal"], add, expect=ProbabilityDirection("sport", "not_increase"))
    assert flat.run(model).passed


def test_mft_expectation_kinds() -> None:
    model = Model(keyword, LABELS)
    assert MFT("a", ["shares"], LabelIsNot("sport")).run(model).passed
    assert MFT("b", ["goal", "shares"], LabelIn(LABELS)).run(model).passed
    assert not MFT("c", ["shares"], ProbabilityAtLeast("business", 0.8)).run(model).passed
    assert MFT("d", ["goal"], lambda label, probs: probs["sport"] > 0.5).run(model).passed
    per = MFT("e", ["goal", "shares"], labels=["sport", "sport"]).run(model)
    assert (per.failed, per.failures[0].expected) == (1, "sport")
    assert Predicate(lambda label, probs: True, "anything").describe() == "anything"


def test_pairs_without_perturbation() -> None:
    model = Model(keyword, LABELS)
    result = INV("pairs", [("a goal", "a goal"), ("goal", "gaol")]).run(model)
    assert (result.cases, result.failed, result.not_perturbed) == (1, 1, 1)
    assert result.failures[0].edits == "'oa'->'ao'"


def test_predictions_deduplicated_and_batched_across_tests() -> None:
    calls: list[list[str]] = []

    def counted(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return keyword(texts)

    model = Model(counted, LABELS, batch_size=2)
    texts = ["a goal", "shares", "a goal", "profits", "shares"]
    MFT("m", texts, expect=LabelIn(LABELS)).run(model)
    assert calls == [["a goal", "shares"], ["profits"]]
    INV("i", texts, perturbation=Typos(n=1)).run(model)
    perturbed = [t for batch in calls[2:] for t in batch]
    assert len(perturbed) == len(set(perturbed)) == 5
    assert not set(perturbed) & set(texts)  # originals came from the cache
    assert model.texts_predicted == sum(len(b) for b in calls)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_pass_rate": 1.5}, "test 't': min_pass_rate must be in [0, 1], got 1.5"),
        ({"examples": "one text"}, "test 't': examples must be a list of texts, not one string"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"examples": ["a"], "expect": "sport", **kwargs}
    with pytest.raises(MLUsageError) as info:
        MFT("t", **args)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_unknown_expected_label_is_a_usage_error() -> None:
    with pytest.raises(MLUsageError) as info:
        MFT("t", ["a"], expect="weather").run(keyword, LABELS)
    assert str(info.value) == (
        "MFT expectation: label 'weather' is not in the model's label list ['business', 'sport']"
    )


def test_long_texts_are_clipped_around_the_edit() -> None:
    from mltest.behavioral.checks import _clip

    text = "word " * 20 + "goal " + "word " * 20
    at = text.index("goal")
    clipped = _clip(text, width=30, focus=at)
    assert len(clipped) == 30
    assert "goal" in clipped
    assert clipped.startswith("...")
    assert clipped.endswith("...")
    assert _clip(text, width=30, focus=0).endswith("...")
    assert _clip(text, width=30, focus=len(text)).startswith("...")
    assert _clip("short\ntext", width=30) == "short text"
    model = Model(keyword, LABELS)
    result = INV("long", [text.replace("goal", "gaol")], perturbation=AddText("goal")).run(model)
    (row,) = [line for line in result.message().splitlines() if line.startswith("  1")]
    assert len(row) < 200
