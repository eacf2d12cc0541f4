"""Behavioural testing of text classifiers: MFT, INV and DIR as pytest tests.

After Ribeiro et al. 2020, "Beyond Accuracy: Behavioral Testing of NLP Models
with CheckList". Importing this package is cheap: numpy, torch and yaml load
only when a test runs. The public names are imported lazily from submodules.

Example:
    >>> from mltest.behavioral import INV, Typos
    >>> test = INV("typos", ["The match ended in a draw"], perturbation=Typos(n=1))
    >>> test.test_type
    'INV'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mltest.behavioral.checklist_bridge import checklist_available, from_checklist
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
        Predicate,
        ProbabilityAtLeast,
        ProbabilityDirection,
        Result,
        behavioral_test,
        run_tests,
    )
    from mltest.behavioral.lexicons import load_lexicon
    from mltest.behavioral.model import (
        Model,
        ModelOutputError,
        Predictions,
        as_model,
        from_predictor,
        from_torch,
    )
    from mltest.behavioral.perturb import (
        AddHashtag,
        AddSentence,
        AddText,
        AddUrl,
        Case,
        Contractions,
        Edit,
        LexiconSwap,
        NumberSwap,
        Perturbation,
        Perturber,
        Punctuation,
        Synonyms,
        Typos,
        Whitespace,
        make_perturbation,
    )
    from mltest.behavioral.templates import Template

_EXPORTS: dict[str, str] = {
    "checklist_available": "checklist_bridge",
    "from_checklist": "checklist_bridge",
    "DIR": "checks",
    "INV": "checks",
    "MFT": "checks",
    "BehavioralTest": "checks",
    "LabelBecomes": "checks",
    "LabelIs": "checks",
    "LabelIn": "checks",
    "LabelIsNot": "checks",
    "ProbabilityAtLeast": "checks",
    "ProbabilityDirection": "checks",
    "Predicate": "checks",
    "Result": "checks",
    "behavioral_test": "checks",
    "run_tests": "checks",
    "DirExpectation": "checks",
    "Expectation": "checks",
    "ModelOutputError": "model",
    "load_lexicon": "lexicons",
    "Model": "model",
    "Predictions": "model",
    "as_model": "model",
    "from_predictor": "model",
    "from_torch": "model",
    "AddHashtag": "perturb",
    "AddSentence": "perturb",
    "AddText": "perturb",
    "AddUrl": "perturb",
    "Case": "perturb",
    "Contractions": "perturb",
    "Edit": "perturb",
    "LexiconSwap": "perturb",
    "NumberSwap": "perturb",
    "Perturbation": "perturb",
    "Perturber": "perturb",
    "Punctuation": "perturb",
    "Synonyms": "perturb",
    "Typos": "perturb",
    "Whitespace": "perturb",
    "make_perturbation": "perturb",
    "Template": "templates",
}

__all__ = [
    "DIR",
    "INV",
    "MFT",
    "AddHashtag",
    "AddSentence",
    "AddText",
    "AddUrl",
    "BehavioralTest",
    "Case",
    "Contractions",
    "DirExpectation",
    "Edit",
    "Expectation",
    "LabelBecomes",
    "LabelIn",
    "LabelIs",
    "LabelIsNot",
    "LexiconSwap",
    "Model",
    "ModelOutputError",
    "NumberSwap",
    "Perturbation",
    "Perturber",
    "Predicate",
    "Predictions",
    "ProbabilityAtLeast",
    "ProbabilityDirection",
    "Punctuation",
    "Result",
    "Synonyms",
    "Template",
    "Typos",
    "Whitespace",
    "as_model",
    "behavioral_test",
    "checklist_available",
    "from_checklist",
    "from_predictor",
    "from_torch",
    "load_lexicon",
    "make_perturbation",
    "run_tests",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
