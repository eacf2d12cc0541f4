"""Behavioural suites in YAML, collected by pytest: one test item per test.

plugin.py calls :func:`collect_file` for ``*.behavioral.yaml`` and
``*.behavioral.yml``. A suite names the fixture that provides the model
(default ``behavioral_model``, defined in the user's ``conftest.py``), an
optional label list and lexicons, and its tests::

    model: classifier            # fixture name
    labels: [business, sport]    # when the fixture returns a bare callable
    lexicons:
      team: [Arsenal, Chelsea, Celtic]
    tests:
      - name: goals are sport
        capability: Vocabulary
        type: MFT
        template: "{first_name} scored twice for {team}"
        max_cases: 50
        expect: {label: sport}
      - name: typos
        capability: Robustness
        type: INV
        examples: ["Shares fell 5% on Monday", "Arsenal won the cup"]
        perturbation: {name: typos, n: 1}
        min_pass_rate: 0.95
      - name: bad news is business
        capability: Taxonomy
        type: DIR
        examples: ["The company opened a new office"]
        perturbation: {name: add_text, text: "Its shares crashed."}
        expect: {probability: business, direction: not_decrease}

Each item carries the ``behavioral`` marker (so it needs ``--ml``), requests
the model fixture through pytest's fixture machinery (the items are
``pytest.Function`` objects whose signature names the fixture), and records
its result in the mltest report. Malformed files fail collection with one
line naming the file, the line and the problem.

Example:
    >>> suite = load_suite(Path("tests/model.behavioral.yaml"))  # doctest: +SKIP
    >>> [t.name for t in suite.tests]  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mltest.behavioral.checks import (
    DIR,
    INV,
    MFT,
    BehavioralTest,
    DirExpectation,
    Expectation,
    LabelBecomes,
    LabelIn,
    LabelIs,
    LabelIsNot,
    ProbabilityAtLeast,
    ProbabilityDirection,
)
from mltest.behavioral.model import Model, as_model
from mltest.behavioral.perturb import PERTURBATIONS, make_perturbation
from mltest.behavioral.templates import DEFAULT_MAX_CASES, Template
from mltest.errors import MLCheckFailure, MLUsageError, require

__all__ = ["DEFAULT_MODEL_FIXTURE", "BehavioralItem", "Suite", "collect_file", "load_suite"]

#: The fixture a suite uses when it names none.
DEFAULT_MODEL_FIXTURE = "behavioral_model"

_TOP_KEYS = {"model", "labels", "lexicons", "tests", "description"}
_COMMON = {"name", "type", "capability", "description", "min_pass_rate", "max_failures_shown"}
_TEST_KEYS = {
    "MFT": _COMMON | {"examples", "template", "max_cases", "seed", "expect"},
    "INV": _COMMON
    | {"examples", "template", "max_cases", "seed", "pairs", "perturbation", "samples", "expect"},
    "DIR": _COMMON
    | {"examples", "template", "max_cases", "seed", "pairs", "perturbation", "samples", "expect"},
}
_LINE = "__line__"


@dataclass
class Suite:
    """A parsed suite file.

    Example:
        >>> Suite(Path("s.behavioral.yaml")).model_fixture
        'behavioral_model'
    """

    path: Path
    model_fixture: str = DEFAULT_MODEL_FIXTURE
    labels: list[str] | None = None
    tests: list[BehavioralTest] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)
    model_line: int = 0  # line of the ``model:`` key, 0 when the default fixture is used


def _loader() -> Any:
    """A safe yaml loader that records the line of every mapping under ``__line__``.

    Built on libyaml's ``CSafeLoader`` when PyYAML has it (4-5x faster
    on large suites), else the pure-Python ``SafeLoader``; both keep marks.
    """
    yaml = require("yaml", "behavioral", purpose="behavioural YAML suites")
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class LineLoader(base):  # type: ignore[misc,valid-type]
        pass

    def construct_mapping(loader: Any, node: Any) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        mapping = dict(loader.construct_pairs(node, deep=True))
        mapping[_LINE] = node.start_mark.line + 1
        return mapping

    LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return LineLoader


class _Where:
    """Builds error messages that name the file, line and test."""

    def __init__(self, path: Path, line: int | None = None, test: str | None = None) -> None:
        self.path, self.line, self.test = path, line, test

    def error(self, problem: str) -> MLUsageError:
        loc = f"{self.path.name}:{self.line}" if self.line else self.path.name
        who = f" test {self.test!r}:" if self.test else ""
        # The checks' own messages (for Python API users) already name the test.
        problem = problem.removeprefix(f"test {self.test!r}: ") if self.test else problem
        return MLUsageError(f"{loc}:{who} {problem}")


def _strip(value: Any) -> Any:
    """Drop the line markers from a parsed value (for passing on as parameters)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != _LINE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def load_suite(path: Path) -> Suite:
    """Parse and validate a suite file into mltest tests.

    Raises:
        MLUsageError: For malformed YAML, unknown keys, types, perturbations
            or expectations, or a template that expands to nothing; the
            message names the file, the line and the problem.

    Example:
        >>> load_suite(Path("tests/model.behavioral.yaml"))  # doctest: +SKIP
    """
    from mltest.data.suites import paused_gc

    with paused_gc():
        return _load_suite(path)


def _load_suite(path: Path) -> Suite:
    yaml = require("yaml", "behavioral", purpose="behavioural YAML suites")
    top = _Where(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        # an error at the end of the file is put on the line after the last one
        last = max(len(text.splitlines()), 1)
        where = _Where(path, min(mark.line + 1, last) if mark is not None else None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise where.error(f"malformed YAML: {problem}") from None
    except (TypeError, ValueError) as exc:  # e.g. a list used as a mapping key
        raise top.error(f"malformed YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise top.error(f"cannot read the file: {exc}") from None
    if not isinstance(data, dict):
        raise top.error("a suite must be a mapping with a 'tests' list")
    unknown = sorted(str(k) for k in set(data) - _TOP_KEYS - {_LINE})
    if unknown:
        raise top.error(f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    model = data.get("model", DEFAULT_MODEL_FIXTURE)
    if not isinstance(model, str) or not model.isidentifier() or keyword.iskeyword(model):
        raise top.error(f"model must name a fixture (an identifier), got {model!r}")
    labels = data.get("labels")
    if labels is not None and (
        not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels)
    ):
        raise top.error(f"labels must be a list of label names, got {_strip(labels)!r}")
    lexicons = _strip(data.get("lexicons") or {})
    if not isinstance(lexicons, dict):
        raise top.error("lexicons must map a name to a list of entries")
    tests = data.get("tests")
    if not isinstance(tests, list) or not tests:
        raise top.error("'tests' must be a non-empty list of tests")
    suite = Suite(path=path, model_fixture=model, labels=labels)
    if "model" in data:
        from mltest.data.suites import key_line

        suite.model_line = key_line(path, "model") or 0
    for i, spec in enumerate(tests):
        if not isinstance(spec, dict):
            raise top.error(f"tests[{i}] must be a mapping (name, type, ...), got {spec!r}")
        test = _build_test(spec, i, path, lexicons)
        if test.name in suite.lines:
            raise _Where(path, spec.get(_LINE), test.name).error("duplicate test name")
        suite.tests.append(test)
        suite.lines[test.name] = int(spec.get(_LINE, 0))
    return suite


def _build_test(
    spec: dict[str, Any], index: int, path: Path, lexicons: dict[str, Any]
) -> BehavioralTest:
    name = spec.get("name")
    where = _Where(path, spec.get(_LINE), name if isinstance(name, str) else None)
    if not isinstance(name, str) or not name.strip():
        raise where.error(f"tests[{index}] needs a name")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind.upper() not in _TEST_KEYS:
        raise where.error(f"type must be MFT, INV or DIR, got {kind!r}")
    kind = kind.upper()
    unknown = sorted(str(k) for k in set(spec) - _TEST_KEYS[kind] - {_LINE})
    if unknown:
        raise where.error(
            f"unknown key {unknown[0]!r} for a {kind} test; allowed: "
            f"{', '.join(sorted(_TEST_KEYS[kind]))}"
        )
    common: dict[str, Any] = {
        "capability": str(spec.get("capability", "") or ""),
        "description": str(spec.get("description", "") or ""),
        "min_pass_rate": spec.get("min_pass_rate", 1.0),
    }
    if "max_failures_shown" in spec:
        common["max_failures_shown"] = spec["max_failures_shown"]
    try:
        examples, per_example = _examples(spec, where, lexicons, kind)
        if kind == "MFT":
            if per_example is not None:
                if "expect" in spec:
                    raise where.error("give expect or a label on every example, not both")
                return MFT(name, examples, labels=per_example, **common)
            return MFT(name, examples, _mft_expectation(spec.get("expect"), where), **common)
        perturbation = _perturbation(spec, where, lexicons)
        extra: dict[str, Any] = {"samples": spec.get("samples", 1), "seed": spec.get("seed", 0)}
        if kind == "INV":
            expect = _strip(spec.get("expect") or {})
            if not isinstance(expect, dict) or set(expect) - {"max_confidence_change"}:
                raise where.error(
                    f"unknown expectation {expect!r} for INV; INV expects the same label, "
                    "optionally {max_confidence_change: 0.1}"
                )
            extra["max_confidence_change"] = expect.get("max_confidence_change")
            return INV(name, examples, perturbation, **extra, **common)
        return DIR(
            name,
            examples,
            perturbation,
            expect=_dir_expectation(spec.get("expect"), where),
            **extra,
            **common,
        )
    except MLUsageError as exc:
        if str(exc).startswith(path.name):
            raise
        raise where.error(str(exc)) from None


def _examples(
    spec: dict[str, Any], where: _Where, lexicons: dict[str, Any], kind: str
) -> tuple[Any, list[str] | None]:
    given = [k for k in ("examples", "template", "pairs") if k in spec]
    if len(given) != 1:
        raise where.error(
            "give exactly one of examples, template"
            + (" or pairs" if kind != "MFT" else "")
            + (f" (got {', '.join(given)})" if given else "")
        )
    if "template" in spec:
        text = spec["template"]
        if not isinstance(text, str):
            raise where.error(f"template must be a string, got {_strip(text)!r}")
        template = Template(
            text,
            lexicons,
            max_cases=spec.get("max_cases", DEFAULT_MAX_CASES),
            seed=spec.get("seed", 0),
        )
        template.expand()  # an empty expansion fails at collection, not at run time
        return template, None
    if "pairs" in spec:
        if "perturbation" in spec:
            raise where.error("pairs are already perturbed: drop perturbation, or use examples")
        pairs = _strip(spec["pairs"])
        if not isinstance(pairs, list) or not pairs:
            raise where.error("pairs must be a non-empty list of [original, perturbed]")
        for j, p in enumerate(pairs):
            if not (isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)):
                raise where.error(f"pairs[{j}] must be [original, perturbed], got {p!r}")
        return [tuple(p) for p in pairs], None
    raw = spec["examples"]
    if not isinstance(raw, list) or not raw:
        raise where.error("examples must be a non-empty list")
    texts: list[str] = []
    labels: list[str] = []
    for j, ex in enumerate(raw):
        if isinstance(ex, str):
            texts.append(ex)
        elif kind == "MFT" and isinstance(ex, dict) and isinstance(ex.get("text"), str):
            label = ex.get("label")
            if not isinstance(label, str) or set(ex) - {"text", "label", _LINE}:
                raise where.error(f"examples[{j}] must be a text or {{text: ..., label: ...}}")
            texts.append(ex["text"])
            labels.append(label)
        else:
            raise where.error(f"examples[{j}] must be a text, got {_strip(ex)!r}")
    if labels and len(labels) != len(texts):
        raise where.error("either every example has a label or none does")
    return texts, (labels or None)


def _mft_expectation(expect: Any, where: _Where) -> Expectation:
    if isinstance(expect, str):
        return LabelIs(expect)
    expect = _strip(expect)
    known = "{label: x}, {not_label: x}, {label_in: [x, y]} or {probability: x, at_least: 0.8}"
    if not isinstance(expect, dict) or not expect:
        raise where.error(f"MFT needs an expectation: {known}")
    keys = set(expect)
    if keys == {"label"}:
        return LabelIs(expect["label"])
    if keys == {"not_label"}:
        return LabelIsNot(expect["not_label"])
    if keys == {"label_in"}:
        return LabelIn(expect["label_in"])
    if keys == {"probability", "at_least"}:
        return ProbabilityAtLeast(expect["probability"], expect["at_least"])
    raise where.error(f"unknown expectation {expect!r} for MFT; use {known}")


def _dir_expectation(expect: Any, where: _Where) -> DirExpectation:
    expect = _strip(expect)
    known = (
        "{probability: x, direction: increase|decrease|not_increase|not_decrease"
        "[, tolerance: 0.01]} or {label: x} (the label must become x)"
    )
    if not isinstance(expect, dict) or not expect:
        raise where.error(f"DIR needs an expectation: {known}")
    keys = set(expect)
    if keys == {"label"}:
        return LabelBecomes(expect["label"])
    if {"probability", "direction"} <= keys <= {"probability", "direction", "tolerance"}:
        return ProbabilityDirection(
            expect["probability"], expect["direction"], expect.get("tolerance", 0.0)
        )
    raise where.error(f"unknown expectation {expect!r} for DIR; use {known}")


def _perturbation(spec: dict[str, Any], where: _Where, lexicons: dict[str, Any]) -> Any:
    if "pairs" in spec:
        return None
    raw = _strip(spec.get("perturbation"))
    if raw is None:
        raise where.error(
            f"needs a perturbation (one of {', '.join(sorted(PERTURBATIONS))}) or pairs"
        )
    if isinstance(raw, dict):
        # a lexicon given by the name of a suite lexicon
        for key in ("lexicon",):
            value = raw.get(key)
            if isinstance(value, str) and value in lexicons:
                raw = {**raw, key: lexicons[value]}
    return make_perturbation(raw)


# ---------------------------------------------------------------------------
# Collection
# ---------------------------------------------------------------------------


class BehavioralSuiteFile(pytest.File):
    """A ``*.behavioral.yaml`` file: yields one :class:`BehavioralItem` per test.

    Example:
        >>> BehavioralSuiteFile.from_parent(parent, path=path)  # doctest: +SKIP
    """

    def collect(self) -> Iterator[pytest.Item]:
        """Parse the suite; a bad file is one collection error naming the problem."""
        try:
            suite = load_suite(self.path)
        except MLUsageError as exc:
            raise self.CollectError(str(exc)) from None
        self._last_model: tuple[Any, Model] | None = None
        self.suite = suite
        for test in suite.tests:
            yield BehavioralItem.from_parent(
                self,
                name=test.name,
                callobj=_make_runner(self, suite, test),
                line=suite.lines.get(test.name, 0),
                test=test,
            )

    def model_for(self, obj: Any, labels: Sequence[str] | None) -> Model:
        """The :class:`Model` for a fixture value, reused while the value is the same.

        Reuse lets tests of one file share the prediction cache when the
        fixture returns a bare callable or predictor; only the last value is
        kept, so a function-scoped fixture does not pile up models.
        """
        last: tuple[Any, Model] | None = getattr(self, "_last_model", None)
        if last is not None and last[0] is obj:
            return last[1]
        model = as_model(obj, labels)
        self._last_model = (obj, model)
        return model


def _make_runner(parent: BehavioralSuiteFile, suite: Suite, test: BehavioralTest) -> Any:
    fixture = suite.model_fixture

    def run(**kwargs: Any) -> None:
        __tracebackhide__ = True
        model = parent.model_for(kwargs[fixture], suite.labels)
        test.check(model)

    run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(fixture, inspect.Parameter.KEYWORD_ONLY)]
    )
    run.__name__ = test.name
    return run


class BehavioralItem(pytest.Function):
    """One behavioural test of a suite file, run as a pytest test function.

    Being a ``pytest.Function`` lets it request the model fixture like any
    test; its report location is the YAML file and line.

    Example:
        >>> item.behavioral_test.test_type  # doctest: +SKIP
        'INV'
    """

    def __init__(self, *, line: int = 0, test: BehavioralTest, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.line = line
        self.behavioral_test = test
        self.add_marker("behavioral")

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Point at the test's line in the YAML file."""
        return (
            self.path,
            self.line - 1 if self.line else None,
            f"{self.behavioral_test.test_type} {self.name}",
        )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """Show the diagnosis alone for check failures and usage errors (no traceback)."""
        if isinstance(excinfo.value, MLCheckFailure):
            return str(excinfo.value)
        if isinstance(excinfo.value, MLUsageError):
            loc = f"{self.path.name}:{self.line}" if self.line else self.path.name
            return f"{loc}: test {self.name!r}: {excinfo.value}"
        return super().repr_failure(excinfo)

    def _repr_failure_py(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> Any:
        """A missing model fixture (a setup error) is reported at the suite line naming it.

        pytest would point at this module's runner function, which the user
        never wrote.
        """
        missing = self._missing_model(excinfo)
        if missing is not None:
            return missing
        return super()._repr_failure_py(excinfo, style)

    def _missing_model(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
        error = excinfo.value
        suite: Suite | None = getattr(self.parent, "suite", None)
        if not isinstance(error, pytest.FixtureLookupError) or suite is None:
            return None
        if error.argname != suite.model_fixture:
            return None  # the model fixture exists; something it needs is missing
        from mltest.data.suites import near_names

        line = suite.model_line or self.line
        where = f"{self.path.name}:{line}" if line else self.path.name
        name = suite.model_fixture
        why = (
            f" (the suite's 'model:') not found{near_names(error.request, name)}: "
            if name != DEFAULT_MODEL_FIXTURE or suite.model_line
            else " not found: the suite names no 'model:', so its tests use this default; "
        )
        return (
            f"{where}: fixture {name!r}{why}"
            "define it in a conftest.py, returning the model or a predict function"
        )


def collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    """Collect a behavioural suite file (called by plugin.py for ``*.behavioral.yaml|yml``).

    Example:
        >>> collect_file(parent, Path("tests/model.behavioral.yaml"))  # doctest: +SKIP
    """
    return BehavioralSuiteFile.from_parent(parent, path=file_path)
