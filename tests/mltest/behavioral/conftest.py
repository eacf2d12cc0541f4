"""Shared helpers for the behavioural tests: a tiny keyword classifier in pytester projects."""

from __future__ import annotations

import pytest

#: conftest.py for pytester projects: a keyword model over two labels.
MODEL_CONFTEST = """
import numpy as np
import pytest

LABELS = ["business", "sport"]
CALLS = []


def keyword_model(texts):
    CALLS.append(list(texts))
    out = []
    for t in texts:
        sport = sum(w in t.lower() for w in ("goal", "scored", "match"))
        out.append([0.2, 0.8] if sport else [0.7, 0.3])
    return np.array(out)


@pytest.fixture(scope="session")
def behavioral_model():
    return keyword_model
"""


@pytest.fixture
def model_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project whose conftest provides ``behavioral_model`` (a keyword model)."""
    pytester.makeconftest(MODEL_CONFTEST)
    return pytester


#: Plugins a pytester run does not need; leaving them out keeps each run fast.
FAST = ("-p", "no:memray", "-p", "no:xdist", "-p", "no:hypothesispytest", "-p", "no:anyio")


class Runner:
    """Runs pytest in a pytester project with the ML tests on and slow plugins off."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester

    def __call__(self, *args: str, ml: bool = True) -> pytest.RunResult:
        return self.pytester.runpytest(*FAST, *(("--ml",) if ml else ()), *args)


@pytest.fixture
def run(model_project: pytest.Pytester) -> Runner:
    """``run(*args, ml=True)``: pytest in the model project, fast."""
    return Runner(model_project)
