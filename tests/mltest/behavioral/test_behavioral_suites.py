"""YAML suites: collection as test items, fixtures, markers, failures and bad files."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

SUITE = """
labels: [business, sport]
lexicons:
  team: [Arsenal, Chelsea]
tests:
  - name: goals are sport
    capability: Vocabulary
    type: MFT
    template: "{first_name} scored twice for {team}"
    max_cases: 6
    expect: {label: sport}
  - name: typos
    capability: Robustness
    type: INV
    examples: ["the match ended", "shares fell", "42"]
    perturbation: {name: typos, n: 1, kinds: [swap]}
  - name: goals make sport
    capability: Taxonomy
    type: DIR
    examples: ["shares fell", "profits rose"]
    perturbation: {name: add_text, text: "A late goal."}
    expect: {label: sport}
"""


def write_suite(pytester: pytest.Pytester, text: str, name: str = "model") -> None:
    pytester.path.joinpath(f"{name}.behavioral.yaml").write_text(textwrap.dedent(text))


def test_suite_collects_one_item_per_test(model_project: pytest.Pytester, run: Any) -> None:
    write_suite(model_project, SUITE)
    result = run("--collect-only", "-q", ml=False)
    result.stdout.fnmatch_lines(
        [
            "model.behavioral.yaml::goals are sport",
            "model.behavioral.yaml::typos",
            "model.behavioral.yaml::goals make sport",
        ]
    )


def test_suite_items_need_ml(model_project: pytest.Pytester, run: Any) -> None:
    write_suite(model_project, SUITE)
    result = run("-rs", ml=False)
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["SKIPPED [3] model.behavioral.yaml: needs --ml"])
    selected = run("-m", "behavioral", "--collect-only", "-q", ml=False)
    selected.stdout.fnmatch_lines(["3 tests collected*"])


def test_suite_passes_with_summary_table(model_project: pytest.Pytester, run: Any) -> None:
    write_suite(model_project, SUITE)
    result = run()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "behavioral:",
            "  capability  test_type  cases  failed  fail rate",
            "  Robustness  INV        2      0       0.0%",
            "  Taxonomy    DIR        2      0       0.0%",
            "  Vocabulary  MFT        6      0       0.0%",
        ]
    )


def test_suite_predicts_each_unique_text_once(model_project: pytest.Pytester, run: Any) -> None:
    write_suite(model_project, SUITE)
    model_project.makepyfile(
        test_zz_calls="""
        import conftest

        def test_calls():
            texts = [t for call in conftest.CALLS for t in call]
            assert len(texts) == len(set(texts))
            assert len(conftest.CALLS) == 3  # one call per test, originals shared
        """
    )
    result = run("-p", "no:randomly")
    result.assert_outcomes(passed=4)


def test_suite_failure_shows_table_and_location(model_project: pytest.Pytester, run: Any) -> None:
    write_suite(
        model_project,
        """
        labels: [business, sport]
        tests:
          - name: business news
            capability: Vocabulary
            type: MFT
            examples:
              - {text: "shares fell", label: business}
              - {text: "the match was a goal fest", label: business}
          - name: names
            type: INV
            examples: ["shares fell"]
            perturbation: names
        """,
    )
    result = run()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ MFT business news _*",
            "MFT 'business news' (Vocabulary) failed: 1 of 2 cases failed "
            "(fail rate 50.0%, pass rate 50.0% < required 100.0%)",
            "expectation: label per example",
            "  #  input                      expected  got",
            "  1  the match was a goal fest  business  sport (0.80)",
            "showing 1 of 1 failing cases",
            "*_ INV names _*",
            "INV 'names' failed: no case was tested (all 1 examples were not perturbed)",
            "perturbation: names(lexicons=['first_names', 'last_names'])",
            "next: the perturbation found nothing to change in these examples; *",
        ]
    )


def test_suite_model_fixture_by_name(model_project: pytest.Pytester, run: Any) -> None:
    model_project.makeconftest(
        """
        import pytest
        from mltest.behavioral import Model

        @pytest.fixture
        def classifier():
            return Model(lambda texts: ["sport"] * len(texts), ["business", "sport"])
        """
    )
    write_suite(
        model_project,
        """
        model: classifier
        tests:
          - {name: all sport, type: MFT, examples: [anything], expect: sport}
        """,
    )
    run().assert_outcomes(passed=1)


def test_missing_model_fixture_is_a_setup_error(model_project: pytest.Pytester, run: Any) -> None:
    write_suite(
        model_project,
        """
        model: nowhere
        tests:
          - {name: t, type: MFT, examples: [a], expect: sport}
        """,
    )
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "model.behavioral.yaml:2: fixture 'nowhere' (the suite's 'model:') not found: "
            "define it in a conftest.py, returning the model or a predict function"
        ]
    )
    result.stdout.no_fnmatch_line("*suites.py*")


def test_wrong_model_output_is_one_clear_error(model_project: pytest.Pytester, run: Any) -> None:
    model_project.makeconftest(
        """
        import pytest

        @pytest.fixture
        def behavioral_model():
            return lambda texts: [[0.5, 0.5, 0.0]] * len(texts)

        @pytest.fixture
        def labeller():
            return lambda texts: ["weather"] * len(texts)
        """
    )
    write_suite(
        model_project,
        """
        labels: [business, sport]
        tests:
          - {name: shape, type: MFT, examples: [a, b], expect: sport}
        """,
    )
    write_suite(
        model_project,
        """
        model: labeller
        labels: [business, sport]
        tests:
          - {name: labels, type: MFT, examples: [a], expect: sport}
        """,
        name="labels",
    )
    result = run()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "labels.behavioral.yaml:5: test 'labels': model <lambda>: returned label 'weather' "
            "for text 'a', which is not in the label list ['business', 'sport']",
            "model.behavioral.yaml:4: test 'shape': model <lambda>: returned shape (2, 3) for "
            "2 texts; expected (2, 2) = (texts, labels ['business', 'sport']) probabilities, "
            "or 2 labels",
        ]
    )


BAD_SUITES = [
    pytest.param(
        "tests: [\n  {name: a\n",
        "bad.behavioral.yaml:2: malformed YAML: *",  # the last line, where the file ends
        id="malformed-yaml",
    ),
    pytest.param(
        "tests:\n  - {name: a, type: INV, examples: [x], perturbation: typoz}\n",
        "bad.behavioral.yaml:2: test 'a': unknown perturbation 'typoz'; known: add_hashtag, *",
        id="unknown-perturbation",
    ),
    pytest.param(
        "tests:\n  - {name: a, type: MFT, examples: [x], expect: {label_is: sport}}\n",
        "bad.behavioral.yaml:2: test 'a': unknown expectation {'label_is': 'sport'} for MFT; "
        "use {label: x}, *",
        id="unknown-expectation",
    ),
    pytest.param(
        "tests:\n  - {name: a, type: DIR, examples: [x], perturbation: case, "
        "expect: {probability: sport, direction: up}}\n",
        "bad.behavioral.yaml:2: test 'a': unknown direction 'up'; choose from ['increase', *",
        id="unknown-direction",
    ),
    pytest.param(
        "lexicons: {team: []}\ntests:\n  - {name: a, type: MFT, template: '{team} won', "
        "expect: sport}\n",
        "bad.behavioral.yaml:3: test 'a': template '{team} won' expands to no text: "
        "lexicon 'team' is empty",
        id="empty-template",
    ),
    pytest.param(
        "tests:\n  - {name: a, type: MFT, template: '{club} won', expect: sport}\n",
        "bad.behavioral.yaml:2: test 'a': template '{club} won': no lexicon for {club}; *",
        id="unknown-lexicon",
    ),
    pytest.param(
        "tests:\n  - {name: a, type: XYZ, examples: [x]}\n",
        "bad.behavioral.yaml:2: test 'a': type must be MFT, INV or DIR, got 'XYZ'",
        id="unknown-type",
    ),
    pytest.param(
        "tests:\n  - {name: a, type: MFT, examples: [x], expect: sport, perturbation: case}\n",
        "bad.behavioral.yaml:2: test 'a': unknown key 'perturbation' for a MFT test; *",
        id="unknown-key",
    ),
    pytest.param(
        "tests:\n  - {name: a, type: MFT, examples: [x], expect: sport}\n"
        "  - {name: a, type: MFT, examples: [y], expect: sport}\n",
        "bad.behavioral.yaml:3: test 'a': duplicate test name",
        id="duplicate-name",
    ),
    pytest.param("[1, 2]\n", "bad.behavioral.yaml: a suite must be a mapping *", id="not-mapping"),
    pytest.param(
        "model: 3\ntests: []\n",
        "bad.behavioral.yaml: model must name a fixture (an identifier), got 3",
        id="bad-model",
    ),
]


@pytest.mark.parametrize(("text", "line"), BAD_SUITES)
def test_bad_suite_is_one_collection_error(
    model_project: pytest.Pytester, run: Any, text: str, line: str
) -> None:
    model_project.path.joinpath("bad.behavioral.yaml").write_text(text)
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*_ ERROR collecting bad.behavioral.yaml _*", line])
    assert "Traceback" not in result.stdout.str()


# ---------------------------------------------------------------------------
# load_suite directly: every validation message, and what valid files build
# ---------------------------------------------------------------------------

T = "tests:\n  - {name: a, "  # a one-test suite; each case completes the mapping
F = "s.behavioral.yaml: "  # errors about the whole file
A = "s.behavioral.yaml:2: test 'a': "  # errors about test 'a' on line 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", F + "a suite must be a mapping with a 'tests' list"),
        ("tests: []\n", F + "'tests' must be a non-empty list of tests"),
        ("tests: [x]\n", F + "tests[0] must be a mapping (name, type, ...), got 'x'"),
        ("1: x\ntests: []\n", F + "unknown key '1'; allowed: description, *"),
        ("? [a]\n: x\n", F + "malformed YAML: *"),
        ("labels: sport\ntests: []\n", F + "labels must be a list of label names, got 'sport'"),
        ("lexicons: [a]\ntests: []\n", F + "lexicons must map a name to a list of entries"),
        ("tests:\n  - {type: MFT}\n", "s.behavioral.yaml:2: tests[0] needs a name"),
        (T + "type: MFT}\n", A + "give exactly one of examples, template"),
        (T + "type: INV, examples: [x], template: y}\n",
         A + "give exactly one of examples, template or pairs (got examples, template)"),
        (T + "type: MFT, examples: x, expect: sport}\n",
         A + "examples must be a non-empty list"),
        (T + "type: MFT, examples: [[x]], expect: sport}\n",
         A + "examples[0] must be a text, got ['x']"),
        (T + "type: MFT, examples: [{text: x}], expect: sport}\n",
         A + "examples[0] must be a text or {text: ..., label: ...}"),
        (T + "type: MFT, examples: [{text: x, label: sport}, y]}\n",
         A + "either every example has a label or none does"),
        (T + "type: MFT, examples: [{text: x, label: sport}], expect: sport}\n",
         A + "give expect or a label on every example, not both"),
        (T + "type: MFT, examples: [x]}\n", A + "MFT needs an expectation: *"),
        (T + "type: MFT, template: 3, expect: sport}\n",
         A + "template must be a string, got 3"),
        (T + "type: MFT, examples: [x], expect: sport, min_pass_rate: 2}\n",
         A + "min_pass_rate must be in [0, 1], got 2"),
        (T + "type: INV, examples: [x]}\n", A + "needs a perturbation (one of *"),
        (T + "type: INV, pairs: [[x, y]], perturbation: case}\n",
         A + "pairs are already perturbed: drop perturbation, or use examples"),
        (T + "type: INV, pairs: []}\n",
         A + "pairs must be a non-empty list of [original, perturbed]"),
        (T + "type: INV, pairs: [[x]]}\n",
         A + "pairs[0] must be [original, perturbed], got ['x']"),
        (T + "type: INV, examples: [x], perturbation: case, expect: {label: sport}}\n",
         A + "unknown expectation {'label': 'sport'} for INV; *"),
        (T + "type: INV, examples: [x], perturbation: case, samples: 0}\n",
         A + "samples must be >= 1, got 0"),
        (T + "type: DIR, examples: [x], perturbation: case}\n",
         A + "DIR needs an expectation: *"),
        (T + "type: DIR, examples: [x], perturbation: case, expect: {becomes: sport}}\n",
         A + "unknown expectation {'becomes': 'sport'} for DIR; *"),
    ],
)  # fmt: skip
def test_load_suite_errors(tmp_path: Any, text: str, message: str) -> None:
    from mltest.behavioral.suites import load_suite
    from mltest.errors import MLUsageError

    path = tmp_path / "s.behavioral.yaml"
    path.write_text(text)
    with pytest.raises(MLUsageError) as info:
        load_suite(path)
    got = str(info.value)
    if message.endswith("*"):
        assert got.startswith(message[:-1]), got
    else:
        assert got == message


def test_load_suite_builds_every_expectation(tmp_path: Any) -> None:
    import numpy as np

    from mltest.behavioral import Model
    from mltest.behavioral.suites import load_suite

    path = tmp_path / "s.behavioral.yaml"
    path.write_text(
        textwrap.dedent(
            """
            model: classifier
            labels: [business, sport]
            lexicons:
              syn: [[match, game]]
            tests:
              - {name: m1, type: MFT, examples: [a goal], expect: {not_label: business}}
              - {name: m2, type: MFT, examples: [a goal], expect: {label_in: [sport]}}
              - {name: m3, type: MFT, examples: [goal], expect: {probability: sport, at_least: 0.8}}
              - {name: i1, type: INV, pairs: [[goal, goal!]], expect: {max_confidence_change: 0.1}}
              - name: i2
                type: INV
                examples: [the match was won]
                perturbation: {name: synonyms, lexicon: syn}
                samples: 2
              - name: d1
                type: DIR
                examples: [shares]
                perturbation: {name: add_text, text: goal}
                expect: {probability: sport, direction: increase, tolerance: 0.1}
            """
        )
    )
    suite = load_suite(path)
    assert (suite.model_fixture, suite.labels) == ("classifier", ["business", "sport"])
    assert suite.lines == {"m1": 7, "m2": 8, "m3": 9, "i1": 10, "i2": 11, "d1": 16}

    def keyword(texts: list[str]) -> np.ndarray:
        return np.array([[0.2, 0.8] if "goal" in t else [0.7, 0.3] for t in texts])

    model = Model(keyword, ["business", "sport"])
    results = {t.name: t.run(model) for t in suite.tests}
    assert {n: r.passed for n, r in results.items()} == {
        "m1": True, "m2": True, "m3": True, "i1": True, "i2": True, "d1": True,
    }  # fmt: skip
    assert results["i2"].cases == 2
    assert results["d1"].expectation == "P(sport) must increase (tolerance 0.1)"
