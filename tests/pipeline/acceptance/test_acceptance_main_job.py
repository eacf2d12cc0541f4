"""Acceptance: the model the main job trains meets the project's targets.

The targets: macro-F1 of at least 0.97 on the BBC test split, better than every
simple baseline and on par with TF-IDF + logistic regression, every topic
learned, calibrated confidences, plots written, robust to typos and to
irrelevant sentences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mltest.behavioral import INV, AddSentence, Typos, behavioral_test

pytestmark = pytest.mark.model

TARGET_MACRO_F1 = 0.97


def test_model_meets_the_macro_f1_target(metrics: dict[str, Any], ml_record: Any) -> None:
    f1 = metrics["summary"]["model"]["macro_f1"]
    ml_record.metric("macro_f1", f1)
    assert f1 >= TARGET_MACRO_F1, f"macro-F1 {f1:.4f} is below the target {TARGET_MACRO_F1}"


def test_model_beats_the_simple_baselines_and_matches_tfidf(metrics: dict[str, Any]) -> None:
    summary = metrics["summary"]
    model = summary["model"]["macro_f1"]
    assert set(summary) == {"model", "majority", "keywords", "tfidf_logreg"}
    for simple in ("majority", "keywords"):
        assert model > summary[simple]["macro_f1"] + 0.1, (simple, summary[simple]["macro_f1"])
    tfidf = summary["tfidf_logreg"]["macro_f1"]
    assert model >= tfidf - 0.01, f"model {model:.4f} trails TF-IDF {tfidf:.4f} by over a point"


def test_every_topic_is_learned(metrics: dict[str, Any], run_splits: dict[str, Any]) -> None:
    per_class = metrics["models"]["model"]["per_class"]
    assert sorted(per_class) == sorted(set(run_splits["train"]["tag"]))
    assert len(per_class) == 5
    weak = {label: round(v["f1"], 3) for label, v in per_class.items() if v["f1"] < 0.93}
    assert not weak, f"topics with F1 under 0.93: {weak}"


def test_confidences_are_calibrated(metrics: dict[str, Any]) -> None:
    ece = metrics["summary"]["model"]["ece"]
    assert 0.0 <= ece <= 0.08, f"expected calibration error {ece:.4f} is over 0.08"


def test_plots_are_written(metrics: dict[str, Any]) -> None:
    assert set(metrics["plots"]) >= {"confusion", "reliability"}
    for name, path in metrics["plots"].items():
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_prepared_splits_are_stratified_and_complete(run_splits: dict[str, Any]) -> None:
    from mltest.data import check_splits

    check_splits(run_splits, label="tag", tolerance=0.02)


@behavioral_test()
def test_held_out_articles_survive_typos_and_irrelevant_sentences(
    run_splits: dict[str, Any],
) -> list[Any]:
    texts = list(run_splits["test"]["text"])[:120]
    return [
        INV(
            "three typos in a held-out article",
            texts,
            perturbation=Typos(n=3),
            capability="Robustness",
            seed=0,
            min_pass_rate=0.97,
        ),
        INV(
            "an irrelevant sentence at the end",
            texts,
            perturbation=AddSentence(position="end"),
            capability="Robustness",
            seed=0,
            min_pass_rate=0.97,
        ),
    ]
