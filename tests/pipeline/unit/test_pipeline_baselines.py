"""Unit tests of the baselines (reference_pipeline.baselines)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reference_pipeline.baselines import (
    KeywordBaseline,
    MajorityClassBaseline,
    TfidfLogRegBaseline,
    fit_baselines,
)
from reference_pipeline.data import LabelEncoder

TEXTS = [
    "the striker scored a late goal",
    "a goal in extra time won the cup",
    "shares fell as profits slumped",
    "the bank raised interest rates and shares rose",
    "the keeper saved a penalty and the goal stood",
]
LABELS = [0, 0, 1, 1, 0]


@pytest.mark.parametrize(
    "make",
    [
        lambda: MajorityClassBaseline(3),
        lambda: KeywordBaseline(3, min_docs=1, per_class=3),
        lambda: TfidfLogRegBaseline(3),
    ],
    ids=["majority", "keywords", "tfidf"],
)
def test_predict_proba_is_a_distribution_over_every_class(make):
    model = make()
    model.fit(TEXTS, LABELS)
    proba = model.predict_proba(["a goal", "shares", "nothing known"])
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba >= 0).all()
    # Class 2 never appears in training: no baseline may invent it.
    assert (proba.argmax(axis=1) != 2).all()


def test_majority_predicts_the_most_frequent_class():
    proba = MajorityClassBaseline(2).fit(TEXTS, LABELS).predict_proba(["anything"])
    np.testing.assert_allclose(proba, [[0.6, 0.4]])


def test_keywords_are_learned_per_class():
    model = KeywordBaseline(2, min_docs=2, per_class=1).fit(TEXTS, LABELS)
    assert model.keywords_ == {0: ["goal"], 1: ["shares"]}
    assert model.predict_proba(["goal goal", "shares"]).argmax(axis=1).tolist() == [0, 1]


def test_declared_keywords_are_used_as_given():
    model = KeywordBaseline(2, keywords={0: ["Penalty"], 1: ["bank"]}).fit(TEXTS, LABELS)
    assert model.predict_proba(["a penalty", "the bank"]).argmax(axis=1).tolist() == [0, 1]
    # No keyword: the class prior.
    np.testing.assert_allclose(model.predict_proba(["weather"]), [[0.6, 0.4]])


def test_tfidf_separates_the_toy_topics():
    model = TfidfLogRegBaseline(2).fit(TEXTS, LABELS)
    assert model.predict_proba(["late goal", "profits and shares"]).argmax(axis=1).tolist() == [
        0,
        1,
    ]


@pytest.mark.parametrize("make", [MajorityClassBaseline, KeywordBaseline, TfidfLogRegBaseline])
def test_predict_before_fit_is_an_error(make):
    with pytest.raises(RuntimeError, match="call fit\\(\\) first"):
        make(2).predict_proba(["x"])


def test_labels_outside_the_classes_are_rejected():
    with pytest.raises(ValueError, match=r"labels must be class ids in 0\.\.1"):
        MajorityClassBaseline(2).fit(["a"], [2])


def test_fit_baselines_uses_the_encoder_order():
    train_df = pd.DataFrame({"text": TEXTS, "tag": ["sport", "sport", "biz", "biz", "sport"]})
    encoder = LabelEncoder().fit(train_df["tag"])
    models = fit_baselines(train_df, encoder)
    assert sorted(models) == ["keywords", "majority", "tfidf_logreg"]
    for model in models.values():
        proba = model.predict_proba(["the goal"])
        assert proba.shape == (1, 2)
    # encoder order is ["biz", "sport"]: the majority class is column 1.
    assert models["majority"].predict_proba(["x"]).argmax() == 1
