"""MFT, INV and DIR tests (Ribeiro et al. 2020) and how they run and report.

- :class:`MFT` (minimum functionality test): inputs with an expected label,
  or a predicate on the output.
- :class:`INV` (invariance): the predicted label must not change under a
  perturbation; optionally the confidence must stay within a tolerance.
- :class:`DIR` (directional expectation): under a perturbation a class
  probability must move in a stated direction, or the label must become a
  given one.

Each test runs all its cases in one batched, deduplicated prediction and
gives a :class:`Result`. ``test.check(model)`` records the result in the
mltest report (``record_check("behavioral", ...)``) and raises
:class:`~mltest.errors.MLCheckFailure` with a table of failing cases when the
pass rate is below ``min_pass_rate`` (default 1.0: every case must pass).
Cases a perturbation could not change are counted as "not perturbed", never
as passes.

Example:
    >>> from mltest.behavioral import MFT, Model
    >>> model = Model(lambda texts: [[0.1, 0.9]] * len(texts), ["business", "sport"])
    >>> MFT("goals", ["Kane scored twice"], expect="sport").check(model).passed
    True
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mltest.behavioral.model import Predictions, as_model
from mltest.behavioral.perturb import Perturbation, Perturber, make_perturbation
from mltest.behavioral.templates import Template
from mltest.errors import MLCheckFailure, MLUsageError
from mltest.report import format_table, record_check

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DIR",
    "INV",
    "MFT",
    "BehavioralTest",
    "Case",
    "Expectation",
    "LabelBecomes",
    "LabelIn",
    "LabelIs",
    "LabelIsNot",
    "Predicate",
    "ProbabilityAtLeast",
    "ProbabilityDirection",
    "Result",
    "behavioral_test",
]

#: Failing cases shown in a failure message unless told otherwise.
DEFAULT_MAX_FAILURES_SHOWN = 10
#: Failing cases kept in the JSON report (the report module keeps 20).
MAX_FAILURES_KEPT = 20
_COLUMN_WIDTH = 40


def _np() -> Any:
    from mltest.behavioral.model import _np as load

    return load()


def _label_pos(label: str, labels: Sequence[str], what: str) -> int:
    try:
        return list(labels).index(label)
    except ValueError:
        raise MLUsageError(
            f"{what}: label {label!r} is not in the model's label list {list(labels)}"
        ) from None


# ---------------------------------------------------------------------------
# Expectations
# ---------------------------------------------------------------------------


class Expectation:
    """What an MFT expects of each prediction (vectorised over all cases).

    Example:
        >>> LabelIs("sport").describe()
        'sport'
    """

    def evaluate(self, preds: Predictions) -> np.ndarray:
        """A boolean array: True where the case passes."""
        raise NotImplementedError

    def describe(self) -> str:
        """What is expected, for the "expected" column."""
        raise NotImplementedError

    def sentence(self) -> str:
        """What is expected, as a phrase for the message (``"label is sport"``)."""
        return self.describe()


class LabelIs(Expectation):
    """The predicted label must be ``label``.

    Example:
        >>> LabelIs("tech").label
        'tech'
    """

    def __init__(self, label: str) -> None:
        self.label = str(label)

    def evaluate(self, preds: Predictions) -> np.ndarray:  # noqa: D102
        return preds.label_index() == _label_pos(self.label, preds.labels, "MFT expectation")  # type: ignore[no-any-return]

    def describe(self) -> str:  # noqa: D102
        return self.label

    def sentence(self) -> str:  # noqa: D102
        return f"label is {self.label}"


class LabelIsNot(Expectation):
    """The predicted label must not be ``label``.

    Example:
        >>> LabelIsNot("tech").describe()
        'not tech'
    """

    def __init__(self, label: str) -> None:
        self.label = str(label)

    def evaluate(self, preds: Predictions) -> np.ndarray:  # noqa: D102
        return preds.label_index() != _label_pos(self.label, preds.labels, "MFT expectation")  # type: ignore[no-any-return]

    def describe(self) -> str:  # noqa: D102
        return f"not {self.label}"

    def sentence(self) -> str:  # noqa: D102
        return f"label is not {self.label}"


class LabelIn(Expectation):
    """The predicted label must be one of ``labels``.

    Example:
        >>> LabelIn(["tech", "business"]).describe()
        'tech|business'
    """

    def __init__(self, labels: Sequence[str]) -> None:
        if isinstance(labels, str) or not labels:
            raise MLUsageError(f"label_in: give a non-empty list of labels, got {labels!r}")
        self.labels = [str(x) for x in labels]

    def evaluate(self, preds: Predictions) -> np.ndarray:  # noqa: D102
        allowed = [_label_pos(x, preds.labels, "MFT expectation") for x in self.labels]
        return _np().isin(preds.label_index(), allowed)  # type: ignore[no-any-return]

    def describe(self) -> str:  # noqa: D102
        return "|".join(self.labels)

    def sentence(self) -> str:  # noqa: D102
        return f"label is one of {', '.join(self.labels)}"


class ProbabilityAtLeast(Expectation):
    """P(``label``) must be at least ``p``.

    Example:
        >>> ProbabilityAtLeast("sport", 0.8).describe()
        'P(sport) >= 0.8'
    """

    def __init__(self, label: str, p: float) -> None:
        if not 0.0 <= float(p) <= 1.0:
            raise MLUsageError(f"probability_at_least: p must be in [0, 1], got {p!r}")
        self.label = str(label)
        self.p = float(p)

    def evaluate(self, preds: Predictions) -> np.ndarray:  # noqa: D102
        if not preds.has_proba:
            raise MLUsageError(
                f"MFT expectation {self.describe()}: the model returns labels, not probabilities"
            )
        j = _label_pos(self.label, preds.labels, "MFT expectation")
        return preds.probs[:, j] >= self.p

    def describe(self) -> str:  # noqa: D102
        return f"P({self.label}) >= {self.p:g}"


class Predicate(Expectation):
    """A function of the predicted label and the probabilities decides.

    Args:
        fn: ``fn(label, probs) -> bool`` where ``probs`` maps label -> probability.
        description: What it checks, for the "expected" column.

    Example:
        >>> Predicate(lambda label, probs: label != "politics", "not politics").describe()
        'not politics'
    """

    def __init__(self, fn: Callable[[str, dict[str, float]], bool], description: str = "") -> None:
        self.fn = fn
        self.description = description or getattr(fn, "__name__", "predicate")

    def evaluate(self, preds: Predictions) -> np.ndarray:  # noqa: D102
        np = _np()
        names = preds.label_names()
        rows = preds.probs.tolist()
        return np.array(  # type: ignore[no-any-return]
            [
                bool(self.fn(n, dict(zip(preds.labels, r, strict=False))))
                for n, r in zip(names, rows, strict=False)
            ],
            dtype=bool,
        )

    def describe(self) -> str:  # noqa: D102
        return self.description


class _PerExample(Expectation):
    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = [str(x) for x in labels]

    def evaluate(self, preds: Predictions) -> np.ndarray:
        np = _np()
        want = np.array([_label_pos(x, preds.labels, "MFT example") for x in self.labels])
        return preds.label_index() == want  # type: ignore[no-any-return]

    def describe(self) -> str:
        return "per example"


class DirExpectation:
    """What a DIR test expects of the change from original to perturbed.

    Example:
        >>> LabelBecomes("sport").describe()
        'label becomes sport'
    """

    def evaluate(self, before: Predictions, after: Predictions) -> np.ndarray:
        """A boolean array: True where the case passes."""
        raise NotImplementedError

    def describe(self) -> str:
        """The expectation in words."""
        raise NotImplementedError

    def detail(self, before: Predictions, after: Predictions, i: int) -> str:
        """What moved in case ``i``, for the failure table ("" when the labels say it)."""
        return ""


_DIRECTIONS = ("increase", "decrease", "not_increase", "not_decrease")


class ProbabilityDirection(DirExpectation):
    """P(``label``) must move in ``direction`` under the perturbation.

    ``not_decrease`` passes when ``after >= before - tolerance``;
    ``not_increase`` when ``after <= before + tolerance``; ``increase`` when
    ``after > before + tolerance``; ``decrease`` when ``after < before - tolerance``.

    Example:
        >>> ProbabilityDirection("business", "not_decrease").describe()
        'P(business) must not decrease'
    """

    def __init__(self, label: str, direction: str, tolerance: float = 0.0) -> None:
        if direction not in _DIRECTIONS:
            raise MLUsageError(f"unknown direction {direction!r}; choose from {list(_DIRECTIONS)}")
        if float(tolerance) < 0:
            raise MLUsageError(f"tolerance must be >= 0, got {tolerance!r}")
        self.label = str(label)
        self.direction = direction
        self.tolerance = float(tolerance)

    def evaluate(self, before: Predictions, after: Predictions) -> np.ndarray:  # noqa: D102
        if not before.has_proba:
            raise MLUsageError(
                f"DIR expectation {self.describe()!r}: the model returns labels, not "
                "probabilities; use a label expectation"
            )
        j = _label_pos(self.label, before.labels, "DIR expectation")
        delta = after.probs[:, j] - before.probs[:, j]
        tol = self.tolerance
        if self.direction == "not_decrease":
            return delta >= -tol  # type: ignore[no-any-return]
        if self.direction == "not_increase":
            return delta <= tol  # type: ignore[no-any-return]
        if self.direction == "increase":
            return delta > tol  # type: ignore[no-any-return]
        return delta < -tol  # type: ignore[no-any-return]

    def detail(self, before: Predictions, after: Predictions, i: int) -> str:  # noqa: D102
        j = before.labels.index(self.label)
        return f"P({self.label}) {before.probs[i, j]:.2f}->{after.probs[i, j]:.2f}"

    def describe(self) -> str:  # noqa: D102
        words = self.direction.replace("not_", "not ")
        tol = f" (tolerance {self.tolerance:g})" if self.tolerance else ""
        return f"P({self.label}) must {words}{tol}"


class LabelBecomes(DirExpectation):
    """The predicted label of the perturbed text must be ``label``.

    Example:
        >>> LabelBecomes("sport").label
        'sport'
    """

    def __init__(self, label: str) -> None:
        self.label = str(label)

    def evaluate(self, before: Predictions, after: Predictions) -> np.ndarray:  # noqa: D102
        return after.label_index() == _label_pos(self.label, after.labels, "DIR expectation")  # type: ignore[no-any-return]

    def describe(self) -> str:  # noqa: D102
        return f"label becomes {self.label}"


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass
class Case:
    """One failing case, as shown in the failure table and the JSON report.

    Example:
        >>> Case("Kane scored", expected="sport", before=("business", 0.6)).to_dict()["got"]
        'business (0.60)'
    """

    input: str
    perturbed: str | None = None
    edits: str = ""
    expected: str = ""
    before: tuple[str, float | None] = ("", None)
    after: tuple[str, float | None] | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out: dict[str, Any] = {"input": self.input}
        if self.perturbed is not None:
            out["perturbed"] = self.perturbed
            out["edits"] = self.edits
        out["expected"] = self.expected
        if self.after is None:
            out["got"] = _pred(self.before)
        else:
            out["before"] = _pred(self.before)
            out["after"] = _pred(self.after)
        if self.detail:
            out["detail"] = self.detail
        return out


def _pred(p: tuple[str, float | None]) -> str:
    label, conf = p
    return label if conf is None else f"{label} ({conf:.2f})"


def _clip(text: str, width: int = _COLUMN_WIDTH, focus: int = 0) -> str:
    """Shorten ``text`` to ``width`` characters, keeping offset ``focus`` in view."""
    text = text.replace("\n", " ")
    if len(text) <= width:
        return text
    start = max(0, min(focus - width // 3, len(text) - width + 3))
    if start == 0:
        return text[: width - 3] + "..."
    if start >= len(text) - width + 3:
        return "..." + text[len(text) - width + 3 :]
    return "..." + text[start + 3 : start + width - 3] + "..."


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return format_table(header, rows, indent="  ")


_NEXT = {
    "MFT": "next: if the model should handle these inputs, add similar examples to the "
    "training data; if the expectation is wrong, fix the test; to accept some failures, "
    "set min_pass_rate",
    "INV": "next: the prediction should not depend on this change; augment the training "
    "data with such perturbations, or set min_pass_rate if some sensitivity is acceptable",
    "DIR": "next: the change should move the prediction as stated; check what the model "
    "relies on for these inputs (more training data of this kind), or fix the expectation",
}


@dataclass
class Result:
    """The outcome of one behavioural test.

    Attributes:
        name: The test's name.
        test_type: ``"MFT"``, ``"INV"`` or ``"DIR"``.
        capability: What the test probes (``"Robustness"``, ``"Vocabulary"``).
        cases: Cases evaluated (perturbed ones for INV/DIR).
        failed: Cases that failed.
        not_perturbed: Examples the perturbation could not change (not evaluated).
        min_pass_rate: The pass rate required.
        failures: The first failing cases.
        perturbation: The perturbation, in words (INV/DIR).
        expectation: The expectation, in words.
        max_failures_shown: Failing cases shown in the message.

    Example:
        >>> r = Result("t", "MFT", "Vocabulary", cases=10, failed=1, not_perturbed=0,
        ...            min_pass_rate=0.8)
        >>> r.passed, r.pass_rate
        (True, 0.9)
    """

    name: str
    test_type: str
    capability: str
    cases: int
    failed: int
    not_perturbed: int
    min_pass_rate: float
    failures: list[Case] = field(default_factory=list)
    perturbation: str = ""
    expectation: str = ""
    max_failures_shown: int = DEFAULT_MAX_FAILURES_SHOWN

    @property
    def pass_rate(self) -> float:
        """Share of evaluated cases that passed (0.0 when none was evaluated)."""
        return (self.cases - self.failed) / self.cases if self.cases else 0.0

    @property
    def fail_rate(self) -> float:
        """Share of evaluated cases that failed."""
        return self.failed / self.cases if self.cases else 0.0

    @property
    def passed(self) -> bool:
        """Whether at least one case was evaluated and the pass rate is high enough."""
        return self.cases > 0 and self.pass_rate >= self.min_pass_rate - 1e-12

    def headline(self) -> str:
        """One line: verdict, counts and rates.

        Example:
            >>> Result("t", "INV", "", 4, 1, 1, 1.0).headline()
            "INV 't' failed: 1 of 4 cases failed (fail rate 25.0%, pass rate 75.0% < required 100.0%); 1 not perturbed"
        """  # noqa: E501
        cap = f" ({self.capability})" if self.capability else ""
        np_ = f"; {self.not_perturbed} not perturbed" if self.not_perturbed else ""
        if self.cases == 0:
            why = (
                f"all {self.not_perturbed} examples were not perturbed"
                if self.not_perturbed
                else "there are no examples"
            )
            return f"{self.test_type} {self.name!r}{cap} failed: no case was tested ({why})"
        verdict = "passed" if self.passed else "failed"
        cmp = ">=" if self.passed else "<"
        return (
            f"{self.test_type} {self.name!r}{cap} {verdict}: {self.failed} of {self.cases} "
            f"cases failed (fail rate {self.fail_rate:.1%}, pass rate {self.pass_rate:.1%} "
            f"{cmp} required {self.min_pass_rate:.1%}){np_}"
        )

    def message(self) -> str:
        """The full diagnosis: headline, what was tested, failing cases, what to do next."""
        lines = [self.headline()]
        what = []
        if self.perturbation:
            what.append(f"perturbation: {self.perturbation}")
        if self.expectation:
            what.append(f"expectation: {self.expectation}")
        if what:
            lines.append("; ".join(what))
        if self.cases == 0:
            lines.append(
                "next: the perturbation found nothing to change in these examples; give "
                "examples it applies to (e.g. texts that contain names for a name swap)"
                if self.not_perturbed
                else "next: give the test at least one example"
            )
            return "\n".join(lines)
        shown = self.failures[: self.max_failures_shown]
        if shown:
            lines.extend(self._rows(shown))
            lines.append(f"showing {len(shown)} of {self.failed} failing cases")
            lines.append(_NEXT[self.test_type])
        return "\n".join(lines)

    def _rows(self, cases: Sequence[Case]) -> list[str]:
        if self.test_type == "MFT":
            header = ["#", "input", "expected", "got"]
            rows = [
                [str(i), _clip(c.input), c.expected, _pred(c.before)]
                for i, c in enumerate(cases, 1)
            ]
        else:
            header = ["#", "input", "perturbed", "edits", "before", "after"]
            if self.test_type == "DIR":
                header.insert(4, "expected")
            detail = any(c.detail for c in cases)
            if detail:
                header.append("moved")
            rows = []
            for i, c in enumerate(cases, 1):
                focus = _first_edit(c)
                row = [
                    str(i),
                    _clip(c.input, focus=focus),
                    _clip(c.perturbed or "", focus=focus),
                    _clip(c.edits, 30),
                    _pred(c.before),
                    _pred(c.after or ("", None)),
                ]
                if self.test_type == "DIR":
                    row.insert(4, c.expected)
                if detail:
                    row.append(c.detail)
                rows.append(row)
        return _table(header, rows)

    def metrics(self) -> dict[str, Any]:
        """Numbers for the report: cases, failed, not_perturbed, rates."""
        return {
            "cases": self.cases,
            "failed": self.failed,
            "not_perturbed": self.not_perturbed,
            "pass_rate": round(self.pass_rate, 6),
            "fail_rate": round(self.fail_rate, 6),
            "min_pass_rate": self.min_pass_rate,
        }


def _first_edit(case: Case) -> int:
    if case.perturbed is None:
        return 0
    n = min(len(case.input), len(case.perturbed))
    for i in range(n):
        if case.input[i] != case.perturbed[i]:
            return i
    return n


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


Examples = Sequence[str] | Template


class BehavioralTest:
    """Base class of :class:`MFT`, :class:`INV` and :class:`DIR`.

    Args:
        name: The test's name (shown in reports).
        examples: Texts, or a :class:`~mltest.behavioral.templates.Template`.
        capability: What the test probes, for the capability x type table.
        min_pass_rate: Pass rate required, in [0, 1] (default 1.0).
        max_failures_shown: Failing cases listed in the failure message.
        description: Free text, shown nowhere but kept with the test.

    Example:
        >>> MFT("x", ["a"], expect="pos").test_type
        'MFT'
    """

    test_type: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        examples: Examples,
        *,
        capability: str = "",
        min_pass_rate: float = 1.0,
        max_failures_shown: int = DEFAULT_MAX_FAILURES_SHOWN,
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise MLUsageError(f"a behavioural test needs a name, got {name!r}")
        try:
            rate = float(min_pass_rate)
        except (TypeError, ValueError):
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            raise MLUsageError(
                f"test {name!r}: min_pass_rate must be in [0, 1], got {min_pass_rate!r}"
            )
        if isinstance(examples, str):
            raise MLUsageError(f"test {name!r}: examples must be a list of texts, not one string")
        self.name = name
        self.examples = examples
        self.capability = str(capability)
        self.min_pass_rate = rate
        self.max_failures_shown = max_failures_shown
        self.description = description

    def __repr__(self) -> str:
        return f"{self.test_type}({self.name!r})"

    def texts(self) -> list[str]:
        """The example texts (a template expanded).

        Raises:
            MLUsageError: When an example is not a string, or a template is empty.
        """
        if isinstance(self.examples, Template):
            return self.examples.expand()
        out = list(self.examples)
        for i, t in enumerate(out):
            if not isinstance(t, str):
                raise MLUsageError(f"test {self.name!r}: example {i} is not a text: {t!r}")
        return out

    def run(self, model: Any, labels: Sequence[str] | None = None) -> Result:
        """Run the test against ``model`` and return its :class:`Result` (no raising, no report).

        Args:
            model: A :class:`~mltest.behavioral.model.Model`, a predictor or a
                callable (see :func:`~mltest.behavioral.model.as_model`).
            labels: The label list when ``model`` is a bare callable.
        """
        raise NotImplementedError

    def record(self, result: Result) -> None:
        """Send ``result`` to the mltest report (a no-op outside pytest)."""
        record_check(
            "behavioral",
            self.name,
            result.passed,
            headline=result.headline(),
            metrics=result.metrics(),
            examples=[c.to_dict() for c in result.failures],
            group={"capability": self.capability or "-", "test_type": self.test_type},
        )

    def check(self, model: Any, labels: Sequence[str] | None = None) -> Result:
        """Run, record in the report, and raise when the test fails.

        Raises:
            MLCheckFailure: When the pass rate is below ``min_pass_rate`` or no
                case could be tested; the message is the diagnosis.

        Example:
            >>> INV("typos", texts, perturbation=Typos()).check(model)  # doctest: +SKIP
        """
        __tracebackhide__ = True
        result = self.run(model, labels)
        self.record(result)
        if not result.passed:
            raise MLCheckFailure(result.message())
        return result

    def _result(self, **kwargs: Any) -> Result:
        return Result(
            name=self.name,
            test_type=self.test_type,
            capability=self.capability,
            min_pass_rate=self.min_pass_rate,
            max_failures_shown=self.max_failures_shown,
            **kwargs,
        )


def _conf(preds: Predictions, i: int, idx: np.ndarray) -> tuple[str, float | None]:
    j = int(idx[i])
    return preds.labels[j], (float(preds.probs[i, j]) if preds.has_proba else None)


class MFT(BehavioralTest):
    """Minimum functionality test: each input must get the expected output.

    Args:
        name: The test's name.
        examples: Texts or a template.
        expect: A label (``"sport"``), an :class:`Expectation`, or a function
            ``fn(label, probs) -> bool``. Not needed with ``labels``.
        labels: One expected label per example (instead of ``expect``).
        **kwargs: See :class:`BehavioralTest`.

    Example:
        >>> t = MFT("scores", ["Kane scored twice"], expect="sport", capability="Vocabulary")
        >>> t.expectation.describe()
        'sport'
    """

    test_type = "MFT"

    def __init__(
        self,
        name: str,
        examples: Examples,
        expect: str | Expectation | Callable[[str, dict[str, float]], bool] | None = None,
        *,
        labels: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, examples, **kwargs)
        if labels is not None:
            if expect is not None:
                raise MLUsageError(f"MFT {name!r}: give expect or per-example labels, not both")
            if isinstance(examples, Template) or len(labels) != len(examples):
                raise MLUsageError(
                    f"MFT {name!r}: labels must give one label per example ({len(labels)} labels)"
                )
            self.expectation: Expectation = _PerExample(labels)
        elif isinstance(expect, Expectation):
            self.expectation = expect
        elif isinstance(expect, str):
            self.expectation = LabelIs(expect)
        elif callable(expect):
            self.expectation = Predicate(expect)
        else:
            raise MLUsageError(
                f"MFT {name!r}: say what to expect: expect='label', an Expectation, a "
                "function (label, probs) -> bool, or labels=[...] per example"
            )

    def run(self, model: Any, labels: Sequence[str] | None = None) -> Result:  # noqa: D102
        np = _np()
        m = as_model(model, labels)
        texts = self.texts()
        if not texts:
            return self._result(cases=0, failed=0, not_perturbed=0)
        preds = m.predict(texts)
        ok = np.asarray(self.expectation.evaluate(preds), dtype=bool)
        bad = np.flatnonzero(~ok)
        idx = preds.label_index()
        per_example = isinstance(self.expectation, _PerExample)
        failures = [
            Case(
                input=texts[i],
                expected=(
                    self.expectation.labels[i]  # type: ignore[attr-defined]
                    if per_example
                    else self.expectation.describe()
                ),
                before=_conf(preds, i, idx),
            )
            for i in bad[: max(self.max_failures_shown, MAX_FAILURES_KEPT)].tolist()
        ]
        return self._result(
            cases=len(texts),
            failed=int(bad.size),
            not_perturbed=0,
            failures=failures,
            expectation="label per example" if per_example else self.expectation.sentence(),
        )


class _PerturbationTest(BehavioralTest):
    """Shared machinery of INV and DIR: perturb, predict once, compare."""

    def __init__(
        self,
        name: str,
        examples: Examples | Sequence[tuple[str, str]],
        perturbation: Perturber | str | Mapping[str, Any] | None = None,
        *,
        samples: int = 1,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, examples, **kwargs)  # type: ignore[arg-type]
        if not isinstance(samples, int) or samples < 1:
            raise MLUsageError(f"test {name!r}: samples must be >= 1, got {samples!r}")
        self.perturbation = None if perturbation is None else make_perturbation(perturbation)
        self.samples = samples
        self.seed = seed

    def perturb(self) -> tuple[list[Perturbation], int]:
        """The perturbed cases and the count of examples left unchanged."""
        if self.perturbation is None:  # ready-made (original, perturbed) pairs
            pairs: list[Perturbation] = []
            raw: Any = self.examples
            if isinstance(raw, Template):
                raise MLUsageError(
                    f"{self.test_type} {self.name!r}: a template needs a perturbation"
                )
            for i, ex in enumerate(raw):
                if isinstance(ex, str) or not isinstance(ex, Sequence) or len(ex) != 2:
                    raise MLUsageError(
                        f"{self.test_type} {self.name!r}: without a perturbation, examples "
                        f"must be (original, perturbed) pairs; example {i} is {ex!r}"
                    )
                pairs.append(Perturbation.from_pair(str(ex[0]), str(ex[1])))
            done = [p for p in pairs if p.changed]
            return done, len(pairs) - len(done)
        rng = random.Random(self.seed)
        apply = self.perturbation.apply
        done = []
        unchanged = 0
        for text in self.texts():
            for _ in range(self.samples):
                p = apply(text, rng)
                if p.edits:
                    done.append(p)
                else:
                    unchanged += 1
        return done, unchanged

    def texts(self) -> list[str]:
        if self.perturbation is None:
            raw: Any = self.examples
            return [str(ex[0]) for ex in raw]
        return super().texts()

    def _fails(self, before: Predictions, after: Predictions) -> np.ndarray:
        raise NotImplementedError

    def _expected(self) -> str:
        raise NotImplementedError

    def _detail(self, before: Predictions, after: Predictions, i: int) -> str:
        return ""

    def run(self, model: Any, labels: Sequence[str] | None = None) -> Result:
        np = _np()
        m = as_model(model, labels)
        cases, unchanged = self.perturb()
        described = repr(self.perturbation) if self.perturbation is not None else "given pairs"
        if not cases:
            return self._result(cases=0, failed=0, not_perturbed=unchanged, perturbation=described)
        n = len(cases)
        preds = m.predict([p.original for p in cases] + [p.text for p in cases])
        before = preds.take(np.arange(n))
        after = preds.take(np.arange(n, 2 * n))
        bad = np.flatnonzero(self._fails(before, after))
        idx_b, idx_a = before.label_index(), after.label_index()
        expected = self._expected()
        failures = [
            Case(
                input=cases[i].original,
                perturbed=cases[i].text,
                edits=cases[i].describe(),
                expected=expected,
                before=_conf(before, i, idx_b),
                after=_conf(after, i, idx_a),
                detail=self._detail(before, after, i),
            )
            for i in bad[: max(self.max_failures_shown, MAX_FAILURES_KEPT)].tolist()
        ]
        return self._result(
            cases=n,
            failed=int(bad.size),
            not_perturbed=unchanged,
            failures=failures,
            perturbation=described,
            expectation=expected,
        )


class INV(_PerturbationTest):
    """Invariance test: the predicted label must not change under a perturbation.

    Args:
        name: The test's name.
        examples: Texts or a template; or ``(original, perturbed)`` pairs
            when ``perturbation`` is None.
        perturbation: A perturber, its name, or ``{"name": ..., params}``.
        max_confidence_change: When given, the probability of the originally
            predicted class may also move by at most this much.
        samples: Perturbations drawn per example.
        seed: Seed of the perturbations (the same cases in every run).
        **kwargs: See :class:`BehavioralTest`.

    Example:
        >>> from mltest.behavioral import Typos
        >>> INV("typos", ["Shares fell"], perturbation=Typos(n=2)).perturbation
        typos(n=2, kinds=['swap', 'drop', 'insert', 'keyboard'])
    """

    test_type = "INV"

    def __init__(
        self,
        name: str,
        examples: Examples | Sequence[tuple[str, str]],
        perturbation: Perturber | str | Mapping[str, Any] | None = None,
        *,
        max_confidence_change: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, examples, perturbation, **kwargs)
        if max_confidence_change is not None and not 0 <= float(max_confidence_change) <= 1:
            raise MLUsageError(
                f"INV {name!r}: max_confidence_change must be in [0, 1], "
                f"got {max_confidence_change!r}"
            )
        self.max_confidence_change = (
            None if max_confidence_change is None else float(max_confidence_change)
        )

    def _fails(self, before: Predictions, after: Predictions) -> np.ndarray:
        np = _np()
        idx = before.label_index()
        fails = idx != after.label_index()
        if self.max_confidence_change is not None:
            if not before.has_proba:
                raise MLUsageError(
                    f"INV {self.name!r}: max_confidence_change needs probabilities, but the "
                    "model returns labels"
                )
            rows = np.arange(len(idx))
            drift = np.abs(after.probs[rows, idx] - before.probs[rows, idx])
            fails |= drift > self.max_confidence_change + 1e-12
        return fails  # type: ignore[no-any-return]

    def _expected(self) -> str:
        if self.max_confidence_change is None:
            return "same label"
        return f"same label, confidence within {self.max_confidence_change:g}"


class DIR(_PerturbationTest):
    """Directional expectation test: the prediction must move as stated.

    Args:
        name: The test's name.
        examples: Texts or a template; or ``(original, perturbed)`` pairs
            when ``perturbation`` is None.
        perturbation: A perturber, its name, or ``{"name": ..., params}``.
        expect: A :class:`ProbabilityDirection` ("P(business) must not
            decrease") or :class:`LabelBecomes` ("label must become sport").
        **kwargs: See :class:`INV` (``samples``, ``seed``) and :class:`BehavioralTest`.

    Example:
        >>> from mltest.behavioral import AddText
        >>> t = DIR("bad news", ["Profits rose"], AddText("Shares crashed."),
        ...         expect=ProbabilityDirection("business", "not_decrease"))
        >>> t.expect.describe()
        'P(business) must not decrease'
    """

    test_type = "DIR"

    def __init__(
        self,
        name: str,
        examples: Examples | Sequence[tuple[str, str]],
        perturbation: Perturber | str | Mapping[str, Any] | None = None,
        *,
        expect: DirExpectation | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, examples, perturbation, **kwargs)
        if not isinstance(expect, DirExpectation):
            raise MLUsageError(
                f"DIR {name!r}: say what must move: expect=ProbabilityDirection(label, "
                "'not_decrease') or expect=LabelBecomes(label)"
            )
        self.expect = expect

    def _fails(self, before: Predictions, after: Predictions) -> np.ndarray:
        return ~_np().asarray(self.expect.evaluate(before, after), dtype=bool)  # type: ignore[no-any-return]

    def _expected(self) -> str:
        return self.expect.describe()

    def _detail(self, before: Predictions, after: Predictions, i: int) -> str:
        return self.expect.detail(before, after, i)


# ---------------------------------------------------------------------------
# Writing tests in Python
# ---------------------------------------------------------------------------


TestFactory = Callable[..., BehavioralTest | Sequence[BehavioralTest]]


def run_tests(
    tests: BehavioralTest | Sequence[BehavioralTest],
    model: Any,
    labels: Sequence[str] | None = None,
) -> list[Result]:
    """Run tests against one model, record each, and raise one failure listing all that failed.

    Wrap a bare callable once (``Model(fn, labels)``) so all tests share its
    prediction cache.

    Raises:
        MLCheckFailure: When any test fails; the message has each diagnosis.

    Example:
        >>> run_tests([mft, inv], model)  # doctest: +SKIP
    """
    __tracebackhide__ = True
    items = [tests] if isinstance(tests, BehavioralTest) else list(tests)
    for t in items:
        if not isinstance(t, BehavioralTest):
            raise MLUsageError(f"expected MFT, INV or DIR tests, got {t!r}")
    m = as_model(model, labels)
    results = []
    for t in items:
        result = t.run(m)
        t.record(result)
        results.append(result)
    failed = [r for r in results if not r.passed]
    if failed:
        raise MLCheckFailure("\n\n".join(r.message() for r in failed))
    return results


def behavioral_test(
    model: str = "behavioral_model", *, labels: Sequence[str] | None = None
) -> Callable[[TestFactory], Callable[..., None]]:
    """Turn a function that builds behavioural tests into a pytest test.

    The decorated function may request fixtures; it returns one test or a
    list. The pytest test requests the ``model`` fixture (by name), runs every
    test against it, records each in the report, and carries the
    ``behavioral`` marker (so it needs ``--ml``).

    Args:
        model: Name of the fixture that provides the model.
        labels: Label list when the fixture returns a bare callable.

    Example:
        >>> @behavioral_test(model="classifier")  # doctest: +SKIP
        ... def test_typos():
        ...     return INV("typos", TEXTS, perturbation=Typos(), min_pass_rate=0.95)
    """
    import pytest

    def decorate(factory: TestFactory) -> Callable[..., None]:
        sig = inspect.signature(factory)
        own = [p.name for p in sig.parameters.values()]
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()]
        if model not in own:
            params.append(inspect.Parameter(model, inspect.Parameter.KEYWORD_ONLY))

        def test(**kwargs: Any) -> None:
            built = factory(**{k: kwargs[k] for k in own})
            try:
                run_tests(built, kwargs[model], labels)
            except MLCheckFailure as exc:
                message = str(exc)
            else:
                return
            pytest.fail(message, pytrace=False)  # the message is the whole diagnosis

        test.__name__ = factory.__name__
        test.__qualname__ = factory.__qualname__
        test.__module__ = factory.__module__
        test.__doc__ = factory.__doc__
        test.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return pytest.mark.behavioral(test)  # type: ignore[no-any-return]

    return decorate
