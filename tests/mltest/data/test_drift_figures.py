"""Drift histograms: a bars figure of reference vs current for each drifted column."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pandas")
pytest.importorskip("scipy")

SUITE = """
import numpy as np
import pandas as pd
import pytest
from mltest.data import check_drift

def frame(seed, shift, p):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "price": rng.normal(10 + shift, 2, 500),
        "clicks": rng.poisson(3, 500),
        "tag": rng.choice(["sport", "tech", "film"], 500, p=p),
    })

@pytest.mark.data
def test_drifted():
    check_drift(frame(1, 0, [0.4, 0.4, 0.2]), frame(2, 3, [0.1, 0.3, 0.6]))

@pytest.mark.data
def test_same():
    check_drift(frame(3, 0, [0.4, 0.4, 0.2]), frame(4, 0, [0.4, 0.4, 0.2]))
"""


def test_drifted_columns_get_histograms(run_pytest, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_w=SUITE)
    result = run_pytest("--ml", "--ml-report", "r.json", "--ml-seed", "1")
    result.assert_outcomes(passed=1, failed=1)
    tests = {t["nodeid"]: t for t in json.loads((pytester.path / "r.json").read_text())["tests"]}
    assert tests["test_w.py::test_same"]["figures"] == []
    figures = {f["name"]: f for f in tests["test_w.py::test_drifted"]["figures"]}
    assert sorted(figures) == ["drift.price", "drift.tag"]  # clicks did not drift
    price = figures["drift.price"]
    assert (price["kind"], price["check"], price["title"]) == ("bars", "drift", "drift: price")
    ref, cur = price["data"]["series"].values()
    assert list(price["data"]["series"]) == ["reference (500)", "current (500)"]
    assert len(price["data"]["labels"]) == len(ref) == len(cur) == 20
    assert sum(ref) == pytest.approx(1.0, abs=1e-4)
    assert sum(cur) == pytest.approx(1.0, abs=1e-4)
    # the current window sits 3 units higher: its mass is in the upper bins
    assert sum(cur[10:]) > sum(ref[10:]) + 0.4
    tag = figures["drift.tag"]["data"]
    shares = dict(zip(tag["labels"], zip(*tag["series"].values(), strict=True), strict=True))
    assert shares["film"][0] == pytest.approx(0.2, abs=0.06)
    assert shares["film"][1] == pytest.approx(0.6, abs=0.06)
    assert "(the 20 most common values)" in figures["drift.tag"]["caption"]
